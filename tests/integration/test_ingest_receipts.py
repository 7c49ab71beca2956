"""The receipt book: a resend is answered from memory, else from the table, even across a
database that dropped the book's connection."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from services.ingest.receipts import Receipt, ReceiptBook
from shared.db.engine import make_engine


def a_receipt(offset: int) -> Receipt:
    return Receipt(str(uuid.uuid4()), "ab" * 32, 3, offset, datetime.now(UTC))


def answered(found: dict[str, Receipt]) -> dict[str, tuple[str, int, int]]:
    """What a resend is answered with (SQLite hands received_at back without its zone)."""
    return {i: (r.body_sha256, r.partition, r.offset) for i, r in found.items()}


def test_receipts_given_by_an_earlier_process_are_found_in_the_table(engine: sa.Engine) -> None:
    given = [a_receipt(offset) for offset in range(3)]
    earlier = ReceiptBook(engine)
    earlier.remember(given)
    earlier.close()  # writes what it remembered

    async def look_up() -> dict[str, Receipt]:
        return await ReceiptBook(engine).find([r.event_id for r in given] + ["never-given"])

    assert answered(asyncio.run(look_up())) == answered({r.event_id: r for r in given})


def test_a_lookup_reconnects_when_postgresql_dropped_the_connection(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url)  # pings on checkout, as the services do
    given = a_receipt(7)
    earlier = ReceiptBook(engine)
    earlier.remember([given])
    earlier.close()
    book = ReceiptBook(engine)

    async def look_up() -> dict[str, Receipt]:
        return await book.find([given.event_id])

    try:
        assert asyncio.run(look_up()) == {given.event_id: given}  # opens its connection
        with engine.connect() as admin:  # what a database restart does to a client
            dropped = admin.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert dropped >= 1
        assert asyncio.run(look_up()) == {given.event_id: given}
    finally:
        book.close()
        engine.dispose()
