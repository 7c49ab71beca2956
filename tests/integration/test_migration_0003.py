"""Migration 0003 on a database of the release before it: its district tokens keep working, a
province scope keeps the old province, and its read models, migrated, equal a rebuild from the
same old log (envelope version 1 records, one of them from a district dated after 2025-06-30,
which that release accepted)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from services.projector.rebuild import Rebuild
from services.projector.store import ReadModelStore
from services.web.auth import authenticate, hash_token
from shared import registry
from shared.db.engine import make_engine, migrate
from shared.db.schema import read_models
from shared.examples import EXAMPLES
from shared.records import canonical_json
from tests.integration.test_projector_store import log_of
from tests.support import scratch_database

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

# district, date, event type: Hà Tĩnh's and old Thái Bình's districts, before and after the reform
OLD_LOG = [
    ("436", "2023-04-01", "ConferenceHeld"),
    ("436", "2024-12-30", "CaseResolved"),
    ("437", "2024-05-05", "OutreachSessionHeld"),
    ("336", "2023-09-09", "ProgramSigned"),
    ("336", "2024-01-20", "CitizenTipsReceived"),
    ("436", "2025-08-01", "OutreachSessionHeld"),  # a district after its end: an exception
]


def version_1(district: str, day: str, kind: str) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLES[kind])
    body.pop("unit_code")
    body.update(
        event_id=str(uuid.uuid4()), schema_version=1, district_code=district, occurred_at=day
    )
    return body


@pytest.fixture
def old_database(postgres_server_url: str) -> Iterator[str]:
    """A database migrated to 0002 only: the schema of the release before the registry editions."""
    with scratch_database(postgres_server_url, "ledger_0002") as url:
        migrate(url, "0002")
        yield url


def old_rows(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """A read-model row in the 0002 schema: the district and its province of the time."""
    old = {
        k: v
        for k, v in row.items()
        if k not in ("reported_province", "registry_exception", "month")
    }
    district = old.pop("unit_code", None)
    if district is not None:
        unit = registry.lookup(district)
        assert unit is not None and unit.edition == "legacy"
        old.update(district_code=district, province_code=unit.province_code)
    return old


def test_an_old_database_migrated_keeps_its_tokens_and_equals_a_rebuild_of_its_log(
    old_database: str, sqlite_url: str, kafka_bootstrap: str, topic: str
) -> None:
    # The old log, as the release before wrote it (v1 records keyed by district).
    bodies = [version_1(*entry) for entry in OLD_LOG]
    retraction = version_1("436", "2025-01-03", "EventRetracted")
    retraction["payload"]["retracted_event_id"] = bodies[1]["event_id"]
    bodies.append(retraction)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    stamp = datetime.now(UTC).isoformat()
    for body in bodies:
        value = canonical_json({**body, "received_at": stamp})
        producer.send(topic, key=body["district_code"].encode(), value=value)
        if body is bodies[0]:
            producer.send(topic, key=b"436", value=value)  # a resend that reached the log twice
    producer.flush(timeout=30)
    producer.close()

    # Its read models, as the release before wrote them: the same rows in the 0002 columns.
    scratch = make_engine(sqlite_url)
    ReadModelStore(scratch, read_models, topic).apply(log_of(kafka_bootstrap, topic))
    engine = make_engine(old_database)
    old = sa.MetaData()
    old.reflect(engine)
    with scratch.connect() as source, engine.begin() as target:
        for table in read_models.all:
            rows = [dict(r) for r in source.execute(sa.select(table)).mappings()]
            if rows and table.name in old.tables:  # figure_changes came later: 0005 fills it
                target.execute(
                    old.tables[table.name].insert(), [old_rows(table.name, r) for r in rows]
                )
        tokens = old.tables["tokens"]
        now = datetime.now(UTC)
        target.execute(
            tokens.insert(),
            [
                {
                    "token_id": "t-district",
                    "token_hash": hash_token("dl_district"),
                    "role": "district",
                    "district_code": "436",
                    "province_code": None,
                    "created_at": now,
                },
                {
                    "token_id": "t-scoped",
                    "token_hash": hash_token("dl_scoped"),
                    "role": "dashboard",
                    "district_code": None,
                    "province_code": "34",
                    "created_at": now,
                },
            ],
        )
    scratch.dispose()

    migrate(old_database)

    try:
        district = authenticate(engine, "Bearer dl_district")
        scoped = authenticate(engine, "Bearer dl_scoped")
        report = Rebuild(engine, topic, kafka_bootstrap).run(verify_only=True)
        with engine.connect() as conn:
            archive = read_models.archive
            attributed = {
                row.unit_code: (row.province_code, row.reported_province, row.registry_exception)
                for row in conn.execute(
                    sa.select(archive).where(archive.c.type != "EventRetracted")
                )
            }
    finally:
        engine.dispose()

    assert (district.role, district.unit_code) == ("reporter", "436")
    assert (scoped.role, scoped.province_code) == ("dashboard", "legacy:34")  # never widened
    assert report.identical, report.differences
    assert report.applied == len(bodies)
    assert attributed["336"] == ("33", "legacy:34", False)
    assert attributed["437"] == ("42", "legacy:42", False)
