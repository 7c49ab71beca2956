"""Receipts ingest gave: a resend of an accepted event gets its original receipt back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from shared.db.schema import ingest_receipts
from shared.db.upserts import insert_ignoring_conflicts


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    body_sha256: str
    partition: int
    offset: int
    received_at: datetime


def find(engine: sa.Engine, event_ids: Iterable[str]) -> dict[str, Receipt]:
    ids = list(set(event_ids))
    found: dict[str, Receipt] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):  # stay under every driver's parameter limit
            rows = conn.execute(
                sa.select(ingest_receipts).where(
                    ingest_receipts.c.event_id.in_(ids[start : start + 500])
                )
            )
            for row in rows:
                found[row.event_id] = Receipt(
                    row.event_id, row.body_sha256, row.partition, row.offset, row.received_at
                )
    return found


def record(engine: sa.Engine, receipts: Sequence[Receipt]) -> None:
    # Two concurrent sends of one new id may both reach Kafka; the first receipt stays and the
    # projector counts the event once.
    with engine.begin() as conn:
        insert_ignoring_conflicts(
            conn,
            ingest_receipts,
            [
                {
                    "event_id": r.event_id,
                    "body_sha256": r.body_sha256,
                    "partition": r.partition,
                    "offset": r.offset,
                    "received_at": r.received_at,
                }
                for r in receipts
            ],
        )
