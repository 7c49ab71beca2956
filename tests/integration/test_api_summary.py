"""The query API over the real stack: a small, hand-written set of district reports modelled on
the seed articles goes through ingest, Kafka and the projector; the figures the API serves must
equal the ones worked out by hand below, on SQLite and on PostgreSQL.

The data set (three legacy districts, 2016-2024, each posting with its own reporter token; Ba
Đình's system still sends version 1 envelopes, ``district_code``, which are upcast). All of it
is dated before 2025-07-01: in the ``current`` frame (the default) it counts under today's
provinces, 42 Hà Tĩnh and 01 Hà Nội; ``as_reported`` under the provinces of its dates,
legacy:42 and legacy:01, which had the same territory.

- Thành phố Hà Tĩnh (436): the 2017-2021 summary conference and the 2022-2026 program signed
  on 15-9-2021 (seed 000); a review in 2023; two outreach reports at the end of 2023, one of
  them sent twice under two ids and the copy retracted; a year-end tips report; two complex
  cases resolved in January 2024 (stable with a hotspot prevented, temporarily stable);
  procedures cut by 40% and 15%; a "Dân vận khéo" model; a commendation; a year-end summary.
- Thị xã Hồng Lĩnh (437): a program, a summary conference, a case resolved on 30-12-2023,
  outreach, tips, and a procedure cut by 60%.
- Quận Ba Đình, Hà Nội (001): the 2016-2021 program signed on 4-11-2016 (seed 003), a signing
  conference, a model, a commendation and outreach.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.topics import ensure_topics
from shared.db.engine import migrate
from tests.support import Stack, running_stack, until_projected

HA_TINH, HA_NOI = "42", "01"
HA_TINH_CITY, HONG_LINH, BA_DINH = "436", "437", "001"

ZERO: dict[str, int | float] = {
    "conferences": 0,
    "conference_attendees": 0,
    "programs_signed": 0,
    "cases_resolved": 0,
    "cases_stable": 0,
    "cases_temporarily_stable": 0,
    "hotspots_prevented": 0,
    "outreach_sessions": 0,
    "outreach_attendees": 0,
    "leaflets": 0,
    "broadcast_hours": 0.0,
    "tips": 0,
    "valuable_tips": 0,
    "tip_cases_solved": 0,
    "models_recognized": 0,
    "commendations": 0,
    "procedure_reductions": 0,
    "mean_reduction_percent": 0.0,
}


def figures(**nonzero: int | float) -> dict[str, int | float]:
    """A summary row's figures: the ones named, every other figure zero."""
    unknown = set(nonzero) - set(ZERO)
    assert not unknown, unknown
    return {**ZERO, **nonzero}


# --- the data set ------------------------------------------------------------------------------


def _id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"district-ledger-test/{name}"))


def event(key: str, kind: str, unit: str, day: str, /, **payload: Any) -> dict[str, Any]:
    """One report (envelope version 2); ``key`` names it in this file (its event_id is derived
    from it)."""
    return {
        "event_id": _id(key),
        "type": kind,
        "schema_version": 2,
        "unit_code": unit,
        "occurred_at": day,
        "reporter": "Văn phòng Ban Dân vận",
        "payload": payload,
    }


def version_1(report: dict[str, Any]) -> dict[str, Any]:
    """The same report as a system written before 2025 sends it: ``district_code``."""
    old = {k: v for k, v in report.items() if k != "unit_code"}
    return {**old, "schema_version": 1, "district_code": report["unit_code"]}


CONTENT_ITEMS = [
    "Tuyên truyền, vận động Nhân dân chấp hành chủ trương, chính sách, pháp luật",
    "Xây dựng phong trào toàn dân bảo vệ an ninh Tổ quốc",
    "Nắm tình hình, giải quyết các vụ việc phức tạp ngay từ cơ sở",
    'Xây dựng và nhân rộng mô hình "Dân vận khéo"',
    "Xây dựng lực lượng Công an nhân dân trong sạch, vững mạnh",
    "Sơ kết, tổng kết, khen thưởng",
]


def program(name: str, district: str, day: str, start: int, end: int) -> dict[str, Any]:
    return event(
        name,
        "ProgramSigned",
        district,
        day,
        program_id=name,
        title=f"Chương trình phối hợp thực hiện công tác dân vận giai đoạn {start}-{end}",
        parties=["Ban Dân vận", "Công an"],
        period_start=start,
        period_end=end,
        content_items=CONTENT_ITEMS,
    )


def conference(
    name: str, district: str, day: str, kind: str, attendees: int, title: str
) -> dict[str, Any]:
    return event(
        name,
        "ConferenceHeld",
        district,
        day,
        title=title,
        kind=kind,
        organizers=["Ban Dân vận", "Công an"],
        attendees=attendees,
        online=False,
    )


def outreach(
    name: str, district: str, day: str, sessions: int, attendees: int, leaflets: int, hours: float
) -> dict[str, Any]:
    return event(
        name,
        "OutreachSessionHeld",
        district,
        day,
        sessions=sessions,
        attendees=attendees,
        leaflets=leaflets,
        broadcast_hours=hours,
        topic="Phòng, chống lừa đảo trên không gian mạng",
    )


def case(
    name: str, district: str, day: str, category: str, resolution: str, hotspot: bool
) -> dict[str, Any]:
    return event(
        name,
        "CaseResolved",
        district,
        day,
        case_id=name,
        category=category,
        resolution=resolution,
        hotspot_prevented=hotspot,
    )


def tips(
    name: str, district: str, day: str, count: int, valuable: int, solved: int
) -> dict[str, Any]:
    return event(
        name,
        "CitizenTipsReceived",
        district,
        day,
        tips=count,
        valuable=valuable,
        cases_solved=solved,
    )


def reduced(name: str, district: str, day: str, procedure: str, percent: float) -> dict[str, Any]:
    return event(
        name,
        "ProcedureTimeReduced",
        district,
        day,
        procedure=procedure,
        reduction_percent=percent,
    )


def model(name: str, district: str, day: str) -> dict[str, Any]:
    return event(
        name,
        "ModelRecognized",
        district,
        day,
        model_id=name,
        name="Tổ tự quản an ninh trật tự",
        field="an ninh trật tự",
    )


def commendation(name: str, district: str, day: str, kind: str = "unit") -> dict[str, Any]:
    return event(
        name,
        "CommendationAwarded",
        district,
        day,
        recipient="Công an phường Bắc Hà",
        recipient_kind=kind,
        award="Giấy khen",
        awarded_by="Ban Dân vận Tỉnh ủy",
    )


REPORTS: dict[str, list[dict[str, Any]]] = {
    HA_TINH_CITY: [
        conference(
            "ht-tongket-2021", HA_TINH_CITY, "2021-09-15", "summary", 120,
            "Hội nghị tổng kết chương trình phối hợp giai đoạn 2017-2021",
        ),
        program("CTPH-436-2022-2026", HA_TINH_CITY, "2021-09-15", 2022, 2026),
        conference(
            "ht-sơkết-2023", HA_TINH_CITY, "2023-06-20", "review", 85,
            "Hội nghị sơ kết công tác phối hợp 6 tháng đầu năm 2023",
        ),
        outreach("ht-tt-2023-11", HA_TINH_CITY, "2023-11-10", 3, 450, 1200, 2.5),
        outreach("ht-tt-2023-12", HA_TINH_CITY, "2023-12-28", 2, 300, 500, 1.25),
        outreach("ht-tt-2023-12-copy", HA_TINH_CITY, "2023-12-28", 2, 300, 500, 1.25),
        tips("ht-nt-2023-q4", HA_TINH_CITY, "2023-12-31", 120, 26, 3),
        event(
            "ht-huy-copy", "EventRetracted", HA_TINH_CITY, "2024-01-02",
            retracted_event_id=_id("ht-tt-2023-12-copy"),
            reason="Báo cáo trùng, đề nghị hủy",
        ),
        case("VV-436-2024-01", HA_TINH_CITY, "2024-01-05", "land", "stable", True),
        case("VV-436-2024-02", HA_TINH_CITY, "2024-01-20", "complaint", "temporarily_stable", False),
        reduced("ht-tt-cu-tru", HA_TINH_CITY, "2024-02-01", "Đăng ký thường trú", 40),
        model("DVK-436-2024", HA_TINH_CITY, "2024-03-01"),
        reduced("ht-can-cuoc", HA_TINH_CITY, "2024-03-15", "Cấp căn cước", 15),
        commendation("ht-khen-2024", HA_TINH_CITY, "2024-12-20"),
        conference(
            "ht-tongket-2024", HA_TINH_CITY, "2024-12-25", "summary", 150,
            "Hội nghị tổng kết công tác phối hợp năm 2024",
        ),
    ],
    HONG_LINH: [
        program("CTPH-437-2022-2026", HONG_LINH, "2022-02-10", 2022, 2026),
        conference(
            "hl-tongket-2023", HONG_LINH, "2023-12-15", "summary", 90,
            "Hội nghị tổng kết công tác phối hợp năm 2023",
        ),
        case("VV-437-2023-01", HONG_LINH, "2023-12-30", "security_order", "stable", True),
        outreach("hl-tt-2024-01", HONG_LINH, "2024-01-08", 4, 600, 800, 3.75),
        tips("hl-nt-2024-q1", HONG_LINH, "2024-03-31", 80, 20, 1),
        reduced("hl-dang-ky-xe", HONG_LINH, "2024-04-10", "Đăng ký xe", 60),
    ],
    BA_DINH: [version_1(report) for report in [
        program("CTPH-001-2016-2021", BA_DINH, "2016-11-04", 2016, 2021),
        conference(
            "bd-kyket-2023", BA_DINH, "2023-12-05", "signing", 200,
            "Hội nghị ký kết chương trình phối hợp công tác dân vận",
        ),
        model("DVK-001-2024", BA_DINH, "2024-01-15"),
        commendation("bd-khen-2024", BA_DINH, "2024-01-15", kind="individual"),
        outreach("bd-tt-2024-02", BA_DINH, "2024-02-10", 5, 1000, 2000, 10),
    ]],
}  # fmt: skip

# --- the expectations, worked out by hand from the list above ----------------------------------

CITY_TOTAL = figures(
    conferences=3, conference_attendees=355, programs_signed=1,
    cases_resolved=2, cases_stable=1, cases_temporarily_stable=1, hotspots_prevented=1,
    outreach_sessions=5, outreach_attendees=750, leaflets=1700, broadcast_hours=3.75,
    tips=120, valuable_tips=26, tip_cases_solved=3, models_recognized=1, commendations=1,
    procedure_reductions=2, mean_reduction_percent=27.5,
)  # fmt: skip
HONG_LINH_TOTAL = figures(
    conferences=1, conference_attendees=90, programs_signed=1,
    cases_resolved=1, cases_stable=1, hotspots_prevented=1,
    outreach_sessions=4, outreach_attendees=600, leaflets=800, broadcast_hours=3.75,
    tips=80, valuable_tips=20, tip_cases_solved=1, procedure_reductions=1,
    mean_reduction_percent=60.0,
)  # fmt: skip
BA_DINH_TOTAL = figures(
    conferences=1, conference_attendees=200, programs_signed=1,
    outreach_sessions=5, outreach_attendees=1000, leaflets=2000, broadcast_hours=10.0,
    models_recognized=1, commendations=1,
)  # fmt: skip
HA_TINH_TOTAL = figures(
    conferences=4, conference_attendees=445, programs_signed=2,
    cases_resolved=3, cases_stable=2, cases_temporarily_stable=1, hotspots_prevented=2,
    outreach_sessions=9, outreach_attendees=1350, leaflets=2500, broadcast_hours=7.5,
    tips=200, valuable_tips=46, tip_cases_solved=4, models_recognized=1, commendations=1,
    procedure_reductions=3, mean_reduction_percent=38.33,  # (40 + 15 + 60) / 3
)  # fmt: skip
EVERYTHING = figures(
    conferences=5, conference_attendees=645, programs_signed=3,
    cases_resolved=3, cases_stable=2, cases_temporarily_stable=1, hotspots_prevented=2,
    outreach_sessions=14, outreach_attendees=2350, leaflets=4500, broadcast_hours=17.5,
    tips=200, valuable_tips=46, tip_cases_solved=4, models_recognized=2, commendations=2,
    procedure_reductions=3, mean_reduction_percent=38.33,
)  # fmt: skip

BY_YEAR = [
    {"period": "2016", **figures(programs_signed=1)},
    {"period": "2021", **figures(conferences=1, conference_attendees=120, programs_signed=1)},
    {"period": "2022", **figures(programs_signed=1)},
    {"period": "2023", **figures(
        conferences=3, conference_attendees=375,
        cases_resolved=1, cases_stable=1, hotspots_prevented=1,
        outreach_sessions=5, outreach_attendees=750, leaflets=1700, broadcast_hours=3.75,
        tips=120, valuable_tips=26, tip_cases_solved=3,
    )},
    {"period": "2024", **figures(
        conferences=1, conference_attendees=150,
        cases_resolved=2, cases_stable=1, cases_temporarily_stable=1, hotspots_prevented=1,
        outreach_sessions=9, outreach_attendees=1600, leaflets=2800, broadcast_hours=13.75,
        tips=80, valuable_tips=20, tip_cases_solved=1, models_recognized=2, commendations=2,
        procedure_reductions=3, mean_reduction_percent=38.33,
    )},
]  # fmt: skip

# Hà Tĩnh province, 1-10-2023 to 31-3-2024: a custom range across the turn of the year.
WINTER = {"province": HA_TINH, "from": "2023-10-01", "to": "2024-03-31"}
WINTER_TOTAL = figures(
    conferences=1, conference_attendees=90,
    cases_resolved=3, cases_stable=2, cases_temporarily_stable=1, hotspots_prevented=2,
    outreach_sessions=9, outreach_attendees=1350, leaflets=2500, broadcast_hours=7.5,
    tips=200, valuable_tips=46, tip_cases_solved=4, models_recognized=1,
    procedure_reductions=2, mean_reduction_percent=27.5,
)  # fmt: skip
WINTER_BY_QUARTER = [
    {"period": "2023-Q4", **figures(
        conferences=1, conference_attendees=90,
        cases_resolved=1, cases_stable=1, hotspots_prevented=1,
        outreach_sessions=5, outreach_attendees=750, leaflets=1700, broadcast_hours=3.75,
        tips=120, valuable_tips=26, tip_cases_solved=3,
    )},
    {"period": "2024-Q1", **figures(
        cases_resolved=2, cases_stable=1, cases_temporarily_stable=1, hotspots_prevented=1,
        outreach_sessions=4, outreach_attendees=600, leaflets=800, broadcast_hours=3.75,
        tips=80, valuable_tips=20, tip_cases_solved=1, models_recognized=1,
        procedure_reductions=2, mean_reduction_percent=27.5,
    )},
]  # fmt: skip
WINTER_BY_MONTH = [
    # October 2023 had no reports: no row.
    {"period": "2023-11", **figures(
        outreach_sessions=3, outreach_attendees=450, leaflets=1200, broadcast_hours=2.5,
    )},
    {"period": "2023-12", **figures(  # the retracted copy of the outreach report is not here
        conferences=1, conference_attendees=90,
        cases_resolved=1, cases_stable=1, hotspots_prevented=1,
        outreach_sessions=2, outreach_attendees=300, leaflets=500, broadcast_hours=1.25,
        tips=120, valuable_tips=26, tip_cases_solved=3,
    )},
    {"period": "2024-01", **figures(
        cases_resolved=2, cases_stable=1, cases_temporarily_stable=1, hotspots_prevented=1,
        outreach_sessions=4, outreach_attendees=600, leaflets=800, broadcast_hours=3.75,
    )},
    {"period": "2024-02", **figures(procedure_reductions=1, mean_reduction_percent=40.0)},
    {"period": "2024-03", **figures(
        tips=80, valuable_tips=20, tip_cases_solved=1, models_recognized=1,
        procedure_reductions=1, mean_reduction_percent=15.0,
    )},
]  # fmt: skip

# The current frame: today's provinces (for Hà Tĩnh and Hà Nội, the same territory as before).
HA_NOI_KEYS = {"province_code": HA_NOI, "province_name": "Thành phố Hà Nội"}
HA_TINH_KEYS = {"province_code": HA_TINH, "province_name": "Tỉnh Hà Tĩnh"}
# The as_reported frame: the provinces as they were on the reports' dates.
OLD_HA_TINH, OLD_HA_NOI = "legacy:42", "legacy:01"
OLD_HA_NOI_KEYS = {"province_code": OLD_HA_NOI, "province_name": "Thành phố Hà Nội (đến 30/6/2025)"}
OLD_HA_TINH_KEYS = {"province_code": OLD_HA_TINH, "province_name": "Tỉnh Hà Tĩnh (đến 30/6/2025)"}


def district_keys(code: str, name: str) -> dict[str, str]:
    """A summary row's unit keys for a district of the legacy edition."""
    return {
        "unit_code": code,
        "unit_name": name,
        "unit_level": "district",
        "unit_edition": "legacy",
    }


CITY = district_keys(HA_TINH_CITY, "Thành phố Hà Tĩnh")
HONG_LINH_UNIT = district_keys(HONG_LINH, "Thị xã Hồng Lĩnh")
BA_DINH_UNIT = district_keys(BA_DINH, "Quận Ba Đình")
CITY_KEYS = {**HA_TINH_KEYS, **CITY}
HONG_LINH_KEYS = {**HA_TINH_KEYS, **HONG_LINH_UNIT}
BA_DINH_KEYS = {**HA_NOI_KEYS, **BA_DINH_UNIT}


# --- the running system, loaded once per storage -------------------------------------------------


@dataclass
class Ledger:
    stack: Stack
    headers: dict[str, str]  # an unscoped dashboard token

    def get(
        self, path: str, params: dict[str, str] | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else self.headers
        return httpx.get(f"{self.stack.api_url}{path}", params=params, headers=headers, timeout=30)

    def rows(self, path: str, **params: str) -> list[dict[str, Any]]:
        response = self.get(path, params)
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["rows"]
        return rows


def _database(request: pytest.FixtureRequest, kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'ledger.db'}"
        migrate(url)
        yield url
        return
    server = str(request.getfixturevalue("postgres_server_url"))
    template = str(request.getfixturevalue("postgres_template"))
    name = f"ledger_api_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ledger(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ledger]:
    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    topic = f"test-events-{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, topic, 3, f"{topic}.dead-letters")
    for database_url in _database(request, request.param, tmp):
        with running_stack(kafka_bootstrap, database_url, topic, tmp) as stack:
            after = stack.post_reports(REPORTS)
            ledger = Ledger(stack, {"Authorization": f"Bearer {stack.token('dashboard')}"})
            caught_up = until_projected(partial(ledger.get, "/v1/summary", {"after": after}))
            assert caught_up.status_code == 200, caught_up.text
            yield ledger


# --- figures -------------------------------------------------------------------------------------


def test_the_totals_equal_the_hand_computed_figures_with_the_retracted_copy_left_out(
    ledger: Ledger,
) -> None:
    assert ledger.rows("/v1/summary") == [EVERYTHING]
    assert ledger.rows("/v1/summary", province=HA_TINH) == [HA_TINH_TOTAL]
    assert ledger.rows("/v1/summary", unit=HA_TINH_CITY) == [CITY_TOTAL]
    assert ledger.rows("/v1/summary", district=HA_TINH_CITY) == [CITY_TOTAL]  # unit's older name
    assert ledger.rows("/v1/summary", unit=BA_DINH) == [BA_DINH_TOTAL]  # sent as version 1


def test_the_totals_are_the_same_in_both_frames(ledger: Ledger) -> None:
    assert ledger.rows("/v1/summary", frame="current") == [EVERYTHING]
    assert ledger.rows("/v1/summary", frame="as_reported") == [EVERYTHING]
    # A legacy province and a unit name the same reports in either frame (here all of today's
    # Hà Tĩnh's history is old Hà Tĩnh's: nothing is dated after 2025-07-01).
    for frame in ("current", "as_reported"):
        assert ledger.rows("/v1/summary", frame=frame, province=OLD_HA_TINH) == [HA_TINH_TOTAL]
        assert ledger.rows("/v1/summary", frame=frame, unit=HONG_LINH) == [HONG_LINH_TOTAL]


def test_grouping_by_province_gives_one_row_per_province_with_its_vietnamese_name(
    ledger: Ledger,
) -> None:
    assert ledger.rows("/v1/summary", group_by="province") == [
        {**HA_NOI_KEYS, **BA_DINH_TOTAL},
        {**HA_TINH_KEYS, **HA_TINH_TOTAL},
    ]
    assert ledger.rows("/v1/summary", group_by="province", frame="current") == [
        {**HA_NOI_KEYS, **BA_DINH_TOTAL},
        {**HA_TINH_KEYS, **HA_TINH_TOTAL},
    ]


def test_as_reported_the_provinces_are_those_of_the_reports_dates_labelled_as_old(
    ledger: Ledger,
) -> None:
    assert ledger.rows("/v1/summary", group_by="province", frame="as_reported") == [
        {**OLD_HA_NOI_KEYS, **BA_DINH_TOTAL},
        {**OLD_HA_TINH_KEYS, **HA_TINH_TOTAL},
    ]
    assert ledger.rows("/v1/summary", group_by="unit", frame="as_reported") == [
        {**OLD_HA_NOI_KEYS, **BA_DINH_UNIT, **BA_DINH_TOTAL},
        {**OLD_HA_TINH_KEYS, **CITY, **CITY_TOTAL},
        {**OLD_HA_TINH_KEYS, **HONG_LINH_UNIT, **HONG_LINH_TOTAL},
    ]


def test_grouping_by_unit_gives_one_row_per_district_that_reported(ledger: Ledger) -> None:
    by_unit = [
        {**BA_DINH_KEYS, **BA_DINH_TOTAL},
        {**CITY_KEYS, **CITY_TOTAL},
        {**HONG_LINH_KEYS, **HONG_LINH_TOTAL},
    ]
    assert ledger.rows("/v1/summary", group_by="unit") == by_unit
    assert ledger.rows("/v1/summary", group_by="district") == by_unit  # unit's older name
    assert ledger.rows("/v1/summary", group_by="unit", province=HA_TINH) == by_unit[1:]
    assert ledger.rows("/v1/summary", group_by="district", province=HA_TINH) == by_unit[1:]


def test_grouping_by_year_gives_one_row_per_year_that_has_reports(ledger: Ledger) -> None:
    assert ledger.rows("/v1/summary", group_by="year") == BY_YEAR


def test_a_custom_range_across_the_new_year_sums_exactly_the_days_inside_it(
    ledger: Ledger,
) -> None:
    assert ledger.rows("/v1/summary", **WINTER) == [WINTER_TOTAL]
    assert ledger.rows("/v1/summary", **WINTER, group_by="quarter") == WINTER_BY_QUARTER
    assert ledger.rows("/v1/summary", **WINTER, group_by="month") == WINTER_BY_MONTH


def test_the_range_bounds_are_inclusive_days(ledger: Ledger) -> None:
    # 30-12-2023 (Hồng Lĩnh's case) and 31-12-2023 (the city's tips) sit on the edges.
    assert ledger.rows("/v1/summary", province=HA_TINH, **{"from": "2023-12-30"}, to="2023-12-31") == [
        figures(
            cases_resolved=1, cases_stable=1, hotspots_prevented=1,
            tips=120, valuable_tips=26, tip_cases_solved=3,
        )
    ]  # fmt: skip


def test_district_and_period_can_be_grouped_together(ledger: Ledger) -> None:
    rows = ledger.rows("/v1/summary", **WINTER, group_by="unit,quarter")
    assert ledger.rows("/v1/summary", **WINTER, group_by="district,quarter") == rows
    assert [(r["unit_code"], r["period"]) for r in rows] == [
        (HA_TINH_CITY, "2023-Q4"),
        (HA_TINH_CITY, "2024-Q1"),
        (HONG_LINH, "2023-Q4"),
        (HONG_LINH, "2024-Q1"),
    ]
    assert rows[1] == {
        **CITY_KEYS,
        "period": "2024-Q1",
        **figures(
            cases_resolved=2, cases_stable=1, cases_temporarily_stable=1, hotspots_prevented=1,
            models_recognized=1, procedure_reductions=2, mean_reduction_percent=27.5,
        ),
    }  # fmt: skip


def test_every_response_says_how_fresh_it_is(ledger: Ledger) -> None:
    response = ledger.get("/v1/summary")
    fresh = response.json()["freshness"]
    assert fresh["records_behind"] == 0
    assert fresh["lag_ms"] == 0
    assert fresh["dead_letters"] == 0
    assert sum(fresh["applied_offsets"].values()) == sum(len(r) for r in REPORTS.values())
    assert response.headers["X-Projection-Lag-Ms"] == "0"


# --- lists ---------------------------------------------------------------------------------------


def test_conferences_list_newest_first_within_the_scope_and_range(ledger: Ledger) -> None:
    rows = ledger.rows("/v1/conferences", province=HA_TINH, **{"from": "2023-01-01"})
    assert [(r["held_on"], r["unit_code"], r["unit_name"], r["attendees"]) for r in rows] == [
        ("2024-12-25", HA_TINH_CITY, "Thành phố Hà Tĩnh", 150),
        ("2023-12-15", HONG_LINH, "Thị xã Hồng Lĩnh", 90),
        ("2023-06-20", HA_TINH_CITY, "Thành phố Hà Tĩnh", 85),
    ]
    assert {r["unit_level"] for r in rows} == {"district"}
    # Today's province, and the one of the conference's date.
    assert {(r["province_code"], r["reported_province"]) for r in rows} == {(HA_TINH, OLD_HA_TINH)}
    assert rows[0]["title"] == "Hội nghị tổng kết công tác phối hợp năm 2024"
    assert [r["kind"] for r in ledger.rows("/v1/conferences", kind="signing")] == ["signing"]


def test_programs_active_on_a_day_are_those_whose_period_covers_its_year(ledger: Ledger) -> None:
    active_2024 = ledger.rows("/v1/programs", active_on="2024-06-01")
    assert sorted(r["program_id"] for r in active_2024) == [
        "CTPH-436-2022-2026",
        "CTPH-437-2022-2026",
    ]
    [ba_dinh] = ledger.rows("/v1/programs", active_on="2018-01-01")
    assert ba_dinh["content_items"] == CONTENT_ITEMS
    assert (ba_dinh["period_start"], ba_dinh["period_end"]) == (2016, 2021)


def test_cases_filter_by_resolution(ledger: Ledger) -> None:
    rows = ledger.rows("/v1/cases", resolution="stable")
    assert [r["case_id"] for r in rows] == ["VV-436-2024-01", "VV-437-2023-01"]
    assert all(r["resolution"] == "stable" for r in rows)


# --- scopes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", [HA_TINH, OLD_HA_TINH])
def test_a_province_scoped_dashboard_token_sees_its_province_and_is_refused_elsewhere(
    ledger: Ledger, scope: str
) -> None:
    # Today's Hà Tĩnh (42) sees its whole history, old Hà Tĩnh's included; old Hà Tĩnh
    # (legacy:42) its own events: here, with nothing after 2025-07-01, the same reports.
    token = ledger.stack.token("dashboard", province=scope)
    own = ledger.get("/v1/summary", token=token)
    assert own.json()["rows"] == [HA_TINH_TOTAL]
    grouped = ledger.get("/v1/summary", {"group_by": "province"}, token=token)
    assert [r["province_code"] for r in grouped.json()["rows"]] == [HA_TINH]
    as_reported = ledger.get(
        "/v1/summary", {"group_by": "province", "frame": "as_reported"}, token=token
    )
    assert [r["province_code"] for r in as_reported.json()["rows"]] == [OLD_HA_TINH]
    for params in (
        {"province": HA_NOI},
        {"province": OLD_HA_NOI},
        {"unit": BA_DINH},
        {"district": BA_DINH},
    ):
        for path in ("/v1/summary", "/v1/conferences", "/v1/programs", "/v1/cases"):
            refused = ledger.get(path, params, token=token)
            assert refused.status_code == 403, (path, params)
            assert refused.headers["content-type"] == "application/problem+json"
    listed = ledger.get("/v1/programs", token=token).json()["rows"]
    assert {r["province_code"] for r in listed} == {HA_TINH}
    assert {r["reported_province"] for r in listed} == {OLD_HA_TINH}


def test_a_district_token_reads_its_own_district_only(ledger: Ledger) -> None:
    # A reporter token bound to a legacy district: what the old "district" role became.
    token = ledger.stack.token("reporter", HONG_LINH)
    assert ledger.get("/v1/summary", token=token).json()["rows"] == [HONG_LINH_TOTAL]
    own = ledger.get("/v1/summary", {"unit": HONG_LINH, "group_by": "unit"}, token=token)
    assert own.json()["rows"] == [{**HONG_LINH_KEYS, **HONG_LINH_TOTAL}]
    older = ledger.get("/v1/summary", {"district": HONG_LINH, "group_by": "district"}, token=token)
    assert older.json()["rows"] == [{**HONG_LINH_KEYS, **HONG_LINH_TOTAL}]
    # Its own province, asked for, still shows only the district.
    in_province = ledger.get("/v1/summary", {"province": HA_TINH}, token=token)
    assert in_province.json()["rows"] == [HONG_LINH_TOTAL]
    cases = ledger.get("/v1/cases", token=token).json()["rows"]
    assert [c["case_id"] for c in cases] == ["VV-437-2023-01"]
    for params in (
        {"unit": HA_TINH_CITY},
        {"district": HA_TINH_CITY},
        {"province": HA_NOI},
        {"province": OLD_HA_NOI},
    ):
        assert ledger.get("/v1/summary", params, token=token).status_code == 403
        assert ledger.get("/v1/conferences", params, token=token).status_code == 403


def test_no_token_or_an_unknown_one_is_401(ledger: Ledger) -> None:
    bare = httpx.get(f"{ledger.stack.api_url}/v1/summary", timeout=30)
    assert bare.status_code == 401
    assert ledger.get("/v1/cases", token="dl_not-a-real-token").status_code == 401


# --- CSV -----------------------------------------------------------------------------------------


def test_summary_csv_opens_with_a_bom_a_header_and_vietnamese_names_intact(ledger: Ledger) -> None:
    response = ledger.get("/v1/summary", {"group_by": "district", "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert list(rows[0])[:6] == [
        "province_code",
        "province_name",
        "unit_code",
        "unit_name",
        "unit_level",
        "unit_edition",
    ]
    assert "period" not in rows[0]  # not grouped by a period: no such column
    assert [r["unit_name"] for r in rows] == [
        "Quận Ba Đình",
        "Thành phố Hà Tĩnh",
        "Thị xã Hồng Lĩnh",
    ]
    assert [(r["unit_level"], r["unit_edition"]) for r in rows] == [("district", "legacy")] * 3
    assert rows[1]["province_name"] == "Tỉnh Hà Tĩnh"
    assert (rows[1]["conference_attendees"], rows[1]["broadcast_hours"]) == ("355", "3.75")


def test_a_list_as_csv_keeps_titles_and_joins_list_values(ledger: Ledger) -> None:
    response = httpx.get(
        f"{ledger.stack.api_url}/v1/programs",
        params={"province": HA_TINH},
        headers={**ledger.headers, "Accept": "text/csv"},
        timeout=30,
    )
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["program_id"] for r in rows] == ["CTPH-437-2022-2026", "CTPH-436-2022-2026"]
    assert rows[0]["title"].startswith("Chương trình phối hợp thực hiện công tác dân vận")
    assert rows[0]["content_items"].split("; ")[3] == 'Xây dựng và nhân rộng mô hình "Dân vận khéo"'


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/summary", {"group_by": "week"}),
        ("/v1/summary", {"group_by": "month,year"}),
        ("/v1/summary", {"group_by": "district," * 200}),
        ("/v1/summary", {"after": "0:1," * 3000}),
        ("/v1/summary", {"from": "2024-02-30"}),
        ("/v1/summary", {"from": "2024-03-01", "to": "2024-01-01"}),
        ("/v1/summary", {"province": "4x"}),
        ("/v1/summary", {"province": "99"}),
        ("/v1/summary", {"province": "legacy:99"}),
        ("/v1/summary", {"province": HA_TINH_CITY}),
        ("/v1/summary", {"district": "999"}),
        ("/v1/summary", {"unit": "999"}),
        ("/v1/summary", {"unit": "99999"}),
        ("/v1/summary", {"unit": "4x"}),
        ("/v1/summary", {"unit": HA_TINH_CITY, "district": HONG_LINH}),
        ("/v1/summary", {"province": HA_NOI, "district": HA_TINH_CITY}),
        ("/v1/summary", {"province": HA_NOI, "unit": HA_TINH_CITY}),
        ("/v1/summary", {"province": OLD_HA_TINH, "unit": "00004"}),  # a commune of Hà Nội
        ("/v1/summary", {"frame": "today"}),
        ("/v1/summary", {"group_by": "commune"}),
        ("/v1/summary", {"after": "0:-1"}),
        ("/v1/summary", {"format": "xlsx"}),
        ("/v1/conferences", {"kind": "party"}),
        ("/v1/conferences", {"unit": "99999"}),
        ("/v1/conferences", {"frame": "today"}),
        ("/v1/conferences", {"limit": "0"}),
        ("/v1/conferences", {"limit": "100000"}),
        ("/v1/conferences", {"from": "2024-03-01", "to": "2024-01-01"}),
        ("/v1/cases", {"cursor": "bm90IGEgY3Vyc29y"}),
        ("/v1/cases", {"category": "x" * 5000}),
        ("/v1/programs", {"active_on": "soon"}),
        ("/v1/programs", {"cursor": "%%%"}),
    ],
)
def test_bad_query_values_are_a_422_problem_never_a_500(
    ledger: Ledger, path: str, params: dict[str, str]
) -> None:
    response = ledger.get(path, params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 422
