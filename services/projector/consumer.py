"""The projector's Kafka loop: poll, apply a batch and its offsets in one transaction, commit.

Offsets are never auto-committed. The database holds the truth about what was applied; Kafka's
committed offset (always ``offset + 1``) only mirrors it for monitoring tools. On assignment the
consumer seeks to the database's offsets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import Counter, Gauge, Histogram

from services.kafka_consumers import group_member
from services.kafka_producers import close_producer
from services.projector.pipeline import ApplyPipeline, without_partitions
from services.projector.store import BatchResult, ReadModelStore
from shared.projection import Decoded, Record, decode

log = logging.getLogger(__name__)

APPLIED = Counter("projector_events_applied_total", "Unique events applied to the read models")
DUPLICATES = Counter(
    "projector_duplicates_total", "Records skipped because their event_id was applied"
)
DEAD_LETTERS = Counter("projector_dead_letters_total", "Poison records parked with their reason")
BATCH_SECONDS = Histogram("projector_batch_seconds", "Time to apply one batch and its offsets")
LAG = Gauge("projector_lag_records", "Records in the log not yet applied", ["partition"])
RETRIES = Counter(
    "projector_batch_retries_total", "Batches rolled back by a database error and read again"
)
REJOINS_RESUMED = Counter(
    "projector_rebalances_resumed_total",
    "Rebalances the Kafka client left unfinished, resumed by the projector",
)

# Errors a batch can meet that a retry resolves: the database restarting or locked (SQLite, a
# rebuild's swap), a deadlock, or another projector archiving the same event id first.
RETRYABLE = (sa.exc.OperationalError, sa.exc.IntegrityError)
MAX_ATTEMPTS = 12
COMMIT_TIMEOUT_MS = 5000
PROGRESS_LOG_SECONDS = 10.0


def resume_abandoned_rejoin(consumer: KafkaConsumer) -> None:
    """Make the next poll finish a rebalance kafka-python 3.0.12 would leave half done.

    When a rebalance was prompted by the group leader's own metadata change and ``poll()``
    returns before its JoinGroup/SyncGroup round ends, the finished join is never applied:
    ``need_rejoin()`` turned False as soon as the leader computed the assignment, so no later
    poll comes back for it. The member keeps its partitions marked "pending revocation" (never
    fetched again) and its heartbeats off, and applies nothing from then on. Java's client
    (``rejoinNeededOrPending``) and kafka-python 2 (dpkp/kafka-python#1695) also count a join in
    progress; asking for a rejoin restores that, and the next poll joins and applies it.
    """
    coordinator = consumer._coordinator
    if coordinator.rejoining and not coordinator.need_rejoin():
        log.warning("resuming a rebalance the Kafka client left unfinished")
        REJOINS_RESUMED.inc()
        coordinator.request_rejoin()


class NoteAssignments(ConsumerRebalanceListener):
    """Remember newly assigned partitions; the projector seeks them on its own thread.

    kafka-python 3 calls a listener on its network thread, so work done here holds up that
    thread (heartbeats, fetches, the rest of the rebalance) for as long as it takes; a database
    query has no business there. The listener only notes the partitions; the projector's loop
    reads the database and seeks before it uses anything polled for them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._assigned: set[TopicPartition] = set()

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # A batch of a revoked partition may still be in flight on the writer thread. It commits
        # or not as usual: the store locks the partition's offsets row and applies only from the
        # stored offset, so the new owner skips what it applied and never doubles it. Only the
        # lag gauges of partitions we leave are stale here.
        with self._lock:
            self._assigned.difference_update(revoked)
        for tp in revoked:
            with contextlib.suppress(KeyError):
                LAG.remove(str(tp.partition))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        with self._lock:
            self._assigned.update(assigned)

    def take(self) -> set[TopicPartition]:
        """The partitions assigned since the last call."""
        with self._lock:
            taken, self._assigned = self._assigned, set()
        return taken


class Projector:
    def __init__(
        self,
        store: ReadModelStore,
        bootstrap_servers: str,
        group_id: str,
        dead_letter_topic: str,
        max_records: int = 5000,
        poll_timeout_ms: int = 200,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.store = store
        self.topic = store.topic
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.dead_letter_topic = dead_letter_topic
        self.stopping = threading.Event()
        # partition -> next offset to apply, as of the last batch this process wrote or, for a
        # partition it has written nothing to since it was assigned, as the database said then
        self.applied_up_to: dict[int, int] = {}
        self._progress_logged = time.monotonic()
        self.assignments = NoteAssignments()
        self.consumer = group_member(
            bootstrap_servers,
            "district-ledger-projector",
            group_id,
            session_timeout_ms=session_timeout_ms,
            max_poll_records=max_records,
        )
        self.dead_letter_producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            client_id="district-ledger-projector-dlq",
            reconnect_backoff_max_ms=1000,
        )

    def run(self, on_batch: Callable[[BatchResult], None] | None = None) -> None:
        try:
            self._wait_for_topic()
            self.consumer.subscribe([self.topic], listener=self.assignments)
            # The batch read and decoded in one round is written during the next round's read.
            pipeline = ApplyPipeline(self._apply_retrying)
            try:
                while not self.stopping.is_set():
                    polled = self.consumer.poll(
                        timeout_ms=self.poll_timeout_ms, max_records=self.max_records
                    )
                    resume_abandoned_rejoin(self.consumer)
                    batch = decode(
                        Record(tp.partition, r.offset, r.value)
                        for tp, records in polled.items()
                        for r in records
                    )
                    stale: set[int] = set()
                    if (done := pipeline.wait()) is not None:
                        self._finish(done, on_batch)
                        stale.update(done.rewind)
                    if assigned := self.assignments.take():
                        # After the batch in flight committed, so its offsets are read too.
                        stale.update(self._seek_to_stored_offsets(assigned))
                    if stale:
                        batch = without_partitions(batch, stale)
                    if batch:
                        pipeline.start(batch)
                    self._report_lag()
                if (done := pipeline.wait()) is not None:
                    self._finish(done, on_batch)
            finally:
                pipeline.close()
        finally:
            self.close()

    def _wait_for_topic(self) -> None:
        """Know the topic's partitions before joining the group.

        A member that joins before its metadata lists the topic can be handed no partitions,
        and sit idle until the next metadata refresh (``metadata_max_age_ms``).

        kafka-python 3.0.12 asks one broker for the metadata and raises if that one refuses the
        connection, rather than asking another: a projector started while a node of the cluster
        was down exited at once (seen in `make drill CLUSTER=3`). It asks again meanwhile.
        """
        while not self.stopping.is_set():
            try:
                if self.consumer.partitions_for_topic(self.topic):
                    return
                log.warning(
                    "waiting for the topic to exist", extra={"fields": {"topic": self.topic}}
                )
            except KafkaError as exc:
                log.warning(
                    "waiting for the topic's metadata",
                    extra={"fields": {"topic": self.topic, "error": str(exc)}},
                )
            self.stopping.wait(1.0)

    def _seek_to_stored_offsets(self, assigned: set[TopicPartition]) -> set[int]:
        """Seek newly assigned partitions to the database's offsets; return their numbers.

        Until then kafka-python reads them from the group's committed offsets (a mirror that
        may lag the database), so whatever was polled for them is dropped.
        """
        stored = self.store.stored_offsets()
        current = self.consumer.assignment()
        for tp in assigned & current:
            offset = stored.get(tp.partition, 0)
            self.consumer.seek(tp, offset)
            # The lag gauge needs where the partition stands: from the database, not only from
            # a batch this process applied. Else a partition assigned with nothing new in it
            # (an earlier owner applied it all, or nothing was ever written to it) had no gauge
            # at all, which monitoring reads as "no data", not as "no lag".
            self.applied_up_to[tp.partition] = offset
        log.info(
            "assigned partitions",
            extra={"fields": {"partitions": sorted(tp.partition for tp in current)}},
        )
        return {tp.partition for tp in assigned}

    def _finish(self, result: BatchResult, on_batch: Callable[[BatchResult], None] | None) -> None:
        """After a batch's transaction: seek back where asked, copy dead letters, commit."""
        for partition, offset in result.rewind.items():
            log.warning(
                "rewinding to the stored offset",
                extra={"fields": {"partition": partition, "offset": offset}},
            )
            self.consumer.seek(TopicPartition(self.topic, partition), offset)
        self._send_dead_letters(result)
        self._commit(
            {p: offset for p, offset in result.next_offsets.items() if p not in result.rewind}
        )
        self.applied_up_to.update(result.next_offsets)
        APPLIED.inc(result.applied)
        DUPLICATES.inc(result.duplicates)
        if on_batch:
            on_batch(result)

    def _apply_retrying(self, batch: Sequence[Decoded]) -> BatchResult:
        """Apply a batch, retrying it on errors a retry resolves (the transaction rolled back).

        Any other error is a bug and stops the projector; so does one that outlasts the retries
        (about a minute), and the supervisor's restart then starts from the database's offsets.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with BATCH_SECONDS.time():
                    return self.store.apply_decoded(batch)
            except RETRYABLE as exc:
                if attempt == MAX_ATTEMPTS:
                    raise
                RETRIES.inc()
                delay = min(0.1 * 2**attempt, 10.0)
                log.warning(
                    "batch rolled back; retrying",
                    extra={"fields": {"attempt": attempt, "delay_s": delay, "error": str(exc)}},
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _commit(self, offsets: dict[int, int]) -> None:
        """Mirror the database's offsets to Kafka, for monitoring tools only.

        The database is the truth, so a failed commit loses nothing: after a rebalance the group
        refuses commits from the old generation (CommitFailedError), and the partition's new owner
        seeks to the database's offsets anyway. Bounded at 5 s: kafka-python's default (its
        request timeout, 30 s) let an unanswered commit hold the loop, and every batch, that long.
        """
        if not offsets:
            return
        try:
            self.consumer.commit(
                {
                    TopicPartition(self.topic, p): OffsetAndMetadata(offset, "", -1)
                    for p, offset in offsets.items()
                },
                timeout_ms=COMMIT_TIMEOUT_MS,
            )
        except KafkaError as exc:
            log.warning("could not commit offsets to Kafka", extra={"fields": {"error": str(exc)}})

    def _send_dead_letters(self, result: BatchResult) -> None:
        # The table, written in the batch's transaction, is the record; the topic copy is for
        # operators' tools, sent after that commit (a crash in between leaves only the row).
        for record, reason in result.dead_letters:
            DEAD_LETTERS.inc()
            log.error(
                "parked a poison record",
                extra={
                    "fields": {
                        "partition": record.partition,
                        "offset": record.offset,
                        "reason": reason,
                    }
                },
            )
            headers = [
                ("reason", reason.encode()),
                ("topic", self.topic.encode()),
                ("position", json.dumps([record.partition, record.offset]).encode()),
            ]
            self.dead_letter_producer.send(
                self.dead_letter_topic, value=record.value, headers=headers
            )
        if result.dead_letters:
            try:
                self.dead_letter_producer.flush(timeout=10)
            except KafkaError as exc:
                log.error(
                    "could not copy dead letters to their topic (they are in the table)",
                    extra={"fields": {"error": str(exc)}},
                )

    def _report_lag(self) -> None:
        # From what is known locally: consumer.position() may ask the broker (offset validation
        # after a leader change), and raised out of the loop while the broker was restarting.
        highwaters: dict[int, int | None] = {}
        for tp in self.consumer.assignment():
            highwater = highwaters[tp.partition] = self.consumer.highwater(tp)
            applied = self.applied_up_to.get(tp.partition)
            if highwater is not None and applied is not None:
                LAG.labels(str(tp.partition)).set(max(0, highwater - applied))
        self._log_progress(highwaters)

    def _log_progress(self, highwaters: dict[int, int | None]) -> None:
        """A line now and then, so a log shows whether the loop is alive and moving."""
        if time.monotonic() - self._progress_logged < PROGRESS_LOG_SECONDS:
            return
        self._progress_logged = time.monotonic()
        log.info(
            "progress",
            extra={
                "fields": {
                    "applied_up_to": dict(sorted(self.applied_up_to.items())),
                    "highwater": dict(sorted(highwaters.items())),
                }
            },
        )

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def close(self) -> None:
        self.consumer.close(autocommit=False)
        close_producer(self.dead_letter_producer, timeout=5)
