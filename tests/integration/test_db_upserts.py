"""The bulk-write helpers on both databases: what the projector relies on when batches are big."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from shared.db.schema import read_models
from shared.db.upserts import STAGE_FROM_ROWS, insert_rows, one_of

ARCHIVE = read_models.archive


def archive_rows(count: int, first_offset: int = 0) -> list[dict[str, object]]:
    return [
        {
            "event_id": str(uuid.uuid4()),
            "partition": 0,
            "offset": first_offset + i,
            "received_at": datetime.now(UTC),
            "unit_code": "436",  # Thành phố Hà Tĩnh, a legacy district
            "province_code": "42",  # today's Hà Tĩnh (the current frame)
            "reported_province": "legacy:42",  # Hà Tĩnh as it was on the event's date
            "type": "ConferenceHeld",
            "schema_version": 2,
            "occurred_on": date(2024, 5, 1),
            "body": "{}",
            "chain_hash": "0" * 64,
            "retracted_by": None,
            "note": None,
            "registry_exception": False,
        }
        for i in range(count)
    ]


def archived_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(ARCHIVE)) or 0)


def test_a_bulk_insert_meeting_an_archived_id_raises_an_integrity_error_and_writes_nothing(
    engine: sa.Engine,
) -> None:
    first = archive_rows(3)
    with engine.begin() as conn:
        insert_rows(conn, ARCHIVE, first)
    clash = archive_rows(STAGE_FROM_ROWS + 50, first_offset=10)
    clash[-1]["event_id"] = first[1]["event_id"]  # the last row of a batch big enough to COPY
    # IntegrityError is what the projector rolls back and retries; a raw driver error would
    # stop it instead.
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert_rows(conn, ARCHIVE, clash)
    assert archived_count(engine) == 3


def test_one_of_finds_every_listed_row_even_past_sqlites_parameter_limit(
    engine: sa.Engine,
) -> None:
    rows = archive_rows(2_000)
    with engine.begin() as conn:
        insert_rows(conn, ARCHIVE, rows)
    wanted = [*sorted(str(r["event_id"]) for r in rows[::2]), str(uuid.uuid4())]
    with engine.connect() as conn:
        found = {
            event_id
            for condition in one_of(conn, ARCHIVE.c.event_id, wanted)
            for event_id in conn.scalars(sa.select(ARCHIVE.c.event_id).where(condition))
        }
        assert found == {str(r["event_id"]) for r in rows[::2]}
        assert list(one_of(conn, ARCHIVE.c.event_id, [])) == []
