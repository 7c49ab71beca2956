"""Ingest's Kafka producer against the real broker: a producer that stops acknowledging is replaced."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time

from prometheus_client import REGISTRY

from services.ingest.log_writer import EventLogWriter, LogUnavailable, Position
from tests.support import broker_control


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


def test_while_the_broker_is_down_one_append_at_a_time_waits_and_the_others_are_refused_at_once(
    kafka_bootstrap: str, topic: str
) -> None:
    control = broker_control()
    writer = EventLogWriter(kafka_bootstrap, topic, timeout_seconds=2)
    refused_before = REGISTRY.get_sample_value("ingest_appends_refused_while_failing_total") or 0

    async def outcome() -> str:
        try:
            await writer.append([("436", b"x")])
        except LogUnavailable:
            return "unavailable"
        return "appended"

    async def during_the_outage() -> tuple[str, list[str]]:
        first = await outcome()  # waits out the timeout
        together = await asyncio.gather(*(outcome() for _ in range(5)))
        return first, together

    async def after_it() -> list[str]:
        deadline = time.monotonic() + 60
        while await outcome() != "appended":  # one at a time: each finds out for itself
            assert time.monotonic() < deadline, "the log did not come back within 60 s"
            await asyncio.sleep(0.5)
        return await asyncio.gather(*(outcome() for _ in range(5)))

    try:
        assert asyncio.run(outcome()) == "appended"
        subprocess.run([control, "stop"], check=True, capture_output=True)
        try:
            first, together = asyncio.run(during_the_outage())
        finally:
            subprocess.run([control, "start"], check=True, capture_output=True)
        back = asyncio.run(after_it())
    finally:
        writer.close()

    assert first == "unavailable"
    # One of the five tried the log and waited; four were refused without waiting for it.
    assert together == ["unavailable"] * 5
    refused = REGISTRY.get_sample_value("ingest_appends_refused_while_failing_total") or 0
    assert refused - refused_before == 4
    assert back == ["appended"] * 5  # once an append got through, nobody is refused
