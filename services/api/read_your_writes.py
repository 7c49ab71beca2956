"""``after=partition:offset,...``: wait (bounded) until the projector has applied those receipts."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import sqlalchemy as sa

from services.web.problems import Problem, invalid_parameter
from shared.db.schema import APPLIED_CHANNEL, ReadModels
from shared.logs import RepeatedFailure

log = logging.getLogger(__name__)

POLL_SECONDS = 0.02  # without a signal (SQLite): how often a waiting request looks again
# With one: how often it looks anyway, in case a notification was missed (listener reconnecting).
SIGNALLED_POLL_SECONDS = 0.25
RECONNECT_SECONDS = 1.0


class AppliedSignal:
    """Wakes the requests waiting for receipts as soon as a projector batch commits.

    PostgreSQL only. The projector NOTIFYs ``APPLIED_CHANNEL`` in each batch's transaction, which
    PostgreSQL delivers at commit; one LISTEN connection per API process turns that into a
    wake-up for every waiting thread. Waiting requests used to look every 20 ms: 10 ms of every
    ``after=`` answer on average, and a query each time.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._changed = threading.Condition()
        self._commits = 0  # notifications seen (and reconnections, which may have missed some)
        self._stop = threading.Event()
        self._listener = threading.Thread(
            target=self._listen_forever, name="applied-listener", daemon=True
        )
        self._listener.start()

    @property
    def commits(self) -> int:
        with self._changed:
            return self._commits

    def wait_for_commit(self, seen: int, timeout: float) -> None:
        """Return once a commit after the one counted ``seen`` is signalled, or after ``timeout``."""
        with self._changed:
            self._changed.wait_for(lambda: self._commits != seen, timeout)

    def close(self) -> None:
        self._stop.set()
        self._listener.join(timeout=5)

    def _signal(self) -> None:
        with self._changed:
            self._commits += 1
            self._changed.notify_all()

    def _listen_forever(self) -> None:
        outage = RepeatedFailure(log, "listening for projector commits")
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {APPLIED_CHANNEL}")
                    outage.succeeded()
                    self._signal()  # whatever committed while nobody listened
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._signal()
            except psycopg.Error as exc:
                outage.failed(exc)
                self._stop.wait(RECONNECT_SECONDS)


def parse_after(value: str | None) -> dict[int, int]:
    if not value:
        return {}
    wanted: dict[int, int] = {}
    for part in value.split(","):
        partition, sep, offset = part.strip().partition(":")
        if (
            not sep
            or not partition.isdigit()
            or not offset.isdigit()
            or len(partition) > 6
            or len(offset) > 18
        ):
            raise invalid_parameter(
                "after",
                f"bad receipt {part!r}",
                "receipt",
                f"'after' takes receipts as partition:offset pairs joined by commas; {part!r} is not one.",
            )
        wanted[int(partition)] = max(wanted.get(int(partition), 0), int(offset))
    return wanted


def wait_until_applied(
    engine: sa.Engine,
    tables: ReadModels,
    topic: str,
    wanted: dict[int, int],
    timeout: float,
    signal: AppliedSignal | None = None,
) -> None:
    if not wanted:
        return
    deadline = time.monotonic() + timeout
    offsets = tables.offsets
    query = sa.select(offsets.c.partition, offsets.c.next_offset).where(offsets.c.topic == topic)
    while True:
        seen = signal.commits if signal else 0  # before reading: a later commit wakes us
        with engine.connect() as conn:  # not held while waiting: many requests may wait
            applied = {row.partition: row.next_offset for row in conn.execute(query)}
        if all(applied.get(p, 0) > o for p, o in wanted.items()):
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise Problem(
                504,
                "Gateway Timeout",
                f"The read models did not reach the given receipts within {timeout:g} s; retry.",
                headers={"Retry-After": "1"},
            )
        if signal:
            signal.wait_for_commit(seen, min(left, SIGNALLED_POLL_SECONDS))
        else:
            time.sleep(min(left, POLL_SECONDS))
