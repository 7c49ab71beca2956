"""Turning a request body into validated events, or into a list of everything wrong with it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from services.web.auth import Principal
from services.web.problems import Problem, field_errors
from shared import registry
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


# Validates a JSON array of events straight from its bytes.
_BATCH = TypeAdapter(list[Event])


FORBIDDEN_UNIT = (
    "A reporter token posts its own unit's events; a provincial office's, also those of the "
    "units within its province."
)


def validate_batch(
    body: bytes, content_type: str, principal: Principal, now: datetime, limit: int
) -> list[Event]:
    """The batch's events, all valid and all the caller's, or a Problem naming everything wrong
    (400 unreadable, 403 another unit's items, 422 invalid items or a bad count)."""
    if content_type != NDJSON and (events := _accepted_as_a_whole(body, principal, now, limit)):
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
        event, item_errors, item_forbidden = validate_event(item, principal, now, prefix=(index,))
        if item_forbidden:
            forbidden.append(index)
        elif event is None:
            errors.extend({**error, "index": index} for error in item_errors)
        else:
            valid.append(event)
    if forbidden:
        raise Problem(403, "Forbidden", FORBIDDEN_UNIT, forbidden_items=forbidden)
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
    body: bytes, principal: Principal, now: datetime, limit: int
) -> list[Event] | None:
    """A JSON array validated in one call from its bytes: 40 % of the time of parsing it and
    validating item by item (10.5 vs 17.5 ms per 1,000 events). Only for a batch that passes
    every check; None otherwise, and the item-by-item path then says exactly what is wrong, so
    there is one source of error answers.

    This validates at the current version. An older item still takes the item-by-item path,
    which upcasts it: a version 1 item names ``district_code``, which version 2 forbids. An item
    without ``schema_version`` that names ``unit_code`` reads the same either way.
    """
    try:
        events = _BATCH.validate_json(body, context={"now": now})
    except ValidationError:  # not JSON, not an array, or an invalid item (NaN is not a number)
        return None
    if not 0 < len(events) <= limit:
        return None
    if any(unit_problem(e, principal) for e in events):
        return None
    return events


def body_digest(body: dict[str, Any]) -> str:
    """What identifies an event's content, to tell a resend from a conflicting reuse of its id."""
    return hashlib.sha256(canonical_json(body)).hexdigest()


def validate_event(
    item: Any, principal: Principal, now: datetime, prefix: tuple[str | int, ...] = ()
) -> tuple[Event | None, list[dict[str, Any]], bool]:
    """Validate one item. Returns (event, field errors, forbidden): forbidden means the caller
    may not write the item's unit (403, not 422)."""
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
    problem = unit_problem(event, principal)
    if problem is not None and problem.kind == FORBIDDEN:
        return None, [], True
    if problem is not None:
        return None, [_error((*prefix, "unit_code"), problem.message, problem.kind)], False
    return event, [], False


FORBIDDEN = "forbidden"


@dataclass(frozen=True, slots=True)
class UnitProblem:
    kind: str  # "unknown_unit" or "unit_not_in_force" (422), FORBIDDEN (403)
    message: str


def unit_problem(event: Event, principal: Principal) -> UnitProblem | None:
    """What is wrong with the event's unit: the registry has no such unit on the event's date,
    or the caller may not post for it. None when nothing is."""
    day = event.occurred_day
    attribution = registry.attribute(event.unit_code, day)
    if attribution is None:
        return UnitProblem("unknown_unit", registry.unknown(event.unit_code, day))
    if attribution.exception is not None:
        return UnitProblem("unit_not_in_force", f"On {day.isoformat()}: {attribution.exception}")
    own = registry.lookup(principal.unit_code) if principal.unit_code else None
    if own is None or not registry.contains(own, attribution.unit):
        return UnitProblem(FORBIDDEN, FORBIDDEN_UNIT)
    return None


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
