"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright, against the
whole stack. A provincial officer signs in with a token, picks a province and a period, and the
figures drawn (cards, charts, table) must be the ones ``/v1/summary`` serves: in today's provinces
with their predecessors' history, across the reorganization of 2025-07-01, and in the frame of the
reports' dates.

``DASHBOARD_SCREENSHOT=/some/dashboard.png`` keeps the page as drawn: that file for Hà Tĩnh, and
``dashboard-reform.png`` and ``dashboard-reform-as-reported.png`` beside it for Hưng Yên."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from services import demo
from tests.support import Stack, running_stack

CHROMIUM = "/usr/bin/chromium"
# No sandbox: the tests run as root. The rest keeps Chromium from calling home, which a closed
# network answers with a storm of refused connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HA_TINH = "42"
PERIOD = ("2023-07-01", "2024-06-30")  # a fiscal-style year across the new year
TIMEOUT_MS = 30_000
# Today's Hưng Yên: old Hưng Yên and old Thái Bình until 2025-06-30, then itself.
HUNG_YEN = "33"
HUNG_YEN_BEFORE = ("legacy:33", "legacy:34")
ACROSS_THE_REFORM = ("2025-01-01", "2026-06-30")
FORMER = "đến 30/6/2025"


def _browser_missing(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        _browser_missing(f"{CHROMIUM} is missing (deploy/browser.sh installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def post_demo_reports(stack: Stack) -> str:
    """Two years of realistic reports from four Hà Tĩnh and two Hà Nội districts."""
    reports = demo.generate(provinces=(HA_TINH, "01"), per_province=4, years=(2023, 2024), seed=5)
    reports = {d: events for i, (d, events) in enumerate(reports.items()) if i < 6}
    return stack.post_reports(reports)


def post_reports_across_the_reform(stack: Stack) -> str:
    """Hưng Yên's reports of 2025 and 2026: a district of old Hưng Yên and one of old Thái Bình
    and the three provincial offices until 2025-06-30, three communes from 2025-07-01."""
    reports = demo.generate(
        provinces=(HUNG_YEN,), per_province=1, years=(2025, 2026), seed=7, until=date(2026, 6, 30)
    )
    communes = [unit for unit in reports if len(unit) == 5][:3]
    return stack.post_reports(
        {unit: events for unit, events in reports.items() if len(unit) != 5 or unit in communes}
    )


def read(stack: Stack, token: str, path: str, **params: str) -> dict[str, Any]:
    """What the API says, asked again while its bounded read-your-writes wait runs out."""
    for _ in range(12):
        response = httpx.get(
            f"{stack.api_url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if response.status_code != 504:
            break
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def summary(stack: Stack, token: str, **params: str) -> dict[str, Any]:
    return read(stack, token, "/v1/summary", **params)


def shown_number(text: str) -> float:
    """A number as the page prints it in Vietnamese: 1.234,5 is one thousand two hundred..."""
    return float(text.strip().replace(".", "").replace(",", "."))


def keep_screenshot(page: Any, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    wanted = os.environ.get("DASHBOARD_SCREENSHOT")
    if wanted:
        target = Path(wanted)
        if name != "dashboard":
            target = target.with_name(
                f"{target.stem}{name.removeprefix('dashboard')}{target.suffix}"
            )
        shutil.copy(tmp_path / f"{name}.png", target)


def time_chart(page: Any) -> dict[str, Any]:
    """What Chart.js holds for the time chart (what it draws), and the reorganization's marker."""
    found: dict[str, Any] = page.evaluate(
        "() => { const c = Chart.getChart('chart-time'); return {labels: c.data.labels, "
        "series: c.data.datasets.map(d => ({code: d.code, label: d.label, data: d.data})), "
        "marker: c.canvas.dataset.reformMarker || null, "
        "marker_label: c.canvas.dataset.reformLabel || null}; }"
    )
    return found


def unit_chart(page: Any) -> dict[str, float]:
    """The by-unit chart's bars, by unit (or province) code."""
    found: dict[str, float] = page.evaluate(
        "() => { const d = Chart.getChart('chart-unit').data.datasets[0]; "
        "return Object.fromEntries(d.codes.map((c, i) => [c, d.data[i]])); }"
    )
    return found


def assert_row_shows(row: Any, expected: dict[str, Any]) -> None:
    cells = row.locator("td[data-figure]")
    assert cells.count() > 10
    for j in range(cells.count()):
        cell = cells.nth(j)
        figure = cell.get_attribute("data-figure")
        assert shown_number(cell.inner_text()) == expected[figure], figure


def months(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:7])
    labels = []
    while f"{year}-{month:02d}" <= last[:7]:
        labels.append(f"{year}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return labels


def test_the_dashboard_draws_the_figures_the_summary_serves_for_a_province_and_period(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path, chromium: Any
) -> None:
    with running_stack(kafka_bootstrap, postgres_url, topic, tmp_path) as stack:
        token = stack.token("dashboard")
        after = post_demo_reports(stack)
        summary(stack, token, after=after)  # everything posted is projected from here on
        scope = {"province": HA_TINH, "from": PERIOD[0], "to": PERIOD[1]}
        total = summary(stack, token, **scope)["rows"][0]
        by_unit = summary(stack, token, **scope, group_by="unit")["rows"]
        by_month = summary(stack, token, **scope, group_by="month")["rows"]
        assert total["conferences"] > 0 and len(by_unit) == 4  # the check has teeth

        page = chromium.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{stack.api_url}/dashboard")

        # Sign in as a person would: type the token, press the button.
        page.fill("#token", token)
        page.click("#sign-in button[type=submit]")
        page.wait_for_selector("body[data-state=ready]")

        # Pick the province, then a custom period.
        page.select_option("#province", HA_TINH)
        page.wait_for_selector(f"body[data-state=ready][data-query^='province={HA_TINH}&']")
        page.select_option("#period", "custom")
        page.fill("#from", PERIOD[0])
        page.dispatch_event("#from", "change")
        page.fill("#to", PERIOD[1])
        page.dispatch_event("#to", "change")
        page.wait_for_selector(
            f"body[data-state=ready][data-query='province={HA_TINH}&from={PERIOD[0]}&to={PERIOD[1]}']"
        )
        keep_screenshot(page, tmp_path, "dashboard")

        # The cards: every figure drawn equals the summary's total, as a value and as shown.
        cards = page.locator(".kpi")
        assert cards.count() >= 10
        for i in range(cards.count()):
            card = cards.nth(i)
            figure = card.get_attribute("data-figure")
            value = card.locator(".value")
            assert float(value.get_attribute("data-value")) == total[figure], figure
            assert shown_number(value.inner_text()) == total[figure], figure

        # The table: one row per unit, each cell as the summary says, and the total row. Before
        # 2025-07-01 the units were districts, named as former ones with their last day.
        rows = page.locator("#by-unit tbody tr[data-unit]")
        assert rows.count() == len(by_unit)
        for expected in by_unit:
            row = page.locator(f"#by-unit tbody tr[data-unit='{expected['unit_code']}']")
            name = row.locator("td").first.inner_text()
            assert name == f"{expected['unit_name']} (cấp huyện cũ, {FORMER})"
            assert_row_shows(row, expected)
        footer = page.locator("#by-unit tfoot td[data-figure='conferences']")
        assert shown_number(footer.inner_text()) == total["conferences"]

        # The charts: what Chart.js holds is what it draws.
        page.select_option("#figure", "outreach_sessions")
        over_time = time_chart(page)
        per_month = {row["period"]: row["outreach_sessions"] for row in by_month}
        assert over_time["labels"] == months(*PERIOD)  # every month, empty ones as zero
        [series] = over_time["series"]
        assert series["data"] == [per_month.get(m, 0) for m in over_time["labels"]]
        assert over_time["marker"] is None  # the period is all before the reorganization
        assert unit_chart(page) == {r["unit_code"]: r["outreach_sessions"] for r in by_unit}

        # The English switch changes the words, not the numbers.
        page.click("#lang-en")
        assert page.locator(".kpi[data-figure='conferences'] .label").inner_text() == "Conferences"
        assert page.locator("#table-title").inner_text() == "Figures by unit"
        tips = page.locator(".kpi[data-figure='tips'] .value").inner_text()
        assert float(tips.replace(",", "")) == total["tips"]

        # The CSV download is the API's own CSV: BOM, header row, Vietnamese names intact.
        with page.expect_download() as download:
            page.click("#csv-summary")
        content = Path(download.value.path()).read_bytes()
        assert content.startswith(b"\xef\xbb\xbf")
        lines = content.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("province_code,province_name,unit_code,unit_name")
        assert {line.split(",")[3] for line in lines[1:]} == {r["unit_name"] for r in by_unit}

        # Freshness is on the page, and the page raised no script error.
        assert page.locator("#freshness").inner_text() != ""
        assert errors == []


def test_a_province_scoped_token_cannot_pick_another_province(
    kafka_bootstrap: str, sqlite_url: str, topic: str, tmp_path: Path, chromium: Any
) -> None:
    with running_stack(kafka_bootstrap, sqlite_url, topic, tmp_path) as stack:
        token = stack.token("dashboard", province=HA_TINH)
        page = chromium.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        # A link may carry the token in its fragment, which never reaches the server.
        page.goto(f"{stack.api_url}/dashboard#token={token}")
        page.wait_for_selector("body[data-state=ready]")
        assert page.url == f"{stack.api_url}/dashboard"  # the token left the address bar
        options = page.locator("#province option")
        assert options.count() == 1
        assert options.first.get_attribute("value") == HA_TINH
        assert page.locator("#province").is_disabled()
        assert page.locator("#who-text").inner_text().endswith("Tỉnh Hà Tĩnh")


def test_todays_hung_yen_runs_through_the_reorganization_and_shows_both_frames(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path, chromium: Any
) -> None:
    with running_stack(kafka_bootstrap, postgres_url, topic, tmp_path) as stack:
        token = stack.token("dashboard")
        after = post_reports_across_the_reform(stack)
        summary(stack, token, after=after)  # everything posted is projected from here on
        period = {"from": ACROSS_THE_REFORM[0], "to": ACROSS_THE_REFORM[1]}
        scope = {"province": HUNG_YEN, **period}
        total = summary(stack, token, **scope)["rows"][0]
        by_month = summary(stack, token, **scope, group_by="month")["rows"]
        by_unit = summary(stack, token, **scope, group_by="unit")["rows"]
        # As reported, today's Hưng Yên is three provinces: each as it was on the reports' dates.
        parts = (*HUNG_YEN_BEFORE, HUNG_YEN)
        reported = {"frame": "as_reported", **period}

        def by_part(group_by: str) -> dict[str, list[dict[str, Any]]]:
            found = summary(stack, token, **reported, province=HUNG_YEN, group_by=group_by)["rows"]
            assert {r["province_code"] for r in found} == set(parts)
            return {p: [r for r in found if r["province_code"] == p] for p in parts}

        reported_months = by_part("province,month")
        reported_units = by_part("unit")
        old_names = {
            r["province_code"]: r["province_name"]
            for r in summary(stack, token, **reported, group_by="province")["rows"]
        }
        today_units = read(stack, token, "/v1/units", province=HUNG_YEN)["rows"]
        former_units = read(stack, token, "/v1/units", province=HUNG_YEN, on="2025-06-30")["rows"]
        # The check has teeth: figures on both sides of the reform, old Thái Bình's among them,
        # today's communes and the former districts both reporting.
        conferences = {r["period"]: r["conferences"] for r in by_month}
        assert sum(n for m, n in conferences.items() if m < "2025-07") > 0
        assert sum(n for m, n in conferences.items() if m >= "2025-07") > 0
        assert {r["period"] for r in by_month} >= {"2025-06", "2025-07"}
        assert sum(r["conferences"] for r in reported_units["legacy:34"]) > 0
        assert {(r["unit_level"], r["unit_edition"]) for r in by_unit} >= {
            ("commune", "2025"),
            ("district", "legacy"),
        }
        assert old_names["legacy:34"] == "Tỉnh Thái Bình (đến 30/6/2025)"

        page = chromium.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{stack.api_url}/dashboard#token={token}")
        page.wait_for_selector("body[data-state=ready]")

        # The province list is today's 34; a merged province names its predecessors.
        options = page.locator("#province option:not([value=''])")
        assert options.count() == 34
        assert not page.locator("#province option[value^='legacy:']").count()
        option = page.locator(f"#province option[value='{HUNG_YEN}']")
        assert option.inner_text() == "Tỉnh Hưng Yên (gồm Hưng Yên, Thái Bình cũ)"
        assert page.locator("#province option[value='42']").inner_text() == "Tỉnh Hà Tĩnh"

        page.select_option("#province", HUNG_YEN)
        page.wait_for_selector(f"body[data-state=ready][data-query^='province={HUNG_YEN}&']")
        page.select_option("#period", "custom")
        page.fill("#from", ACROSS_THE_REFORM[0])
        page.dispatch_event("#from", "change")
        page.fill("#to", ACROSS_THE_REFORM[1])
        page.dispatch_event("#to", "change")
        query = f"province={HUNG_YEN}&from={ACROSS_THE_REFORM[0]}&to={ACROSS_THE_REFORM[1]}"
        page.wait_for_selector(f"body[data-state=ready][data-query='{query}']")
        keep_screenshot(page, tmp_path, "dashboard-reform")

        # By today's units: one series through 2025-07-01, old Thái Bình's months in it, and the
        # reorganization marked where June turns into July.
        for figure in ("conferences", "tips", "outreach_sessions"):
            page.select_option("#figure", figure)
            drawn = time_chart(page)
            assert drawn["labels"] == months(*ACROSS_THE_REFORM)
            per_month = {r["period"]: r[figure] for r in by_month}
            [series] = drawn["series"]
            assert series["data"] == [per_month.get(m, 0) for m in drawn["labels"]], figure
        assert drawn["marker"] == "2025-07"
        assert drawn["marker_label"] == "Sắp xếp đơn vị hành chính 1/7/2025"
        for card in page.locator(".kpi").all():
            figure = card.get_attribute("data-figure")
            assert float(card.locator(".value").get_attribute("data-value")) == total[figure]

        # The drill-down: today's communes, then the former districts with their last day.
        in_select = {
            edition: page.locator(f"#unit optgroup[data-edition='{edition}'] option")
            for edition in ("2025", "legacy")
        }
        assert [o.get_attribute("value") for o in in_select["2025"].all()] == [
            u["code"] for u in today_units
        ]
        assert [o.get_attribute("value") for o in in_select["legacy"].all()] == [
            u["code"] for u in former_units
        ]
        assert all(FORMER in o.inner_text() for o in in_select["legacy"].all())
        assert not any(FORMER in o.inner_text() for o in in_select["2025"].all())
        rows = page.locator("#by-unit tbody tr[data-unit]")
        assert rows.count() == len(by_unit)
        for expected in by_unit:
            row = page.locator(f"#by-unit tbody tr[data-unit='{expected['unit_code']}']")
            name = row.locator("td").first.inner_text()
            if expected["unit_level"] == "commune":
                assert name == expected["unit_name"]
            elif expected["unit_level"] == "district":
                assert name == f"{expected['unit_name']} (cấp huyện cũ, {FORMER})"
            else:  # a provincial office: today's, or an old province's
                assert (FORMER in name) == (expected["unit_edition"] == "legacy"), name
            assert_row_shows(row, expected)
        former_group = page.locator("#by-unit tr.group[data-group='legacy']")
        assert former_group.inner_text() == f"Đơn vị cũ ({FORMER})"

        # By the units of the reports' dates: old Hưng Yên, old Thái Bình, then today's province,
        # each its own series (of the figure chosen last, outreach sessions); stacked, they are
        # the series of today's frame.
        page.check("#frame-as-reported")
        query = (
            f"province={HUNG_YEN}&frame=as_reported"
            f"&from={ACROSS_THE_REFORM[0]}&to={ACROSS_THE_REFORM[1]}"
        )
        page.wait_for_selector(f"body[data-state=ready][data-query='{query}']")
        keep_screenshot(page, tmp_path, "dashboard-reform-as-reported")
        drawn = time_chart(page)
        assert [s["code"] for s in drawn["series"]] == list(parts)
        for series in drawn["series"]:
            per_month = {
                r["period"]: r["outreach_sessions"] for r in reported_months[series["code"]]
            }
            assert series["data"] == [per_month.get(m, 0) for m in drawn["labels"]]
            if series["code"] in HUNG_YEN_BEFORE:  # "Tỉnh Thái Bình (đến 30/6/2025)"
                assert series["label"] == old_names[series["code"]]
        stacked = [sum(month) for month in zip(*(s["data"] for s in drawn["series"]), strict=True)]
        per_month = {r["period"]: r["outreach_sessions"] for r in by_month}
        assert stacked == [per_month.get(m, 0) for m in drawn["labels"]]
        assert drawn["marker"] == "2025-07"
        # The table: one group per province of the reports' dates, each unit's row as reported.
        thai_binh = page.locator("#by-unit tr.group[data-group='legacy:34']")
        assert thai_binh.inner_text() == "Tỉnh Thái Bình (đến 30/6/2025)"
        rows = page.locator("#by-unit tbody tr[data-unit]")
        assert rows.count() == sum(len(found) for found in reported_units.values())
        for province, found in reported_units.items():
            for expected in found:
                assert expected["province_code"] == province
                row = page.locator(
                    f"#by-unit tbody tr[data-unit='{expected['unit_code']}']"
                    f"[data-province='{province}']"
                )
                assert_row_shows(row, expected)
        assert unit_chart(page) == {
            r["unit_code"]: r["outreach_sessions"]
            for found in reported_units.values()
            for r in found
        }
        # The CSV of the table is the API's own, the old provinces' parts under one header.
        with page.expect_download() as download:
            page.click("#csv-summary")
        text = Path(download.value.path()).read_text(encoding="utf-8-sig")
        header, *table = csv.reader(io.StringIO(text))
        assert header[:4] == ["province_code", "province_name", "unit_code", "unit_name"]
        assert sorted((row[0], row[2]) for row in table) == sorted(
            (r["province_code"], r["unit_code"]) for found in reported_units.values() for r in found
        )
        # The frames only regroup the figures: the cards are the same.
        for figure in ("conferences", "tips", "outreach_sessions", "commendations"):
            summed = sum(r[figure] for found in reported_units.values() for r in found)
            assert summed == total[figure]
            card = page.locator(f".kpi[data-figure='{figure}'] .value")
            assert float(card.get_attribute("data-value")) == total[figure]

        # In English: the same marker and figures, other words.
        page.click("#lang-en")
        assert page.locator("#frame-as-reported + span").inner_text() == (
            "by units at the time of reporting"
        )
        assert page.locator("#frame-current + span").inner_text() == "by today's units"
        assert option.inner_text() == "Tỉnh Hưng Yên (incl. former Hưng Yên, Thái Bình)"
        assert time_chart(page)["marker_label"] == "Reorganization 1 Jul 2025"
        assert thai_binh.inner_text() == "Tỉnh Thái Bình (until 30 Jun 2025)"

        # Back to today's units: the default frame leaves the query string.
        page.check("#frame-current")
        page.wait_for_selector(
            f"body[data-state=ready][data-query='province={HUNG_YEN}"
            f"&from={ACROSS_THE_REFORM[0]}&to={ACROSS_THE_REFORM[1]}']"
        )
        assert len(time_chart(page)["series"]) == 1
        assert errors == []


def test_a_token_of_an_old_province_or_of_one_unit_sees_only_that_labelled_as_it_was(
    kafka_bootstrap: str, sqlite_url: str, topic: str, tmp_path: Path, chromium: Any
) -> None:
    with running_stack(kafka_bootstrap, sqlite_url, topic, tmp_path) as stack:
        thai_binh = "Tỉnh Thái Bình (đến 30/6/2025)"
        # token -> (province option value, its text, unit chosen or "" for any, who-text's end)
        cases = {
            stack.token("dashboard", province="legacy:34"): (
                "legacy:34",
                "Tỉnh Thái Bình (đến 30/6/2025; nay thuộc Tỉnh Hưng Yên)",
                "",
                thai_binh,
            ),
            stack.token("reporter", "legacy:34"): (
                "legacy:34",
                "Tỉnh Thái Bình (đến 30/6/2025; nay thuộc Tỉnh Hưng Yên)",
                "",
                thai_binh,
            ),
            stack.token("reporter", HA_TINH): (HA_TINH, "Tỉnh Hà Tĩnh", "", "Tỉnh Hà Tĩnh"),
            stack.token("reporter", "18073"): (
                HA_TINH,
                "Tỉnh Hà Tĩnh",
                "18073",
                "Phường Thành Sen",
            ),
            stack.token("reporter", "436"): (
                "legacy:42",
                "Tỉnh Hà Tĩnh (đến 30/6/2025)",
                "436",
                "Thành phố Hà Tĩnh (cấp huyện cũ, đến 30/6/2025)",
            ),
        }
        errors: list[str] = []
        for token, (province, label, unit, who) in cases.items():
            page = chromium.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{stack.api_url}/dashboard#token={token}")
            page.wait_for_selector("body[data-state=ready]")
            options = page.locator("#province option")
            assert options.count() == 1, label
            assert options.first.get_attribute("value") == province
            assert options.first.inner_text() == label
            assert page.locator("#province").is_disabled()
            assert page.locator("#who-text").inner_text().endswith(who), who
            units = page.locator("#unit option")
            if unit:  # a commune's or district's reporter: its own unit only
                assert units.count() == 1 and page.locator("#unit").is_disabled()
                assert units.first.get_attribute("value") == unit
                assert units.first.inner_text() == who
            else:  # a province's units to drill into: an old province's are all former
                assert page.locator("#unit").is_enabled() and units.count() > 5
                assert page.locator("#unit optgroup[data-edition='2025']").count() == (
                    0 if province.startswith("legacy:") else 1
                )
            expected = "&".join(
                f"{k}={v}" for k, v in (("province", province), ("unit", unit)) if v
            )
            assert page.evaluate("() => document.body.dataset.query").startswith(
                expected.replace(":", "%3A")
            )
            assert page.locator("#error").is_hidden() and errors == [], label
            page.close()
