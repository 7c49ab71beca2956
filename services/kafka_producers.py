"""Closing a kafka-python producer for good, whatever it still holds."""

from __future__ import annotations

import logging

from kafka import KafkaProducer
from kafka.errors import KafkaError

log = logging.getLogger(__name__)


def close_producer(producer: KafkaProducer, timeout: float) -> bool:
    """Close ``producer``, waiting up to about ``timeout`` seconds for what it holds to be
    delivered; its I/O thread and connections are gone afterwards either way. Returns whether
    everything was delivered.

    kafka-python 3.0.12's ``close`` flushes first, and when the flush times out it raises before
    it force-closes: the thread and its connections live on, and ``__del__`` tries again later.
    A producer that lost its producer id (which ingest replaces) never delivers nor expires what
    it holds, so each one replaced stayed running. Here what it could not deliver is failed
    instead (each record's sender was answered already, or is told by its future) and the
    thread stops.
    """
    try:
        producer.close(timeout=timeout)
        return True
    except KafkaError:  # the flush timed out
        pass
    sender = producer._sender  # kafka-python has no public force close
    if sender is not None:
        sender.force_close()  # fails the undelivered batches, then the thread ends
        sender.join(timeout)
    try:
        producer.close(timeout=0)  # nothing left to flush: marks it closed
    except KafkaError:
        log.warning("a Kafka producer's thread did not stop after a forced close")
    return False
