"""Replaying the log as NDJSON: the unique accepted events, each with its position and chain hash.

Order: partition by partition (ascending), each in offset order. That is log order wherever
Kafka defines one: a unit's events all sit in one partition (keyed by its code), so a unit's
replay is exactly its log order. Across partitions Kafka defines no order, and
merging by timestamp would pretend to one while costing a buffer per partition.

Where a replay starts mid-partition (a ``from`` time), the chain hash just before the start is
taken from the nearest archived event at or before it (``event_archive.chain_hash``), and the
records from there on are hashed forward; with no archived event before it, from genesis. This
keeps a time-filtered replay from re-reading the history, and its hashes are the ones a replay
from offset 0 gives wherever the archive is intact, which ``verify`` checks against the log.

Duplicates (the same event_id again later in the log) are left out: the archive says where
each event was first seen; events the projector has not archived yet are checked against
the ones this replay has read (held as ids only, so memory stays bounded by the records not
yet projected, not by the log).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa

from services.audit.log import TIMESTAMP_SLACK, KafkaLog, Slice
from shared import registry
from shared.db.schema import ReadModels
from shared.db.upserts import one_of
from shared.folds import StoredEvent
from shared.ledger import chained
from shared.projection import Record
from shared.records import UndecodableRecord, decode_record, genesis_hash

BATCH = 500  # records per archive lookup and per chunk sent to the client
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    unit: str | None = None  # a registry key
    type: str | None = None
    received_from: datetime | None = None  # inclusive
    received_until: datetime | None = None  # inclusive


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where reading a partition begins, and the chain hash just before it."""

    offset: int
    hash: str


@dataclass
class ReplayPlan:
    slices: list[Slice]  # the part whose events may be shown
    anchors: dict[int, Anchor] = field(default_factory=dict)

    @property
    def records_to_read(self) -> int:
        return sum(s.stop - self.anchors[s.partition].offset for s in self.slices if s.size)


def plan_replay(
    log: KafkaLog, engine: sa.Engine, tables: ReadModels, wanted: ReplayFilter
) -> ReplayPlan:
    """Decide which offsets to read (all Kafka and database look-ups before any output)."""
    partitions = log.partitions()
    if wanted.unit is not None:
        partitions = _partitions_of_unit(log, engine, tables, wanted.unit, partitions)
    ends = log.end_offsets(partitions)
    starts = dict.fromkeys(partitions, 0)
    stops = dict(ends)
    if wanted.received_from is not None:
        starts = log.offsets_at(wanted.received_from - TIMESTAMP_SLACK, partitions)
    if wanted.received_until is not None:
        later = log.offsets_at(wanted.received_until + TIMESTAMP_SLACK, partitions)
        stops = {p: min(ends[p], later[p]) for p in partitions}
    slices = [Slice(p, starts[p], stops[p]) for p in partitions]
    return ReplayPlan(slices, _anchors(engine, tables, slices))


def _partitions_of_unit(
    log: KafkaLog, engine: sa.Engine, tables: ReadModels, unit: str, partitions: list[int]
) -> list[int]:
    # The partitioner's choice today, plus wherever the archive saw this unit before
    # (in case the partition count changed since): never miss one of its records.
    archive = tables.archive
    with engine.connect() as conn:
        seen = set(
            conn.scalars(
                sa.select(archive.c.partition).where(archive.c.unit_code == unit).distinct()
            )
        )
    found = registry.lookup(unit)
    today = log.partition_for_key(found.code if found else unit)  # keyed by the event's code
    return [p for p in partitions if p in seen or p == today]


def _anchors(engine: sa.Engine, tables: ReadModels, slices: Sequence[Slice]) -> dict[int, Anchor]:
    archive = tables.archive
    anchors: dict[int, Anchor] = {}
    with engine.connect() as conn:
        for piece in slices:
            row = None
            if piece.start > 0:
                row = conn.execute(
                    sa.select(archive.c.offset, archive.c.chain_hash)
                    .where(archive.c.partition == piece.partition, archive.c.offset < piece.start)
                    .order_by(archive.c.offset.desc())
                    .limit(1)
                ).first()
            anchors[piece.partition] = (
                Anchor(row.offset + 1, row.chain_hash)
                if row is not None
                else Anchor(0, genesis_hash(piece.partition))
            )
    return anchors


def replay_lines(
    log: KafkaLog,
    engine: sa.Engine,
    tables: ReadModels,
    plan: ReplayPlan,
    wanted: ReplayFilter,
    progress: Callable[[int], None] | None = None,
) -> Generator[bytes, None, None]:
    """NDJSON, one chunk per batch of records read: memory holds one batch, not the log."""
    for piece in plan.slices:
        if not piece.size:
            continue
        anchor = plan.anchors[piece.partition]
        records = log.read([Slice(piece.partition, anchor.offset, piece.stop)])
        hashed = chained(records, {piece.partition: anchor.hash})
        unarchived: set[UUID] = set()
        for batch in _batches(hashed, BATCH):
            lines = _lines(engine, tables, batch, piece.start, wanted, unarchived)
            if progress:
                progress(len(batch))
            if lines:
                yield b"".join(lines)


def _lines(
    engine: sa.Engine,
    tables: ReadModels,
    batch: Sequence[tuple[Record, str]],
    start: int,
    wanted: ReplayFilter,
    unarchived: set[UUID],
) -> list[bytes]:
    decoded: list[tuple[StoredEvent, str]] = []
    for record, hashed in batch:
        try:
            decoded.append((decode_record(record.value, record.partition, record.offset), hashed))
        except UndecodableRecord:
            continue  # poison is no accepted event; verify reports it against dead_letters
    first_seen = _archived_positions(engine, tables, [s.event_id for s, _ in decoded])
    lines: list[bytes] = []
    for stored, hashed in decoded:
        archived_at = first_seen.get(str(stored.event_id))
        if archived_at is not None:
            if archived_at != (stored.partition, stored.offset):
                continue
        elif stored.event_id in unarchived:
            continue
        else:
            unarchived.add(stored.event_id)
        if stored.offset >= start and _matches(stored, wanted):
            lines.append(line(stored, hashed))
    return lines


def _archived_positions(
    engine: sa.Engine, tables: ReadModels, event_ids: Sequence[UUID]
) -> dict[str, tuple[int, int]]:
    if not event_ids:
        return {}
    archive = tables.archive
    columns = (archive.c.event_id, archive.c.partition, archive.c.offset)
    with engine.connect() as conn:
        return {
            row.event_id: (row.partition, row.offset)
            for condition in one_of(conn, archive.c.event_id, sorted({str(i) for i in event_ids}))
            for row in conn.execute(sa.select(*columns).where(condition))
        }


def _matches(stored: StoredEvent, wanted: ReplayFilter) -> bool:
    event = stored.event
    return (
        (wanted.unit is None or stored.attribution.unit.key == wanted.unit)
        and (wanted.type is None or event.type == wanted.type)
        and (wanted.received_from is None or stored.received_at >= wanted.received_from)
        and (wanted.received_until is None or stored.received_at <= wanted.received_until)
    )


def line(stored: StoredEvent, hashed: str) -> bytes:
    """The stored event as written (its own fields, received_at included) plus where it sits.

    The event's fields are the stored JSON itself, not a re-serialized model, so the canonical
    JSON of a line without partition, offset and chain_hash is the record's exact bytes.
    """
    body: dict[str, Any] = json.loads(stored.raw)
    out = {
        "partition": stored.partition,
        "offset": stored.offset,
        "received_at": body.pop("received_at"),
        "chain_hash": hashed,
        **body,
    }
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _batches[T](items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
