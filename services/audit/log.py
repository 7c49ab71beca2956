"""Reading the events topic directly, for auditors: by offset range, and seeking by time.

No consumer group and no commits: an audit read is a private cursor over the log, and a new
``KafkaLog`` per request or command. Every call blocks, so callers run it in a worker thread
(plain ``def`` routes, or a sync generator that Starlette iterates in its thread pool).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from types import TracebackType

from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from services.kafka_consumers import log_reader
from shared.events import VIETNAM_TZ
from shared.projection import Record

# Record timestamps are the producer's clock at send, a few milliseconds after ingest set
# received_at on the same host; seeking this much earlier (and reading this much later) than
# asked covers clock steps and producer retries, and received_at itself decides what is shown.
TIMESTAMP_SLACK = timedelta(minutes=1)
# A read that makes no progress for this long means the broker went away mid-read.
STALL_SECONDS = 30.0


class LogUnavailable(Exception):
    """Kafka did not answer: the caller gets a 503 (or a non-zero exit), never partial truth."""


@dataclass(frozen=True, slots=True)
class Slice:
    """The records of one partition from ``start`` up to, not including, ``stop``."""

    partition: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return max(0, self.stop - self.start)


class KafkaLog:
    def __init__(self, bootstrap_servers: str, topic: str, timeout_seconds: float = 10) -> None:
        self.topic = topic
        self.opener = partial(KafkaLog, bootstrap_servers, topic, timeout_seconds)
        """Opens the same log again: picklable, for another process to read it."""
        self.timeout_ms = int(timeout_seconds * 1000)
        try:
            self._consumer = log_reader(
                bootstrap_servers, "district-ledger-audit", timeout_ms=self.timeout_ms
            )
        except KafkaError as exc:
            raise LogUnavailable(str(exc)) from exc

    def __enter__(self) -> KafkaLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def partitions(self) -> list[int]:
        try:
            return sorted(self._consumer.partitions_for_topic(self.topic) or ())
        except KafkaError as exc:
            raise LogUnavailable(str(exc)) from exc

    def end_offsets(self, partitions: Iterable[int] | None = None) -> dict[int, int]:
        """Per partition, the offset the next record will get: the log's end, now."""
        wanted = self.partitions() if partitions is None else list(partitions)
        try:
            ends = self._consumer.end_offsets(
                [TopicPartition(self.topic, p) for p in wanted], timeout_ms=self.timeout_ms
            )
        except KafkaError as exc:
            raise LogUnavailable(str(exc)) from exc
        return {tp.partition: offset for tp, offset in ends.items()}

    def offsets_at(self, when: datetime, partitions: Iterable[int]) -> dict[int, int]:
        """Per partition, the first offset whose record timestamp is at or after ``when``.

        A partition with no such record maps to its end offset.
        """
        wanted = list(partitions)
        millis = max(0, int(when.timestamp() * 1000))
        try:
            found = self._consumer.offsets_for_times(
                {TopicPartition(self.topic, p): millis for p in wanted}, timeout_ms=self.timeout_ms
            )
        except KafkaError as exc:
            raise LogUnavailable(str(exc)) from exc
        ends = self.end_offsets(wanted)
        return {
            p: (hit.offset if (hit := found.get(TopicPartition(self.topic, p))) else ends[p])
            for p in wanted
        }

    def partition_for_key(self, key: str) -> int | None:
        """Where the producer's default partitioner puts records with this key, today.

        The same murmur2 rule as the Java and kafka-python producers. It holds only while the
        partition count stays what it was when the records were written.
        """
        partitions = self.partitions()
        if not partitions:
            return None
        return partitions[(murmur2(key.encode()) & 0x7FFFFFFF) % len(partitions)]

    def read(self, slices: Iterable[Slice], max_records: int = 500) -> Iterator[Record]:
        """The records of each slice in offset order, slice after slice."""
        for piece in slices:
            if piece.size:
                yield from self._read(piece, max_records)

    def _read(self, piece: Slice, max_records: int) -> Iterator[Record]:
        tp = TopicPartition(self.topic, piece.partition)
        try:
            self._consumer.assign([tp])
            self._consumer.seek(tp, piece.start)
            last_progress = time.monotonic()
            while True:
                polled = self._consumer.poll(timeout_ms=500, max_records=max_records)
                for record in polled.get(tp, []):
                    if record.offset >= piece.stop:
                        return
                    yield Record(
                        piece.partition, record.offset, record.value, record.timestamp, record.key
                    )
                    last_progress = time.monotonic()
                # Offsets can have gaps (transaction markers), so ask where the cursor is.
                if self._consumer.position(tp, timeout_ms=self.timeout_ms) >= piece.stop:
                    return
                if time.monotonic() - last_progress > STALL_SECONDS:
                    raise LogUnavailable(
                        f"no records from partition {piece.partition} for {STALL_SECONDS:g} s"
                    )
        except KafkaError as exc:
            raise LogUnavailable(str(exc)) from exc


def parse_instant(value: str, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 datetime, or a date meaning its first (or, ``end_of_day``, last) moment.

    Without an offset, a time is Vietnam's, as for occurred_at. Raises ValueError.
    """
    text = value.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        start = datetime(day.year, day.month, day.day, tzinfo=VIETNAM_TZ)
        return start + timedelta(days=1, microseconds=-1) if end_of_day else start
    if len(text) > 40:
        raise ValueError("too long for an ISO 8601 datetime")
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM_TZ)
