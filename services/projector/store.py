"""Writing a batch of log records into the read models, in ONE transaction with the offsets.

The stored offset of each partition is the next record to apply. A batch re-reads it inside the
transaction (locking the row on PostgreSQL, the whole database on SQLite) and applies only records
at or past it, so a batch that another projector or an earlier life of this one already applied
is skipped, not doubled; a batch that starts past it is refused and the consumer told where to
seek back to, so nothing is ever skipped either.

What the records do is decided by the projection core (``shared.projection.project``), the same
step a rebuild and verify run; this module does the I/O around it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import sqlalchemy as sa

from shared.db.schema import APPLIED_CHANNEL, ReadModels
from shared.db.upserts import (
    insert_ignoring_conflicts,
    insert_or_add,
    insert_or_replace,
    insert_rows,
    one_of,
)
from shared.folds import STORED_FIGURES, KnownEvent
from shared.projection import Decoded, Record, Step, decode, project, referenced_ids
from shared.records import decode_record, genesis_hash

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    # records past the stored offsets: each ends applied, a duplicate or a dead letter
    fresh: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: list[tuple[Record, str]] = field(default_factory=list)
    skipped_already_applied: int = 0
    # partition -> offset to seek back to, when the consumer ran past the stored position
    rewind: dict[int, int] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)


def applied_offsets(
    conn: sa.Connection, tables: ReadModels, topic: str
) -> dict[int, tuple[int, str]]:
    """partition -> (the next offset to apply, the chain hash of the last record applied)."""
    offsets = tables.offsets
    rows = conn.execute(
        sa.select(offsets.c.partition, offsets.c.next_offset, offsets.c.chain_hash).where(
            offsets.c.topic == topic
        )
    )
    return {row.partition: (row.next_offset, row.chain_hash) for row in rows}


def known_events(
    conn: sa.Connection,
    tables: ReadModels,
    ids: Iterable[str],
    *,
    archived_before: tuple[int, int] | None = None,
) -> dict[UUID, KnownEvent]:
    """The archived events among ``ids``, as ``project`` must know them.

    With ``archived_before=(partition, offset)`` (verify reading that partition from there), an
    event archived at or past that position is not known yet, and a retraction at or past it
    has not happened yet: the archive as it stood when the projector reached the position.
    """
    archive = tables.archive
    retraction = archive.alias("retraction")
    columns = (
        archive.c.body,
        archive.c.partition,
        archive.c.offset,
        retraction.c.partition.label("retracted_in"),
        retraction.c.offset.label("retracted_at"),
    )
    query = sa.select(*columns).outerjoin(
        retraction, retraction.c.event_id == archive.c.retracted_by
    )
    known: dict[UUID, KnownEvent] = {}
    for condition in one_of(conn, archive.c.event_id, sorted(set(ids))):
        for row in conn.execute(query.where(condition)):
            retracted = row.retracted_in is not None
            if archived_before is not None:
                partition, start = archived_before
                if row.partition == partition and row.offset >= start:
                    continue
                retracted = retracted and not (
                    row.retracted_in == partition and row.retracted_at >= start
                )
            found = decode_record(row.body.encode(), row.partition, row.offset)
            known[found.event_id] = KnownEvent(found.event, found.attribution, retracted)
    return known


def take_sqlite_write_lock(conn: sa.Connection) -> None:
    """On SQLite, start the transaction with BEGIN IMMEDIATE (no-op elsewhere, or if begun)."""
    if conn.dialect.name != "sqlite":
        return
    driver = conn.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class ReadModelStore:
    """One set of read-model tables fed from one topic.

    ``apply`` is the only writer: the live projector and a rebuild both go through it.
    """

    def __init__(self, engine: sa.Engine, tables: ReadModels, topic: str) -> None:
        self.engine = engine
        self.tables = tables
        self.topic = topic

    def stored_offsets(self, conn: sa.Connection | None = None) -> dict[int, int]:
        offsets = self.tables.offsets
        query = sa.select(offsets.c.partition, offsets.c.next_offset).where(
            offsets.c.topic == self.topic
        )
        if conn is not None:
            return {row.partition: row.next_offset for row in conn.execute(query)}
        with self.engine.connect() as own:
            return {row.partition: row.next_offset for row in own.execute(query)}

    def apply(self, records: Sequence[Record], conn: sa.Connection | None = None) -> BatchResult:
        """Apply records (in log order within each partition) and advance the offsets, atomically.

        With ``conn`` the work joins the caller's transaction (a rebuild catching up under its
        lock); otherwise it is one transaction of its own.
        """
        return self.apply_decoded(decode(records), conn)

    def apply_decoded(
        self, batch: Sequence[Decoded], conn: sa.Connection | None = None
    ) -> BatchResult:
        """``apply``, for records already through ``shared.projection.decode``."""
        if conn is not None:
            return self._apply(conn, batch)
        with self.transaction() as own:
            return self._apply(own, batch)

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction that holds the database's write lock from its first statement.

        pysqlite only opens a transaction at the first INSERT/UPDATE, so the offsets read before
        it would be unprotected: another writer (a second projector, a rebuild's swap) could slip
        in between. BEGIN IMMEDIATE takes SQLite's one write lock up front. PostgreSQL locks the
        offsets rows instead (``_lock_heads``).
        """
        with self.engine.begin() as conn:
            take_sqlite_write_lock(conn)
            yield conn

    def _apply(self, conn: sa.Connection, batch: Sequence[Decoded]) -> BatchResult:
        result = BatchResult()
        by_partition: dict[int, list[Decoded]] = {}
        for item in batch:
            by_partition.setdefault(item.record.partition, []).append(item)
        heads = self._lock_heads(conn, by_partition)
        fresh: list[Decoded] = []
        for partition, items in by_partition.items():
            next_offset, _ = heads[partition]
            items = [d for d in items if d.record.offset >= next_offset]
            result.skipped_already_applied += len(by_partition[partition]) - len(items)
            if items and items[0].record.offset != next_offset:
                result.rewind[partition] = next_offset  # a gap: never apply past it
                continue
            fresh.extend(items)
        if not fresh:
            return result
        result.fresh = len(fresh)
        known = known_events(conn, self.tables, referenced_ids(fresh))
        step = project(fresh, {p: head_hash for p, (_, head_hash) in heads.items()}, known)
        self._write(conn, step)
        self._park(conn, step.dead_letters)
        self._advance(conn, heads, [d.record for d in fresh], step.hashes)
        result.dead_letters = step.dead_letters
        result.applied = len(step.archive)
        result.duplicates = step.duplicates
        result.next_offsets = {p: heads[p][0] for p in heads}
        return result

    # --- steps of a batch ----------------------------------------------------------------

    def _lock_heads(
        self, conn: sa.Connection, partitions: Iterable[int]
    ) -> dict[int, tuple[int, str]]:
        offsets = self.tables.offsets
        wanted = sorted(partitions)
        if conn.dialect.name == "postgresql":
            # FOR UPDATE locks only rows that exist: seed a partition's row first, or two
            # projectors starting on a fresh partition would both apply its first batch.
            insert_ignoring_conflicts(
                conn,
                offsets,
                [
                    {
                        "topic": self.topic,
                        "partition": p,
                        "next_offset": 0,
                        "chain_hash": genesis_hash(p),
                        "updated_at": datetime.now(UTC),
                    }
                    for p in wanted
                ],
            )
        query = (
            sa.select(offsets.c.partition, offsets.c.next_offset, offsets.c.chain_hash)
            .where(offsets.c.topic == self.topic, offsets.c.partition.in_(wanted))
            .order_by(offsets.c.partition)  # one lock order for every projector: no deadlock
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()  # two projectors on one partition take turns
        found = {row.partition: (row.next_offset, row.chain_hash) for row in conn.execute(query)}
        return {p: found.get(p, (0, genesis_hash(p))) for p in wanted}

    def _write(self, conn: sa.Connection, step: Step) -> None:
        t = self.tables
        # A plain INSERT, not "ignore conflicts": the batch checked these ids under its lock, so a
        # conflict means another projector archived the same id meanwhile (a resend that landed in
        # another partition). Failing rolls this batch back; its retry sees the id as a duplicate.
        if step.archive:
            insert_rows(conn, t.archive, step.archive)
        in_step = {row["event_id"] for row in step.archive}
        for target, retraction in step.retracted.items():
            if target not in in_step:  # archived by an earlier batch: mark it now
                conn.execute(
                    t.archive.update()
                    .where(t.archive.c.event_id == target)
                    .values(retracted_by=retraction)
                )
        if step.changes:
            insert_rows(conn, t.changes, step.changes)
        insert_or_add(
            conn, t.figures, step.figures(), key=("day", "unit_code"), added=STORED_FIGURES
        )
        insert_or_add(
            conn,
            t.received,
            step.received(),
            key=("received_day", "day", "unit_code"),
            added=STORED_FIGURES,
        )
        for model, rows in step.lists.items():
            insert_or_replace(conn, t.list_table(model), rows, key=("event_id",))
        for model, removed in step.list_removals.items():
            table = t.list_table(model)
            for condition in one_of(conn, table.c.event_id, removed):
                conn.execute(table.delete().where(condition))

    def _park(self, conn: sa.Connection, dead: Sequence[tuple[Record, str]]) -> None:
        now = datetime.now(UTC)
        insert_ignoring_conflicts(
            conn,
            self.tables.dead_letters,
            [
                {
                    "partition": r.partition,
                    "offset": r.offset,
                    "reason": reason,
                    "value": r.value,
                    "parked_at": now,
                }
                for r, reason in dead
            ],
        )

    def _advance(
        self,
        conn: sa.Connection,
        heads: dict[int, tuple[int, str]],
        records: Sequence[Record],
        hashes: Mapping[tuple[int, int], str],
    ) -> None:
        now = datetime.now(UTC)
        for record in records:
            heads[record.partition] = (record.offset + 1, hashes[(record.partition, record.offset)])
        insert_or_replace(
            conn,
            self.tables.offsets,
            [
                {
                    "topic": self.topic,
                    "partition": p,
                    "next_offset": n,
                    "chain_hash": h,
                    "updated_at": now,
                }
                for p, (n, h) in heads.items()
                if any(r.partition == p for r in records)
            ],
            key=("topic", "partition"),
        )
        if conn.dialect.name == "postgresql":
            # Delivered at commit: wakes API requests waiting for these offsets (``after=``).
            conn.exec_driver_sql(f"NOTIFY {APPLIED_CHANNEL}")
