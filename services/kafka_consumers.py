"""The project's Kafka consumers, configured in one place.

Two kinds: ``log_reader``, a private cursor over the log (manual assignment, no group: the API's
freshness, audit reads, rebuild), and ``group_member``, the projector's member of its consumer
group. Neither ever auto-commits: the database holds what was applied, and Kafka's committed
offsets only mirror it. What differs between the users (fetch sizes, timeouts) is named here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer

# kafka-python backs off reconnecting up to 30 s by default: after a broker restart a consumer
# then sat idle that long (Java's client caps it at 1 s).
RECONNECT_BACKOFF_MAX_MS = 1000


@dataclass(frozen=True, slots=True)
class Fetch:
    """How many bytes one fetch may bring back: in all, and from any one partition."""

    total_bytes: int
    partition_bytes: int


# Reading through the log (projector, rebuild): few, large fetches.
BULK_FETCH = Fetch(total_bytes=32 * 1024 * 1024, partition_bytes=8 * 1024 * 1024)
# Reading one record (the API's freshness: a record's timestamp): a small fetch.
ONE_RECORD_FETCH = Fetch(total_bytes=64 * 1024, partition_bytes=64 * 1024)
# kafka-python's own defaults (audit reads, a few records at a time).
DEFAULT_FETCH = Fetch(total_bytes=50 * 1024 * 1024, partition_bytes=1024 * 1024)


def log_reader(
    bootstrap_servers: str,
    client_id: str,
    *,
    fetch: Fetch = DEFAULT_FETCH,
    max_poll_records: int = 500,
    timeout_ms: int | None = None,
) -> KafkaConsumer:
    """A cursor of the caller's own: it assigns partitions and seeks itself, joins no group
    (so the projector's group never sees it) and commits nothing.

    ``timeout_ms`` bounds each question to the broker and the first connection (kafka-python's
    default: 30 s); a caller that must answer soon while the broker is down passes less.
    """
    timeouts = (
        {}
        if timeout_ms is None
        else {"request_timeout_ms": timeout_ms, "bootstrap_timeout_ms": timeout_ms}
    )
    return _consumer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        group_id=None,
        fetch=fetch,
        max_poll_records=max_poll_records,
        **timeouts,
    )


def group_member(
    bootstrap_servers: str,
    client_id: str,
    group_id: str,
    *,
    session_timeout_ms: int,
    max_poll_records: int,
    fetch: Fetch = BULK_FETCH,
) -> KafkaConsumer:
    """A member of ``group_id`` that is handed partitions by the group; it starts a partition
    with no committed offset at its beginning (the caller seeks to what the database holds)."""
    return _consumer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        group_id=group_id,
        fetch=fetch,
        max_poll_records=max_poll_records,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=session_timeout_ms // 3,
        # Also how soon a member handed no partitions asks the group again.
        metadata_max_age_ms=30_000,
    )


def _consumer(*, fetch: Fetch, **settings: Any) -> KafkaConsumer:
    return KafkaConsumer(
        enable_auto_commit=False,
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        fetch_max_bytes=fetch.total_bytes,
        max_partition_fetch_bytes=fetch.partition_bytes,
        **settings,
    )
