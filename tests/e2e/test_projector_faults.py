"""The projector as real processes against the real broker and PostgreSQL, under faults.

A few thousand events (with resends, retractions, retractions of unknown events) are written
straight to the topic, keyed by unit, as ingest would; the projector is killed with SIGKILL,
scaled out, rebalanced, rebuilt under it. Afterwards every read model must equal, row for row,
what the oracle below computes from the log: plain Python over the events as sent, written
without the project's fold so that a bug there cannot hide itself.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.producer.future import FutureRecordMetadata
from prometheus_client.parser import text_string_to_metric_families

from shared.db.engine import make_engine
from shared.db.schema import read_models
from shared.events import parse_event
from shared.records import canonical_json, encode_event
from tests.support import Stack, free_port, running_stack

# Units of both editions: districts until 2025-06-30, communes from 2025-07-01. Each with the
# province it reported in (its edition's) and the province its territory is in today.
REFORM = date(2025, 7, 1)
DISTRICTS = {  # district -> (province then, province today)
    "001": ("legacy:01", "01"),  # Hà Nội
    "002": ("legacy:01", "01"),
    "436": ("legacy:42", "42"),  # Hà Tĩnh
    "437": ("legacy:42", "42"),
    "760": ("legacy:79", "79"),  # TP Hồ Chí Minh
    "490": ("legacy:48", "48"),  # Đà Nẵng
    "336": ("legacy:34", "33"),  # Thái Bình, now in Hưng Yên
}
COMMUNES = {"00004": "01", "18073": "42", "25747": "79", "20194": "48", "11953": "33"}
UNITS = [*DISTRICTS, *COMMUNES]
VIETNAM = timezone(timedelta(hours=7))
FIGURES = (
    "conferences",
    "conference_attendees",
    "programs_signed",
    "cases_resolved",
    "cases_stable",
    "cases_temporarily_stable",
    "hotspots_prevented",
    "outreach_sessions",
    "outreach_attendees",
    "leaflets",
    "broadcast_hours_x100",
    "tips",
    "valuable_tips",
    "tip_cases_solved",
    "models_recognized",
    "commendations",
    "procedure_reductions",
    "reduction_percent_x100",
)


# --- writing the log -------------------------------------------------------------------------


@dataclass
class Sent:
    body: dict[str, Any]
    partition: int
    offset: int


@dataclass
class Stream:
    """Random but valid reports of districts and communes, each dated while its unit existed,
    written to the topic like ingest writes them; some districts' as version 1 records, like the
    releases before the 2025 reorganization wrote them."""

    bootstrap: str
    topic: str
    seed: int
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.by_unit: dict[str, list[dict[str, Any]]] = {u: [] for u in UNITS}
        self.serial = 0

    def write(
        self,
        count: int,
        chunk: int = 100,
        pause: float = 0.0,
        stop: threading.Event | None = None,
    ) -> None:
        """Write ``count`` records, ``chunk`` at a time, pausing between chunks; end early,
        after a whole chunk, once ``stop`` is set."""
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", max_in_flight_requests_per_connection=1
        )
        try:
            for start in range(0, count, chunk):
                if stop is not None and stop.is_set():
                    break
                pending: list[tuple[dict[str, Any], FutureRecordMetadata]] = []
                for _ in range(min(chunk, count - start)):
                    body = self.next_body()
                    received_at = datetime.now(UTC)
                    if "district_code" in body:  # as the releases before wrote it
                        value = canonical_json({**body, "received_at": received_at.isoformat()})
                    else:
                        value = encode_event(parse_event(body), received_at)
                    key = unit_of(body).encode()
                    pending.append((body, producer.send(self.topic, key=key, value=value)))
                producer.flush(timeout=60)
                for body, future in pending:
                    metadata = future.get(timeout=60)
                    self.sent.append(Sent(body, metadata.partition, metadata.offset))
                time.sleep(pause)
        finally:
            producer.close()

    def next_body(self) -> dict[str, Any]:
        rng = self.rng
        unit = rng.choice(UNITS)
        earlier = self.by_unit[unit]
        roll = rng.random()
        if earlier and roll < 0.05:
            return rng.choice(earlier)  # a resend: same event, received again
        if earlier and roll < 0.11:
            body = self.retraction(unit, rng.choice(earlier)["event_id"])
        elif roll < 0.12:
            body = self.retraction(unit, str(uuid.uuid4()))  # of nothing ever sent
        elif roll < 0.125:
            other = self.by_unit[rng.choice(UNITS)]  # of another unit's
            body = self.retraction(unit, other[0]["event_id"] if other else str(uuid.uuid4()))
        else:
            body = self.report(unit)
        earlier.append(body)
        return body

    def retraction(self, unit: str, target: str) -> dict[str, Any]:
        return self.envelope(
            "EventRetracted", unit, {"retracted_event_id": target, "reason": "Nhập trùng"}
        )

    def envelope(self, kind: str, unit: str, payload: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        if unit in DISTRICTS:  # 2022-01-01 to 2025-06-29 (an evening below may make it the 30th)
            day = date(2022, 1, 1) + timedelta(days=rng.randrange(1276))
        else:  # 2025-07-01 to 2026-11-30
            day = REFORM + timedelta(days=rng.randrange(517))
        occurred: str = day.isoformat()
        if rng.random() < 0.15:  # late evening UTC is the next morning in Vietnam
            occurred = f"{day.isoformat()}T{rng.randrange(15, 24):02d}:30:00+00:00"
        elif rng.random() < 0.1:  # no offset: Vietnam's local time
            occurred = f"{day.isoformat()}T{rng.randrange(0, 24):02d}:05:00"
        if unit in DISTRICTS and rng.random() < 0.5:
            return {
                "event_id": str(uuid.uuid4()),
                "type": kind,
                "district_code": unit,
                "occurred_at": occurred,
                "payload": payload,
            }
        return {
            "event_id": str(uuid.uuid4()),
            "type": kind,
            "schema_version": 2,
            "unit_code": unit,
            "occurred_at": occurred,
            "payload": payload,
        }

    def report(self, unit: str) -> dict[str, Any]:
        rng = self.rng
        self.serial += 1
        n = self.serial
        kind = rng.choice(
            [
                "ConferenceHeld",
                "ProgramSigned",
                "CaseResolved",
                "OutreachSessionHeld",
                "CitizenTipsReceived",
                "ModelRecognized",
                "CommendationAwarded",
                "ProcedureTimeReduced",
            ]
        )
        payload: dict[str, Any]
        if kind == "ConferenceHeld":
            payload = {
                "title": f"Hội nghị sơ kết chương trình phối hợp số {n}",
                "kind": rng.choice(["review", "summary", "signing", "training", "other"]),
                "organizers": ["Ban Dân vận", "Công an"],
                "attendees": rng.randrange(0, 400),
                "online": rng.random() < 0.3,
            }
            if rng.random() < 0.5:
                payload["connection_points"] = rng.randrange(0, 30)
            if rng.random() < 0.5:
                payload["program_id"] = f"CT-{unit}-{n % 7}"
        elif kind == "ProgramSigned":
            start = rng.randrange(2017, 2025)
            payload = {
                "program_id": f"CT-{unit}-{n}",
                "title": f"Chương trình phối hợp công tác dân vận {n}",
                "parties": ["Ban Dân vận Huyện ủy", "Công an huyện"],
                "period_start": start,
                "period_end": start + rng.randrange(0, 5),
                "content_items": [f"Nội dung {i}" for i in range(1, rng.randrange(2, 7))],
            }
            if rng.random() < 0.5:
                payload["signed_by"] = ["Trưởng Ban Dân vận", "Trưởng Công an"]
        elif kind == "CaseResolved":
            payload = {
                "case_id": f"VV-{unit}-{n}",
                "category": rng.choice(
                    ["complaint", "petition", "land", "security_order", "other"]
                ),
                "resolution": rng.choice(["stable", "temporarily_stable"]),
                "hotspot_prevented": rng.random() < 0.4,
            }
            if rng.random() < 0.3:
                payload["program_id"] = f"CT-{unit}-{n % 5}"
        elif kind == "OutreachSessionHeld":
            payload = {
                "sessions": rng.randrange(1, 20),
                "attendees": rng.randrange(0, 3000),
                "leaflets": rng.randrange(0, 5000),
                "broadcast_hours": rng.randrange(0, 2000) / 100,
                "topic": "Phòng, chống tội phạm",
            }
        elif kind == "CitizenTipsReceived":
            tips = rng.randrange(1, 200)
            payload = {"tips": tips, "valuable": rng.randrange(0, tips + 1)}
            if rng.random() < 0.6:
                payload["cases_solved"] = rng.randrange(0, 20)
        elif kind == "ModelRecognized":
            payload = {"model_id": f"DVK-{n}", "name": "Tổ tự quản", "field": "an ninh trật tự"}
        elif kind == "CommendationAwarded":
            payload = {
                "recipient": "Công an xã",
                "recipient_kind": rng.choice(["unit", "individual"]),
                "award": "Giấy khen",
                "awarded_by": "Ban Dân vận Tỉnh ủy",
            }
        else:
            payload = {
                "procedure": "Đăng ký thường trú",
                "reduction_percent": rng.randrange(1, 10001) / 100,
            }
        return self.envelope(kind, unit, payload)


# --- the oracle ------------------------------------------------------------------------------


def unit_of(body: dict[str, Any]) -> str:
    """The reporting unit: ``unit_code``, or ``district_code`` in a version 1 event."""
    return str(body["unit_code"] if "unit_code" in body else body["district_code"])


def provinces(unit: str, day: date) -> dict[str, str]:
    """Where a unit's event of that day counts: today's province, and the province of the day."""
    then, today = DISTRICTS.get(unit) or (COMMUNES[unit], COMMUNES[unit])
    return {"province_code": today, "reported_province": then if day < REFORM else today}


def vietnam_day(occurred_at: str) -> date:
    if len(occurred_at) == 10:
        return date.fromisoformat(occurred_at)
    moment = datetime.fromisoformat(occurred_at)
    return moment.date() if moment.tzinfo is None else moment.astimezone(VIETNAM).date()


def contribution(event: dict[str, Any]) -> dict[str, int]:
    p = event["payload"]
    kind = event["type"]
    if kind == "ConferenceHeld":
        return {"conferences": 1, "conference_attendees": p["attendees"]}
    if kind == "ProgramSigned":
        return {"programs_signed": 1}
    if kind == "CaseResolved":
        stable = p["resolution"] == "stable"
        return {
            "cases_resolved": 1,
            "cases_stable": int(stable),
            "cases_temporarily_stable": int(not stable),
            "hotspots_prevented": int(p["hotspot_prevented"]),
        }
    if kind == "OutreachSessionHeld":
        return {
            "outreach_sessions": p["sessions"],
            "outreach_attendees": p["attendees"],
            "leaflets": p["leaflets"],
            "broadcast_hours_x100": round(p["broadcast_hours"] * 100),
        }
    if kind == "CitizenTipsReceived":
        return {
            "tips": p["tips"],
            "valuable_tips": p["valuable"],
            "tip_cases_solved": p.get("cases_solved", 0),
        }
    if kind == "ModelRecognized":
        return {"models_recognized": 1}
    if kind == "CommendationAwarded":
        return {"commendations": 1}
    assert kind == "ProcedureTimeReduced"
    return {
        "procedure_reductions": 1,
        "reduction_percent_x100": round(p["reduction_percent"] * 100),
    }


def list_row(item: Sent) -> tuple[str, dict[str, Any]] | None:
    e, p = item.body, item.body["payload"]
    common = {
        "event_id": e["event_id"],
        "unit_code": unit_of(e),
        **provinces(unit_of(e), vietnam_day(e["occurred_at"])),
        "partition": item.partition,
        "offset": item.offset,
    }
    day = vietnam_day(e["occurred_at"])
    if e["type"] == "ProgramSigned":
        return "programs", common | {
            "program_id": p["program_id"],
            "title": p["title"],
            "parties": p["parties"],
            "period_start": p["period_start"],
            "period_end": p["period_end"],
            "content_items": p["content_items"],
            "signed_by": p.get("signed_by", []),
            "signed_on": day,
        }
    if e["type"] == "ConferenceHeld":
        return "conferences", common | {
            "title": p["title"],
            "kind": p["kind"],
            "organizers": p["organizers"],
            "attendees": p["attendees"],
            "online": p["online"],
            "connection_points": p.get("connection_points"),
            "program_id": p.get("program_id"),
            "held_on": day,
        }
    if e["type"] == "CaseResolved":
        return "cases", common | {
            "case_id": p["case_id"],
            "category": p["category"],
            "resolution": p["resolution"],
            "hotspot_prevented": p["hotspot_prevented"],
            "program_id": p.get("program_id"),
            "resolved_on": day,
        }
    return None


@dataclass
class ReadModelRows:
    archive: dict[str, tuple[int, int, str | None]]  # event_id -> (partition, offset, retracted_by)
    figures: dict[tuple[date, str], dict[str, Any]]  # without all-zero rows
    lists: dict[str, dict[str, dict[str, Any]]]


def oracle(sent: list[Sent]) -> ReadModelRows:
    """The read models the log implies: the first copy of each event id counts, in log order;
    a retraction of an earlier, standing, non-retraction event of its unit takes it back."""
    first: dict[str, Sent] = {}
    retracted_by: dict[str, str] = {}
    for item in sorted(sent, key=lambda s: (s.partition, s.offset)):
        event = item.body
        if event["event_id"] in first:
            continue
        first[event["event_id"]] = item
        if event["type"] == "EventRetracted":
            target_id = event["payload"]["retracted_event_id"]
            target = first.get(target_id)
            if (
                target is not None
                and target_id not in retracted_by
                and target.body["type"] != "EventRetracted"
                and unit_of(target.body) == unit_of(event)
            ):
                retracted_by[target_id] = event["event_id"]
    figures: dict[tuple[date, str], Counter[str]] = {}
    lists: dict[str, dict[str, dict[str, Any]]] = {"programs": {}, "conferences": {}, "cases": {}}
    for event_id, item in first.items():
        if event_id in retracted_by or item.body["type"] == "EventRetracted":
            continue
        key = (vietnam_day(item.body["occurred_at"]), unit_of(item.body))
        figures.setdefault(key, Counter()).update(contribution(item.body))
        if row := list_row(item):
            lists[row[0]][event_id] = row[1]
    return ReadModelRows(
        archive={i: (s.partition, s.offset, retracted_by.get(i)) for i, s in first.items()},
        figures={
            key: provinces(key[1], key[0])
            | {"month": key[0].year * 100 + key[0].month}
            | {name: sums[name] for name in FIGURES}
            for key, sums in figures.items()
            if any(sums.values())
        },
        lists=lists,
    )


def served(database_url: str) -> ReadModelRows:
    """The same shapes, read from the database."""
    t = read_models
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            archive = {
                row.event_id: (row.partition, row.offset, row.retracted_by)
                for row in conn.execute(
                    sa.select(
                        t.archive.c.event_id,
                        t.archive.c.partition,
                        t.archive.c.offset,
                        t.archive.c.retracted_by,
                    )
                )
            }
            figures = {}
            for row in conn.execute(sa.select(t.figures)):
                values = dict(row._mapping)
                key = (values.pop("day"), values.pop("unit_code"))
                if any(values[name] for name in FIGURES):
                    figures[key] = values
            lists = {
                name: {
                    row.event_id: dict(row._mapping)
                    for row in conn.execute(sa.select(t.list_table(name)))
                }
                for name in ("programs", "conferences", "cases")
            }
    finally:
        engine.dispose()
    return ReadModelRows(archive, figures, lists)


def assert_read_models_equal_the_oracle(database_url: str, sent: list[Sent]) -> None:
    expected, actual = oracle(sent), served(database_url)
    assert len(actual.archive) == len(expected.archive)
    assert actual.archive == expected.archive
    assert actual.figures == expected.figures
    for name in ("programs", "conferences", "cases"):
        assert actual.lists[name] == expected.lists[name], name


# --- watching the projector ------------------------------------------------------------------


def log_end(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: int(o) for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def applied(database_url: str, topic: str) -> dict[int, int]:
    offsets = read_models.offsets
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            query = sa.select(offsets.c.partition, offsets.c.next_offset).where(
                offsets.c.topic == topic
            )
            return {p: o for p, o in conn.execute(query)}
    finally:
        engine.dispose()


def wait_until_applied(stack: Stack, topic: str, timeout: float = 120) -> None:
    """Wait (bounded) until the projector has applied the whole log."""
    ends = log_end(stack.env["KAFKA_BOOTSTRAP_SERVERS"], topic)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = applied(stack.database_url, topic)
        if all(done.get(p, 0) >= end for p, end in ends.items()):
            return
        time.sleep(0.2)
    raise AssertionError(
        f"the projector did not reach {ends}: {applied(stack.database_url, topic)};"
        f" database sessions: {sessions(stack.database_url)}"
    )


def sessions(database_url: str) -> list[dict[str, object]]:
    """What every session on the database is doing: to tell a stuck projector from an idle one."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pid, application_name, state, wait_event_type, wait_event,"
                    " now() - xact_start AS in_transaction, left(query, 120) AS query"
                    " FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def wait_for_progress(stack: Stack, topic: str, timeout: float = 60) -> None:
    """Wait (bounded) until the projector applies something: it is mid-stream, not starting."""
    before = sum(applied(stack.database_url, topic).values())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(applied(stack.database_url, topic).values()) > before:
            return
        time.sleep(0.05)
    raise AssertionError("the projector applied nothing")


def wait_for_log(stack: Stack, name: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in stack.log_text(name):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never logged {text!r}")


def metrics(port: str) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        f"{sample.name}{sorted(sample.labels.items()) if sample.labels else ''}": sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many short transactions, so a kill at a random moment often lands inside one; and a group
    # that notices a killed member in 6 s rather than 10.
    monkeypatch.setenv("PROJECTOR_BATCH_MAX_RECORDS", "100")
    monkeypatch.setenv("PROJECTOR_SESSION_TIMEOUT_MS", "6000")


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.usefixtures("small_batches")
def test_read_models_equal_a_fold_of_the_unique_events_though_the_projector_is_killed_again_and_again(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path
) -> None:
    rng = random.Random(20240501)
    stream = Stream(kafka_bootstrap, topic, seed=20240501)
    with running_stack(
        kafka_bootstrap, postgres_url, topic, tmp_path, services=("projector",)
    ) as stack:
        writer = threading.Thread(target=stream.write, args=(4000,), kwargs={"pause": 0.15})
        writer.start()
        for _ in range(5):
            wait_for_progress(stack, topic)
            time.sleep(rng.uniform(0, 0.4))
            stack.stop("projector", kill=True)
            stack.start("projector")
        writer.join()
        wait_until_applied(stack, topic)

    assert len(stream.sent) == 4000
    assert_read_models_equal_the_oracle(postgres_url, stream.sent)


@pytest.mark.usefixtures("small_batches")
def test_two_projectors_split_the_partitions_and_a_rebalance_neither_loses_nor_doubles_an_event(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path
) -> None:
    stream = Stream(kafka_bootstrap, topic, seed=7)
    with running_stack(
        kafka_bootstrap, postgres_url, topic, tmp_path, services=("projector",)
    ) as stack:
        # Written until after the kill, however long the group takes to rebalance twice.
        written = threading.Event()
        writer = threading.Thread(
            target=stream.write, args=(20_000,), kwargs={"pause": 0.1, "stop": written}
        )
        writer.start()
        wait_for_progress(stack, topic)
        second_metrics = str(free_port())
        stack.env = stack.env | {"PROJECTOR_METRICS_PORT": second_metrics}
        stack.start("projector", name="projector-2")  # a rebalance mid-stream
        wait_for_log(stack, "projector-2", "assigned partitions")
        wait_for_progress(stack, topic)
        stack.stop("projector", kill=True)  # and another: its partitions move to projector-2
        wait_for_progress(stack, topic)
        written.set()
        writer.join()
        wait_until_applied(stack, topic)
        # The lag gauges are set after each poll, so the last batch's shows a moment after it commits.
        lags = [f"projector_lag_records[('partition', '{p}')]" for p in "012"]
        deadline = time.monotonic() + 10
        while [(seen := metrics(second_metrics)).get(lag) for lag in lags] != [0, 0, 0]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assignments = [
            line
            for line in stack.log_text("projector-2").splitlines()
            if "assigned partitions" in line
        ]

    assert_read_models_equal_the_oracle(postgres_url, stream.sent)
    assert '"partitions": [0, 1, 2]' not in assignments[0]  # it first got a share, not all
    assert '"partitions": [0, 1, 2]' in assignments[-1]  # then all, after the kill
    assert seen["projector_events_applied_total"] > 0
    assert seen["projector_batch_seconds_count"] > 0
    assert "projector_duplicates_total" in seen
    assert "projector_dead_letters_total" in seen
    assert [seen.get(lag) for lag in lags] == [0, 0, 0]


class Hammer:
    """Asks the API for the summary again and again, keeping every status it answered."""

    def __init__(self, stack: Stack) -> None:
        self.url = f"{stack.api_url}/v1/summary"
        self.headers = {"Authorization": f"Bearer {stack.token('dashboard')}"}
        self.statuses: list[int] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stopping.is_set():
                response = client.get(
                    self.url, params={"group_by": "province"}, headers=self.headers
                )
                self.statuses.append(response.status_code)

    def __enter__(self) -> Hammer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=60)


def test_a_rebuild_under_a_serving_api_and_a_live_projector_equals_the_live_read_models(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path
) -> None:
    stream = Stream(kafka_bootstrap, topic, seed=99)
    stream.write(1500)
    with (
        running_stack(
            kafka_bootstrap, postgres_url, topic, tmp_path, services=("projector", "api")
        ) as stack,
        Hammer(stack) as hammer,
    ):
        wait_until_applied(stack, topic)
        live = served(postgres_url)

        rebuilt = stack.ledger("rebuild")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "equal the live ones, row for row" in rebuilt.stderr, rebuilt.stderr
        assert "swapped" in rebuilt.stderr
        assert served(postgres_url) == live

        figures = read_models.figures
        engine = make_engine(postgres_url)
        with engine.begin() as conn:
            day, district = conn.execute(
                sa.select(figures.c.day, figures.c.unit_code)
                .where(figures.c.conferences > 0)
                .limit(1)
            ).one()
            conn.execute(
                figures.update()
                .where(figures.c.day == day, figures.c.unit_code == district)
                .values(conferences=figures.c.conferences + 1)
            )
        engine.dispose()
        verified = stack.ledger("rebuild", "--verify-only")
        assert verified.returncode == 1, verified.stderr
        assert "daily_figures" in verified.stderr and f"unit_code={district}" in verified.stderr
        assert "conferences: live" in verified.stderr

        # Rebuild again (the swapped tables' names must allow it) while events keep coming:
        # the live projector goes on from the swapped tables; the hand-made change is gone.
        writer = threading.Thread(
            target=stream.write, args=(1000,), kwargs={"chunk": 50, "pause": 0.2}
        )
        writer.start()
        again = stack.ledger("rebuild")
        writer.join()
        assert again.returncode == 0, again.stderr
        assert "conferences: live" in again.stderr  # it put the changed row right
        wait_until_applied(stack, topic)
        assert stack.processes["projector"].poll() is None  # it lived through both swaps
        assert_read_models_equal_the_oracle(postgres_url, stream.sent)
        clean = stack.ledger("rebuild", "--verify-only")
        assert clean.returncode == 0, clean.stderr

    assert hammer.statuses and set(hammer.statuses) == {200}
