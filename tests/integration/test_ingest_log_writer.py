"""Ingest's Kafka producer against the real broker: a producer that stops acknowledging is replaced."""

from __future__ import annotations

import asyncio
import threading
import time

from prometheus_client import REGISTRY

from services.ingest.log_writer import EventLogWriter, LogUnavailable, Position


def test_a_producer_that_lost_its_producer_id_is_replaced_and_appends_go_on(
    kafka_bootstrap: str, topic: str
) -> None:
    writer = EventLogWriter(kafka_bootstrap, topic, timeout_seconds=2)
    replaced_before = REGISTRY.get_sample_value("ingest_kafka_producers_replaced_total") or 0

    async def refused_then_accepted() -> tuple[int, list[Position]]:
        assert len(await writer.append([("436", b"before")])) == 1
        # The state kafka-python 3.0.12 leaves an idempotent producer in when a batch it had sent
        # expires during a broker restart: no producer id, and none ever asked for again.
        writer._producer._transaction_manager.reset_producer_id()
        refused = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                return refused, await writer.append([("436", b"after")])
            except LogUnavailable:
                refused += 1
                await asyncio.sleep(0.2)
        raise AssertionError(f"still refused after 30 s ({refused} attempts)")

    try:
        refused, [position] = asyncio.run(refused_then_accepted())
        # The stuck producer is closed within its two timeouts though it never delivers what it
        # holds: only the new producer's I/O thread is left.
        deadline = time.monotonic() + 15
        while producer_threads() > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        threads_after_replacing = producer_threads()
    finally:
        writer.close()

    assert refused >= 1  # the stuck producer really acknowledged nothing
    assert position.offset >= 0
    replaced = REGISTRY.get_sample_value("ingest_kafka_producers_replaced_total") or 0
    assert replaced == replaced_before + 1
    assert threads_after_replacing == 1
    assert producer_threads() == 0


def producer_threads() -> int:
    """The I/O threads of ingest's Kafka producers in this process (named after the client id)."""
    return sum(t.name == "district-ledger-ingest-network-thread" for t in threading.enumerate())
