"""Write one batch while the next one is read and decoded.

In a rebuild of 1,000,000 events about a third of the loop's time was spent waiting on
PostgreSQL (the COPY, index updates, the commit), while reading and decoding records is Python
work. With the write on a thread of its own, psycopg releases the GIL while it waits, and the
reader polls and decodes the next batch meanwhile. Batches are still applied one at a time, in
the order given, each in its own transaction: only the reading runs ahead, by one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from services.projector.store import BatchResult
from shared.projection import Decoded

Apply = Callable[[Sequence[Decoded]], BatchResult]


class ApplyPipeline:
    """At most one batch in flight. ``threaded=False`` applies on the caller's thread instead,
    for work that must stay on it (a rebuild's catch-up inside its locked transaction)."""

    def __init__(self, apply: Apply, *, threaded: bool = True) -> None:
        self._apply = apply
        self._writer = (
            ThreadPoolExecutor(1, thread_name_prefix="projector-writer") if threaded else None
        )
        self._in_flight: Future[BatchResult] | None = None

    @property
    def busy(self) -> bool:
        return self._in_flight is not None

    def start(self, batch: Sequence[Decoded]) -> None:
        """Start applying ``batch``. Call ``wait`` for the previous one first."""
        if self._in_flight is not None:
            raise RuntimeError("a batch is in flight: wait() for it first")
        if self._writer is not None:
            self._in_flight = self._writer.submit(self._apply, batch)
            return
        done: Future[BatchResult] = Future()
        try:
            done.set_result(self._apply(batch))
        except BaseException as exc:
            done.set_exception(exc)
        self._in_flight = done

    def wait(self) -> BatchResult | None:
        """The result of the batch in flight (its error, raised), or None if there is none."""
        in_flight, self._in_flight = self._in_flight, None
        return None if in_flight is None else in_flight.result()

    def close(self) -> None:
        """Let the batch in flight finish (its result is dropped), then stop the writer."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)


def without_partitions(batch: Sequence[Decoded], partitions: Container[int]) -> list[Decoded]:
    """The batch less the records of ``partitions`` (read before a seek back, so stale)."""
    return [d for d in batch if d.record.partition not in partitions]
