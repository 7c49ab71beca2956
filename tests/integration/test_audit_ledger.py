"""Verify and the summary as of a moment, against what the projector stored, on each database.

The records are built in memory and fed to the projector's own store in batches, as its Kafka
loop would, and verify reads the same list; Kafka itself is exercised by the API and end-to-end
audit tests.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import signal
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from services.api.scopes import resolve_scope
from services.api.summary import FRAMES, Frame, parse_group_by, province_column_name, summary_rows
from services.audit import verify as verifying
from services.audit.log import KafkaLog, Slice
from services.projector.store import ReadModelStore
from services.web.auth import Principal
from shared import folds
from shared.db.engine import make_engine
from shared.db.schema import read_models
from shared.events import parse_event
from shared.examples import EXAMPLES
from shared.folds import STORED_FIGURES, summary_row
from shared.ledger import FigureKey, Head, fold_log
from shared.projection import Record
from shared.records import encode_event
from tests.support import wait_until

TOPIC = "audit-ledger-test"
HA_TINH_CITY, BA_DINH, HOAN_KIEM = "436", "001", "002"  # legacy districts
HA_TINH_COMMUNE = "18073"  # Phường Thành Sen, Hà Tĩnh: a commune from 2025-07-01
PARTITION_OF = {HA_TINH_CITY: 0, HA_TINH_COMMUNE: 0, BA_DINH: 1, HOAN_KIEM: 1}
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
# The time between two records' receipt: the log spans days, as the as-of question reads whole
# received days and single changes differently.
TICK = timedelta(hours=5)


def make_event(kind: str, unit: str, occurred: str, **payload: Any) -> dict[str, Any]:
    event = copy.deepcopy(EXAMPLES[kind])
    event.update(event_id=str(uuid.uuid4()), unit_code=unit, occurred_at=occurred)
    event["payload"].update(payload)
    return event


def retraction(of: dict[str, Any], occurred: str = "2024-06-01") -> dict[str, Any]:
    return make_event(
        "EventRetracted",
        of["unit_code"],
        occurred,
        retracted_event_id=of["event_id"],
        reason="nhập trùng",
    )


class Log:
    """An append-only list of records, partitioned by unit like the real topic; verify reads
    it as it reads Kafka."""

    topic = TOPIC

    def __init__(self, records: Sequence[Record] = ()) -> None:
        self.records: list[Record] = list(records)
        self.ends: dict[int, int] = {}
        for record in self.records:
            self.ends[record.partition] = max(self.ends.get(record.partition, 0), record.offset + 1)

    def end_offsets(self) -> dict[int, int]:
        return dict(self.ends)

    def read(self, slices: Iterable[Slice]) -> Iterator[Record]:
        for piece in slices:
            yield from sorted(
                (
                    r
                    for r in self.records
                    if r.partition == piece.partition and piece.start <= r.offset < piece.stop
                ),
                key=lambda r: r.offset,
            )

    def append_value(self, partition: int, value: bytes | None, key: str | None = None) -> Record:
        offset = self.ends.get(partition, 0)
        self.ends[partition] = offset + 1
        record = Record(partition, offset, value, key=key.encode() if key else None)
        self.records.append(record)
        return record

    def append(self, event: dict[str, Any], minutes: int) -> Record:
        value = encode_event(parse_event(event), T0 + minutes * TICK)
        unit = event["unit_code"]
        return self.append_value(PARTITION_OF.get(unit, 1), value, key=unit)


def project(
    engine: sa.Engine, records: Sequence[Record], batch: int = 3, topic: str = TOPIC
) -> None:
    store = ReadModelStore(engine, read_models, topic)
    for start in range(0, len(records), batch):
        chunk = [Record(r.partition, r.offset, r.value) for r in records[start : start + batch]]
        store.apply(chunk)


@pytest.fixture
def history() -> tuple[Log, dict[str, dict[str, Any]]]:
    """Every kind of record the projector treats differently, across two provinces and both
    editions of the registry."""
    log = Log()
    events = {
        "conference": make_event("ConferenceHeld", HA_TINH_CITY, "2024-01-15", attendees=120),
        "program": make_event("ProgramSigned", HA_TINH_CITY, "2024-02-03"),
        "case": make_event("CaseResolved", HA_TINH_CITY, "2024-04-20"),
        "outreach": make_event("OutreachSessionHeld", BA_DINH, "2024-03-09T20:30:00+07:00"),
        "tips": make_event("CitizenTipsReceived", HOAN_KIEM, "2023-12-31"),
        "procedure": make_event("ProcedureTimeReduced", BA_DINH, "2024-03-10"),
        "late_conference": make_event("ConferenceHeld", BA_DINH, "2024-07-01", attendees=45),
    }
    for minutes, name in enumerate(events):
        log.append(events[name], minutes)
    conference = next(r for r in log.records if r.offset == 0 and r.partition == 0)
    log.append_value(0, conference.value)  # the same bytes again: a duplicate in the log
    log.append_value(1, b"not json at all")  # poison: parked, never counted
    log.append(make_event("ModelRecognized", "999", "2024-01-01"), 20)  # no such unit
    log.append(retraction(events["case"]), 30)  # takes a list row and figures back
    log.append(retraction(events["procedure"]), 31)
    log.append(retraction(events["case"]), 32)  # already retracted: a note, no effect
    # After the reform: a commune reports (today's Hà Tĩnh in both frames) ...
    events["commune"] = make_event("OutreachSessionHeld", HA_TINH_COMMUNE, "2025-08-01")
    log.append(events["commune"], 40)
    # ... and a legacy district's event dated after it, as older versions accepted: a registry
    # exception, counted under the district's successor province (Hà Nội, 01) in both frames.
    events["exception"] = make_event("CommendationAwarded", BA_DINH, "2025-08-02")
    log.append(events["exception"], 41)
    return log, events


@pytest.fixture
def on_kafka(
    postgres_url: str, kafka_bootstrap: str, topic: str, history: tuple[Log, dict[str, Any]]
) -> Iterator[tuple[sa.Engine, KafkaLog, Log]]:
    """The history written to a real topic at the same positions, and projected on PostgreSQL."""
    log, _ = history
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", max_in_flight_requests_per_connection=1
    )
    for record in log.records:
        producer.send(topic, record.value, key=record.key, partition=record.partition)
    producer.flush()
    producer.close()
    engine = make_engine(postgres_url)
    project(engine, log.records, topic=topic)
    with KafkaLog(kafka_bootstrap, topic) as kafka:
        yield engine, kafka, log
    engine.dispose()


def test_verify_in_worker_processes_reports_what_one_process_does(
    on_kafka: tuple[sa.Engine, KafkaLog, Log], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partitions checked by spawned processes, each in the snapshot this one exported and
    reading the real topic: the same report, differences included, and progress to the end."""
    engine, kafka, log = on_kafka
    changes, archive = read_models.changes, read_models.archive
    with engine.begin() as conn:  # a figure in partition 1, a stored body in partition 0
        conn.execute(
            changes.update()
            .where(changes.c.partition == 1, changes.c.offset == 0)
            .values(leaflets=changes.c.leaflets + 7)
        )
        conn.execute(
            archive.update()
            .where(archive.c.partition == 0, archive.c.offset == 1)
            .values(body=archive.c.body + " ")
        )
    in_workers: list[int] = []
    spawned = verifying._check_in_workers

    def counted_spawn(workers: int, *args: Any, **options: Any) -> Any:
        in_workers.append(workers)
        return spawned(workers, *args, **options)

    monkeypatch.setattr(verifying, "_check_in_workers", counted_spawn)
    progress: list[tuple[int, int]] = []
    one = verifying.verify(kafka, engine, read_models)
    many = verifying.verify(
        kafka,
        engine,
        read_models,
        workers=2,
        parallel_from=0,
        progress=lambda read, total: progress.append((read, total)),
    )

    assert in_workers == [2]
    assert one["status"] == "inconsistent"
    assert {(d["table"], tuple(d["columns"])) for d in one["differences"]} == {
        ("event_archive", ("body",)),
        ("figure_changes", ("leaflets",)),
        # the changes no longer sum to the figures stored from them
        ("daily_figures", ("leaflets",)),
        ("figures_by_received_day", ("leaflets",)),
    }
    assert many == one
    assert progress[-1] == (len(log.records), len(log.records))


def test_a_killed_verify_worker_stops_the_verification_with_its_reason(
    on_kafka: tuple[sa.Engine, KafkaLog, Log],
) -> None:
    """A worker killed mid-check (as the kernel's OOM killer would): verify raises WorkerLost
    rather than report on partitions nobody checked, and the other worker is stopped too."""
    engine, kafka, _ = on_kafka
    blocker = engine.connect()
    blocker.begin()
    # every reader of the archive waits behind this lock: the workers are caught mid-check
    blocker.exec_driver_sql("LOCK TABLE event_archive IN ACCESS EXCLUSIVE MODE")
    outcome: list[BaseException | dict[str, Any]] = []

    def run() -> None:
        try:
            outcome.append(verifying.verify(kafka, engine, read_models, workers=2, parallel_from=0))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        waiting = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )

        def behind_the_lock() -> int:
            # a transaction of its own each time: pg_stat_activity is read once per transaction
            with engine.connect() as watcher:
                return int(watcher.execute(waiting).scalar_one())

        # the two workers and this process's own SQL checks, all behind the lock
        wait_until(lambda: behind_the_lock() >= 3, timeout=60)
        [worker, *_] = multiprocessing.active_children()
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        wait_until(lambda: not worker.is_alive(), timeout=30)
    finally:
        blocker.rollback()
        blocker.close()
    thread.join(timeout=120)

    [raised] = outcome
    assert isinstance(raised, verifying.WorkerLost), raised
    assert "ended before its partitions were checked" in str(raised)
    wait_until(lambda: not multiprocessing.active_children(), timeout=30)


def verify(engine: sa.Engine, records: Sequence[Record], **options: Any) -> dict[str, Any]:
    return verifying.verify(Log(records), engine, read_models, **options)


def test_verify_finds_what_the_projector_stored_consistent_with_a_fresh_fold(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, events = history
    project(engine, log.records)
    monkeypatch.setattr(verifying, "CHUNK_RECORDS", 2)  # chunk edges between retractions too

    report = verify(engine, log.records)

    assert (report["status"], report["differences"]) == ("consistent", [])
    assert report["checked"]["events"] == 12  # nine events, three retractions; no duplicate
    ledger = fold_log(log.records)
    with engine.connect() as conn:
        stored = {
            (row.day, row.unit_code): {name: row._mapping[name] for name in STORED_FIGURES}
            for row in conn.execute(sa.select(read_models.figures))
        }
    assert stored == {
        key: {name: row[name] for name in STORED_FIGURES} for key, row in ledger.figures.items()
    }
    assert len(ledger.archive) == 12
    assert set(ledger.dead_letters) == {(1, 4), (1, 5)}  # the poison and the unknown unit
    exceptions = {k for k, row in ledger.archive.items() if row["registry_exception"]}
    assert exceptions == {events["exception"]["event_id"]}
    attributed = {
        name: {
            k: ledger.archive[events[name]["event_id"]][k]
            for k in ("unit_code", "province_code", "reported_province")
        }
        for name in ("conference", "commune", "exception")
    }
    assert attributed == {
        "conference": {
            "unit_code": HA_TINH_CITY,
            "province_code": "42",
            "reported_province": "legacy:42",
        },
        "commune": {"unit_code": HA_TINH_COMMUNE, "province_code": "42", "reported_province": "42"},
        "exception": {"unit_code": BA_DINH, "province_code": "01", "reported_province": "01"},
    }


def test_verify_names_a_daily_figures_row_changed_by_hand(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]]
) -> None:
    log, _ = history
    project(engine, log.records)
    figures = read_models.figures
    with engine.begin() as conn:
        conn.execute(
            figures.update()
            .where(figures.c.day == date(2024, 1, 15), figures.c.unit_code == HA_TINH_CITY)
            .values(conference_attendees=figures.c.conference_attendees + 1)
        )

    report = verify(engine, log.records)

    [difference] = report["differences"]
    assert difference["table"] == "daily_figures"
    assert difference["key"] == {"day": "2024-01-15", "unit_code": HA_TINH_CITY}
    assert difference["columns"] == {"conference_attendees": {"served": 121, "log": 120}}
    assert difference["positions"] == [{"partition": 0, "offset": 0}]


def test_a_provincial_verify_decodes_and_compares_only_that_provinces_rows(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _ = history
    project(engine, log.records)
    figures = read_models.figures
    with engine.begin() as conn:  # a row of today's Hà Tĩnh (42) changed by hand
        conn.execute(
            figures.update()
            .where(figures.c.unit_code == HA_TINH_CITY)
            .values(conferences=figures.c.conferences + 1)
        )
    decoded: list[Record] = []
    decode = verifying.decode
    monkeypatch.setattr(verifying, "decode", lambda rs: decode(decoded.__iadd__(rs) and rs))

    ha_tinh = verify(engine, log.records, province="42")
    read_for_ha_tinh = {r.key for r in decoded}
    decoded.clear()
    ha_noi = verify(engine, log.records, province="01")

    assert {d["key"]["unit_code"] for d in ha_tinh["differences"]} == {HA_TINH_CITY}
    assert ha_tinh["checked"]["events"] == 6  # conference, program, case, two retractions, commune
    # its units' records, and the one with no key (whose unit only decoding can tell)
    assert read_for_ha_tinh == {HA_TINH_CITY.encode(), HA_TINH_COMMUNE.encode(), None}
    assert (ha_noi["status"], ha_noi["checked"]["events"]) == ("consistent", 6)
    assert ha_noi["checked"]["records_read"] == len(log.records)  # the chain needs every byte


def test_verify_names_a_row_of_the_sums_per_day_received_changed_by_hand(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]]
) -> None:
    log, _ = history
    project(engine, log.records)
    received = read_models.received
    with engine.begin() as conn:
        conn.execute(
            received.update()
            .where(received.c.day == date(2024, 1, 15), received.c.unit_code == HA_TINH_CITY)
            .values(conferences=received.c.conferences + 1)
        )

    [difference] = verify(engine, log.records)["differences"]

    assert difference["table"] == "figures_by_received_day"
    assert difference["key"] == {
        "received_day": "2024-05-01",
        "day": "2024-01-15",
        "unit_code": HA_TINH_CITY,
    }
    assert difference["columns"] == {"conferences": {"served": 2, "log": 1}}
    assert difference["positions"] == [{"partition": 0, "offset": 0}]


def test_verify_names_an_archive_row_whose_stored_bytes_were_rewritten(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]]
) -> None:
    log, events = history
    project(engine, log.records)
    archive = read_models.archive
    program_id = events["program"]["event_id"]
    with engine.begin() as conn:
        body = conn.scalar(sa.select(archive.c.body).where(archive.c.event_id == program_id))
        conn.execute(
            archive.update()
            .where(archive.c.event_id == program_id)
            .values(body=str(body).replace("2022", "2021"))
        )

    [difference] = verify(engine, log.records)["differences"]

    assert difference["table"] == "event_archive"
    assert difference["key"] == {"event_id": program_id}
    assert list(difference["columns"]) == ["body"]
    assert difference["positions"] == [{"partition": 0, "offset": 1}]


def test_verify_names_the_position_whose_bytes_differ_in_a_copy_of_the_log(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]]
) -> None:
    log, _ = history
    project(engine, log.records)
    rewritten = [
        replace(r, value=r.value.replace(b'"attendees":45', b'"attendees":54'))
        if (r.partition, r.offset) == (1, 3) and r.value
        else r
        for r in log.records
    ]
    assert rewritten != log.records

    differences = verify(engine, rewritten)["differences"]

    chain = [d for d in differences if d["kind"] == "chain"]
    assert [(d["partition"], d["offset"]) for d in chain] == [(1, 3)]
    head = next(d for d in differences if d["kind"] == "chain_head")
    assert head["partition"] == 1
    rows = {d["table"] for d in differences if d["kind"] == "row"}
    assert rows == {"event_archive", "figure_changes", "conferences"}


def test_verify_counts_an_event_marked_retracted_that_no_retraction_takes_back(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]]
) -> None:
    log, events = history
    project(engine, log.records)
    archive = read_models.archive
    with engine.begin() as conn:
        conn.execute(
            archive.update()
            .where(archive.c.event_id == events["tips"]["event_id"])
            .values(retracted_by=events["program"]["event_id"])
        )

    [difference] = verify(engine, log.records)["differences"]

    assert (difference["kind"], difference["served"], difference["log"]) == ("retractions", 3, 2)


def test_a_fold_that_raises_is_parked_by_the_projector_and_reported_the_same_by_verify(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, events = history
    broken = events["outreach"]["event_id"]
    fold_outreach = folds.FIGURE_FOLDS[folds.ev.OutreachSessionHeld]

    def bug(event: Any) -> dict[str, int]:
        if str(event.event_id) == broken:
            raise ZeroDivisionError("a bug in this build")
        return fold_outreach(event)

    monkeypatch.setitem(folds.FIGURE_FOLDS, folds.ev.OutreachSessionHeld, bug)  # type: ignore[misc]
    project(engine, log.records)
    with engine.connect() as conn:
        parked = dict(
            conn.execute(
                sa.select(
                    read_models.dead_letters.c.offset, read_models.dead_letters.c.reason
                ).where(read_models.dead_letters.c.partition == 1)
            ).all()
        )

    report = verify(engine, log.records)

    assert parked[0] == "fold failed: ZeroDivisionError: a bug in this build"
    assert (report["status"], report["differences"]) == ("consistent", [])
    monkeypatch.setitem(folds.FIGURE_FOLDS, folds.ev.OutreachSessionHeld, fold_outreach)  # type: ignore[misc]
    fixed = verify(engine, log.records)  # a fixed build counts it: the parked event shows
    assert {
        (d["table"], d["problem"][:20]) for d in fixed["differences"] if d["kind"] == "row"
    } >= {
        ("dead_letters", "the read model has t"),
        ("event_archive", "the log implies this"),
    }


def test_saved_heads_hold_for_the_same_log_and_name_the_head_a_rewrite_breaks(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]]
) -> None:
    log, _ = history
    project(engine, log.records)
    saved = [Head.from_json(h) for h in verify(engine, log.records)["heads"]]
    first = log.records[0]
    rewritten = [replace(first, value=first.value + b" "), *log.records[1:]]  # type: ignore[operator]

    assert verify(engine, log.records, saved_heads=saved)["status"] == "consistent"
    found = verify(engine, rewritten, saved_heads=saved)["differences"]
    [difference] = [d for d in found if d["kind"] == "saved_head"]
    assert (difference["partition"], difference["offset"]) == (0, log.ends[0] - 1)


def test_saved_heads_past_the_end_of_a_truncated_log_are_reported(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]]
) -> None:
    log, _ = history
    extra = log.append_value(1, b"appended after the projector stopped")  # read, not folded
    project(engine, [r for r in log.records if r is not extra])
    saved = verifying.saved_heads(verifying.log_heads(log))  # the whole log's heads
    assert saved[1].offset == extra.offset
    truncated = [r for r in log.records if r is not extra]

    [difference] = verify(engine, truncated, saved_heads=saved)["differences"]

    assert difference["kind"] == "saved_head"
    assert difference["problem"] == "the log no longer reaches this position"


GROUPINGS = [
    "",
    "province",
    "unit",
    "district",  # another name for unit
    "month",
    "quarter",
    "year",
    "unit,month",
    "district,month",
    "province,year",
]

AUDITOR = Principal("auditor", "auditor", None, None)
# Readers whose token limits what they see: today's Hà Nội (its predecessor's history
# included), old Hà Nội alone, one legacy district, one commune.
LIMITED = [
    Principal("ha-noi", "dashboard", None, "01"),
    Principal("old-ha-noi", "dashboard", None, "legacy:01"),
    Principal("ha-tinh-city", "reporter", HA_TINH_CITY, None),
    Principal("thanh-sen", "reporter", HA_TINH_COMMUNE, None),
]
FILTERS: list[dict[str, Any]] = [
    {},
    {"province": "01"},
    {"province": "legacy:01"},
    {"province": "42"},
    {"province": "legacy:42"},
    {"unit": HA_TINH_CITY},
    {"unit": HA_TINH_COMMUNE},
    {"unit": BA_DINH},
    {"province": "01", "unit": BA_DINH},
    {"date_from": date(2024, 1, 1), "date_to": date(2024, 3, 9)},
    {"date_from": date(2024, 7, 1)},  # across the reform
]
DATES_ONLY: list[dict[str, Any]] = [f for f in FILTERS if not {"province", "unit"} & set(f)]


@pytest.mark.parametrize("group_by", GROUPINGS)
def test_the_summary_over_the_figure_changes_equals_the_summary_over_daily_figures(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]], group_by: str
) -> None:
    log, _ = history
    project(engine, log.records)
    dims = parse_group_by(group_by)
    readers = [(AUDITOR, f) for f in FILTERS] + [(p, f) for p in LIMITED for f in DATES_ONLY]
    answered = 0

    with engine.connect() as conn:
        for frame in FRAMES:
            for principal, asked in readers:
                scope = resolve_scope(principal, asked.get("province"), asked.get("unit"))
                dates = {k: v for k, v in asked.items() if k.startswith("date_")}
                served = summary_rows(
                    conn,
                    read_models,
                    frame=frame,
                    where=scope.conditions,
                    group_by=dims,
                    **dates,
                )
                as_of_now = summary_rows(
                    conn,
                    read_models,
                    frame=frame,
                    where=scope.conditions,
                    group_by=dims,
                    received_until=datetime(2100, 1, 1, tzinfo=UTC),
                    **dates,
                )
                assert as_of_now == served, (frame, principal.token_id, asked)
                answered += bool(served)
    assert answered > len(readers)  # most questions have figures to compare


def by_unit_and_month(
    figures: dict[FigureKey, dict[str, Any]], frame: Frame
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The oracle: fold figures grouped as ``group_by=unit,month`` groups them."""
    sums: dict[tuple[str, str, str], dict[str, int]] = {}
    for (day, unit), row in figures.items():
        key = (row[province_column_name(frame)], unit, f"{day.year}-{day.month:02d}")
        group = sums.setdefault(key, dict.fromkeys(STORED_FIGURES, 0))
        for name in STORED_FIGURES:
            group[name] += row[name]
    return {key: summary_row(total) for key, total in sums.items() if any(total.values())}


def test_the_summary_as_of_every_moment_equals_a_pure_fold_of_the_log_up_to_it(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]]
) -> None:
    log, _ = history
    project(engine, log.records)
    ledger = fold_log(log.records)
    moments = [T0 + (m + half / 2) * TICK for m in range(-1, 43) for half in (0, 1)]
    moments += [datetime(2024, 5, d, tzinfo=UTC) for d in range(1, 12)]  # midnights
    moments.append(datetime(2024, 5, 3, 8, 0, tzinfo=timezone(timedelta(hours=7))))

    with engine.connect() as conn:
        for moment in moments:
            for frame in FRAMES:
                rows = summary_rows(
                    conn,
                    read_models,
                    frame=frame,
                    group_by=["unit", "month"],
                    received_until=moment,
                )
                served = {
                    (r["province_code"], r["unit_code"], r["period"]): {
                        k: v for k, v in r.items() if k in folds.SUMMARY_FIGURES
                    }
                    for r in rows
                }
                expected = by_unit_and_month(ledger.figures_received_until(moment), frame)
                assert served == expected, (moment, frame)
    cases_then = by_unit_and_month(ledger.figures_received_until(T0 + 25 * TICK), "current")
    cases_now = by_unit_and_month(ledger.figures_received_until(T0 + 45 * TICK), "current")
    assert sum(g["cases_resolved"] for g in cases_then.values()) == 1  # before its retraction
    assert sum(g["cases_resolved"] for g in cases_now.values()) == 0


def test_the_sql_summary_names_each_unit_and_puts_it_in_the_province_of_the_frame(
    engine: sa.Engine, history: tuple[Log, dict[str, Any]]
) -> None:
    log, _ = history
    project(engine, log.records)
    keys = (
        "province_code",
        "province_name",
        "unit_code",
        "unit_name",
        "unit_level",
        "unit_edition",
    )

    with engine.connect() as conn:
        rows = {
            frame: [
                tuple(row[k] for k in keys)
                for row in summary_rows(conn, read_models, frame=frame, group_by=["unit"])
            ]
            for frame in FRAMES
        }
        totals = {frame: summary_rows(conn, read_models, frame=frame) for frame in FRAMES}

    ha_noi, ha_tinh = "Thành phố Hà Nội", "Tỉnh Hà Tĩnh"
    assert rows["current"] == [
        ("01", ha_noi, BA_DINH, "Quận Ba Đình", "district", "legacy"),
        ("01", ha_noi, HOAN_KIEM, "Quận Hoàn Kiếm", "district", "legacy"),
        ("42", ha_tinh, HA_TINH_COMMUNE, "Phường Thành Sen", "commune", "2025"),
        ("42", ha_tinh, HA_TINH_CITY, "Thành phố Hà Tĩnh", "district", "legacy"),
    ]
    old_ha_noi, old_ha_tinh = f"{ha_noi} (đến 30/6/2025)", f"{ha_tinh} (đến 30/6/2025)"
    assert rows["as_reported"] == [
        ("01", ha_noi, BA_DINH, "Quận Ba Đình", "district", "legacy"),  # the registry exception
        ("42", ha_tinh, HA_TINH_COMMUNE, "Phường Thành Sen", "commune", "2025"),
        ("legacy:01", old_ha_noi, BA_DINH, "Quận Ba Đình", "district", "legacy"),
        ("legacy:01", old_ha_noi, HOAN_KIEM, "Quận Hoàn Kiếm", "district", "legacy"),
        ("legacy:42", old_ha_tinh, HA_TINH_CITY, "Thành phố Hà Tĩnh", "district", "legacy"),
    ]
    assert totals["current"] == totals["as_reported"]  # the frames only regroup the figures
