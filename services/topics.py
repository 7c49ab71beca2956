"""Creating the events topic (kept forever, keyed by district) and its dead-letter topic."""

from __future__ import annotations

import contextlib
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


def ensure_topics(
    bootstrap_servers: str,
    events_topic: str,
    partitions: int,
    dead_letter_topic: str,
    timeout: float = 60,
) -> None:
    """Create the topics if absent (idempotent); waits up to ``timeout`` for the broker."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers, client_id="district-ledger-admin"
            )
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(events_topic, partitions, 1, topic_configs=FOREVER),
            NewTopic(dead_letter_topic, 1, 1, topic_configs=FOREVER),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # made meanwhile elsewhere
                admin.create_topics(missing)
    finally:
        admin.close()
