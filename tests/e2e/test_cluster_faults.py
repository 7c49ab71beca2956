"""The system of record on a real three-node Kafka cluster, under broker faults.

Ingest, the projector and the query API run as processes against a cluster of the test's own
(deploy/kafka/kafka.sh, KAFKA_NODES=3: replication 3, min.insync.replicas 2), while two clients
post a steady stream of events. Meanwhile the leader of the partition being written is
SIGKILLed, later restarted; then the new leader is killed (a second broker), and then the third,
so that one broker is left and writes must stop; then the two come back.

Afterwards: every event answered 202 is in the log exactly once and in the read models exactly
once; while two or three brokers were up no request failed; with one left ingest answered 503
with Retry-After, and accepted nothing the log lacks; the projector and the API carried on after
each fault; `ledger verify` says consistent.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.topics import ensure_topics
from shared.db.engine import make_engine
from shared.db.schema import read_models
from shared.examples import EXAMPLES
from tests.cluster import LocalCluster, local_cluster
from tests.e2e.test_projector_faults import applied, wait_until_applied
from tests.support import Stack, log_records, running_stack, wait_for

# Districts of several provinces (events dated 2021, before the 2025 reorganization), so that
# the stream is keyed onto every partition.
UNITS = ["001", "002", "436", "437", "760", "490", "336"]
# The services' default: a write waits this long for acks=all before ingest answers 503. A
# killed leader is replaced in ~3.5 s here (the cluster fences a node after 3 s of silence).
PRODUCE_TIMEOUT_SECONDS = 10


@dataclass
class Phase:
    name: str
    brokers_up: int
    # Whether every request of this phase must be accepted: with two or three brokers up, once
    # the cluster is whole or has merely lost one. (Right after the outage, ingest may still
    # answer 503 while it finds the log is back.)
    must_accept: bool


@dataclass
class Outcome:
    first_phase: int
    last_phase: int
    status: int
    retry_after: str | None
    event_ids: list[str]
    receipts: list[dict[str, Any]]


@dataclass
class Stream:
    """Clients posting batches of new events, one request after another, each noting the
    phases its request began and ended in. Nothing refused is sent again: each event id is
    posted once, so the log must hold each accepted one exactly once."""

    stack: Stack
    clients: int = 2
    phases: list[Phase] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tokens = {unit: self.stack.token("reporter", unit) for unit in UNITS}
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.run, args=(seed,), daemon=True)
            for seed in range(self.clients)
        ]

    def enter(self, name: str, brokers_up: int, must_accept: bool = True) -> None:
        with self.lock:
            self.phases.append(Phase(name, brokers_up, must_accept))

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=60) as client:
            while not self.stopping.is_set():
                unit = rng.choice(UNITS)
                events = [
                    conference(unit, rng.randrange(1, 500)) for _ in range(rng.randrange(1, 6))
                ]
                first = len(self.phases) - 1
                response = client.post(
                    f"{self.stack.ingest_url}/v1/events/batch",
                    json=events,
                    headers={"Authorization": f"Bearer {self.tokens[unit]}"},
                )
                outcome = Outcome(
                    first,
                    len(self.phases) - 1,
                    response.status_code,
                    response.headers.get("Retry-After"),
                    [e["event_id"] for e in events],
                    response.json().get("receipts", []) if response.status_code == 202 else [],
                )
                with self.lock:
                    self.outcomes.append(outcome)
                time.sleep(0.05)

    def wait_answered(self, count: int, timeout: float = 60) -> None:
        """Until ``count`` requests have begun and ended in the current phase: the stream has
        run through it, not merely entered it."""
        phase = len(self.phases) - 1
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                answered = sum(o.first_phase == o.last_phase == phase for o in self.outcomes)
            if answered >= count:
                return
            assert time.monotonic() < deadline, (
                f"{answered} of {count} requests answered in {self.phases[phase].name}"
            )
            time.sleep(0.1)

    def accepted_since(self, phase: int) -> list[dict[str, Any]]:
        with self.lock:
            return [r for o in self.outcomes if o.first_phase >= phase for r in o.receipts]

    def __enter__(self) -> Stream:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=90)


def conference(unit: str, attendees: int) -> dict[str, Any]:
    event = copy.deepcopy(EXAMPLES["ConferenceHeld"])
    event["event_id"] = str(uuid.uuid4())
    event["unit_code"] = unit
    event["payload"]["attendees"] = attendees
    return event


def projects_past(
    stack: Stack, topic: str, stream: Stream, phase: int, timeout: float = 60
) -> None:
    """Wait (bounded) until an event accepted in ``phase`` or later is in the read models."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipts = stream.accepted_since(phase)
        if receipts:
            done = applied(stack.database_url, topic)
            if any(done.get(r["partition"], 0) > r["offset"] for r in receipts):
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing accepted in phase {stream.phases[phase].name} was projected")


def summary_answers(stack: Stack, dashboard: str) -> int:
    response = httpx.get(
        f"{stack.api_url}/v1/summary",
        params={"group_by": "province"},
        headers={"Authorization": f"Bearer {dashboard}"},
        timeout=30,
    )
    return response.status_code


def read_model_ids(database_url: str) -> tuple[list[str], int]:
    """Every event id in the archive, and the conferences the daily figures count."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            ids = list(conn.scalars(sa.select(read_models.archive.c.event_id)))
            conferences = conn.scalar(sa.select(sa.func.sum(read_models.figures.c.conferences)))
    finally:
        engine.dispose()
    return ids, int(conferences or 0)


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


def test_on_three_brokers_losing_one_loses_nothing_and_stops_nothing_and_losing_two_stops_writes(
    cluster: LocalCluster,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = f"test-cluster-{uuid.uuid4().hex[:10]}"
    ensure_topics(
        cluster.bootstrap,
        topic,
        3,
        f"{topic}.dead-letters",
        replication_factor=3,
        min_insync_replicas=2,
    )
    cluster.wait_in_sync(topic, 3)
    monkeypatch.setenv("EVENTS_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("EVENTS_TOPIC_MIN_INSYNC_REPLICAS", "2")
    api_statuses: list[int] = []
    victims: list[int] = []
    with running_stack(
        cluster.bootstrap, postgres_url, topic, tmp_path, services=("projector", "api")
    ) as stack:
        stack.env = stack.env | {"PRODUCE_TIMEOUT_SECONDS": str(PRODUCE_TIMEOUT_SECONDS)}
        stack.start("ingest")
        wait_for(f"{stack.ingest_url}/readyz")
        dashboard = stack.token("dashboard")
        stream = Stream(stack)
        stream.enter("three brokers", 3)
        try:
            with stream:
                # The partition being written: the one the first accepted event went to.
                deadline = time.monotonic() + 30
                while not stream.accepted_since(0):
                    assert time.monotonic() < deadline, "nothing was accepted at first"
                    time.sleep(0.1)
                partition = stream.accepted_since(0)[0]["partition"]
                stream.wait_answered(20)

                first = cluster.leaders(topic)[partition]
                victims.append(first)
                cluster.kill(first)
                stream.enter(f"node {first} (the leader) killed", 2)
                cluster.wait_in_sync(topic, 2, without=first)
                projects_past(stack, topic, stream, len(stream.phases) - 1)
                api_statuses.append(summary_answers(stack, dashboard))
                stream.wait_answered(30)

                cluster.start(first)
                stream.enter(f"node {first} back", 3)
                cluster.wait_in_sync(topic, 3)
                projects_past(stack, topic, stream, len(stream.phases) - 1)
                api_statuses.append(summary_answers(stack, dashboard))
                stream.wait_answered(20)

                second = cluster.leaders(topic)[partition]
                assert second != first
                victims.append(second)
                cluster.kill(second)
                stream.enter(f"node {second} (the new leader) killed", 2)
                cluster.wait_in_sync(topic, 2, without=second)
                projects_past(stack, topic, stream, len(stream.phases) - 1)
                api_statuses.append(summary_answers(stack, dashboard))
                stream.wait_answered(20)

                third = ({1, 2, 3} - {first, second}).pop()
                victims.append(third)
                cluster.kill(third)
                stream.enter(f"only node {first} left", 1, must_accept=False)
                # Both clients' first requests wait out PRODUCE_TIMEOUT_SECONDS; later ones are
                # refused at once while one at a time finds out whether the log is back.
                stream.wait_answered(2 * stream.clients, timeout=3 * PRODUCE_TIMEOUT_SECONDS)
                api_statuses.append(summary_answers(stack, dashboard))

                # Entered before the restarts: with node {second} back, writes may succeed
                # again, and no such request may count as answered with one broker left.
                stream.enter(f"node {second} and node {third} restarting", 1, must_accept=False)
                cluster.start(second)
                cluster.start(third)
                stream.enter("all back", 3, must_accept=False)
                cluster.wait_in_sync(topic, 3)
                recovered = len(stream.phases) - 1
                deadline = time.monotonic() + 60
                while not stream.accepted_since(recovered):
                    assert time.monotonic() < deadline, "ingest never accepted again"
                    time.sleep(0.2)
                stream.wait_answered(10)
        finally:
            for node in (1, 2, 3):  # whatever happened, leave no node of this cluster down
                if cluster.run("status", str(node)).returncode != 0:
                    cluster.run("start", str(node))

        wait_until_applied(stack, topic)
        api_statuses.append(summary_answers(stack, dashboard))
        assert stack.processes["projector"].poll() is None, stack.log_text("projector")[-3000:]
        assert stack.processes["api"].poll() is None
        verified = stack.ledger("verify")
        log = log_records(cluster.bootstrap, topic)
        archived, conferences = read_model_ids(postgres_url)

    phases, outcomes = stream.phases, stream.outcomes
    one_left = next(i for i, p in enumerate(phases) if p.brokers_up == 1)

    def spans(o: Outcome) -> range:
        return range(o.first_phase, o.last_phase + 1)

    # While two or three brokers were up, no request failed.
    whole = [o for o in outcomes if all(phases[i].must_accept for i in spans(o))]
    assert {o.status for o in whole} == {202}, Counter(
        (phases[o.first_phase].name, o.status) for o in whole
    )
    for i, phase in enumerate(phases):
        if phase.must_accept:
            assert any(o.first_phase == o.last_phase == i for o in whole), f"none in {phase.name}"
    # With one broker left, ingest answered 503 with Retry-After: nothing else, and nothing
    # accepted.
    alone = [o for o in outcomes if o.first_phase == o.last_phase == one_left]
    assert alone, "no request was answered while one broker was left"
    assert {o.status for o in alone} == {503}
    assert all(o.retry_after for o in alone)
    statuses = {o.status for o in outcomes}
    assert statuses <= {202, 503}, Counter(o.status for o in outcomes)
    assert any(o.status == 202 for o in outcomes if o.first_phase > one_left)  # then again

    # Every event answered 202 is in the log exactly once, where its receipt says; an event
    # answered 503 may have been written nonetheless (its acks did not come in time), never
    # twice. The read models hold exactly the log's events, each once.
    in_log = Counter(r["event_id"] for r in log)
    positions = {r["event_id"]: (r["_partition"], r["_offset"]) for r in log}
    posted = {i for o in outcomes for i in o.event_ids}
    accepted = {r["event_id"]: (r["partition"], r["offset"]) for o in outcomes for r in o.receipts}
    assert len(accepted) == sum(len(o.event_ids) for o in outcomes if o.status == 202)
    assert all(in_log[i] == 1 for i in accepted), [i for i in accepted if in_log[i] != 1]
    assert all(positions[i] == position for i, position in accepted.items())
    assert set(in_log) <= posted
    assert max(in_log.values()) == 1
    assert sorted(archived) == sorted(in_log)
    assert conferences == len(in_log)  # one conference per event, none counted twice

    assert set(api_statuses) == {200}, api_statuses
    assert verified.returncode == 0, verified.stderr + verified.stdout[-3000:]
    assert json.loads(verified.stdout)["status"] == "consistent"
    print(
        json.dumps(
            {
                "victims": victims,
                "requests": dict(
                    Counter(
                        f"{phases[o.first_phase].name} -> {phases[o.last_phase].name}: {o.status}"
                        for o in outcomes
                    )
                ),
                "accepted": len(accepted),
                "in_log": len(in_log),
            },
            indent=2,
        )
    )
