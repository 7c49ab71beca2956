"""Cursor pagination over the real stack, while districts keep reporting between pages."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from tests.support import Stack, running_stack, until_projected

DISTRICTS = ("436", "437", "440")  # Thành phố Hà Tĩnh, Thị xã Hồng Lĩnh, Huyện Đức Thọ
PAGE = 7


def conference(rng: random.Random, district: str, day: date) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": "ConferenceHeld",
        "district_code": district,
        "occurred_at": day.isoformat(),
        "payload": {
            "title": f"Hội nghị giao ban công tác dân vận ngày {day:%d/%m/%Y}",
            "kind": rng.choice(["review", "summary", "training"]),
            "organizers": ["Ban Dân vận", "Công an"],
            "attendees": rng.randrange(20, 200),
            "online": False,
        },
    }


def post(stack: Stack, tokens: dict[str, str], events: list[dict[str, Any]]) -> str:
    """Post each event as its district; the receipts as an ``after`` value."""
    receipts = []
    for event in events:
        response = httpx.post(
            f"{stack.ingest_url}/v1/events",
            json=event,
            headers={"Authorization": f"Bearer {tokens[event['district_code']]}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        receipts.append(f"{response.json()['partition']}:{response.json()['offset']}")
    return ",".join(receipts)


def test_paging_returns_every_row_exactly_once_while_new_reports_keep_arriving(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path
) -> None:
    rng = random.Random(2024)
    # Many rows share a day, so the order must break ties on event_id to be a total order.
    days = [date(2024, 1, 1) + timedelta(days=rng.randrange(0, 120)) for _ in range(12)]
    with running_stack(kafka_bootstrap, postgres_url, topic, tmp_path) as stack:
        tokens = {d: stack.token("reporter", d) for d in DISTRICTS}
        dashboard = {"Authorization": f"Bearer {stack.token('dashboard', province='42')}"}
        initial = [conference(rng, rng.choice(DISTRICTS), rng.choice(days)) for _ in range(40)]
        after = post(stack, tokens, initial)
        params: dict[str, str] = {"province": "42", "from": "2024-01-01", "limit": str(PAGE)}

        seen: list[dict[str, Any]] = []
        arrived_ahead: set[str] = set()  # arrived during the reading, dated after the cursor
        cursor: str | None = None
        while True:
            query = {**params, "after": after} | ({"cursor": cursor} if cursor else {})
            response = until_projected(
                partial(
                    httpx.get,
                    f"{stack.api_url}/v1/conferences",
                    params=query,
                    headers=dashboard,
                    timeout=30,
                )
            )
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["rows"]) <= PAGE
            seen += page["rows"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            # Between pages, two districts report: one conference on a day the reader has
            # already passed, one on a day still ahead of it (older, since newest come first).
            last = date.fromisoformat(seen[-1]["held_on"])
            passed = conference(rng, "436", last + timedelta(days=rng.randrange(1, 5)))
            ahead = conference(rng, "437", last - timedelta(days=rng.randrange(1, 5)))
            if ahead["occurred_at"] >= params["from"]:
                arrived_ahead.add(ahead["event_id"])
            after = post(stack, tokens, [passed, ahead])

        ids = [row["event_id"] for row in seen]
        assert len(ids) == len(set(ids)), "a row came back twice"
        assert {e["event_id"] for e in initial} <= set(ids), (
            "a row present from the start was missed"
        )
        assert arrived_ahead <= set(ids), "a row that arrived ahead of the cursor was missed"
        keys = [(row["held_on"], row["event_id"]) for row in seen]
        assert keys == sorted(keys, reverse=True)


def test_a_cursor_is_refused_with_other_filters_and_limits_are_bounded(
    kafka_bootstrap: str, sqlite_url: str, topic: str, tmp_path: Path
) -> None:
    rng = random.Random(7)
    with running_stack(kafka_bootstrap, sqlite_url, topic, tmp_path) as stack:
        tokens = {"436": stack.token("reporter", "436")}
        events = [conference(rng, "436", date(2024, 3, 1) + timedelta(days=i)) for i in range(3)]
        after = post(stack, tokens, events)
        with httpx.Client(
            base_url=stack.api_url,
            headers={"Authorization": f"Bearer {stack.token('dashboard')}"},
            timeout=30,
        ) as api:
            url = "/v1/conferences"

            answer = until_projected(partial(api.get, url, params={"limit": 2, "after": after}))
            assert answer.status_code == 200, answer.text
            first = answer.json()
            assert [r["held_on"] for r in first["rows"]] == ["2024-03-03", "2024-03-02"]
            rest = api.get(url, params={"limit": 2, "cursor": first["next_cursor"]})
            assert [r["held_on"] for r in rest.json()["rows"]] == ["2024-03-01"]
            assert rest.json()["next_cursor"] is None

            elsewhere = api.get(url, params={"cursor": first["next_cursor"], "province": "01"})
            assert elsewhere.status_code == 422
            assert elsewhere.json()["errors"][0]["field"] == "cursor"
            for limit in ("0", "1001"):
                assert api.get(url, params={"limit": limit}).status_code == 422

            as_csv = api.get(url, params={"limit": 2, "format": "csv"})
            assert as_csv.headers["X-Next-Cursor"] == first["next_cursor"]
            assert 'rel="next"' in as_csv.headers["Link"]
