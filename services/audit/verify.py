"""Verifying the read models and the stored chain against the log, in bounded memory.

The database is read in one snapshot (every query sees one moment, so a projector that is
behind or busy is never mistaken for a wrong one), and the log up to exactly the offsets that
snapshot says were applied. The log is read partition by partition, in chunks: each chunk goes
through the projection core (``shared.projection.project``), the step the projector ran, and
its rows are compared with the rows stored at the same positions (``shared.verification``).
What the core must know of earlier events (duplicates, retraction targets) comes from the
archive as it stood at the chunk's start; those archive rows were themselves checked against
the log when their own chunk was. Memory holds a chunk, whatever the log's length.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import batched
from typing import Any, Protocol

import sqlalchemy as sa

from services.audit.log import Slice
from services.projector.store import applied_offsets, known_events
from shared import registry
from shared.db.engine import export_snapshot, snapshot
from shared.db.schema import ReadModels, read_model_tables
from shared.db.upserts import one_of
from shared.folds import LIST_FOLDS, STORED_FIGURES
from shared.ledger import Head, chained
from shared.projection import Record, Step, decode, project, referenced_ids
from shared.records import genesis_hash
from shared.verification import (
    LIST_MODELS,
    MAX_POSITIONS,
    Difference,
    Findings,
    StoredRows,
    compare_chunk,
    head_difference,
    plain,
    position,
    row_differences,
)

# The report lists at most this many differences (and says how many there are in all): a
# rewritten early record can make every later row differ, and the first ones tell the story.
MAX_DIFFERENCES = 500
# Records per chunk: the most verify holds at once, with their rows from the database.
CHUNK_RECORDS = 5_000

Progress = Callable[[int, int], None]  # (records read, records to read)
# Below this many records to read, the partitions are checked in the calling process: starting
# worker processes (a second or two each) would cost more than it saves.
PARALLEL_FROM_RECORDS = 50_000


class LogSource(Protocol):
    """What verify reads: ``services.audit.log.KafkaLog``, or a test's list of records. A source
    with an ``opener`` (a picklable callable that opens the same log again) can be read by
    several processes at once."""

    topic: str

    def end_offsets(self) -> dict[int, int]: ...

    def read(self, slices: Iterable[Slice]) -> Iterator[Record]: ...


class WorkerLost(Exception):
    """A verification's worker process ended before its partitions were checked (killed, or out
    of memory): the verification stops, and can be started again."""


@dataclass(frozen=True)
class _Partition:
    """One partition's share of a verification."""

    partition: int
    stop: int  # the log is read up to, not including, this offset
    applied: int  # the projector applied the records before this offset
    kept: frozenset[int]  # offsets whose chain hash is wanted: stored and saved heads


@dataclass
class _Checked:
    """What checking one partition found."""

    partition: int
    findings: Findings
    events: int = 0
    retractions: int = 0
    read: int = 0
    head: Head | None = None
    at_kept: dict[int, str] = field(default_factory=dict)


def verify(
    log: LogSource,
    engine: sa.Engine,
    tables: ReadModels,
    *,
    province: str | None = None,
    saved_heads: Iterable[Head] = (),
    progress: Progress | None = None,
    workers: int = 1,
    parallel_from: int = PARALLEL_FROM_RECORDS,
) -> dict[str, Any]:
    """Compare the read models and chain with the log: ``{"status": "consistent", ...}``, or
    ``"inconsistent"`` with the differences. ``saved_heads`` (exported earlier by
    ``ledger verify --heads``) are checked in the same read; the report ends with the log's
    chain head of each partition as read.

    With ``workers`` > 1, on PostgreSQL and a log with an ``opener``, that many processes check
    partitions at once (when there are ``parallel_from`` records or more to read), each in the
    same database snapshot as this one; the report is the one a single process would give.
    """
    saved: dict[tuple[int, int], str] = {(h.partition, h.offset): h.hash for h in saved_heads}
    findings = Findings(MAX_DIFFERENCES)
    with snapshot(engine) as conn:
        if conn.dialect.name == "postgresql":
            # A verification reads the whole log: its statements are not bounded like a
            # request's (API_STATEMENT_TIMEOUT_SECONDS); one job runs at a time instead.
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        applied = applied_offsets(conn, tables, log.topic)
        ends = log.end_offsets()
        shares = _shares(applied, ends, saved)
        total = sum(share.stop for share in shares)
        read = 0

        def counted(records: int) -> None:
            nonlocal read
            read += records
            if progress:
                progress(read, total)

        # The checks in SQL alone (the snapshot's own rows against each other); in this
        # process while the workers read the log, if there are workers.
        in_sql = Findings(MAX_DIFFERENCES)
        marked_retracted = 0

        def check_in_sql() -> None:
            nonlocal marked_retracted
            _unapplied_rows(conn, tables, applied, province, in_sql)
            _sums_against_changes(conn, tables, province, in_sql, by_received_day=False)
            _sums_against_changes(conn, tables, province, in_sql, by_received_day=True)
            _orphan_list_rows(conn, tables, province, in_sql)
            marked_retracted = _marked_retracted(conn, tables, province)

        opener = getattr(log, "opener", None)
        in_workers = min(workers, sum(1 for share in shares if share.stop))
        if (
            in_workers > 1
            and opener is not None
            and conn.dialect.name == "postgresql"
            and total >= parallel_from
        ):
            checked = _check_in_workers(
                in_workers,
                engine,
                tables,
                opener,
                export_snapshot(conn),
                shares,
                province,
                counted,
                meanwhile=check_in_sql,
            )
        else:
            checked = [
                _check_partition(conn, tables, log, share, province, counted) for share in shares
            ]
            check_in_sql()
        read = sum(done.read for done in checked)
        if progress:  # the workers' last updates may still be on their way
            progress(read, total)
        for done in checked:  # in partition order, as one process would have found them
            findings.merge(done.findings)
        events = sum(done.events for done in checked)
        retractions = sum(done.retractions for done in checked)
        _check_heads(checked, applied, saved, findings)
        findings.merge(in_sql)
        if marked_retracted != retractions:
            findings.add(_retraction_count_difference(marked_retracted, retractions))
    total_differences, shown = findings.report()
    return {
        "status": "inconsistent" if total_differences else "consistent",
        "checked": {
            "province": province,
            "events": events,
            "records_read": read,
            "applied_offsets": {str(p): n for p, (n, _) in sorted(applied.items())},
            "log_end_offsets": {str(p): n for p, n in sorted(ends.items())},
            "saved_heads": len(saved),
        },
        "heads": [done.head.as_json() for done in checked if done.head is not None],
        "differences_total": total_differences,
        "differences": shown,
    }


def _shares(
    applied: Mapping[int, tuple[int, str]],
    ends: Mapping[int, int],
    saved: Mapping[tuple[int, int], str],
) -> list[_Partition]:
    """Each partition's share, in partition order: the log is read up to what the projector
    applied (or past it, to a saved head), and no further than it reaches."""
    stops = {p: next_offset for p, (next_offset, _) in applied.items()}
    for partition, offset in saved:
        stops[partition] = max(stops.get(partition, 0), offset + 1)
    kept = {(p, n - 1) for p, (n, _) in applied.items() if n} | saved.keys()
    return [
        _Partition(
            partition,
            min(stop, ends.get(partition, 0)),
            applied.get(partition, (0, ""))[0],
            frozenset(offset for p, offset in kept if p == partition),
        )
        for partition, stop in sorted(stops.items())
    ]


def _check_heads(
    checked: Iterable[_Checked],
    applied: Mapping[int, tuple[int, str]],
    saved: Mapping[tuple[int, int], str],
    findings: Findings,
) -> None:
    """The projector's stored chain heads, and those an auditor saved, against the hashes the
    log gave at the same positions."""
    at_kept = {
        (done.partition, offset): hashed
        for done in checked
        for offset, hashed in done.at_kept.items()
    }
    for p, (next_offset, stored_hash) in sorted(applied.items()):
        found = at_kept.get((p, next_offset - 1))
        if next_offset and found != stored_hash:
            findings.add(
                head_difference("chain_head", p, next_offset - 1, stored_hash, found, saved=False)
            )
    for (p, offset), hash_kept in sorted(saved.items()):
        found = at_kept.get((p, offset))
        if found != hash_kept:
            findings.add(head_difference("saved_head", p, offset, hash_kept, found, saved=True))


def _check_partition(
    conn: sa.Connection,
    tables: ReadModels,
    log: LogSource,
    share: _Partition,
    province: str | None,
    counted: Callable[[int], None],
) -> _Checked:
    """Read one partition's log in chunks and check each against the rows stored for it."""
    partition = share.partition
    checked = _Checked(partition, Findings(MAX_DIFFERENCES))
    last = last_hash = genesis_hash(partition)
    for chunk in batched(log.read([Slice(partition, 0, share.stop)]), CHUNK_RECORDS):
        hashes: dict[tuple[int, int], str] = {}
        for record, hashed in chained(chunk, {partition: last}):
            hashes[(partition, record.offset)] = last = hashed
            if record.offset in share.kept:
                checked.at_kept[record.offset] = hashed
        applied_here = [r for r in chunk if r.offset < share.applied]
        if applied_here:
            events, retractions = _check_chunk(
                conn, tables, applied_here, hashes, checked.findings, province, before=last_hash
            )
            checked.events += events
            checked.retractions += retractions
        last_hash = last
        checked.head = Head(partition, chunk[-1].offset, last)
        checked.read += len(chunk)
        counted(len(chunk))
    return checked


def _check_in_workers(
    workers: int,
    engine: sa.Engine,
    tables: ReadModels,
    opener: Callable[[], LogSource],
    shared_snapshot: str,
    shares: list[_Partition],
    province: str | None,
    counted: Callable[[int], None],
    *,
    meanwhile: Callable[[], None],
) -> list[_Checked]:
    """Check the partitions in ``workers`` processes, the largest first, each process in the
    snapshot this one exported; their progress comes back through a queue. ``meanwhile`` runs
    here while they work."""
    context = multiprocessing.get_context("spawn")  # no copy of this process's threads or locks
    updates = context.Queue()
    url = engine.url.render_as_string(hide_password=False)
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(url, tables.prefix, opener, shared_snapshot, updates),
    ) as pool:
        futures = {
            share.partition: pool.submit(_check_in_worker, share, province)
            for share in sorted(shares, key=lambda share: -share.stop)
        }
        meanwhile()
        pending: set[Future[_Checked]] = set(futures.values())
        while pending:
            _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            while not updates.empty():
                counted(updates.get())
        try:
            return [futures[partition].result() for partition in sorted(futures)]
        except BrokenProcessPool as exc:
            raise WorkerLost(
                f"a worker process ended before its partitions were checked: {exc}"
            ) from exc


# A worker process's own engine, tables, log and snapshot (set by _start_worker).
_worker: dict[str, Any] = {}


def _start_worker(
    url: str,
    prefix: str,
    opener: Callable[[], LogSource],
    shared_snapshot: str,
    updates: Any,
) -> None:
    _worker.update(
        # no pool pre-ping: the snapshot must be the first statement of its transaction
        engine=sa.create_engine(url, poolclass=sa.pool.NullPool),
        tables=read_model_tables(sa.MetaData(), prefix),
        opener=opener,
        snapshot=shared_snapshot,
        updates=updates,
    )
    # the registry and the modules stay for the process's life: leave them out of every
    # garbage collection, which then sees only a chunk's short-lived rows
    registry.load()
    gc.collect()
    gc.freeze()


def _check_in_worker(share: _Partition, province: str | None) -> _Checked:
    if "log" not in _worker:  # opened by the first task, so that a failure is its exception
        _worker["log"] = _worker["opener"]()
    with snapshot(_worker["engine"], shared=_worker["snapshot"]) as conn:
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        return _check_partition(
            conn, _worker["tables"], _worker["log"], share, province, _worker["updates"].put
        )


def _in(row: Mapping[str, Any], province: str | None) -> bool:
    return province is None or row["province_code"] == province


def _check_chunk(
    conn: sa.Connection,
    tables: ReadModels,
    records: list[Record],
    hashes: Mapping[tuple[int, int], str],
    findings: Findings,
    province: str | None,
    *,
    before: str,
) -> tuple[int, int]:
    """Run the core over one chunk of a partition (``before``: the chain hash before it) and
    compare its rows with the stored ones; returns how many events and retractions of the scope
    it holds. A provincial check decodes only the records whose key (their unit) can count in
    the province: the rest are hashed, never decoded."""
    partition, start, end = records[0].partition, records[0].offset, records[-1].offset
    if province is not None:
        records = [r for r in records if _may_count_in(r.key, province)]
    decoded = decode(records)
    stored = _stored_at(conn, tables, partition, start, end, province)
    # An event archived in this chunk is not known before it (``archived_before``): only the
    # other ids (resends, retraction targets, rows missing) are looked up.
    wanted = referenced_ids(decoded) - stored.archive.keys()
    known = known_events(conn, tables, wanted, archived_before=(partition, start))
    step = project(decoded, {partition: before}, known, hashes=hashes)
    _stored_for(conn, tables, step, stored, province)
    if province is not None:  # dead letters belong to no province: those of the records read
        read = {(r.partition, r.offset) for r in records}
        stored.dead_letters = {at: why for at, why in stored.dead_letters.items() if at in read}
    compare_chunk(step, hashes, stored, findings, province=province)
    targets_in_scope = [
        target
        for target in step.retracted
        if province is None or stored.retracted.get(target, (None, None))[1] == province
    ]
    return sum(1 for row in step.archive if _in(row, province)), len(targets_in_scope)


def _may_count_in(key: bytes | None, province: str) -> bool:
    if key is None:
        return True  # not keyed as ingest keys: decode it to know
    try:
        return province in registry.current_provinces_of(key.decode())
    except UnicodeDecodeError:
        return True


def _stored_at(
    conn: sa.Connection,
    tables: ReadModels,
    partition: int,
    start: int,
    end: int,
    province: str | None,
) -> StoredRows:
    """The rows the database holds at positions ``start``..``end`` of ``partition``."""

    def at_positions(table: sa.Table, scoped: bool = True) -> sa.Select[Any]:
        query = sa.select(table).where(
            table.c.partition == partition, table.c.offset >= start, table.c.offset <= end
        )
        return query.where(table.c.province_code == province) if scoped and province else query

    stored = StoredRows()
    for row in _rows(conn, at_positions(tables.archive)):
        stored.archive[row["event_id"]] = row
    for row in _rows(conn, at_positions(tables.changes)):
        stored.changes[(row["partition"], row["offset"])] = row
    for row in _rows(conn, at_positions(tables.dead_letters, scoped=False)):
        stored.dead_letters[(row["partition"], row["offset"])] = row["reason"]
    return stored


# Event type name -> the list read model its events have rows in.
LISTED = {cls.__name__: model for cls, (model, _) in LIST_FOLDS.items()}


def _stored_for(
    conn: sa.Connection, tables: ReadModels, step: Step, stored: StoredRows, province: str | None
) -> None:
    """Add the list rows of the chunk's events, and the stored state of the targets of its
    retractions, to ``stored``."""
    ids: dict[str, set[str]] = {model: set() for model in LIST_MODELS}
    for row in (*stored.archive.values(), *step.archive):
        if (model := LISTED.get(row["type"])) is not None:
            ids[model].add(row["event_id"])
    for model in LIST_MODELS:
        table = tables.list_table(model)
        found = stored.lists.setdefault(model, {})
        for condition in one_of(conn, table.c.event_id, sorted(ids[model])):
            query = sa.select(table).where(condition)
            if province:
                query = query.where(table.c.province_code == province)
            for row in _rows(conn, query):
                found[row["event_id"]] = row
    archive = tables.archive
    for condition in one_of(conn, archive.c.event_id, sorted(step.retracted)):
        for event_id, retracted_by, province_code in conn.execute(
            sa.select(archive.c.event_id, archive.c.retracted_by, archive.c.province_code).where(
                condition
            )
        ):
            stored.retracted[event_id] = (retracted_by, province_code)


def _rows(conn: sa.Connection, query: sa.Select[Any]) -> Iterator[dict[str, Any]]:
    """The rows as plain dicts (zipped with the column names once: RowMapping is slower)."""
    result = conn.execute(query)
    names = list(result.keys())
    for values in result.all():  # one fetchall: psycopg's fetchone per row costs as much again
        yield dict(zip(names, values, strict=True))


def _limited(conn: sa.Connection, query: sa.Select[Any]) -> tuple[int, list[sa.RowMapping]]:
    """How many rows a query finds, and the first MAX_DIFFERENCES of them."""
    found = query.subquery()
    count = int(conn.scalar(sa.select(sa.func.count()).select_from(found)) or 0)
    if not count:
        return 0, []
    return count, list(conn.execute(sa.select(found).limit(MAX_DIFFERENCES)).mappings())


def _unapplied_rows(
    conn: sa.Connection,
    tables: ReadModels,
    applied: Mapping[int, tuple[int, str]],
    province: str | None,
    findings: Findings,
) -> None:
    """Rows at positions the projector has not applied (or in partitions it never had)."""
    for table in (tables.archive, tables.changes, tables.dead_letters, *_lists(tables)):
        below = [
            sa.and_(table.c.partition == p, table.c.offset < n) for p, (n, _) in applied.items()
        ]
        query = sa.select(table.c.partition, table.c.offset).where(
            sa.not_(sa.or_(sa.false(), *below))
        )
        if province and "province_code" in table.c:
            query = query.where(table.c.province_code == province)
        count, rows = _limited(conn, query)
        findings.counted(
            count,
            [
                {
                    "kind": "row",
                    "table": table.name,
                    "key": position((row["partition"], row["offset"])),
                    "problem": "the read model has a row at a position the projector has not applied",
                    "columns": {},
                    "positions": [position((row["partition"], row["offset"]))],
                }
                for row in rows
            ],
        )


def _lists(tables: ReadModels) -> list[sa.Table]:
    return [tables.list_table(model) for model in LIST_MODELS]


def _sums_against_changes(
    conn: sa.Connection,
    tables: ReadModels,
    province: str | None,
    findings: Findings,
    *,
    by_received_day: bool,
) -> None:
    """daily_figures must be the figure changes summed per (day, unit), and
    figures_by_received_day per (UTC day received, day, unit): compared in SQL."""
    changes = tables.changes
    table = tables.received if by_received_day else tables.figures
    keys: list[tuple[str, sa.ColumnElement[Any]]] = [
        ("day", changes.c.day),
        ("unit_code", changes.c.unit_code),
    ]
    if by_received_day:
        keys.insert(0, ("received_day", _utc_day(conn, changes.c.received_at)))
    attributes = ("province_code", "reported_province")
    sums = sa.select(
        *(expression.label(name) for name, expression in keys),
        *(sa.func.min(changes.c[name]).label(name) for name in attributes),
        # cast: PostgreSQL sums bigints as numeric, which JSON reports cannot hold
        *(
            sa.cast(sa.func.sum(changes.c[name]), sa.BigInteger).label(name)
            for name in STORED_FIGURES
        ),
    ).group_by(*(expression for _, expression in keys))
    stored = sa.select(table)
    if province:
        sums = sums.where(changes.c.province_code == province)
        stored = stored.where(table.c.province_code == province)
    implied, served = sums.subquery("implied"), stored.subquery("served")
    names = [name for name, _ in keys]
    same_key = sa.and_(*(served.c[name] == implied.c[name] for name in names))
    differs = sa.or_(
        *(served.c[name] != implied.c[name] for name in (*attributes, *STORED_FIGURES))
    )
    # both ways round, as two LEFT JOINs (SQLite before 3.39 has no FULL JOIN); a row of zeros
    # that no change implies is what a day whose events were all retracted leaves: no difference
    lacking = (
        sa.select(*(implied.c[name] for name in names))
        .select_from(implied.outerjoin(served, same_key))
        .where(sa.or_(served.c.day.is_(None), differs))
    )
    extra = (
        sa.select(*(served.c[name] for name in names))
        .select_from(served.outerjoin(implied, same_key))
        .where(implied.c.day.is_(None), sa.or_(*(served.c[n] != 0 for n in STORED_FIGURES)))
    )
    count, rows = _limited(conn, sa.union_all(lacking, extra).subquery().select())
    shown = []
    for row in rows:
        key = tuple(row[name] for name in names)
        at_key = [expression == value for (_, expression), value in zip(keys, key, strict=True)]
        log_row = conn.execute(sums.having(sa.and_(*at_key))).mappings().first()
        served_row = (
            conn.execute(
                sa.select(table).where(*(table.c[n] == v for n, v in zip(names, key, strict=True)))
            )
            .mappings()
            .first()
        )
        sources = conn.execute(
            sa.select(changes.c.partition, changes.c.offset)
            .where(*at_key)
            .order_by(changes.c.partition, changes.c.offset)
            .limit(MAX_POSITIONS)
        ).all()
        for difference in row_differences(
            table.name,
            lambda k: {name: plain(v) for name, v in zip(names, k, strict=True)},
            {key: dict(log_row)} if log_row else {},
            {key: dict(served_row)} if served_row else {},
            lambda k: [],
        ):
            difference["positions"] = [position((p, o)) for p, o in sources]
            shown.append(difference)
    findings.counted(count, shown)


def _utc_day(conn: sa.Connection, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The UTC day of a stored received time, as the projector computed it."""
    if conn.dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)  # SQLite keeps it as naive UTC text


def _orphan_list_rows(
    conn: sa.Connection, tables: ReadModels, province: str | None, findings: Findings
) -> None:
    """List rows whose event the archive does not hold at the row's position."""
    archive = tables.archive
    for table in _lists(tables):
        query = (
            sa.select(table.c.event_id, table.c.partition, table.c.offset)
            .select_from(
                table.outerjoin(
                    archive,
                    sa.and_(
                        archive.c.event_id == table.c.event_id,
                        archive.c.partition == table.c.partition,
                        archive.c.offset == table.c.offset,
                    ),
                )
            )
            .where(archive.c.event_id.is_(None))
        )
        if province:
            query = query.where(table.c.province_code == province)
        count, rows = _limited(conn, query)
        findings.counted(
            count,
            [
                {
                    "kind": "row",
                    "table": table.name,
                    "key": {"event_id": row["event_id"]},
                    "problem": "the read model has this row; the log does not imply it",
                    "columns": {},
                    "positions": [position((row["partition"], row["offset"]))],
                }
                for row in rows
            ],
        )


def _marked_retracted(conn: sa.Connection, tables: ReadModels, province: str | None) -> int:
    archive = tables.archive
    query = sa.select(sa.func.count()).where(archive.c.retracted_by.is_not(None))
    if province:
        query = query.where(archive.c.province_code == province)
    return int(conn.scalar(query) or 0)


def _retraction_count_difference(marked: int, retractions: int) -> Difference:
    """Each retraction in the log was checked on its target; rows marked retracted that no
    retraction in the log explains are found by counting them."""
    return {
        "kind": "retractions",
        "table": "event_archive",
        "problem": "the archive marks a different number of events retracted than the log retracts",
        "served": marked,
        "log": retractions,
        "positions": [],
    }


def log_heads(log: LogSource) -> dict[str, Any]:
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
