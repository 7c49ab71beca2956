"""``after=partition:offset,...``: wait (bounded) until the projector has applied those receipts."""

from __future__ import annotations

import time

import sqlalchemy as sa

from services.web.problems import Problem, invalid_parameter
from shared.db.schema import ReadModels


def parse_after(value: str | None) -> dict[int, int]:
    if not value:
        return {}
    wanted: dict[int, int] = {}
    for part in value.split(","):
        partition, sep, offset = part.strip().partition(":")
        if (
            not sep
            or not partition.isdigit()
            or not offset.isdigit()
            or len(partition) > 6
            or len(offset) > 18
        ):
            raise invalid_parameter(
                "after",
                f"bad receipt {part!r}",
                "receipt",
                f"'after' takes receipts as partition:offset pairs joined by commas; {part!r} is not one.",
            )
        wanted[int(partition)] = max(wanted.get(int(partition), 0), int(offset))
    return wanted


def wait_until_applied(
    engine: sa.Engine, tables: ReadModels, topic: str, wanted: dict[int, int], timeout: float
) -> None:
    if not wanted:
        return
    deadline = time.monotonic() + timeout
    offsets = tables.offsets
    while True:
        with engine.connect() as conn:
            applied = dict(
                conn.execute(
                    sa.select(offsets.c.partition, offsets.c.next_offset).where(
                        offsets.c.topic == topic
                    )
                )
                .tuples()
                .all()
            )
        if all(applied.get(p, 0) > o for p, o in wanted.items()):
            return
        if time.monotonic() >= deadline:
            raise Problem(
                504,
                "Gateway Timeout",
                f"The read models did not reach the given receipts within {timeout:g} s; retry.",
                headers={"Retry-After": "1"},
            )
        time.sleep(0.02)
