"""Turning a request body into validated events, or into a list of everything wrong with it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from services.web.auth import Principal
from services.web.problems import Problem, field_errors
from shared.events import EVENT_TYPES, UPCASTERS, Event, UnknownSchemaVersion, parse_event
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


# Validates a JSON array of events straight from its bytes.
_BATCH = TypeAdapter(list[Event])


def validate_batch(
    body: bytes,
    content_type: str,
    principal: Principal,
    known_districts: Collection[str],
    now: datetime,
    limit: int,
) -> list[Event]:
    """The batch's events, all valid and all the caller's, or a Problem naming everything wrong
    (400 unreadable, 403 another district's items, 422 invalid items or a bad count)."""
    if content_type != NDJSON and (
        events := _accepted_as_a_whole(body, principal, known_districts, now, limit)
    ):
        return events
    items = parse_batch_body(body, content_type)
    if not items or len(items) > limit:
        raise Problem(
            422,
            "Unprocessable Content",
            f"A batch holds 1 to {limit} events; this one holds {len(items)}.",
        )
    valid: list[Event] = []
    errors: list[dict[str, Any]] = []
    forbidden: list[int] = []
    for index, item in enumerate(items):
        event, item_errors, item_forbidden = validate_event(
            item, principal, known_districts, now, prefix=(index,)
        )
        if item_forbidden:
            forbidden.append(index)
        elif event is None:
            errors.extend({**error, "index": index} for error in item_errors)
        else:
            valid.append(event)
    if forbidden:
        raise Problem(
            403,
            "Forbidden",
            "A district token may only post its own district's events.",
            forbidden_items=forbidden,
        )
    if errors:
        bad = sorted({error["index"] for error in errors})
        raise Problem(
            422,
            "Unprocessable Content",
            f"{len(bad)} of {len(items)} events are invalid; none was accepted.",
            errors=errors,
            invalid_items=bad,
        )
    return valid


def _accepted_as_a_whole(
    body: bytes,
    principal: Principal,
    known_districts: Collection[str],
    now: datetime,
    limit: int,
) -> list[Event] | None:
    """A JSON array validated in one call from its bytes: 40 % of the time of parsing it and
    validating item by item (10.5 vs 17.5 ms per 1,000 events). Only for a batch that passes
    every check; None otherwise, and the item-by-item path then says exactly what is wrong, so
    there is one source of error answers. Not while an upcaster exists: an item without a
    ``schema_version`` must then be read as version 1 and upcast, where this would default it
    to the current version."""
    if UPCASTERS:
        return None
    try:
        events = _BATCH.validate_json(body, context={"now": now})
    except ValidationError:  # not JSON, not an array, or an invalid item (NaN is not a number)
        return None
    if not 0 < len(events) <= limit:
        return None
    mine = principal.district_code
    if mine not in known_districts or any(e.district_code != mine for e in events):
        return None
    return events


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
