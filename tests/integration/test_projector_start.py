"""A projector started while a broker of the cluster refuses connections waits for the topic's
metadata, and then applies the log, instead of exiting.

kafka-python 3.0.12 asks one broker for the metadata and raises KafkaConnectionError when that
one refuses the connection (`make drill CLUSTER=3` restarted a projector while a node was down,
and it exited with that traceback). Here the consumer's metadata call raises just so, twice,
before it reaches the real broker.
"""

from __future__ import annotations

import time

import pytest
from kafka.errors import KafkaConnectionError

from services.projector.consumer import Projector
from tests.integration.test_projector_lag import run_projector, write


def test_a_projector_whose_first_metadata_requests_are_refused_asks_again_and_applies_the_log(
    kafka_bootstrap: str, topic: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(kafka_bootstrap, topic, partition=0, count=4)
    refusals = 2
    asked = 0
    original = Projector.__init__

    def refuse_at_first(self: Projector, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        real = self.consumer.partitions_for_topic

        def partitions_for_topic(name: str) -> set[int]:
            nonlocal asked
            asked += 1
            if asked <= refusals:
                raise KafkaConnectionError("111 ECONNREFUSED")
            return set(real(name))

        self.consumer.partitions_for_topic = partitions_for_topic  # type: ignore[method-assign]

    monkeypatch.setattr(Projector, "__init__", refuse_at_first)
    projector, thread = run_projector(kafka_bootstrap, topic, sqlite_url)
    try:
        deadline = time.monotonic() + 60
        while projector.applied_up_to.get(0) != 4 and thread.is_alive():
            assert time.monotonic() < deadline, projector.applied_up_to
            time.sleep(0.1)
        alive = thread.is_alive()
    finally:
        projector.stop()
        thread.join(timeout=30)

    assert alive, "the projector exited on a refused metadata request"
    assert asked > refusals
    assert projector.applied_up_to.get(0) == 4
