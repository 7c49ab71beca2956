"""The two frames on data that spans the reform, through the real stack (Kafka, PostgreSQL, the
three services as processes): demo reports of 2025 for today's Hưng Yên (33: old Hưng Yên 33 and
old Thái Bình 34 until 2025-06-30, its communes since) and Hà Tĩnh (42).

In the current frame a province's figures equal the sum of its predecessors' as_reported figures
before 2025-07-01 plus its own from then on, month by month; the totals of the frames are equal;
every endpoint that serves an aggregate keeps a token to its scope in both frames.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from services import demo
from services.topics import ensure_topics
from tests.support import Stack, running_stack, scratch_database, until_projected

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e]

HUNG_YEN, HA_TINH = "33", "42"
PREDECESSORS = ("legacy:33", "legacy:34")
FRAMES = ("current", "as_reported")
# The counts a summary row carries, which add up exactly across groups (not the mean of the
# reductions, nor the hours, which are decimals).
ADDITIVE = [
    "conferences",
    "conference_attendees",
    "programs_signed",
    "cases_resolved",
    "cases_stable",
    "cases_temporarily_stable",
    "hotspots_prevented",
    "outreach_sessions",
    "outreach_attendees",
    "leaflets",
    "tips",
    "valuable_tips",
    "tip_cases_solved",
    "models_recognized",
    "commendations",
    "procedure_reductions",
]


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    postgres_server_url: str,
    postgres_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    topic = f"test-frames-{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, topic, 3, f"{topic}.dead-letters")
    with (
        scratch_database(postgres_server_url, "ledger_frames", postgres_template) as url,
        running_stack(kafka_bootstrap, url, topic, tmp_path_factory.mktemp("frames")) as s,
    ):
        reports = demo.generate(
            provinces=(HUNG_YEN, HA_TINH),
            per_province=2,
            years=(2025,),
            until=date(2025, 12, 31),
            seed=7,
        )
        after = s.post_reports(reports)
        assert get(s, "/v1/summary", s.token("dashboard"), after=after).status_code == 200
        yield s


def get(stack: Stack, path: str, token: str, **params: str) -> httpx.Response:
    return until_projected(
        lambda: httpx.get(
            f"{stack.api_url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    )


def rows(stack: Stack, path: str, **params: str) -> list[dict[str, Any]]:
    response = get(stack, path, stack.token("auditor"), **params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["rows"]
    return found


def by_month(found: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    months: dict[str, Counter[str]] = {}
    for row in found:
        months.setdefault(row["period"], Counter()).update({k: row[k] for k in ADDITIVE})
    return months


def test_todays_hung_yen_is_its_predecessors_before_the_reform_and_itself_after_month_by_month(
    stack: Stack,
) -> None:
    current = by_month(rows(stack, "/v1/summary", province=HUNG_YEN, group_by="month"))
    as_reported = rows(
        stack, "/v1/summary", frame="as_reported", province=HUNG_YEN, group_by="province,month"
    )
    expected: dict[str, Counter[str]] = {}
    for row in as_reported:  # the same territory, under the province of each event's date
        before = row["period"] < "2025-07"
        assert row["province_code"] in (PREDECESSORS if before else (HUNG_YEN,)), row
        expected.setdefault(row["period"], Counter()).update({k: row[k] for k in ADDITIVE})

    assert current == expected
    assert "2025-06" in current and "2025-07" in current  # the series crosses the reform
    old = [rows(stack, "/v1/summary", frame="as_reported", province=p)[0] for p in PREDECESSORS]
    before = sum((current[m] for m in current if m < "2025-07"), Counter())
    assert before == sum((Counter({k: r[k] for k in ADDITIVE}) for r in old), Counter())
    assert old[1]["conferences"] > 0  # old Thái Bình's history is in it


@pytest.mark.parametrize("path", ["/v1/summary", "/v1/audit/state"])
def test_the_totals_of_the_two_frames_are_equal_and_so_are_their_province_sums(
    stack: Stack, path: str
) -> None:
    extra = {"as_of": "2099-01-01"} if path.endswith("state") else {}
    totals = [rows(stack, path, frame=frame, **extra)[0] for frame in FRAMES]
    assert totals[0] == totals[1] and totals[0]["conferences"] > 0
    for frame, total in zip(FRAMES, totals, strict=True):
        provinces = rows(stack, path, frame=frame, group_by="province", **extra)
        summed = sum((Counter({k: r[k] for k in ADDITIVE}) for r in provinces), Counter())
        assert summed == Counter({k: total[k] for k in ADDITIVE if total[k]}), frame
    as_reported = {
        r["province_code"]
        for r in rows(stack, path, frame="as_reported", group_by="province", **extra)
    }
    assert as_reported == {HUNG_YEN, HA_TINH, "legacy:42", *PREDECESSORS}


def test_the_as_of_state_now_equals_the_summary_in_both_frames_by_unit_and_month(
    stack: Stack,
) -> None:
    for frame in FRAMES:
        params = {"frame": frame, "province": HUNG_YEN, "group_by": "unit,month"}
        assert rows(stack, "/v1/audit/state", as_of="2099-01-01", **params) == rows(
            stack, "/v1/summary", **params
        )


SCOPED_ENDPOINTS = [
    "/v1/summary",
    "/v1/programs",
    "/v1/conferences",
    "/v1/cases",
    "/v1/registry-exceptions",
]


@pytest.mark.parametrize("path", SCOPED_ENDPOINTS)
@pytest.mark.parametrize("frame", FRAMES)
def test_a_request_outside_a_tokens_scope_is_a_403_in_every_endpoint_and_frame(
    stack: Stack, path: str, frame: str
) -> None:
    today, old = (
        stack.token("dashboard", province=HUNG_YEN),
        stack.token("dashboard", province="legacy:34"),
    )
    outside = [
        (today, {"province": HA_TINH}),
        (today, {"province": "legacy:42"}),
        (today, {"unit": "436"}),
        (old, {"province": HUNG_YEN}),
        (old, {"province": "legacy:33"}),
        (stack.token("reporter", "18073"), {"province": HUNG_YEN}),
    ]
    for token, params in outside:
        response = get(stack, path, token, frame=frame, **params)
        assert response.status_code == 403, (params, response.text)
    inside = [(today, {"province": "legacy:34"}), (old, {}), (today, {})]
    for token, params in inside:
        assert get(stack, path, token, frame=frame, **params).status_code == 200


@pytest.mark.parametrize("frame", FRAMES)
def test_a_scope_limits_what_is_counted_whatever_the_frame(stack: Stack, frame: str) -> None:
    def total(token: str, frame: str, **params: str) -> int:
        response = get(stack, "/v1/summary", token, frame=frame, **params)
        assert response.status_code == 200, response.text
        return int(response.json()["rows"][0]["conferences"])

    today = stack.token("dashboard", province=HUNG_YEN)
    old = stack.token("dashboard", province="legacy:34")
    auditor = stack.token("auditor")
    # A scope is a territory: today's Hưng Yên with its whole history, or old Thái Bình's own.
    assert total(today, frame) == total(auditor, "current", province=HUNG_YEN)
    assert total(old, frame) == total(auditor, "as_reported", province="legacy:34") > 0
    assert total(old, frame) < total(today, frame) < total(auditor, frame)
