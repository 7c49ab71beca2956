"""Lists of programs, conferences and cases, read a page at a time with an opaque keyset cursor.

Rows come newest first, ordered by (day, event_id): both are fixed for a row's life (a row is
written once and only ever deleted, by a retraction), so the position after the last row of a
page stays meaningful however many rows arrive meanwhile. A page holds the rows strictly after
the cursor's position; a row present when the reading started is therefore returned exactly
once, and one that arrives meanwhile at most once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from services.web.problems import Problem, invalid_parameter
from shared.db.schema import units


@dataclass(frozen=True, slots=True)
class Position:
    """Where the previous page ended: its last row's day and event_id."""

    day: date
    event_id: str


def filters_fingerprint(name: str, filters: Mapping[str, object]) -> str:
    """Ties a cursor to the list and filters it was made for: reused elsewhere it is a 422."""
    canonical = json.dumps([name, {k: str(v) for k, v in sorted(filters.items()) if v is not None}])
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(position: Position, fingerprint: str) -> str:
    raw = json.dumps({"d": position.day.isoformat(), "e": position.event_id, "f": fingerprint})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, fingerprint: str) -> Position | None:
    if not cursor:
        return None
    try:
        if len(cursor) > 400:
            raise ValueError("too long")
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = Position(date.fromisoformat(raw["d"]), str(UUID(raw["e"])))
        matches = raw["f"] == fingerprint
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise _bad_cursor("The cursor is not one this API gave out.") from None
    if not matches:
        raise _bad_cursor("The cursor belongs to another list or other filters.")
    return position


def _bad_cursor(detail: str) -> Problem:
    return invalid_parameter("cursor", detail, detail=detail + " Start again without a cursor.")


def read_page(
    conn: sa.Connection,
    table: sa.Table,
    day_column: str,
    where: Sequence[sa.ColumnElement[bool]],
    after: Position | None,
    limit: int,
) -> tuple[list[dict[str, Any]], Position | None]:
    """One page of rows (with the unit's name and level) and the position to continue from."""
    day, event_id = table.c[day_column], table.c.event_id
    query = (
        sa.select(table, units.c.name.label("unit_name"), units.c.level.label("unit_level"))
        .join(units, units.c.key == table.c.unit_code)
        .where(*where)
        .order_by(day.desc(), event_id.desc())
        .limit(limit + 1)  # one more than asked tells whether there is a next page
    )
    if after is not None:
        query = query.where(
            sa.or_(day < after.day, sa.and_(day == after.day, event_id < after.event_id))
        )
    rows = [dict(row) for row in conn.execute(query).mappings()]
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], Position(last[day_column], last["event_id"])
