"""Verifying the served read models and the stored chain against a fresh fold of the log.

The database is read first, as one consistent snapshot; then the log is read from offset 0 up
to exactly the offsets that snapshot says were applied, so a projector that is behind (or busy)
is never mistaken for a wrong one. The comparison itself is pure (``shared.verification``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from services.audit.log import KafkaLog, Slice
from shared.db.schema import ReadModels
from shared.ledger import Head, chained, fold_log
from shared.verification import LIST_MODELS, ServedModels, check_heads, compare

# The report lists at most this many differences (and says how many there are in all): a
# rewritten early record can make every later row differ, and the first ones tell the story.
MAX_DIFFERENCES = 500


class ProjectorBusy(Exception):
    """The projector kept committing while the read models were read; try again."""


def read_served(
    engine: sa.Engine, tables: ReadModels, topic: str, province: str | None = None, tries: int = 5
) -> ServedModels:
    """The read models as one snapshot: the projector's offsets did not move while reading.

    Checking the offsets before and after works the same on PostgreSQL and SQLite, and the
    projector writes every change in the same transaction as its offsets.
    """
    for _ in range(tries):
        with engine.connect() as conn:
            before = _offsets(conn, tables, topic)
            served = _read(conn, tables, province)
            after = _offsets(conn, tables, topic)
        if before == after:
            served.offsets = before
            return served
    raise ProjectorBusy("the projector kept committing while the read models were read")


def _offsets(conn: sa.Connection, tables: ReadModels, topic: str) -> dict[int, tuple[int, str]]:
    offsets = tables.offsets
    rows = conn.execute(
        sa.select(offsets.c.partition, offsets.c.next_offset, offsets.c.chain_hash).where(
            offsets.c.topic == topic
        )
    )
    return {row.partition: (row.next_offset, row.chain_hash) for row in rows}


def _read(conn: sa.Connection, tables: ReadModels, province: str | None) -> ServedModels:
    def scoped(table: sa.Table) -> sa.Select[Any]:
        query = sa.select(table)
        return query.where(table.c.province_code == province) if province else query

    served = ServedModels()
    for row in conn.execute(scoped(tables.archive)).mappings():
        served.archive[row["event_id"]] = dict(row)
    for row in conn.execute(scoped(tables.figures)).mappings():
        served.figures[(row["day"], row["unit_code"])] = dict(row)
    for model in LIST_MODELS:
        rows = conn.execute(scoped(tables.list_table(model))).mappings()
        served.lists[model] = {row["event_id"]: dict(row) for row in rows}
    dead = tables.dead_letters
    for partition, offset, reason in conn.execute(
        sa.select(dead.c.partition, dead.c.offset, dead.c.reason)
    ):
        served.dead_letters[(partition, offset)] = reason
    return served


def verify(
    log: KafkaLog,
    engine: sa.Engine,
    tables: ReadModels,
    *,
    province: str | None = None,
    saved_heads: Iterable[Head] = (),
) -> dict[str, Any]:
    """Fold the log afresh and compare: ``{"status": "consistent", ...}`` or every difference.

    ``saved_heads`` (exported earlier by ``ledger verify --heads``) are checked in the same read.
    """
    saved = list(saved_heads)
    served = read_served(engine, tables, log.topic, province)
    ends = log.end_offsets()
    applied = {p: next_offset for p, (next_offset, _) in served.offsets.items()}
    wanted = dict(applied)
    for head in saved:
        wanted[head.partition] = max(wanted.get(head.partition, 0), head.offset + 1)
    slices = [Slice(p, 0, min(n, ends.get(p, 0))) for p, n in sorted(wanted.items())]
    ledger = fold_log(log.read(slices), fold_before=applied)
    differences = check_heads(ledger, saved) + compare(ledger, served, province=province)
    return {
        "status": "inconsistent" if differences else "consistent",
        "checked": {
            "province": province,
            "events": len(ledger.archive),
            "applied_offsets": {str(p): n for p, n in sorted(applied.items())},
            "log_end_offsets": {str(p): n for p, n in sorted(ends.items())},
            "saved_heads": len(saved),
        },
        "differences_total": len(differences),
        "differences": differences[:MAX_DIFFERENCES],
    }


def log_heads(log: KafkaLog) -> dict[str, Any]:
    """The chain head of every partition of the whole log now, for an auditor to keep."""
    ends = log.end_offsets()
    heads: dict[int, Head] = {}
    for record, hashed in chained(log.read(Slice(p, 0, n) for p, n in sorted(ends.items()))):
        heads[record.partition] = Head(record.partition, record.offset, hashed)
    return {
        "topic": log.topic,
        "taken_at": datetime.now(UTC).isoformat(),
        "heads": [heads[p].as_json() for p in sorted(heads)],
    }


def saved_heads(document: Mapping[str, Any]) -> list[Head]:
    """The heads from a file ``log_heads`` wrote. Raises ValueError (or KeyError) if malformed."""
    heads = document["heads"]
    if not isinstance(heads, list):
        raise ValueError("'heads' is not a list")
    return [Head.from_json(h) for h in heads]
