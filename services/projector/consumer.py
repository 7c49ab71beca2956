"""The projector's Kafka loop: poll, apply a batch and its offsets in one transaction, commit.

Offsets are never auto-committed. The database holds the truth about what was applied; Kafka's
committed offset (always ``offset + 1``) only mirrors it for monitoring tools. On assignment the
consumer seeks to the database's offsets.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata
from prometheus_client import Counter, Gauge, Histogram

from services.projector.store import BatchResult, LogRecord, ReadModelStore

log = logging.getLogger(__name__)

APPLIED = Counter("projector_events_applied_total", "Unique events applied to the read models")
DUPLICATES = Counter(
    "projector_duplicates_total", "Records skipped because their event_id was applied"
)
DEAD_LETTERS = Counter("projector_dead_letters_total", "Poison records parked with their reason")
BATCH_SECONDS = Histogram("projector_batch_seconds", "Time to apply one batch and its offsets")
LAG = Gauge("projector_lag_records", "Records in the log not yet applied", ["partition"])


class SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, consumer: KafkaConsumer, store: ReadModelStore) -> None:
        self.consumer = consumer
        self.store = store

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass  # nothing in flight: every applied batch is already committed to the database

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        stored = self.store.stored_offsets()
        for tp in assigned:
            self.consumer.seek(tp, stored.get(tp.partition, 0))
        log.info(
            "assigned partitions",
            extra={"fields": {"partitions": sorted(tp.partition for tp in assigned)}},
        )


class Projector:
    def __init__(
        self,
        store: ReadModelStore,
        bootstrap_servers: str,
        group_id: str,
        dead_letter_topic: str,
        max_records: int = 5000,
        poll_timeout_ms: int = 200,
    ) -> None:
        self.store = store
        self.topic = store.topic
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.dead_letter_topic = dead_letter_topic
        self.stopping = threading.Event()
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id="district-ledger-projector",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_records,
            fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self.dead_letter_producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            client_id="district-ledger-projector-dlq",
        )

    def run(self, on_batch: Callable[[BatchResult], None] | None = None) -> None:
        self.consumer.subscribe(
            [self.topic], listener=SeekToStoredOffsets(self.consumer, self.store)
        )
        while not self.stopping.is_set():
            polled = self.consumer.poll(
                timeout_ms=self.poll_timeout_ms, max_records=self.max_records
            )
            records = [
                LogRecord(tp.partition, r.offset, r.value)
                for tp, batch in polled.items()
                for r in batch
            ]
            if records:
                result = self.apply(records)
                if on_batch:
                    on_batch(result)
            self._report_lag()
        self.close()

    def apply(self, records: list[LogRecord]) -> BatchResult:
        started = time.perf_counter()
        result = self.store.apply(records)
        for partition, offset in result.rewind.items():
            log.warning(
                "rewinding to the stored offset",
                extra={"fields": {"partition": partition, "offset": offset}},
            )
            self.consumer.seek(TopicPartition(self.topic, partition), offset)
        self._send_dead_letters(result)
        if result.next_offsets:
            self.consumer.commit(
                {
                    TopicPartition(self.topic, p): OffsetAndMetadata(offset, "", -1)
                    for p, offset in result.next_offsets.items()
                    if p not in result.rewind
                }
            )
        APPLIED.inc(result.applied)
        DUPLICATES.inc(result.duplicates)
        BATCH_SECONDS.observe(time.perf_counter() - started)
        return result

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
                ("position", json.dumps([record.partition, record.offset]).encode()),
            ]
            self.dead_letter_producer.send(
                self.dead_letter_topic, value=record.value, headers=headers
            )
        if result.dead_letters:
            self.dead_letter_producer.flush(timeout=10)

    def _report_lag(self) -> None:
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                LAG.labels(str(tp.partition)).set(max(0, highwater - self.consumer.position(tp)))

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def close(self) -> None:
        self.consumer.close(autocommit=False)
        self.dead_letter_producer.close(timeout=5)
