"""Writing a batch of log records into the read models, in ONE transaction with the offsets.

The stored offset of each partition is the next record to apply. A batch re-reads it inside the
transaction (locking the row on PostgreSQL, the whole database on SQLite) and applies only records
at or past it, so a batch that another projector or an earlier life of this one already applied
is skipped, not doubled; a batch that starts past it is refused and the consumer told where to
seek back to, so nothing is ever skipped either.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import sqlalchemy as sa

from shared import events as ev
from shared.db.schema import APPLIED_CHANNEL, ReadModels
from shared.db.upserts import (
    insert_ignoring_conflicts,
    insert_or_add,
    insert_or_replace,
    insert_rows,
    one_of,
)
from shared.folds import STORED_FIGURES, Changes, KnownEvent, StoredEvent, fold
from shared.ledger import archive_row, figure_row, list_row
from shared.records import UndecodableRecord, chain_hash, decode_record, genesis_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One Kafka record, as the projector needs it (no Kafka types past the consumer)."""

    partition: int
    offset: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DecodedRecord:
    """A record with its event, or with the reason it is poison."""

    record: LogRecord
    event: StoredEvent | None
    problem: str | None = None


def decode_records(records: Iterable[LogRecord]) -> list[DecodedRecord]:
    """Decode and validate records: Python work only, no database.

    Kept out of the batch's transaction, so a pipeline can decode the next batch while the
    database writes this one (see ``ApplyPipeline``).
    """
    decoded = []
    for record in records:
        try:
            item = decode_record(record.value, record.partition, record.offset)
        except UndecodableRecord as exc:
            decoded.append(DecodedRecord(record, None, str(exc)))
            continue
        decoded.append(DecodedRecord(record, item))
    return decoded


@dataclass
class BatchResult:
    # records past the stored offsets: each ends applied, a duplicate or a dead letter
    fresh: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: list[tuple[LogRecord, str]] = field(default_factory=list)
    skipped_already_applied: int = 0
    # partition -> offset to seek back to, when the consumer ran past the stored position
    rewind: dict[int, int] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)


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

    def apply(self, records: Sequence[LogRecord], conn: sa.Connection | None = None) -> BatchResult:
        """Apply records (in log order within each partition) and advance the offsets, atomically.

        With ``conn`` the work joins the caller's transaction (a rebuild catching up under its
        lock); otherwise it is one transaction of its own.
        """
        return self.apply_decoded(decode_records(records), conn)

    def apply_decoded(
        self, batch: Sequence[DecodedRecord], conn: sa.Connection | None = None
    ) -> BatchResult:
        """``apply``, for records already through ``decode_records``."""
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

    def _apply(self, conn: sa.Connection, batch: Sequence[DecodedRecord]) -> BatchResult:
        result = BatchResult()
        by_partition: dict[int, list[DecodedRecord]] = {}
        for item in batch:
            by_partition.setdefault(item.record.partition, []).append(item)
        heads = self._lock_heads(conn, by_partition)
        fresh: list[DecodedRecord] = []
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
        hashes = self._chain(fresh, heads)
        stored = [d.event for d in fresh if d.event is not None]
        result.dead_letters += [(d.record, d.problem or "") for d in fresh if d.event is None]
        known = self._known(conn, stored)
        changes = self._fold(stored, known, result)
        self._write(conn, changes, hashes)
        self._park(conn, result.dead_letters)
        self._advance(conn, heads, [d.record for d in fresh], hashes)
        result.applied = len(changes.archived)
        result.duplicates = len(changes.duplicates)
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

    @staticmethod
    def _chain(
        batch: Sequence[DecodedRecord], heads: dict[int, tuple[int, str]]
    ) -> dict[tuple[int, int], str]:
        """The chain hash at every record, continuing from each partition's stored head."""
        hashes: dict[tuple[int, int], str] = {}
        last_hash = {p: head_hash for p, (_, head_hash) in heads.items()}
        for item in batch:
            record = item.record
            last_hash[record.partition] = chain_hash(last_hash[record.partition], record.value)
            hashes[(record.partition, record.offset)] = last_hash[record.partition]
        return hashes

    def _known(self, conn: sa.Connection, stored: Sequence[StoredEvent]) -> dict[UUID, KnownEvent]:
        ids = {str(s.event_id) for s in stored}
        ids |= {
            str(s.event.payload.retracted_event_id)
            for s in stored
            if isinstance(s.event, ev.EventRetracted)
        }
        archive = self.tables.archive
        known: dict[UUID, KnownEvent] = {}
        columns = (archive.c.body, archive.c.partition, archive.c.offset, archive.c.retracted_by)
        for condition in one_of(conn, archive.c.event_id, sorted(ids)):
            for row in conn.execute(sa.select(*columns).where(condition)):
                found = decode_record(row.body.encode(), row.partition, row.offset)
                known[found.event_id] = KnownEvent(
                    found.event, found.attribution, retracted=row.retracted_by is not None
                )
        return known

    def _fold(
        self, stored: Sequence[StoredEvent], known: Mapping[UUID, KnownEvent], result: BatchResult
    ) -> Changes:
        """Fold the batch; if a fold raises, park the events that make it raise and fold the rest.

        A fold that raises is a bug in this build, but one event must not stop every unit's
        reports behind it: the event is parked with the error, and a fixed build can replay it.
        """
        try:
            return fold(stored, known)
        except Exception:
            log.exception("a fold raised; folding the batch one event at a time to find the cause")
        # fold() carries only the ids it has seen and their retraction flag from one event to the
        # next, so folding each event alone against that running state finds exactly the culprits.
        seen: dict[UUID, KnownEvent] = dict(known)
        good: list[StoredEvent] = []
        for item in stored:
            try:
                step = fold([item], seen)
            except Exception as exc:
                reason = f"fold failed: {type(exc).__name__}: {exc}"
                result.dead_letters.append(
                    (LogRecord(item.partition, item.offset, item.raw), reason)
                )
                continue
            good.append(item)
            for archived in step.archived:
                seen[archived.event_id] = KnownEvent(
                    archived.event, archived.attribution, retracted=False
                )
            for target in step.retracted:
                seen[target] = KnownEvent(seen[target].event, seen[target].attribution, True)
        return fold(good, known)

    def _write(
        self, conn: sa.Connection, changes: Changes, hashes: Mapping[tuple[int, int], str]
    ) -> None:
        t = self.tables
        # A plain INSERT, not "ignore conflicts": the batch checked these ids under its lock, so a
        # conflict means another projector archived the same id meanwhile (a resend that landed in
        # another partition). Failing rolls this batch back; its retry sees the id as a duplicate.
        archive_rows = [
            archive_row(
                s,
                hashes[(s.partition, s.offset)],
                retracted_by=None,  # set below when this batch retracts it
                note=changes.retraction_notes.get(s.event_id),
            )
            for s in changes.archived
        ]
        if archive_rows:
            insert_rows(conn, t.archive, archive_rows)
        for target, retraction in changes.retracted.items():
            conn.execute(
                t.archive.update()
                .where(t.archive.c.event_id == str(target))
                .values(retracted_by=str(retraction))
            )
        figure_rows = [figure_row(key, delta) for key, delta in changes.figures.items()]
        insert_or_add(conn, t.figures, figure_rows, key=("day", "unit_code"), added=STORED_FIGURES)
        positions = {s.event_id: s for s in changes.archived}
        for model, rows in changes.list_rows.items():
            insert_or_replace(
                conn,
                t.list_table(model),
                [list_row(positions[event_id], row) for event_id, row in rows.items()],
                key=("event_id",),
            )
        for model, removed in changes.list_removals.items():
            table = t.list_table(model)
            for condition in one_of(conn, table.c.event_id, sorted(str(i) for i in removed)):
                conn.execute(table.delete().where(condition))

    def _park(self, conn: sa.Connection, dead: Sequence[tuple[LogRecord, str]]) -> None:
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
        records: Sequence[LogRecord],
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
