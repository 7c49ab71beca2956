"""The projector's consumer group against the real broker: rebalances it must come out of."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewPartitions
from prometheus_client import REGISTRY

from services.projector.consumer import resume_abandoned_rejoin


def poll_until(
    consumer: KafkaConsumer, done: Callable[[set[int]], bool], timeout: float = 20
) -> None:
    """Poll as the projector does (short polls, each followed by the rejoin check) until
    ``done`` says yes to the partitions records came from."""
    polled_from: set[int] = set()
    deadline = time.monotonic() + timeout
    while not done(polled_from):
        assert time.monotonic() < deadline, f"gave up after {timeout} s: {consumer.assignment()}"
        polled_from.update(tp.partition for tp in consumer.poll(timeout_ms=50))
        resume_abandoned_rejoin(consumer)


def test_a_rebalance_a_poll_gave_up_on_is_finished_by_the_next_polls(
    kafka_bootstrap: str, topic: str
) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"group-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        metadata_max_age_ms=200,
    )
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    resumed_before = REGISTRY.get_sample_value("projector_rebalances_resumed_total") or 0
    try:
        consumer.subscribe([topic])
        poll_until(consumer, lambda _: len(consumer.assignment()) == 3)

        # The leader (the only member) sees its topic grow: its own metadata change starts a
        # rebalance, which this poll starts and gives up on at once...
        admin.create_partitions({topic: NewPartitions(total_count=4)})
        poll_deadline = time.monotonic() + 20
        while len(consumer.partitions_for_topic(topic) or ()) < 4:
            assert time.monotonic() < poll_deadline, "the consumer never saw the fourth partition"
            time.sleep(0.05)
        consumer.poll(timeout_ms=0)
        time.sleep(1)  # ...and its JoinGroup/SyncGroup round ends while no poll waits for it.
        producer.send(topic, value=b"after the rebalance", partition=3).get(timeout=10)

        poll_until(consumer, lambda polled_from: 3 in polled_from)
        assigned = {tp.partition for tp in consumer.assignment()}
    finally:
        producer.close()
        admin.close()
        consumer.close(autocommit=False)

    assert assigned == {0, 1, 2, 3}
    assert (REGISTRY.get_sample_value("projector_rebalances_resumed_total") or 0) > resumed_before
