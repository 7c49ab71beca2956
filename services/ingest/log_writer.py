"""Appending events to the Kafka log: the one place ingest touches Kafka."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

log = logging.getLogger(__name__)


class LogUnavailable(Exception):
    """Kafka did not acknowledge in time: the caller was told nothing was accepted."""


@dataclass(frozen=True, slots=True)
class Position:
    partition: int
    offset: int


class EventLogWriter:
    """Produces records with acks=all and idempotence, and waits for the broker's ack."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout_seconds: float) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout_seconds = timeout_seconds
        timeout_ms = int(timeout_seconds * 1000)
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id="district-ledger-ingest",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            compression_type=None,
            # Bound every wait so a broker outage becomes a prompt 503, not a hung request.
            max_block_ms=timeout_ms,
            request_timeout_ms=max(1000, timeout_ms // 2),
            delivery_timeout_ms=timeout_ms,
            retry_backoff_ms=100,
            reconnect_backoff_max_ms=1000,
        )

    def append(self, records: Sequence[tuple[str, bytes]]) -> list[Position]:
        """Append (key, value) records; return their positions once all are acknowledged."""
        try:
            futures = [
                self._producer.send(self.topic, key=key.encode(), value=value)
                for key, value in records
            ]
            self._producer.flush(timeout=self.timeout_seconds)
            metadata = [future.get(timeout=self.timeout_seconds) for future in futures]
        except KafkaError as exc:
            log.warning("kafka append failed: %s", exc)
            raise LogUnavailable(str(exc)) from exc
        return [Position(m.partition, m.offset) for m in metadata]

    def reachable(self) -> bool:
        """A fresh metadata request to the brokers: true only if one answers now."""
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                client_id="district-ledger-ingest-readyz",
                request_timeout_ms=2000,
                bootstrap_timeout_ms=2000,
            )
        except KafkaError:
            return False
        try:
            admin.describe_topics([self.topic])
            return True
        except KafkaError:
            return False
        finally:
            admin.close()

    def close(self) -> None:
        self._producer.close(timeout=5)
