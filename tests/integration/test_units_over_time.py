"""Administrative units over time on the real stack (Kafka, PostgreSQL, the three services as
processes): who may report for which date, and where the projector counts an old log's events.

Before 2025-07-01 the districts report (legacy edition); from then on the communes (2025
edition). A provincial office reports its own work and may report for any unit of its province.
Records written by older versions (envelope version 1, ``district_code``) stay in the log for
ever and are counted in today's provinces.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.projector.rebuild import Rebuild
from services.topics import ensure_topics
from shared import registry
from shared.db.engine import make_engine
from shared.db.schema import read_models
from shared.examples import EXAMPLES
from shared.records import canonical_json
from tests.support import Stack, running_stack, scratch_database, until_projected

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e]

HA_TINH, HUNG_YEN = "42", "33"
HA_TINH_CITY = "436"  # Thành phố Hà Tĩnh, a district until 2025-06-30
HA_TINH_COMMUNE = "18073"  # one of the communes that took over its territory
THAI_BINH_CITY = "336"  # Thành phố Thái Bình, of old Thái Bình (34), now in Hưng Yên (33)
BA_DINH = "001"  # Quận Ba Đình, Hà Nội
HA_NOI_COMMUNE = "00004"  # Phường Ba Đình, Hà Nội


def unit_name(key: str) -> str:
    found = registry.lookup(key)
    assert found is not None, key
    return found.name


def report(unit: str, day: str, kind: str = "ConferenceHeld", **payload: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLES[kind])
    body.update(event_id=str(uuid.uuid4()), unit_code=unit, occurred_at=day)
    body["payload"].update(payload)
    return body


def version_1_record(district: str, day: str, **payload: Any) -> bytes:
    """A record as versions before the 2025 reorganization wrote it: ``district_code``."""
    body = report(district, day, **payload)
    body["district_code"] = body.pop("unit_code")
    body["schema_version"] = 1
    return canonical_json({**body, "received_at": datetime.now(UTC).isoformat()})


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    postgres_server_url: str,
    postgres_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    topic = f"test-units-{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, topic, 3, f"{topic}.dead-letters")
    with (
        scratch_database(postgres_server_url, "ledger_units", postgres_template) as url,
        running_stack(kafka_bootstrap, url, topic, tmp_path_factory.mktemp("units")) as s,
    ):
        yield s


def post(stack: Stack, token: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{stack.ingest_url}/v1/events",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def read(stack: Stack, path: str, after: str | None = None, **params: str) -> dict[str, Any]:
    """GET from the query API with a dashboard token, once the projector has passed ``after``."""
    token = stack.token("dashboard")

    def get() -> httpx.Response:
        return httpx.get(
            f"{stack.api_url}{path}",
            params={**params, **({"after": after} if after else {})},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    response = until_projected(get)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def in_log(stack: Stack, records: list[tuple[str, bytes]]) -> str:
    """Append records to the stack's topic as an older ingest did; their positions as ``after``."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    try:
        sent = [
            producer.send(stack.env["EVENTS_TOPIC"], key=key.encode(), value=value)
            for key, value in records
        ]
        positions = [future.get(timeout=30) for future in sent]
    finally:
        producer.close()
    return ",".join(f"{p.partition}:{p.offset}" for p in positions)


# --- who may report for which date ----------------------------------------------------------


def test_a_communes_event_for_2026_is_accepted_and_the_same_from_a_legacy_district_is_a_422_saying_why(
    stack: Stack,
) -> None:
    accepted = post(
        stack, stack.token("reporter", HA_TINH_COMMUNE), report(HA_TINH_COMMUNE, "2026-03-02")
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "accepted"

    late = report(HA_TINH_CITY, "2026-03-02")
    refused = post(stack, stack.token("reporter", HA_TINH_CITY), late)

    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    [error] = refused.json()["errors"]
    assert error["field"] == "unit_code"
    assert error["type"] == "unit_not_in_force"
    assert error["message"] == (
        "On 2026-03-02: district 436 (Thành phố Hà Tĩnh) existed until 2025-06-30, and its "
        "territory is now in province 42 (Tỉnh Hà Tĩnh); from 2025-07-01 its communes report."
    )
    replayed = httpx.get(
        f"{stack.api_url}/v1/audit/events",
        params={"unit": HA_TINH_CITY},
        headers={"Authorization": f"Bearer {stack.token('auditor')}"},
        timeout=30,
    )
    assert late["event_id"] not in replayed.text  # nothing of it reached the log


def test_a_legacy_districts_late_report_for_2024_is_accepted(stack: Stack) -> None:
    response = post(
        stack, stack.token("reporter", HA_TINH_CITY), report(HA_TINH_CITY, "2024-11-20")
    )
    assert response.status_code == 202, response.text


def test_a_commune_cannot_report_for_a_day_before_it_existed(stack: Stack) -> None:
    response = post(
        stack, stack.token("reporter", HA_TINH_COMMUNE), report(HA_TINH_COMMUNE, "2025-06-30")
    )
    assert response.status_code == 422, response.text
    assert "exists from 2025-07-01" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("unit", "day"),
    [
        (HA_TINH_COMMUNE, "2026-01-05"),  # a commune of the province
        (HA_TINH_CITY, "2024-06-10"),  # a late report for a district that no longer exists
        (HA_TINH, "2026-01-05"),  # its own conference
        (HA_TINH, "2024-06-10"),  # old Hà Tĩnh's own conference, in the legacy edition
    ],
)
def test_a_provincial_office_posts_for_the_units_of_its_province_in_either_edition(
    stack: Stack, unit: str, day: str
) -> None:
    response = post(stack, stack.token("reporter", HA_TINH), report(unit, day))
    assert response.status_code == 202, response.text


def test_todays_hung_yen_office_posts_for_a_district_of_old_thai_binh(stack: Stack) -> None:
    response = post(stack, stack.token("reporter", HUNG_YEN), report(THAI_BINH_CITY, "2023-05-04"))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("office", "unit", "day"),
    [
        (HA_TINH, HA_NOI_COMMUNE, "2026-01-05"),
        (HA_TINH, BA_DINH, "2024-06-10"),
        ("legacy:34", HUNG_YEN, "2026-01-05"),  # old Thái Bình's office: its own units only
        (HA_TINH_CITY, "437", "2024-06-10"),  # a district is no office
    ],
)
def test_a_unit_of_another_province_is_a_403_and_changes_nothing(
    stack: Stack, office: str, unit: str, day: str
) -> None:
    token = stack.token("reporter", office)
    single = post(stack, token, report(unit, day))
    assert single.status_code == 403, single.text
    batch = httpx.post(
        f"{stack.ingest_url}/v1/events/batch",
        json=[report(office.removeprefix("legacy:"), "2024-01-02"), report(unit, day)],
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert batch.status_code == 403, batch.text
    assert batch.json()["forbidden_items"] == [1]


def test_a_unit_the_registry_lacks_is_a_422_naming_it_never_a_guess(stack: Stack) -> None:
    # Lộc Hà (448) existed before 2025 but is missing from the registry's legacy edition.
    response = post(stack, stack.token("reporter", HA_TINH), report("448", "2024-06-10"))
    assert response.status_code == 422, response.text
    assert "No unit has code '448'" in response.json()["errors"][0]["message"]


# --- where the projector counts an old log ---------------------------------------------------


def test_a_version_1_event_from_the_old_log_is_counted_under_its_successor_province(
    stack: Stack,
) -> None:
    after = in_log(
        stack, [(THAI_BINH_CITY, version_1_record(THAI_BINH_CITY, "2023-02-14", attendees=77))]
    )
    period = {"from": "2023-02-14", "to": "2023-02-14"}

    [current] = read(stack, "/v1/summary", after, province=HUNG_YEN, group_by="province", **period)[
        "rows"
    ]
    [reported] = read(stack, "/v1/summary", frame="as_reported", group_by="province", **period)[
        "rows"
    ]

    assert (current["province_code"], current["province_name"]) == (HUNG_YEN, unit_name(HUNG_YEN))
    assert current["conference_attendees"] == 77
    assert (reported["province_code"], reported["province_name"]) == (
        "legacy:34",
        "Tỉnh Thái Bình (đến 30/6/2025)",
    )
    assert reported["conference_attendees"] == 77


def test_an_old_log_event_from_a_district_after_the_reform_counts_and_is_listed_as_an_exception(
    stack: Stack,
) -> None:
    late = version_1_record(HA_TINH_CITY, "2025-08-01", attendees=55)
    after = in_log(stack, [(HA_TINH_CITY, late)])
    partition, offset = (int(part) for part in after.split(":"))

    listed = read(stack, "/v1/registry-exceptions", after, province=HA_TINH)["rows"]
    [row] = [r for r in listed if (r["partition"], r["offset"]) == (partition, offset)]
    assert (row["unit_code"], row["unit_level"], row["occurred_on"]) == (
        HA_TINH_CITY,
        "district",
        "2025-08-01",
    )
    assert (row["province_code"], row["reported_province"]) == (HA_TINH, HA_TINH)
    assert row["reason"].startswith("district 436 (Thành phố Hà Tĩnh) existed until 2025-06-30")

    august = {"from": "2025-08-01", "to": "2025-08-01", "province": HA_TINH}
    for frame in ("current", "as_reported"):
        [figures] = read(stack, "/v1/summary", frame=frame, group_by="province", **august)["rows"]
        assert (figures["province_code"], figures["conference_attendees"]) == (HA_TINH, 55)


def test_a_rebuild_of_a_log_spanning_the_reform_equals_the_live_read_models(
    stack: Stack,
) -> None:
    office = stack.token("reporter", HA_TINH)
    receipts = stack.post_batch(
        office,
        [
            report(HA_TINH_CITY, "2025-06-30", "OutreachSessionHeld"),
            report(HA_TINH_COMMUNE, "2025-07-01", "OutreachSessionHeld"),
            report(HA_TINH, "2025-06-15", "CitizenTipsReceived"),
        ],
    )
    retracted = report(HA_TINH_CITY, "2024-12-31", "CaseResolved")
    receipts += stack.post_batch(office, [retracted])
    retraction = report(HA_TINH_CITY, "2025-01-02", "EventRetracted")
    retraction["payload"]["retracted_event_id"] = retracted["event_id"]
    receipts += stack.post_batch(office, [retraction])
    after = ",".join(f"{r['partition']}:{r['offset']}" for r in receipts)
    after += "," + in_log(stack, [(THAI_BINH_CITY, version_1_record(THAI_BINH_CITY, "2025-09-09"))])
    read(stack, "/v1/summary", after)  # the projector has passed all of it

    engine = make_engine(stack.database_url)
    try:
        report_ = Rebuild(
            engine, stack.env["EVENTS_TOPIC"], stack.env["KAFKA_BOOTSTRAP_SERVERS"]
        ).run(verify_only=True)
        with engine.connect() as conn:
            exceptions = conn.scalar(
                sa.select(sa.func.count()).where(read_models.archive.c.registry_exception.is_(True))
            )
    finally:
        engine.dispose()
    assert report_.identical, report_.differences
    assert report_.applied > 10
    assert exceptions and exceptions >= 2  # both old-log districts dated after the reform


# --- what a dashboard's scope sees -----------------------------------------------------------


def test_a_dashboard_of_todays_hung_yen_sees_old_thai_binh_and_one_of_old_thai_binh_only_it(
    stack: Stack,
) -> None:
    hung_yen_commune = "11953"  # Phường Phố Hiến
    after = ",".join(
        f"{r['partition']}:{r['offset']}"
        for r in stack.post_batch(
            stack.token("reporter", HUNG_YEN),
            [
                report(THAI_BINH_CITY, "2025-06-20", attendees=31),
                report(hung_yen_commune, "2025-07-02", attendees=12),
            ],
        )
    )
    read(stack, "/v1/summary", after)
    days = {"from": "2025-06-20", "to": "2025-07-02"}  # no other test reports then

    def units_seen(token: str, **params: str) -> tuple[int, dict[str, int]]:
        response = httpx.get(
            f"{stack.api_url}/v1/summary",
            params={**days, "group_by": "unit", **params},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        seen = {r["unit_code"]: r["conference_attendees"] for r in response.json().get("rows", [])}
        return response.status_code, seen

    today = stack.token("dashboard", province=HUNG_YEN)
    old = stack.token("dashboard", province="legacy:34")
    for frame in ("current", "as_reported"):
        assert units_seen(today, frame=frame) == (200, {THAI_BINH_CITY: 31, hung_yen_commune: 12})
        assert units_seen(old, frame=frame) == (200, {THAI_BINH_CITY: 31})
        assert units_seen(old, frame=frame, province=HUNG_YEN)[0] == 403
        assert units_seen(old, frame=frame, unit=hung_yen_commune)[0] == 403
        assert units_seen(today, frame=frame, province=HA_TINH)[0] == 403


# --- the registry served -----------------------------------------------------------------------


def test_units_of_todays_hung_yen_are_its_communes_and_before_the_reform_its_predecessors_districts(
    stack: Stack,
) -> None:
    today = read(stack, "/v1/units", province=HUNG_YEN)["rows"]
    communes = {u.key for u in registry.units("2025", "commune") if u.province_code == HUNG_YEN}
    assert today[0] == {
        "code": HUNG_YEN,
        "name": "Tỉnh Hưng Yên",
        "level": "province",
        "edition": "2025",
        "valid_from": "2025-07-01",
        "valid_to": None,
        "province_code": HUNG_YEN,
        "successor_province": HUNG_YEN,
    }
    assert {r["code"] for r in today[1:]} == communes and len(communes) > 100

    before = read(stack, "/v1/units", province=HUNG_YEN, on="2024-06-01")["rows"]
    assert [r["code"] for r in before if r["level"] == "province"] == ["legacy:33", "legacy:34"]
    districts = [r for r in before if r["level"] == "district"]
    assert {r["province_code"] for r in districts} == {"legacy:33", "legacy:34"}
    assert THAI_BINH_CITY in {r["code"] for r in districts}
    assert all(
        r["valid_to"] == "2025-06-30" and r["successor_province"] == HUNG_YEN for r in before
    )
    only = read(stack, "/v1/units", province="legacy:34", on="2024-06-01", level="district")
    assert {r["code"] for r in only["rows"]} == {
        r["code"] for r in districts if r["province_code"] == "legacy:34"
    }


def test_units_of_an_old_province_after_its_end_are_a_422_that_names_its_successor(
    stack: Stack,
) -> None:
    response = httpx.get(
        f"{stack.api_url}/v1/units",
        params={"province": "legacy:34", "on": "2026-01-01"},
        headers={"Authorization": f"Bearer {stack.token('dashboard')}"},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert "ask for province 33" in response.json()["detail"]
