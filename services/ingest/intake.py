"""Turning a request body into validated events, or into a list of everything wrong with it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.web.auth import Principal
from services.web.problems import Problem, field_errors
from shared.events import EVENT_TYPES, Event, UnknownSchemaVersion, parse_event
from shared.records import canonical_json

NDJSON = "application/x-ndjson"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: bytes) -> Any:
    """Strict JSON: NaN and Infinity are not numbers, and the body must be UTF-8."""
    try:
        return json.loads(text.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise Problem(400, "Bad Request", f"The body is not valid JSON: {exc}") from exc


def parse_batch_body(body: bytes, content_type: str) -> list[Any]:
    if content_type == NDJSON:
        lines = [line for line in body.split(b"\n") if line.strip()]
        items = []
        for number, line in enumerate(lines):
            try:
                items.append(parse_json(line))
            except Problem as problem:
                raise Problem(
                    400, "Bad Request", f"NDJSON line {number + 1}: {problem.detail}"
                ) from None
        return items
    items = parse_json(body)
    if not isinstance(items, list):
        raise Problem(400, "Bad Request", "A batch is a JSON array of events (or NDJSON).")
    return items


def body_digest(body: dict[str, Any]) -> str:
    """What identifies an event's content, to tell a resend from a conflicting reuse of its id."""
    return hashlib.sha256(canonical_json(body)).hexdigest()


def validate_event(
    item: Any,
    principal: Principal,
    known_districts: Collection[str],
    now: datetime,
    prefix: tuple[str | int, ...] = (),
) -> tuple[Event | None, list[dict[str, Any]], bool]:
    """Validate one item. Returns (event, field errors, forbidden): forbidden means the caller
    may not write the item's district (403, not 422)."""
    if not isinstance(item, dict):
        return None, [_error(prefix, "An event is a JSON object.", "object_type")], False
    try:
        event = parse_event(item, now=now)
    except UnknownSchemaVersion as exc:
        return None, [_error((*prefix, "schema_version"), str(exc), "schema_version")], False
    except ValidationError as exc:
        return (
            None,
            field_errors(_without_union_tag(exc.errors(include_input=False)), prefix),
            False,
        )
    if event.district_code not in known_districts:
        message = f"Unknown district code {event.district_code!r}."
        return None, [_error((*prefix, "district_code"), message, "unknown_district")], False
    if event.district_code != principal.district_code:
        return None, [], True
    return event, [], False


def _without_union_tag(errors: list[Any]) -> list[dict[str, Any]]:
    # The discriminated union puts the event type first in each path, and reports an unknown
    # or missing type at the root; callers think in fields.
    def fix(error: dict[str, Any]) -> dict[str, Any]:
        loc = tuple(error["loc"])
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            return {**error, "loc": ("type",)}
        return {**error, "loc": loc[1:]} if loc and loc[0] in EVENT_TYPES else error

    return [fix(e) for e in errors]


def _error(loc: tuple[str | int, ...], message: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "field": ".".join(map(str, loc)), "message": message, "type": kind}
