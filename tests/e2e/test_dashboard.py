"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright, against the
whole stack. A provincial officer signs in with a token, picks a province and a period, and the
figures drawn (cards, charts, table) must be the ones ``/v1/summary`` serves."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
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


def summary(stack: Stack, token: str, **params: str) -> dict[str, Any]:
    """What the API says, asked again while its bounded read-your-writes wait runs out."""
    for _ in range(12):
        response = httpx.get(
            f"{stack.api_url}/v1/summary",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if response.status_code != 504:
            break
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def shown_number(text: str) -> float:
    """A number as the page prints it in Vietnamese: 1.234,5 is one thousand two hundred..."""
    return float(text.strip().replace(".", "").replace(",", "."))


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
        by_district = summary(stack, token, **scope, group_by="district")["rows"]
        by_month = summary(stack, token, **scope, group_by="month")["rows"]
        assert total["conferences"] > 0 and len(by_district) == 4  # the check has teeth

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
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        if os.environ.get("DASHBOARD_SCREENSHOT"):
            shutil.copy(tmp_path / "dashboard.png", os.environ["DASHBOARD_SCREENSHOT"])

        # The cards: every figure drawn equals the summary's total, as a value and as shown.
        cards = page.locator(".kpi")
        assert cards.count() >= 10
        for i in range(cards.count()):
            card = cards.nth(i)
            figure = card.get_attribute("data-figure")
            value = card.locator(".value")
            assert float(value.get_attribute("data-value")) == total[figure], figure
            assert shown_number(value.inner_text()) == total[figure], figure

        # The table: one row per district, each cell as the summary says, and the total row.
        rows = page.locator("#by-district tbody tr")
        assert rows.count() == len(by_district)
        for expected in by_district:
            row = page.locator(f"#by-district tbody tr[data-unit='{expected['unit_code']}']")
            assert row.locator("td").first.inner_text() == expected["unit_name"]
            cells = row.locator("td[data-figure]")
            for j in range(cells.count()):
                cell = cells.nth(j)
                figure = cell.get_attribute("data-figure")
                assert shown_number(cell.inner_text()) == expected[figure], figure
        footer = page.locator("#by-district tfoot td[data-figure='conferences']")
        assert shown_number(footer.inner_text()) == total["conferences"]

        # The charts: what Chart.js holds is what it draws.
        page.select_option("#figure", "outreach_sessions")
        over_time = page.evaluate(
            "() => { const c = Chart.getChart('chart-time'); "
            "return {labels: c.data.labels, data: c.data.datasets[0].data}; }"
        )
        per_month = {row["period"]: row["outreach_sessions"] for row in by_month}
        assert over_time["labels"] == months(*PERIOD)  # every month, empty ones as zero
        assert over_time["data"] == [per_month.get(m, 0) for m in over_time["labels"]]
        per_district = page.evaluate(
            "() => { const c = Chart.getChart('chart-district'); "
            "return Object.fromEntries(c.data.labels.map((l, i) => [l, c.data.datasets[0].data[i]])); }"
        )
        assert per_district == {r["unit_name"]: r["outreach_sessions"] for r in by_district}

        # The English switch changes the words, not the numbers.
        page.click("#lang-en")
        assert page.locator(".kpi[data-figure='conferences'] .label").inner_text() == "Conferences"
        assert page.locator("#table-title").inner_text() == "Figures by district"
        tips = page.locator(".kpi[data-figure='tips'] .value").inner_text()
        assert float(tips.replace(",", "")) == total["tips"]

        # The CSV download is the API's own CSV: BOM, header row, Vietnamese names intact.
        with page.expect_download() as download:
            page.click("#csv-summary")
        content = Path(download.value.path()).read_bytes()
        assert content.startswith(b"\xef\xbb\xbf")
        lines = content.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("province_code,province_name,unit_code,unit_name")
        assert {line.split(",")[3] for line in lines[1:]} == {r["unit_name"] for r in by_district}

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
