"""What the API's routes depend on: the database, the log's positions, the caller and scope."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Query, Request, Security
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pydantic import BaseModel, BeforeValidator
from starlette.concurrency import run_in_threadpool

from services.api.answers import AnswerMemory
from services.api.read_your_writes import AppliedSignal
from services.api.summary import DIMENSION_ALIASES, DIMENSIONS, Dimension, Frame, parse_group_by
from services.web.auth import Authenticator, Principal
from services.web.problems import BearerToken, invalid_parameter, problem_responses
from shared.db.schema import ReadModels, read_models
from shared.logs import RepeatedFailure
from shared.settings import ApiSettings

log = logging.getLogger(__name__)


class LogPositions:
    """What the API asks of the log: its end offsets (cached for ``max_age`` seconds) and the
    append time of a record, to say how long the oldest unapplied record has waited.

    While the broker does not answer, the answer is None (the lag is unknown) at once: after a
    failure the log is not asked again for ``retry_after`` seconds, and a caller does not queue
    behind another's question for more than ``LOCK_WAIT_SECONDS``. Each question took 3 s while
    the broker was down, and every summary and list waited 4-6 s for one.
    """

    LOCK_WAIT_SECONDS = 0.2

    def __init__(
        self, bootstrap_servers: str, topic: str, max_age: float = 0.5, retry_after: float = 1.0
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.max_age = max_age
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._consumer: KafkaConsumer | None = None
        self._cached: tuple[float, dict[int, int]] | None = None
        self._unreachable_until = 0.0
        self._last_question_failed = False
        # partition -> (when read, offset, log timestamp ms) of the last record read there
        self._last_read: dict[int, tuple[float, int, int]] = {}

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                client_id="district-ledger-api",
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=3000,
                bootstrap_timeout_ms=3000,
                max_partition_fetch_bytes=64 * 1024,
                reconnect_backoff_max_ms=1000,  # fresh again within 1 s of a broker's return
            )
        return self._consumer

    @contextmanager
    def _asking(self) -> Iterator[bool]:
        """Holds the lock while it yields whether the log may be asked now."""
        if not self._lock.acquire(timeout=self.LOCK_WAIT_SECONDS):
            yield False  # another caller is waiting on the log: it is slow or down
            return
        try:
            yield time.monotonic() >= self._unreachable_until
        finally:
            self._lock.release()

    def _note_failure(self) -> None:
        self._unreachable_until = time.monotonic() + self.retry_after
        self._last_question_failed = True

    @property
    def unreachable(self) -> bool:
        """The log did not answer the last question, and none has been answered since (the
        freshness thread asks about every second while it does not answer)."""
        return self._last_question_failed

    def end_offsets(self) -> dict[int, int] | None:
        with self._asking() as may_ask:
            if self._cached and time.monotonic() - self._cached[0] < self.max_age:
                return self._cached[1]
            if not may_ask:
                return None
            try:
                consumer = self._client()
                partitions = consumer.partitions_for_topic(self.topic) or set()
                ends = consumer.end_offsets([TopicPartition(self.topic, p) for p in partitions])
            except KafkaError:
                self._note_failure()
                return None
            result = {tp.partition: offset for tp, offset in ends.items()}
            self._cached = (time.monotonic(), result)
            self._last_question_failed = False
            return result

    def appended_at_ms(self, partition: int, offset: int, timeout: float = 1.0) -> int | None:
        """The log timestamp (ms since the epoch) of the record at ``offset``, or of an earlier
        record of the partition read less than ``max_age`` ago, or None if it cannot be read.

        The earlier record's time can only make the lag look longer, never shorter; it keeps a
        busy API from reading Kafka on every request while the projector moves through a
        backlog (each request would otherwise ask for a new offset).
        """
        with self._asking() as may_ask:
            now = time.monotonic()
            last = self._last_read.get(partition)
            if last is not None and (
                last[1] == offset or (now - last[0] < self.max_age and last[1] <= offset)
            ):
                return last[2]
            if not may_ask:
                return None
            found = self._read_timestamp(TopicPartition(self.topic, partition), offset, timeout)
            if found is not None:
                self._last_read[partition] = (now, offset, found)
            return found

    def _read_timestamp(self, tp: TopicPartition, offset: int, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        try:
            consumer = self._client()
            consumer.assign([tp])
            consumer.seek(tp, offset)
            while time.monotonic() < deadline:
                for record in consumer.poll(timeout_ms=200, max_records=1).get(tp, []):
                    # Past the offset means the record is gone (compacted): nothing to measure.
                    return int(record.timestamp) if record.offset == offset else None
        except KafkaError:
            self._note_failure()
            return None
        return None

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


class FreshnessMemory:
    """The last freshness reading, served while it is under ``ttl`` seconds old (its lag aged
    by as much), and while one request reads it anew: requests then neither queue behind a
    reading (it may wait on Kafka) nor pile onto it. A background thread (``keep_fresh``) keeps
    it young, so requests normally never read it themselves. An older reading only claims less
    than the data holds."""

    def __init__(self, ttl: float = 0.2) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._last: tuple[float, Freshness] | None = None
        self._reading = False

    def get_or_claim(self) -> Freshness | None:
        """A usable freshness, or None: then the caller reads it and must ``put`` it."""
        with self._lock:
            if self._last is None:
                self._reading = True
                return None
            read_at, value = self._last
            age = time.monotonic() - read_at
            if age >= self.ttl and not self._reading:
                self._reading = True
                return None
        return value.aged(age)

    def put(self, value: Freshness | None, started: float) -> None:
        """Store a reading begun at ``started`` (monotonic): its age counts from then, when it
        began to look. None: the reading failed, let the next request try."""
        with self._lock:
            if value is not None and (self._last is None or started >= self._last[0]):
                self._last = (started, value)
            self._reading = False


@dataclass
class Api:
    settings: ApiSettings
    engine: sa.Engine
    positions: LogPositions
    authenticate: Authenticator
    tables: ReadModels = field(default=read_models)
    recent_freshness: FreshnessMemory = field(default_factory=FreshnessMemory)
    answers: AnswerMemory = field(default_factory=AnswerMemory)
    # Wakes ``after=`` waits when a projector batch commits (PostgreSQL); None: they poll.
    applied: AppliedSignal | None = None


# Dependencies that do no I/O are ``async def`` so FastAPI runs them on the event loop: a
# plain ``def`` one costs a thread-pool hop per request, and a summary used to take four.
async def get_api(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


ApiDep = Annotated[Api, Depends(get_api)]


BEARER = BearerToken(
    "A token of the role dashboard or auditor (or reporter: its own unit's figures)"
)


async def get_principal(
    api: ApiDep, authorization: Annotated[str | None, Security(BEARER)]
) -> Principal:
    principal = api.authenticate.remembered(authorization)
    if principal is None:  # a database lookup: in the thread pool
        principal = await run_in_threadpool(api.authenticate, authorization)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def responses(*statuses: int, csv: bool = False) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: the problems it can answer, and CSV when it gives CSV."""
    documented = problem_responses(*statuses)
    if csv:
        documented[200] = {
            "content": {
                "text/csv": {
                    "schema": {
                        "type": "string",
                        "description": "The rows as CSV (UTF-8 with a BOM) with a header row: "
                        "asked with format=csv or Accept: text/csv",
                    }
                }
            }
        }
    return documented


# The query parameters every read endpoint shares. Each schema is what its validation takes,
# no more and no less: [0-9], not \d, which would take other scripts' digits.
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_day(value: object) -> object:
    """A day is YYYY-MM-DD (format: date), not any string pydantic could read as a date."""
    if isinstance(value, str) and not ISO_DAY.fullmatch(value):
        raise ValueError("a date is YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]
FromQuery = Annotated[
    Day | None, Query(alias="from", examples=["2021-01-01"], description="First day, inclusive")
]
ToQuery = Annotated[Day | None, Query(examples=["2021-12-31"], description="Last day, inclusive")]
# One dimension or several joined by commas, at most one of them a period; district is
# another name for unit. What parse_group_by takes, less the spaces and empty parts it skips.
_PERIODS = ("month", "quarter", "year")
_GROUPS = "|".join([*(d for d in DIMENSIONS if d not in _PERIODS), *DIMENSION_ALIASES])
GROUP_BY_PATTERN = (
    "^(" + "|".join(f"({_GROUPS}|{period})(,({_GROUPS}|{period}))*" for period in _PERIODS) + ")?$"
)
GroupByQuery = Annotated[
    str | None,
    Query(
        max_length=100,
        pattern=GROUP_BY_PATTERN,
        examples=["unit,month"],
        description=(
            "province, unit, month, quarter or year; several joined by commas, at most one "
            "period (district is another name for unit), e.g. unit,month"
        ),
    ),
]
FrameQuery = Annotated[
    Frame,
    Query(
        description=(
            "current: today's 34 provinces, each with its predecessors' history; as_reported: "
            "provinces and units as they were on each event's date"
        )
    ),
]
PROVINCE_PATTERN = r"^(legacy:)?[0-9]{2}$"
ProvinceQuery = Annotated[
    str | None,
    Query(
        pattern=PROVINCE_PATTERN,
        examples=["42"],
        description=(
            "A province: today's code, e.g. 33 (Hưng Yên), or legacy:CODE for one before "
            "2025-07-01, e.g. legacy:34 (Thái Bình)"
        ),
    ),
]
UNIT_PATTERN = r"^(legacy:[0-9]{2,3}|[0-9]{2}|[0-9]{3}|[0-9]{5})$"
UnitQuery = Annotated[
    str | None,
    Query(
        pattern=UNIT_PATTERN,
        examples=["436"],
        description=(
            "A unit: a commune (18073), a legacy district (436), a province (42) or "
            "legacy:CODE (legacy:34)"
        ),
    ),
]
DistrictQuery = Annotated[
    str | None,
    Query(
        pattern=UNIT_PATTERN,
        examples=["436"],
        description="Another name for unit, kept for older callers",
    ),
]
# As parse_after reads them: at most 6 digits of partition and 18 of offset.
_RECEIPT = "[0-9]{1,6}:[0-9]{1,18}"
RECEIPTS_PATTERN = f"^({_RECEIPT}(,{_RECEIPT})*)?$"
AfterQuery = Annotated[
    str | None,
    Query(
        max_length=8000,
        pattern=RECEIPTS_PATTERN,
        examples=["0:0,1:0,2:0"],
        description=(
            "Receipts to wait for, as partition:offset pairs joined by commas (e.g. 0:17,2:5): "
            "the answer waits, bounded, until the read models hold them (504 if they do not "
            "in time)"
        ),
    ),
]


def check_range(date_from: date | None, date_to: date | None) -> None:
    if date_from and date_to and date_from > date_to:
        raise invalid_parameter("from", "after 'to'", "range", "'from' is after 'to'.")


def group_by_dimensions(value: str | None) -> list[Dimension]:
    try:
        return parse_group_by(value)
    except ValueError as exc:
        raise invalid_parameter("group_by", str(exc)) from None


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


def freshness(api: Api, *, recent: bool = True) -> Freshness:
    """Read it *before* the data: the data then holds at least what it says (never less).

    ``recent`` allows the read of up to 0.1 s ago; a caller that just waited for receipts
    passes False, so the freshness it shows includes them.
    """
    if recent and (remembered := api.recent_freshness.get_or_claim()) is not None:
        return remembered
    return _read_and_remember(api)


async def freshness_on_loop(api: Api, *, recent: bool = True) -> Freshness:
    """``freshness`` for an ``async def`` route: the remembered reading without leaving the
    event loop; a reading of its own (it may wait on Kafka) on a worker thread."""
    if recent and (remembered := api.recent_freshness.get_or_claim()) is not None:
        return remembered
    return await run_in_threadpool(_read_and_remember, api)


def _read_and_remember(api: Api) -> Freshness:
    found: Freshness | None = None
    started = time.monotonic()
    try:
        found = _read_freshness(api)
    finally:
        api.recent_freshness.put(found, started)
    return found


def keep_fresh(api: Api, stop: threading.Event, interval: float = 0.1) -> threading.Thread:
    """Read the freshness every ``interval`` seconds in a thread of its own, so that requests
    find a young reading and never wait on Kafka for it."""

    def read_forever() -> None:
        outage = RepeatedFailure(log, "reading the freshness")  # requests read it meanwhile
        while not stop.wait(interval):
            started = time.monotonic()
            try:
                api.recent_freshness.put(_read_freshness(api), started)
            except Exception as exc:
                outage.failed(exc)
            else:
                outage.succeeded()

    thread = threading.Thread(target=read_forever, name="freshness", daemon=True)
    thread.start()
    return thread


def _read_freshness(api: Api) -> Freshness:
    offsets, dead = api.tables.offsets, api.tables.dead_letters
    with api.engine.connect() as conn:
        rows = conn.execute(
            sa.select(offsets.c.partition, offsets.c.next_offset, offsets.c.updated_at).where(
                offsets.c.topic == api.settings.events_topic
            )
        ).all()
        dead_letters = int(conn.scalar(sa.select(sa.func.count()).select_from(dead)) or 0)
    applied = {row.partition: row.next_offset for row in rows}
    last_update = max((row.updated_at for row in rows), default=None)
    if last_update is not None and last_update.tzinfo is None:
        last_update = last_update.replace(tzinfo=UTC)  # SQLite returns naive UTC
    ends = api.positions.end_offsets()
    behind: int | None = None
    lag_ms: int | None = None
    if ends is not None:
        waiting = {p: applied.get(p, 0) for p, end in ends.items() if end > applied.get(p, 0)}
        behind = sum(ends[p] - first for p, first in waiting.items())
        lag_ms = _oldest_wait_ms(api.positions, waiting)
    return Freshness(
        applied_offsets={str(p): o for p, o in sorted(applied.items())},
        log_end_offsets=None if ends is None else {str(p): o for p, o in sorted(ends.items())},
        records_behind=behind,
        lag_ms=lag_ms,
        projected_at=last_update,
        dead_letters=dead_letters,
    )


def _oldest_wait_ms(positions: LogPositions, waiting: dict[int, int]) -> int | None:
    """How long the first unapplied record of each lagging partition has waited, at most."""
    if not waiting:
        return 0
    now_ms = int(time.time() * 1000)
    stamps = [positions.appended_at_ms(p, first) for p, first in sorted(waiting.items())]
    if any(stamp is None for stamp in stamps):
        return None
    return max(0, *(now_ms - int(stamp or 0) for stamp in stamps))
