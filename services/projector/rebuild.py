"""Rebuild: re-project the whole log into fresh tables, check them, and swap them in.

The fresh tables (``rebuild_*``, the same definitions as the live ones) are filled by the same
``ReadModelStore.apply`` the live projector uses, from offset 0 of every partition, read by
manual assignment (no consumer group, so the live projector's group is untouched) up to the end
offsets taken at the start.

Then, in ONE transaction that holds the live projector still (PostgreSQL: an EXCLUSIVE lock on
the live offsets table, which the projector's batches need first and plain readers do not;
SQLite: the write lock), the rebuild catches up to wherever the live projector got, so both sets
stand at the same offsets; compares them row for row; and, unless only verifying, drops the live
tables and renames the fresh ones (with their indexes and constraints) into their place. Readers
never see a moment without tables, and the live projector's next batch simply goes on from the
swapped tables' offsets: records below them are skipped, a gap above them is read again.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from services.kafka_consumers import BULK_FETCH, log_reader
from services.projector.pipeline import ApplyPipeline, without_partitions
from services.projector.store import BatchResult, ReadModelStore, take_sqlite_write_lock
from shared.db.schema import ReadModels, read_model_tables, read_models
from shared.projection import Record, decode
from shared.verification import Difference, plain, row_differences

PREFIX = "rebuild_"
SHOWN_PER_TABLE = 20
STALL_SECONDS = 60.0
LOCKED_ATTEMPTS = 3

ProgressCallback = Callable[[int, int], None]  # (records done, records to do)


class RebuildError(RuntimeError):
    """The rebuild could not produce trustworthy tables; nothing was swapped."""


@dataclass
class RebuildReport:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    positions: dict[int, int] = field(default_factory=dict)
    live_positions: dict[int, int] = field(default_factory=dict)
    # table -> number of differing rows; differences holds the first few of each
    difference_counts: dict[str, int] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    swapped: bool = False
    seconds: float = 0.0

    @property
    def identical(self) -> bool:
        return not any(self.difference_counts.values())


@dataclass(frozen=True)
class Compared:
    """How one read model is compared: its key, and the columns that carry no meaning."""

    name: str
    key: tuple[str, ...]
    ignored: tuple[str, ...] = ()


COMPARED = (
    Compared("offsets", ("topic", "partition"), ignored=("updated_at",)),
    Compared("archive", ("event_id",)),
    Compared("figures", ("day", "unit_code")),
    Compared("changes", ("partition", "offset")),
    Compared("received", ("received_day", "day", "unit_code")),
    Compared("programs", ("event_id",)),
    Compared("conferences", ("event_id",)),
    Compared("cases", ("event_id",)),
    Compared("dead_letters", ("partition", "offset"), ignored=("parked_at",)),
)


class Rebuild:
    def __init__(
        self,
        engine: sa.Engine,
        topic: str,
        bootstrap_servers: str,
        live: ReadModels = read_models,
        prefix: str = PREFIX,
        batch_records: int = 5000,
    ) -> None:
        self.engine = engine
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.batch_records = batch_records
        self.prefix = prefix
        self.live = live
        self.meta = sa.MetaData()
        self.fresh = read_model_tables(self.meta, prefix)
        self.store = ReadModelStore(engine, self.fresh, topic)
        self.live_store = ReadModelStore(engine, live, topic)
        self.positions: dict[int, int] = {}
        self.report = RebuildReport()

    # --- the whole run ---------------------------------------------------------------------

    def run(
        self, verify_only: bool = False, on_progress: ProgressCallback | None = None
    ) -> RebuildReport:
        """Rebuild and swap in (or, with ``verify_only``, only compare); return what was found.

        Verifying compares the tables the API serves as they are, so it rebuilds only up to the
        live projector's own offsets (then catches up with it); a real rebuild goes to the end of
        the log, even if the live projector is stuck behind.
        """
        started = time.monotonic()
        self._create_fresh_tables()
        try:
            with self._log() as consumer:
                partitions = self._partitions(consumer)
                self.positions = dict.fromkeys(partitions, 0)
                if verify_only:
                    live = self.live_store.stored_offsets()
                    targets = {p: live.get(p, 0) for p in partitions}
                else:
                    targets = self._end_offsets(consumer, partitions)
                self._project(consumer, targets, on_progress)
                # Catch up unlocked first, so the locked catch-up below is short.
                self._project(consumer, self._targets_with(self.live_store.stored_offsets()), None)
                self._compare_and_swap_retrying(consumer, verify_only)
        finally:
            if not self.report.swapped:
                self.meta.drop_all(self.engine)
        self.report.seconds = time.monotonic() - started
        return self.report

    def _create_fresh_tables(self) -> None:
        # A rebuild that died earlier may have left its tables: start clean.
        self.meta.drop_all(self.engine)
        self.meta.create_all(self.engine)

    def _targets_with(self, live: dict[int, int]) -> dict[int, int]:
        return {p: max(done, live.get(p, 0)) for p, done in self.positions.items()}

    # --- reading the log -------------------------------------------------------------------

    @contextmanager
    def _log(self) -> Iterator[KafkaConsumer]:
        # manual assignment: invisible to the live projector's group
        consumer = log_reader(
            self.bootstrap_servers,
            "district-ledger-rebuild",
            fetch=BULK_FETCH,
            max_poll_records=self.batch_records,
        )
        try:
            yield consumer
        finally:
            consumer.close(autocommit=False)

    def _partitions(self, consumer: KafkaConsumer) -> list[int]:
        found = consumer.partitions_for_topic(self.topic)
        if not found:
            raise RebuildError(f"topic {self.topic!r} not found")
        partitions = sorted(found)
        tps = [TopicPartition(self.topic, p) for p in partitions]
        consumer.assign(tps)
        starts = consumer.beginning_offsets(tps)
        truncated = {tp.partition: o for tp, o in starts.items() if o > 0}
        if truncated:
            raise RebuildError(f"the log no longer starts at offset 0 (first offsets {truncated})")
        return partitions

    def _end_offsets(self, consumer: KafkaConsumer, partitions: Sequence[int]) -> dict[int, int]:
        ends = consumer.end_offsets([TopicPartition(self.topic, p) for p in partitions])
        return {tp.partition: int(o) for tp, o in ends.items()}

    def _project(
        self,
        consumer: KafkaConsumer,
        targets: dict[int, int],
        on_progress: ProgressCallback | None,
        conn: sa.Connection | None = None,
    ) -> None:
        """Apply every record below ``targets`` that is not applied yet, in batches."""
        start = dict(self.positions)
        total = sum(max(0, t - start[p]) for p, t in targets.items())
        for p, target in targets.items():
            tp = TopicPartition(self.topic, p)
            if self.positions[p] < target:
                consumer.seek(tp, self.positions[p])  # may have read past it last time
                consumer.resume(tp)
            else:
                consumer.pause(tp)
        last_progress = time.monotonic()
        # Inside the locked transaction (``conn``) the writes stay on this thread.
        pipeline = ApplyPipeline(
            lambda batch: self.store.apply_decoded(batch, conn), threaded=conn is None
        )
        try:
            while pipeline.busy or any(self.positions[p] < t for p, t in targets.items()):
                # Short polls while a batch is written: the last one must not wait out 500 ms.
                polled = consumer.poll(
                    timeout_ms=50 if pipeline.busy else 500, max_records=self.batch_records
                )
                batch = decode(
                    Record(tp.partition, r.offset, r.value)
                    for tp, records in polled.items()
                    for r in records
                    if r.offset < targets[tp.partition]
                )
                if (done := pipeline.wait()) is not None:
                    self._count(done, targets, start, consumer, on_progress, total)
                    batch = without_partitions(batch, done.rewind)
                if batch:
                    last_progress = time.monotonic()
                    pipeline.start(batch)
                elif time.monotonic() - last_progress > STALL_SECONDS:
                    raise RebuildError(f"the log stopped short of {targets} at {self.positions}")
        finally:
            pipeline.close()

    def _count(
        self,
        result: BatchResult,
        targets: dict[int, int],
        start: dict[int, int],
        consumer: KafkaConsumer,
        on_progress: ProgressCallback | None,
        total: int,
    ) -> None:
        """Account for an applied batch: positions, report, seeks back, paused partitions."""
        self.report.records += result.fresh
        self.report.applied += result.applied
        self.report.duplicates += result.duplicates
        self.report.dead_letters += len(result.dead_letters)
        self.positions.update(result.next_offsets)
        for p, offset in result.rewind.items():
            consumer.seek(TopicPartition(self.topic, p), offset)
        for p, target in targets.items():
            if self.positions[p] >= target:
                consumer.pause(TopicPartition(self.topic, p))
        if on_progress:
            done = sum(self.positions[p] - start[p] for p in targets)
            on_progress(done, total)

    # --- checking and swapping ---------------------------------------------------------------

    def _compare_and_swap_retrying(self, consumer: KafkaConsumer, verify_only: bool) -> None:
        """Retry the locked step if it timed out waiting for readers or met a deadlock."""
        for attempt in range(1, LOCKED_ATTEMPTS + 1):
            # The step's catch-up is rolled back with it: so must our count of it be.
            positions, report = dict(self.positions), copy.deepcopy(self.report)
            try:
                self._compare_and_swap(consumer, verify_only)
                return
            except sa.exc.OperationalError:
                if attempt == LOCKED_ATTEMPTS:
                    raise
                self.positions, self.report = positions, report
                time.sleep(1.0)

    def _compare_and_swap(self, consumer: KafkaConsumer, verify_only: bool) -> None:
        with self.engine.begin() as conn:
            self._hold_live_projector(conn)
            live = self.live_store.stored_offsets(conn)
            self._project(consumer, self._targets_with(live), None, conn)
            self.report.positions = dict(self.positions)
            self.report.live_positions = {p: live.get(p, 0) for p in self.positions}
            self._check(conn)
            self._compare(conn)
            if not verify_only:
                self._swap(conn)
        self.report.swapped = not verify_only

    def _hold_live_projector(self, conn: sa.Connection) -> None:
        if conn.dialect.name == "postgresql":
            # Wait no longer than this for readers to let go of the tables, then fail (retryable)
            # rather than queue every reader behind this transaction.
            conn.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
            # EXCLUSIVE conflicts with the row locks a batch takes first, not with plain reads.
            conn.execute(
                sa.text(f"LOCK TABLE {self._quoted(conn, self.live.offsets)} IN EXCLUSIVE MODE")
            )
        else:
            take_sqlite_write_lock(conn)

    def _check(self, conn: sa.Connection) -> None:
        """Refuse tables that do not account for every record read."""
        count = conn.scalar(sa.select(sa.func.count()).select_from(self.fresh.archive))
        if count != self.report.applied:
            raise RebuildError(f"{count} events archived, {self.report.applied} applied")
        handled = self.report.applied + self.report.duplicates + self.report.dead_letters
        if handled != self.report.records:
            raise RebuildError(f"{self.report.records} records read, {handled} accounted for")
        stored = self.store.stored_offsets(conn)
        if any(stored.get(p, 0) != o for p, o in self.positions.items()):
            raise RebuildError(f"offsets stored {stored}, reached {self.positions}")

    def _compare(self, conn: sa.Connection) -> None:
        for compared in COMPARED:
            live: sa.Table = getattr(self.live, compared.name)
            fresh: sa.Table = getattr(self.fresh, compared.name)
            count, shown = self._differences(conn, compared, live, fresh)
            self.report.difference_counts[live.name] = count
            self.report.differences += shown

    def _differences(
        self, conn: sa.Connection, compared: Compared, live_table: sa.Table, fresh_table: sa.Table
    ) -> tuple[int, list[Difference]]:
        live, fresh = live_table.alias("live"), fresh_table.alias("rebuilt")
        columns = [
            c.name
            for c in live_table.columns
            if c.name not in compared.key and c.name not in compared.ignored
        ]
        same_key = sa.and_(*(live.c[k] == fresh.c[k] for k in compared.key))

        def comparable(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
            # PostgreSQL's json type has no equality; its text is what was written.
            return sa.cast(column, sa.Text) if isinstance(column.type, sa.JSON) else column

        changed = sa.or_(
            *(comparable(live.c[c]).is_distinct_from(comparable(fresh.c[c])) for c in columns)
        )
        first = compared.key[0]
        only_or_changed = (
            sa.select(*(live.c[k] for k in compared.key))
            .select_from(live.outerjoin(fresh, same_key))
            .where(sa.or_(fresh.c[first].is_(None), changed))
        )
        only_rebuilt = (
            sa.select(*(fresh.c[k] for k in compared.key))
            .select_from(fresh.outerjoin(live, same_key))
            .where(live.c[first].is_(None))
        )
        if "topic" in compared.key:  # the offsets table may hold other topics' positions
            only_or_changed = only_or_changed.where(live.c.topic == self.topic)
            only_rebuilt = only_rebuilt.where(fresh.c.topic == self.topic)
        differing = sa.union_all(only_or_changed, only_rebuilt).subquery()
        count = int(conn.scalar(sa.select(sa.func.count()).select_from(differing)) or 0)
        shown: list[Difference] = []
        for key_row in conn.execute(sa.select(differing).limit(SHOWN_PER_TABLE)):
            key = dict(zip(compared.key, key_row, strict=True))
            live_row = self._row(conn, live_table, key)
            fresh_row = self._row(conn, fresh_table, key)
            # verify's differences: the rebuilt row is what the log implies, the live one served
            shown += row_differences(
                live_table.name,
                lambda row_key: {k: plain(v) for k, v in zip(compared.key, row_key, strict=True)},
                {} if fresh_row is None else {tuple(key.values()): _compared(fresh_row, columns)},
                {} if live_row is None else {tuple(key.values()): _compared(live_row, columns)},
                lambda row_key: [],
            )
        return count, shown

    @staticmethod
    def _row(conn: sa.Connection, table: sa.Table, key: dict[str, Any]) -> dict[str, Any] | None:
        row = conn.execute(
            sa.select(table).where(*(table.c[k] == v for k, v in key.items()))
        ).first()
        return None if row is None else dict(row._mapping)

    def _swap(self, conn: sa.Connection) -> None:
        """Drop each live table and rename its fresh twin, indexes and constraints included.

        The fresh objects are named with the prefix (``rebuild_cases_pkey``,
        ``ix_rebuild_cases_province``); they take the live names, so the next rebuild can create
        its prefixed set again.
        """
        for live, fresh in zip(self.live.all, self.fresh.all, strict=True):
            conn.execute(sa.text(f"DROP TABLE {self._quoted(conn, live)}"))
            conn.execute(
                sa.text(
                    f"ALTER TABLE {self._quoted(conn, fresh)} RENAME TO {self._quoted(conn, live)}"
                )
            )
            if conn.dialect.name == "postgresql":
                self._rename_postgres_indexes(conn, live.name)
            else:
                self._recreate_sqlite_indexes(conn, live)

    def _rename_postgres_indexes(self, conn: sa.Connection, table: str) -> None:
        # Primary keys and unique constraints are indexes too; renaming the index renames them.
        names = conn.scalars(
            sa.text(
                "SELECT indexname FROM pg_indexes"
                " WHERE schemaname = current_schema() AND tablename = :table"
            ),
            {"table": table},
        ).all()
        quote = conn.dialect.identifier_preparer.quote
        for name in names:
            if self.prefix in name:
                renamed = name.replace(self.prefix, "", 1)
                conn.execute(sa.text(f"ALTER INDEX {quote(name)} RENAME TO {quote(renamed)}"))

    def _recreate_sqlite_indexes(self, conn: sa.Connection, live: sa.Table) -> None:
        # SQLite renames a table's automatic indexes with it but cannot rename a named index:
        # drop the prefixed ones and build the live definitions.
        names = conn.scalars(
            sa.text(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'index' AND tbl_name = :table AND sql IS NOT NULL"
            ),
            {"table": live.name},
        ).all()
        quote = conn.dialect.identifier_preparer.quote
        for name in names:
            conn.execute(sa.text(f"DROP INDEX {quote(name)}"))
        for index in live.indexes:
            index.create(conn)

    @staticmethod
    def _quoted(conn: sa.Connection, table: sa.Table) -> str:
        return str(conn.dialect.identifier_preparer.quote(table.name))


# --- the operator's view ---------------------------------------------------------------------


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s", style="cyan")


class LagColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        behind = max(0, int((task.total or 0) - task.completed))
        return Text(f"lag {behind:,}", style="yellow")


def run_with_progress(rebuild: Rebuild, verify_only: bool, console: Console) -> RebuildReport:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        LagColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("verifying" if verify_only else "rebuilding", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return rebuild.run(verify_only=verify_only, on_progress=update)


def _compared(row: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    return {c: row[c] for c in columns}


def print_report(report: RebuildReport, console: Console) -> None:
    console.print(
        f"{report.records:,} records re-projected in {report.seconds:.1f} s: "
        f"{report.applied:,} events, {report.duplicates:,} duplicates, "
        f"{report.dead_letters:,} dead letters"
    )
    behind = {
        p: report.positions[p] - live
        for p, live in report.live_positions.items()
        if live < report.positions.get(p, 0)
    }
    if behind:
        console.print(
            f"[yellow]the live projector was behind the log (records per partition: {behind}); "
            "the differences below include what it had not applied yet"
        )
    if report.identical:
        console.print("[green]the rebuilt read models equal the live ones, row for row")
    else:
        table = Table("table", "key", "difference", title="differences (live vs rebuilt)")
        for difference in report.differences:
            key = ", ".join(f"{k}={v}" for k, v in difference["key"].items())
            changed = "; ".join(
                f"{name}: live {values['served']!r}, rebuilt {values['log']!r}"
                for name, values in difference["columns"].items()
            )
            table.add_row(difference["table"], key, changed or difference["problem"])
        console.print(table)
        counts = ", ".join(f"{t}: {n}" for t, n in report.difference_counts.items() if n)
        console.print(f"[red]differing rows per table: {counts}")
    if report.swapped:
        console.print("[green]swapped the rebuilt read models in")
