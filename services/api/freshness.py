"""How far the read models are behind the log: one reading, kept young by the API's own threads.

One staleness budget (``ApiSettings.freshness_budget_seconds``) governs it all: no answer shows
a reading older than it. A reading has two halves, each asked by a thread of its own
``READINGS_PER_BUDGET`` times per budget, and by no request:

- the database's: the offsets the read models have applied, when, and the records parked;
- the log's: each partition's end offset and the append time of the first record not applied.

A request shows the two halves as last read, aged (the lag counts up to now). When the
database's half is older than the budget, or its last reading failed (the database slow or
down), the request reads it itself, and meets the outage; when the log's half is, or the log
did not answer, the lag shows as unknown (``log_end_offsets: null``): no request waits on Kafka.
Two threads, not one: a broker that does not answer takes ``LOG_TIMEOUT_MS`` to fail, and that
must not age the database's half past the budget.

An older reading only claims less than the data holds: it is read before the data, the offsets
it names only grow, and the lag it shows is of a record at or before the first unapplied one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from services.kafka_consumers import ONE_RECORD_FETCH, log_reader
from shared.db.schema import ReadModels
from shared.logs import RepeatedFailure

log = logging.getLogger(__name__)

# How long one question to the broker may take: a broker that does not answer is known as such
# this soon (the audit endpoints then answer 503 at once, see ``LogPositions.unreachable``).
LOG_TIMEOUT_MS = 3000
# Each half is read this often per budget: a thread held up by a busy process (the GIL, both
# cores taken) still renews its half before the budget runs out, so the lag does not show as
# unknown merely because the API is busy.
READINGS_PER_BUDGET = 5


class Freshness(BaseModel):
    """How far the read models are behind the log, as of just before the data was read.

    ``lag_ms`` is how long the oldest record the read models have not applied yet has been in
    the log: 0 when they are caught up, null when the log cannot be asked. ``records_behind``
    counts those records. ``dead_letters`` counts records the projector parked as undecodable:
    they are in the log but in no figure, and someone should look at them.
    """

    applied_offsets: dict[str, int]
    log_end_offsets: dict[str, int] | None
    records_behind: int | None
    lag_ms: int | None
    projected_at: datetime | None
    dead_letters: int

    def headers(self) -> dict[str, str]:
        return {} if self.lag_ms is None else {"X-Projection-Lag-Ms": str(self.lag_ms)}

    def unknown_lag(self) -> Freshness:
        """This reading when how far the log has gone since cannot be known (the database is
        down): what was applied stays true of the data it came with."""
        return self.model_copy(
            update={"log_end_offsets": None, "records_behind": None, "lag_ms": None}
        )

    def aged(self, seconds: float) -> Freshness:
        """This reading, ``seconds`` after it was taken: if it was behind, it has waited longer."""
        if self.lag_ms:
            return self.model_copy(update={"lag_ms": self.lag_ms + int(seconds * 1000)})
        return self


@dataclass(frozen=True, slots=True)
class Applied:
    """The database's half of a reading, begun at ``read_at`` (monotonic)."""

    offsets: dict[int, int]  # partition -> next offset to apply
    projected_at: datetime | None
    dead_letters: int
    read_at: float


@dataclass(frozen=True, slots=True)
class LogEnd:
    """The log's half of a reading, begun at ``read_at`` (monotonic)."""

    ends: dict[int, int]  # partition -> the offset its next record will get
    # partition -> (offset, append time in ms since the epoch) of the first record the read
    # models had not applied when it was asked, for each partition that was behind
    first_unapplied: dict[int, tuple[int, int]]
    read_at: float


class LogPositions:
    """What the freshness asks of the log, from its own thread only (so no lock): the end
    offsets, and the append time of a record."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._consumer: KafkaConsumer | None = None
        self._last_question_failed = False
        # partition -> (offset, log timestamp ms) of the last record timed there: a record's
        # time never changes, and while the projector stands still it is asked again and again
        self._timed: dict[int, tuple[int, int]] = {}

    @property
    def unreachable(self) -> bool:
        """The log did not answer the last question, and none has been answered since."""
        return self._last_question_failed

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = log_reader(
                self.bootstrap_servers,
                "district-ledger-api",
                fetch=ONE_RECORD_FETCH,
                timeout_ms=LOG_TIMEOUT_MS,
            )
        return self._consumer

    def end_offsets(self) -> dict[int, int] | None:
        """Per partition, the offset the next record will get; None if the log did not answer."""
        try:
            consumer = self._client()
            partitions = consumer.partitions_for_topic(self.topic) or set()
            ends = consumer.end_offsets([TopicPartition(self.topic, p) for p in partitions])
        except KafkaError:
            self._last_question_failed = True
            return None
        self._last_question_failed = False
        return {tp.partition: offset for tp, offset in ends.items()}

    def appended_at_ms(self, partition: int, offset: int, timeout: float = 1.0) -> int | None:
        """The log timestamp (ms since the epoch) of the record at ``offset``, or None if it
        cannot be read (the log does not answer, or the record is gone)."""
        timed = self._timed.get(partition)
        if timed is not None and timed[0] == offset:
            return timed[1]
        tp = TopicPartition(self.topic, partition)
        deadline = time.monotonic() + timeout
        try:
            consumer = self._client()
            consumer.assign([tp])
            consumer.seek(tp, offset)
            while time.monotonic() < deadline:
                for record in consumer.poll(timeout_ms=200, max_records=1).get(tp, []):
                    if record.offset != offset:
                        return None  # past the offset: the record is gone (compacted)
                    self._timed[partition] = (offset, int(record.timestamp))
                    return int(record.timestamp)
        except KafkaError:
            self._last_question_failed = True
        return None

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)


def read_applied(engine: sa.Engine, tables: ReadModels, topic: str) -> Applied:
    """The database's half of a reading. Raises what the database raises when it is down."""
    started = time.monotonic()
    offsets, dead = tables.offsets, tables.dead_letters
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(offsets.c.partition, offsets.c.next_offset, offsets.c.updated_at).where(
                offsets.c.topic == topic
            )
        ).all()
        dead_letters = int(conn.scalar(sa.select(sa.func.count()).select_from(dead)) or 0)
    last_update = max((row.updated_at for row in rows), default=None)
    if last_update is not None and last_update.tzinfo is None:
        last_update = last_update.replace(tzinfo=UTC)  # SQLite returns naive UTC
    return Applied(
        {row.partition: row.next_offset for row in rows}, last_update, dead_letters, started
    )


def ask_log(positions: LogPositions, applied: Applied) -> LogEnd | None:
    """The log's half of a reading, for the read models at ``applied``; None if the log did
    not answer."""
    started = time.monotonic()
    ends = positions.end_offsets()
    if ends is None:
        return None
    first_unapplied: dict[int, tuple[int, int]] = {}
    for partition, end in ends.items():
        first = applied.offsets.get(partition, 0)
        if end > first and (stamp := positions.appended_at_ms(partition, first)) is not None:
            first_unapplied[partition] = (first, stamp)
    return LogEnd(ends, first_unapplied, started)


def combine(applied: Applied, log_end: LogEnd | None) -> Freshness:
    """A reading of both halves, its lag counted up to now; the lag unknown without the log's."""
    behind: int | None = None
    lag_ms: int | None = None
    if log_end is not None:
        waiting = {
            p: applied.offsets.get(p, 0)
            for p, end in log_end.ends.items()
            if end > applied.offsets.get(p, 0)
        }
        behind = sum(log_end.ends[p] - first for p, first in waiting.items())
        lag_ms = _oldest_wait_ms(waiting, log_end.first_unapplied)
    return Freshness(
        applied_offsets={str(p): o for p, o in sorted(applied.offsets.items())},
        log_end_offsets=(
            None if log_end is None else {str(p): o for p, o in sorted(log_end.ends.items())}
        ),
        records_behind=behind,
        lag_ms=lag_ms,
        projected_at=applied.projected_at,
        dead_letters=applied.dead_letters,
    )


def _oldest_wait_ms(
    waiting: dict[int, int], first_unapplied: dict[int, tuple[int, int]]
) -> int | None:
    """How long the first unapplied record of each lagging partition has waited, at most.

    The time of a record at or before the first unapplied one only makes the lag look longer;
    a partition not timed at or before it leaves the lag unknown.
    """
    if not waiting:
        return 0
    now_ms = int(time.time() * 1000)
    waits: list[int] = []
    for partition, first in waiting.items():
        timed = first_unapplied.get(partition)
        if timed is None or timed[0] > first:
            return None
        waits.append(now_ms - timed[1])
    return max(0, *waits)


class FreshnessKeeper:
    """Keeps the two halves of the freshness younger than ``budget`` seconds (see the module's
    docstring); ``reading`` and ``reading_on_loop`` are what requests call."""

    def __init__(
        self,
        engine: sa.Engine,
        tables: ReadModels,
        topic: str,
        positions: LogPositions,
        budget: float,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.topic = topic
        self.positions = positions
        self.budget = budget
        self._lock = threading.Lock()
        self._applied: Applied | None = None
        self._log_end: LogEnd | None = None
        # (applied, log end, when combined, the reading): the halves change ten times a second
        # and requests come by the thousand, so each pair is combined once and then aged
        self._combined: tuple[Applied, LogEnd | None, float, Freshness] | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def reading(self, *, recent: bool = True) -> Freshness:
        """Call it *before* reading the data: the data then holds at least what it says.

        ``recent=False`` reads the database's half anew: a caller that just waited for its
        receipts passes it, so the freshness it shows includes them. Blocks on the database
        when it reads: in a worker thread.
        """
        applied = self._applied
        if not recent or not self._young(applied):
            applied = self._read_applied()
        assert applied is not None
        return self._combine(applied, self._young_log_end())

    async def reading_on_loop(self, *, recent: bool = True) -> Freshness:
        """``reading`` for an ``async def`` route: a young reading without leaving the event
        loop; a database read of its own on a worker thread."""
        applied = self._applied
        if recent and self._young(applied):
            assert applied is not None
            return self._combine(applied, self._young_log_end())
        return await run_in_threadpool(self.reading, recent=recent)

    def start(self) -> None:
        def read_applied_again() -> None:
            try:
                self._read_applied()
            except Exception:
                self._applied = None  # requests read it themselves, and meet the outage
                raise

        def ask_log_again() -> None:
            if (applied := self._applied) is not None:
                self._log_end = ask_log(self.positions, applied)

        self._threads = [
            self._repeat("freshness-database", read_applied_again),
            self._repeat("freshness-log", ask_log_again),
        ]

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.positions.close()

    def _combine(self, applied: Applied, log_end: LogEnd | None) -> Freshness:
        now = time.monotonic()
        last = self._combined
        if last is not None and last[0] is applied and last[1] is log_end:
            return last[3].aged(now - last[2])
        combined = combine(applied, log_end)
        self._combined = (applied, log_end, now, combined)
        return combined

    def _young(self, half: Applied | LogEnd | None) -> bool:
        return half is not None and time.monotonic() - half.read_at < self.budget

    def _young_log_end(self) -> LogEnd | None:
        log_end = self._log_end
        return log_end if self._young(log_end) else None

    def _read_applied(self) -> Applied:
        found = read_applied(self.engine, self.tables, self.topic)
        with self._lock:  # a request's reading may end after a newer one of the thread's
            if self._applied is None or found.read_at > self._applied.read_at:
                self._applied = found
        return found

    def _repeat(self, name: str, task: Callable[[], None]) -> threading.Thread:
        def run_forever() -> None:
            outage = RepeatedFailure(log, f"reading the freshness ({name})")
            while True:
                try:
                    task()
                except Exception as exc:  # requests read the database themselves meanwhile
                    outage.failed(exc)
                else:
                    outage.succeeded()
                if self._stop.wait(self.budget / READINGS_PER_BUDGET):
                    return

        thread = threading.Thread(target=run_forever, name=name, daemon=True)
        thread.start()
        return thread
