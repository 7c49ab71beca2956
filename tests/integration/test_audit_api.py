"""The audit endpoints in process (TestClient) over a real topic: roles, bad input, time seeks.

Records are produced straight to Kafka with chosen timestamps (as ingest would, its clock at
received_at), and projected with the projector's own store, so the tests control time.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from services.api.app import create_app
from services.api.routes import audit as audit_routes
from services.audit.log import KafkaLog, LogUnavailable, Slice
from services.audit.replay import Anchor, ReplayFilter, ReplayPlan, plan_replay, replay_lines
from services.projector.store import ReadModelStore
from services.web.auth import create_token
from shared.db.engine import make_engine
from shared.db.schema import read_models, verification_jobs
from shared.events import parse_event
from shared.examples import EXAMPLES
from shared.projection import Record
from shared.records import encode_event, genesis_hash
from shared.settings import ApiSettings
from tests.support import free_port

HA_TINH_CITY = "436"
DAY_ONE = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
DAY_TWO = datetime(2024, 5, 2, 9, 0, tzinfo=UTC)


def make_event(kind: str, occurred: str = "2024-04-30") -> dict[str, Any]:
    event = copy.deepcopy(EXAMPLES[kind])
    event.update(event_id=str(uuid.uuid4()), unit_code=HA_TINH_CITY, occurred_at=occurred)
    return event


@dataclass
class Audit:
    client: TestClient
    engine: sa.Engine
    bootstrap: str
    topic: str

    def token(self, role: Any, unit: str | None = None) -> str:
        return create_token(self.engine, role, unit_code=unit)[1]

    def get(self, path: str, role: Any = "auditor", **params: str) -> Any:
        unit = HA_TINH_CITY if role == "reporter" else None
        headers = {"Authorization": f"Bearer {self.token(role, unit)}"}
        return self.client.get(f"/v1/audit/{path}", params=params, headers=headers)

    def produce(self, values: list[tuple[bytes, datetime]]) -> None:
        """Append records keyed by the district, each stamped with its received_at."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        for value, received_at in values:
            producer.send(
                self.topic,
                key=HA_TINH_CITY.encode(),
                value=value,
                timestamp_ms=int(received_at.timestamp() * 1000),
            )
        producer.flush(timeout=30)
        producer.close()

    def project(self) -> None:
        with KafkaLog(self.bootstrap, self.topic) as log:
            slices = [Slice(p, 0, n) for p, n in log.end_offsets().items()]
            records = [Record(r.partition, r.offset, r.value) for r in log.read(slices)]
        ReadModelStore(self.engine, read_models, self.topic).apply(records)


@pytest.fixture
def audit(kafka_bootstrap: str, sqlite_url: str, topic: str) -> Iterator[Audit]:
    settings = ApiSettings(
        kafka_bootstrap_servers=kafka_bootstrap, database_url=sqlite_url, events_topic=topic
    )
    engine = make_engine(sqlite_url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Audit(client, engine, kafka_bootstrap, topic)
    engine.dispose()


ENDPOINTS = [
    ("events", {}),
    ("state", {"as_of": "2024-05-01T00:00:00Z"}),
    ("verify", {"province": "42"}),
]


@pytest.mark.parametrize("role", ["reporter", "dashboard"])
@pytest.mark.parametrize(("path", "params"), ENDPOINTS)
def test_reporter_and_dashboard_tokens_get_403_on_every_audit_endpoint(
    audit: Audit, role: str, path: str, params: dict[str, str]
) -> None:
    response = audit.get(path, role, **params)

    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("path", "params"), ENDPOINTS)
def test_an_audit_endpoint_without_a_token_is_401(
    audit: Audit, path: str, params: dict[str, str]
) -> None:
    assert audit.client.get(f"/v1/audit/{path}", params=params).status_code == 401


BAD_PARAMETERS: list[Any] = [
    ("events", {"type": "PartyHeld"}, "type"),
    ("events", {"from": "yesterday"}, "from"),
    ("events", {"to": "2024-13-01"}, "to"),
    ("events", {"from": "2024-05-02", "to": "2024-05-01"}, "from"),
    ("events", {"unit": "43"}, "unit"),  # neither edition has a province 43
    ("events", {"unit": "999"}, "unit"),
    ("events", {"unit": "99999"}, "unit"),
    ("events", {"unit": "legacy:99"}, "unit"),
    ("events", {"unit": "4x"}, "unit"),
    ("events", {"district": "4x"}, "district"),
    ("events", {"unit": "436", "district": "437"}, "district"),
    # ``district=`` is another name for ``unit=``: an unknown one is named as the caller sent it.
    ("events", {"district": "43"}, "district"),
    ("events", {"district": "999"}, "district"),
    ("state", {}, "as_of"),
    ("state", {"as_of": "soon"}, "as_of"),
    ("state", {"as_of": "2024-05-01", "group_by": "week"}, "group_by"),
    ("state", {"as_of": "2024-05-01", "frame": "today"}, "frame"),
    ("state", {"as_of": "2024-05-01", "province": "99"}, "province"),
    ("state", {"as_of": "2024-05-01", "province": "legacy:99"}, "province"),
    ("state", {"as_of": "2024-05-01", "unit": "99999"}, "unit"),
    ("state", {"as_of": "2024-05-01", "from": "2024-02-30"}, "from"),
    ("verify", {"province": "4"}, "province"),
    ("verify", {"province": "99"}, "province"),
    ("verify", {"province": "legacy:34"}, "province"),  # its rows count under today's 33
]


def test_the_state_as_of_the_calendars_last_day_is_everything_received(audit: Audit) -> None:
    response = audit.get("state", as_of="9999-12-31T10:00:00Z")

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("path", "params", "field"), BAD_PARAMETERS)
def test_bad_audit_parameters_are_422_problems_naming_the_field(
    audit: Audit, path: str, params: dict[str, str], field: str
) -> None:
    response = audit.get(path, **params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in {error["field"].split(".")[-1] for error in response.json()["errors"]}


def test_a_replay_from_a_time_seeks_past_older_records_and_keeps_the_full_replays_hashes(
    audit: Audit,
) -> None:
    old = [make_event("ConferenceHeld"), make_event("CaseResolved"), make_event("ModelRecognized")]
    new = [make_event("OutreachSessionHeld"), make_event("CommendationAwarded")]
    values = [(encode_event(parse_event(e), DAY_ONE), DAY_ONE) for e in old]
    resent = values[1]  # a duplicate on day two of an event first stored on day one
    values += [(encode_event(parse_event(new[0]), DAY_TWO), DAY_TWO), resent]
    values += [(encode_event(parse_event(new[1]), DAY_TWO), DAY_TWO)]
    audit.produce(values)

    def replay(**params: str) -> list[dict[str, Any]]:
        response = audit.get("events", **params)
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.text.splitlines()]

    full = replay()
    unprojected = replay(**{"from": "2024-05-02T00:00:00Z"})
    audit.project()
    projected = replay(**{"from": "2024-05-02T00:00:00Z"})
    until_day_one = replay(to="2024-05-01")  # a date: through its last moment, Vietnam time
    by_unit, by_district = replay(unit=HA_TINH_CITY), replay(district=HA_TINH_CITY)
    other_unit = replay(unit="437")  # Thị xã Hồng Lĩnh, which reported nothing
    with KafkaLog(audit.bootstrap, audit.topic) as log:
        plan = plan_replay(
            log, audit.engine, read_models, ReplayFilter(received_from=DAY_TWO - timedelta(hours=1))
        )

    assert [line["event_id"] for line in full] == [e["event_id"] for e in old + new]
    assert unprojected == projected == full[3:]
    assert until_day_one == full[:3]
    assert by_unit == by_district == full  # district= is another name for unit=
    assert other_unit == []
    [piece] = [s for s in plan.slices if s.size]
    assert piece.start == 3  # seeked by time, not read from offset 0
    assert plan.anchors[piece.partition].offset == 3  # hashing resumes after the archived 2


def test_a_replay_reads_the_log_one_batch_at_a_time_as_the_client_takes_it(
    audit: Audit,
) -> None:
    # No Kafka here: a log that counts what was taken from it.
    model = make_event("ModelRecognized")
    value = encode_event(parse_event(model), DAY_ONE)
    taken = 0

    class CountingLog:
        def read(self, slices: Any) -> Iterator[Record]:
            nonlocal taken
            for offset in range(5000):
                taken += 1
                # a new event_id each time, so none is a duplicate
                body = value.replace(model["event_id"].encode(), str(uuid.uuid4()).encode())
                yield Record(0, offset, body)

    plan = ReplayPlan([Slice(0, 0, 5000)], {0: Anchor(0, genesis_hash(0))})
    lines = replay_lines(CountingLog(), audit.engine, read_models, plan, ReplayFilter())  # type: ignore[arg-type]

    first = next(lines)

    assert first.count(b"\n") == 500
    assert taken <= 501  # one batch (and the record that closed it), not the 5,000
    lines.close()


def test_while_the_log_does_not_answer_the_audit_endpoints_answer_503_without_waiting_on_it(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real address nobody listens on, as a stopped broker: connecting to it takes the whole
    # 10 s timeout, which every audit request used to wait out before its 503.
    opened: list[object] = []

    def connecting(*args: object, **kwargs: object) -> KafkaLog:
        opened.append(args)
        raise LogUnavailable("unreachable")

    monkeypatch.setattr(audit_routes, "KafkaLog", connecting)
    engine = make_engine(sqlite_url)
    auditor = {"Authorization": f"Bearer {create_token(engine, 'auditor')[1]}"}
    engine.dispose()
    settings = ApiSettings(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        database_url=sqlite_url,
        events_topic="events",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        positions = client.app.state.api.positions  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while not positions.unreachable:  # the freshness thread's first question fails
            assert time.monotonic() < deadline, "the freshness thread never asked the log"
            time.sleep(0.1)
        for path in (
            "/v1/audit/events?unit=436",
            "/v1/audit/events?district=436",
            "/v1/audit/verify?province=42",
        ):
            response = client.get(path, headers=auditor)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        started = client.post("/v1/audit/verifications", headers=auditor)
        assert started.status_code == 503, started.text
        # the summary as of a moment comes from the read models: Kafka is not needed
        state = client.get("/v1/audit/state?as_of=2026-01-01T00:00:00Z", headers=auditor)
        assert state.status_code == 200, state.text
    assert opened == []  # answered from what the API knew, without trying the log again


def test_one_verification_runs_at_a_time_and_one_whose_process_died_is_taken_over(
    audit: Audit,
) -> None:
    jobs = verification_jobs
    headers = {"Authorization": f"Bearer {audit.token('auditor')}"}
    now = datetime.now(UTC)
    with audit.engine.begin() as conn:  # a job another API process is running right now
        conn.execute(
            jobs.insert().values(
                job_id=str(uuid.uuid4()),
                status="running",
                running=1,
                requested_by="elsewhere",
                created_at=now,
                updated_at=now,
                records_read=0,
            )
        )
        running = conn.scalar(sa.select(jobs.c.job_id))

    refused = audit.client.post("/v1/audit/verifications", headers=headers)
    with audit.engine.begin() as conn:  # that process dies: its heartbeat stops
        conn.execute(jobs.update().values(updated_at=now - timedelta(minutes=5)))
    abandoned = audit.client.get(f"/v1/audit/verifications/{running}", headers=headers).json()
    taken_over = audit.client.post("/v1/audit/verifications", headers=headers)

    assert refused.status_code == 409, refused.text
    assert refused.headers["Location"] == f"/v1/audit/verifications/{running}"
    assert refused.headers["content-type"] == "application/problem+json"
    assert (abandoned["status"], abandoned["error"]) == (
        "failed",
        "abandoned: the process running it stopped",
    )
    assert taken_over.status_code == 202, taken_over.text
    location = taken_over.headers["Location"]
    deadline = time.monotonic() + 60
    while (job := audit.client.get(location, headers=headers).json())["status"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["status"] == "done", job
    assert job["report"]["status"] == "consistent"
    missing = audit.client.get(f"/v1/audit/verifications/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404
    assert audit.client.get("/v1/audit/verifications/x", headers=headers).status_code == 422
