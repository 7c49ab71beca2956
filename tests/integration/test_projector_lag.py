"""The projector's lag gauges against the real broker: one per assigned partition, idle ones too.

A partition the projector was assigned but found nothing new in (everything in it applied by an
earlier owner, or nothing ever written to it) once had no gauge at all: the gauge needed an
offset this process had applied itself. A missing series reads as "no data", not "no lag", in
any dashboard or alert, so that was a monitoring bug.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from datetime import UTC, datetime

from kafka import KafkaProducer
from prometheus_client import REGISTRY

from services.projector.consumer import LAG, Projector
from services.projector.store import ReadModelStore
from shared.db.engine import make_engine
from shared.db.schema import read_models
from shared.events import parse_event
from shared.examples import EXAMPLES
from shared.records import encode_event


def lag(partition: int) -> float | None:
    return REGISTRY.get_sample_value("projector_lag_records", {"partition": str(partition)})


def write(bootstrap: str, topic: str, partition: int, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for _ in range(count):
            body = copy.deepcopy(EXAMPLES["ConferenceHeld"]) | {"event_id": str(uuid.uuid4())}
            value = encode_event(parse_event(body), datetime.now(UTC))
            producer.send(topic, key=b"436", value=value, partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close()


def run_projector(
    bootstrap: str, topic: str, database_url: str
) -> tuple[Projector, threading.Thread]:
    engine = make_engine(database_url)
    projector = Projector(
        ReadModelStore(engine, read_models, topic),
        bootstrap,
        f"projector-{uuid.uuid4().hex[:8]}",
        f"{topic}.dead-letters",
        poll_timeout_ms=50,
        session_timeout_ms=6000,
    )
    thread = threading.Thread(target=projector.run, daemon=True)
    thread.start()
    return projector, thread


def wait_for_lags(expected: list[float], timeout: float = 30) -> list[float | None]:
    deadline = time.monotonic() + timeout
    while (seen := [lag(p) for p in range(len(expected))]) != expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return seen


def test_every_assigned_partition_has_a_lag_gauge_though_nothing_in_it_was_applied_here(
    kafka_bootstrap: str, topic: str, sqlite_url: str
) -> None:
    LAG.clear()  # gauges other tests' projectors left in this process
    write(kafka_bootstrap, topic, partition=0, count=5)  # 1 and 2 stay empty
    first, thread = run_projector(kafka_bootstrap, topic, sqlite_url)
    try:
        seen_first = wait_for_lags([0, 0, 0])
    finally:
        first.stop()
        thread.join(timeout=30)

    # A second projector takes over a log the first one applied entirely: it applies nothing.
    write(kafka_bootstrap, topic, partition=1, count=3)
    LAG.clear()
    second, thread = run_projector(kafka_bootstrap, topic, sqlite_url)
    try:
        seen_second = wait_for_lags([0, 0, 0])
    finally:
        second.stop()
        thread.join(timeout=30)

    assert seen_first == [0, 0, 0]
    assert seen_second == [0, 0, 0]
    assert second.applied_up_to == {0: 5, 1: 3, 2: 0}
