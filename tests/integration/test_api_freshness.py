"""How fresh the API says it is: records behind, how long the oldest of them has waited, parked
records, and read-your-writes that gives up cleanly."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from services.api.freshness import FreshnessKeeper, LogPositions
from shared.db.engine import make_engine
from shared.db.schema import read_models
from shared.examples import EXAMPLES
from tests.support import free_port, running_stack, until_projected


def test_the_lag_is_how_long_the_oldest_unapplied_record_has_waited_and_parked_ones_are_counted(
    kafka_bootstrap: str,
    sqlite_url: str,
    topic: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("READ_YOUR_WRITES_TIMEOUT_SECONDS", "0.5")
    with running_stack(
        kafka_bootstrap, sqlite_url, topic, tmp_path, services=("ingest", "api")
    ) as stack:
        # A reporter of Thành phố Hà Tĩnh (436), the unit of the example event.
        reporter = {"Authorization": f"Bearer {stack.token('reporter', '436')}"}
        api = httpx.Client(
            base_url=stack.api_url,
            headers={"Authorization": f"Bearer {stack.token('dashboard')}"},
            timeout=30,
        )
        event = {**copy.deepcopy(EXAMPLES["ConferenceHeld"]), "event_id": str(uuid.uuid4())}
        assert event["unit_code"] == "436"
        posted = httpx.post(f"{stack.ingest_url}/v1/events", json=event, headers=reporter)
        assert posted.status_code == 202, posted.text
        accepted_at = time.time()
        receipt = posted.json()
        time.sleep(0.3)  # not an assertion on time: it sets a lower bound the lag must show

        # No projector runs: the record waits, and the API says so.
        behind = api.get("/v1/summary")
        fresh = behind.json()["freshness"]
        assert fresh["records_behind"] == 1
        waited_ms = (time.time() - accepted_at) * 1000
        assert fresh["lag_ms"] is not None and fresh["lag_ms"] >= min(300, waited_ms) - 50
        assert int(behind.headers["X-Projection-Lag-Ms"]) >= fresh["lag_ms"] - 1000
        assert fresh["dead_letters"] == 0

        # Asking for the receipt while nothing projects: a clear, bounded 504.
        waited = api.get(
            "/v1/summary", params={"after": f"{receipt['partition']}:{receipt['offset']}"}
        )
        assert waited.status_code == 504
        assert waited.headers["content-type"] == "application/problem+json"
        assert waited.headers["Retry-After"]

        # A record no one can read lands in the log; the projector parks it and moves on.
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        garbage = producer.send(topic, key=b"436", value=b"\xff not an event").get(timeout=30)
        producer.close()
        stack.start("projector")
        both = f"{receipt['partition']}:{receipt['offset']},{garbage.partition}:{garbage.offset}"
        caught_up = until_projected(
            lambda: api.get("/v1/summary", params={"after": both}), tries=120
        )
        assert caught_up.status_code == 200, caught_up.text
        fresh = caught_up.json()["freshness"]
        assert (fresh["records_behind"], fresh["lag_ms"], fresh["dead_letters"]) == (0, 0, 1)
        assert caught_up.json()["rows"][0]["conferences"] == 1
        api.close()


def test_while_the_broker_does_not_answer_requests_show_the_lag_unknown_without_asking_it(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real address nobody listens on: every question to it fails as a stopped broker's would.
    positions = LogPositions(f"127.0.0.1:{free_port()}", "events")
    askers: list[str] = []
    ask = positions.end_offsets

    def counted() -> dict[int, int] | None:
        askers.append(threading.current_thread().name)
        return ask()

    monkeypatch.setattr(positions, "end_offsets", counted)
    engine = make_engine(sqlite_url)
    keeper = FreshnessKeeper(engine, read_models, "events", positions, budget=0.2)
    keeper.start()
    try:
        deadline = time.monotonic() + 30
        while not positions.unreachable:  # the log thread's first question fails
            assert time.monotonic() < deadline, "the freshness thread never asked the log"
            time.sleep(0.05)
        # Summaries and lists answered 4-6 s late while the broker was down, each waiting for
        # its own question to time out: now only the freshness thread asks the log, and a
        # request shows what the database says with the lag unknown.
        for recent in (True, False):
            shown = keeper.reading(recent=recent)
            assert (shown.log_end_offsets, shown.records_behind, shown.lag_ms) == (None,) * 3
            assert shown.applied_offsets == {}
        assert askers and set(askers) == {"freshness-log"}
    finally:
        keeper.close()
        engine.dispose()
