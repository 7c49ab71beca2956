"""Receipts ingest gave: a resend of an accepted event gets its original receipt back.

Receipts live in the ``ingest_receipts`` table forever, and the most recent ones also in
memory. New receipts are written by a background thread in small batches (every
``FLUSH_SECONDS``) so a request never waits on a database commit; a crash can lose only the
last moment's receipts, and a resend of one of those reaches the log again, where the
projector counts it once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from shared.db.schema import ingest_receipts
from shared.db.upserts import insert_ignoring_conflicts, one_of
from shared.logs import RepeatedFailure

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.05
RECENT_CAPACITY = 200_000


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    body_sha256: str
    partition: int
    offset: int
    received_at: datetime


class ReceiptBook:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._recent: OrderedDict[str, Receipt] = OrderedDict()
        self._pending: list[Receipt] = []
        self._waiting: list[tuple[set[str], asyncio.Future[dict[str, Receipt]]]] = []
        self._lookups: asyncio.Task[None] | None = None
        self._reader: sa.Connection | None = None  # used by one lookup at a time
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="receipt-writer", daemon=True)
        self._writer.start()

    async def find(self, event_ids: Iterable[str]) -> dict[str, Receipt]:
        """Receipts already given for these ids, from memory, else from the database.

        Concurrent requests share database lookups: while one query runs, the ids of every
        request that arrives meanwhile wait together for the next one, so under load a query
        serves many requests and a lone request adds no delay.
        """
        found: dict[str, Receipt] = {}
        missing: set[str] = set()
        with self._lock:
            for event_id in set(event_ids):
                if event_id in self._recent:
                    found[event_id] = self._recent[event_id]
                else:
                    missing.add(event_id)
        if missing:
            answer: asyncio.Future[dict[str, Receipt]] = asyncio.get_running_loop().create_future()
            self._waiting.append((missing, answer))
            if self._lookups is None or self._lookups.done():
                self._lookups = asyncio.create_task(self._look_up_waiting())
            found.update(await answer)
        return found

    async def _look_up_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            wanted = sorted({event_id for ids, _ in batch for event_id in ids})
            try:
                rows = await run_in_threadpool(self._load, wanted)
            except Exception as exc:  # every waiting request gets the database's error
                for _, answer in batch:
                    answer.set_exception(exc)
                continue
            for ids, answer in batch:
                answer.set_result({i: rows[i] for i in ids if i in rows})

    def remember(self, receipts: Iterable[Receipt]) -> None:
        with self._lock:
            for receipt in receipts:
                self._recent[receipt.event_id] = receipt
                self._pending.append(receipt)
            while len(self._recent) > RECENT_CAPACITY:
                self._recent.popitem(last=False)

    def close(self) -> None:
        self._stop.set()
        self._writer.join(timeout=10)
        self._flush()
        self._drop_reader()

    def _load(self, event_ids: list[str]) -> dict[str, Receipt]:
        try:
            return self._select(event_ids)
        except sa.exc.DBAPIError as exc:
            self._drop_reader()
            if not exc.connection_invalidated:
                raise
            return self._select(event_ids)  # the database restarted: once more, connected anew

    def _select(self, event_ids: list[str]) -> dict[str, Receipt]:
        """One round trip on a connection kept open in autocommit: a pooled checkout would add
        a ping, a BEGIN and a ROLLBACK to every lookup (3.3 -> 2.1 ms per lookup, measured)."""
        if self._reader is None:
            self._reader = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        conn, table = self._reader, ingest_receipts
        found: dict[str, Receipt] = {}
        for condition in one_of(conn, table.c.event_id, event_ids):
            for row in conn.execute(sa.select(table).where(condition)):
                found[row.event_id] = Receipt(
                    row.event_id, row.body_sha256, row.partition, row.offset, row.received_at
                )
        return found

    def _drop_reader(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()

    def _write_loop(self) -> None:
        outage = RepeatedFailure(log, "writing receipts")  # they wait in memory meanwhile
        while not self._stop.wait(FLUSH_SECONDS):
            try:
                self._flush()
            except sa.exc.SQLAlchemyError as exc:
                outage.failed(exc)
            else:
                outage.succeeded()

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            with self.engine.begin() as conn:
                # Two racing sends of one new id both reach Kafka; the first receipt stays.
                insert_ignoring_conflicts(
                    conn,
                    ingest_receipts,
                    [
                        {
                            "event_id": r.event_id,
                            "body_sha256": r.body_sha256,
                            "partition": r.partition,
                            "offset": r.offset,
                            "received_at": r.received_at,
                        }
                        for r in batch
                    ],
                )
        except sa.exc.SQLAlchemyError:
            with self._lock:
                self._pending[:0] = batch  # keep them for the next try
            raise
