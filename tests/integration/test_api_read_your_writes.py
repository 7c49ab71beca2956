"""``after=`` waits on PostgreSQL: woken by the projector's NOTIFY at commit, not by polling.

The store applies real records in this process; the API's listener runs against the real server.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from services.api.read_your_writes import AppliedSignal, wait_until_applied
from services.projector.store import ReadModelStore
from shared.db.schema import read_models
from shared.events import parse_event
from shared.examples import EXAMPLES
from shared.projection import Record
from shared.records import encode_event

TOPIC = "events"


# LISTEN/NOTIFY is PostgreSQL's: the shared ``engine`` fixture, on PostgreSQL only.
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def signal(engine: sa.Engine) -> Iterator[AppliedSignal]:
    listening = AppliedSignal(engine)
    # It counts one wake-up once it listens (for whatever committed before).
    listening.wait_for_commit(0, timeout=10)
    assert listening.commits >= 1, "the listener never connected"
    yield listening
    listening.close()


def record(offset: int) -> Record:
    body = copy.deepcopy(EXAMPLES["ConferenceHeld"])
    body["event_id"] = str(uuid.uuid4())
    return Record(0, offset, encode_event(parse_event(body), datetime.now(UTC)))


def test_a_committed_batch_is_signalled_and_wakes_a_waiting_request(
    engine: sa.Engine, signal: AppliedSignal
) -> None:
    store = ReadModelStore(engine, read_models, TOPIC)
    finished = threading.Event()
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            wait_until_applied(engine, read_models, TOPIC, {0: 0}, 10, signal)
        except BaseException as exc:  # reported below
            failed.append(exc)
        finished.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not finished.wait(0.5), "it returned before anything was applied"
    before = signal.commits
    store.apply([record(0)])
    waiter.join(timeout=10)
    assert finished.is_set() and not failed, failed
    # The wake-up came from the projector's NOTIFY, not from the fallback poll.
    signal.wait_for_commit(before, timeout=5)
    assert signal.commits > before


def test_the_listener_reconnects_when_its_connection_is_cut(
    engine: sa.Engine, signal: AppliedSignal
) -> None:
    store = ReadModelStore(engine, read_models, TOPIC)
    connected = signal.commits
    with engine.connect() as conn:
        cut = conn.scalar(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
            )
        )
    assert cut == 1
    # Nothing was applied: the next count is the listener's own, once it listens again.
    signal.wait_for_commit(connected, timeout=20)
    assert signal.commits > connected, "the listener did not reconnect"
    before = signal.commits
    store.apply([record(0)])
    signal.wait_for_commit(before, timeout=5)
    assert signal.commits > before
