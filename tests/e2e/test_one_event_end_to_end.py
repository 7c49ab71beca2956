"""One ConferenceHeld through the real system: ingest -> Kafka -> projector -> SQL -> query API."""

from __future__ import annotations

import copy
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from shared.examples import EXAMPLES
from tests.support import Stack, broker_control, log_records, running_stack, wait_for

HA_TINH_CITY = "436"


def conference(attendees: int) -> dict[str, object]:
    event = copy.deepcopy(EXAMPLES["ConferenceHeld"])
    event["event_id"] = str(uuid.uuid4())
    event["payload"]["attendees"] = attendees  # type: ignore[index]
    return event


def district_summary_after(
    stack: Stack, receipt: dict[str, Any], dashboard: dict[str, str], timeout: float
) -> httpx.Response:
    """Ha Tinh city's summary once the projector has passed ``receipt`` (read-your-writes)."""
    summary = httpx.get(
        f"{stack.api_url}/v1/summary",
        params={"district": HA_TINH_CITY, "after": f"{receipt['partition']}:{receipt['offset']}"},
        headers=dashboard,
        timeout=timeout,
    )
    assert summary.status_code == 200, summary.text
    return summary


def test_a_posted_conference_is_served_by_the_summary_once_even_if_sent_twice(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path
) -> None:
    with running_stack(kafka_bootstrap, postgres_url, topic, tmp_path) as stack:
        district = {"Authorization": f"Bearer {stack.token('reporter', HA_TINH_CITY)}"}
        dashboard = {"Authorization": f"Bearer {stack.token('dashboard')}"}
        event = conference(attendees=137)

        first = httpx.post(f"{stack.ingest_url}/v1/events", json=event, headers=district)
        again = httpx.post(f"{stack.ingest_url}/v1/events", json=event, headers=district)

        assert first.status_code == 202, first.text
        receipt = first.json()
        assert receipt["status"] == "accepted"
        assert again.status_code == 202
        assert again.json() == {**receipt, "status": "duplicate"}
        summary = district_summary_after(stack, receipt, dashboard, timeout=15)
        [row] = summary.json()["rows"]
        assert (row["conferences"], row["conference_attendees"]) == (1, 137)
        assert "X-Projection-Lag-Ms" in summary.headers


def test_ingest_is_not_ready_while_the_broker_is_stopped_and_ready_again_after(
    kafka_bootstrap: str, sqlite_url: str, topic: str, tmp_path: Path
) -> None:
    control = broker_control()
    with running_stack(kafka_bootstrap, sqlite_url, topic, tmp_path, services=("ingest",)) as stack:
        district = {"Authorization": f"Bearer {stack.token('reporter', HA_TINH_CITY)}"}
        event = conference(attendees=40)
        subprocess.run([control, "stop"], check=True, capture_output=True)
        try:
            wait_for(f"{stack.ingest_url}/readyz", status=503, timeout=30)
            refused = httpx.post(
                f"{stack.ingest_url}/v1/events", json=event, headers=district, timeout=30
            )
            assert refused.status_code == 503
            assert refused.headers["Retry-After"]
            assert refused.headers["content-type"] == "application/problem+json"
        finally:
            subprocess.run([control, "start"], check=True, capture_output=True)
        wait_for(f"{stack.ingest_url}/readyz", status=200, timeout=60)
        retried = httpx.post(
            f"{stack.ingest_url}/v1/events", json=event, headers=district, timeout=30
        )
        assert retried.status_code == 202, retried.text
        assert retried.json()["status"] == "accepted"
        stored = [
            r for r in log_records(kafka_bootstrap, topic) if r["event_id"] == event["event_id"]
        ]
        assert len(stored) == 1


def test_the_projector_lives_through_a_broker_restart_and_projects_what_follows(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path
) -> None:
    control = broker_control()
    with running_stack(kafka_bootstrap, postgres_url, topic, tmp_path) as stack:
        district = {"Authorization": f"Bearer {stack.token('reporter', HA_TINH_CITY)}"}
        dashboard = {"Authorization": f"Bearer {stack.token('dashboard')}"}

        def post_and_read(attendees: int) -> dict[str, int]:
            receipt = httpx.post(
                f"{stack.ingest_url}/v1/events",
                json=conference(attendees=attendees),
                headers=district,
                timeout=30,
            ).json()
            [row] = district_summary_after(stack, receipt, dashboard, timeout=30).json()["rows"]
            return {k: row[k] for k in ("conferences", "conference_attendees")}

        assert post_and_read(30) == {"conferences": 1, "conference_attendees": 30}
        projector = stack.processes["projector"]
        subprocess.run([control, "stop"], check=True, capture_output=True)
        try:
            time.sleep(5)  # the projector's loop goes round many times with the broker gone
        finally:
            subprocess.run([control, "start"], check=True, capture_output=True)
        wait_for(f"{stack.ingest_url}/readyz", timeout=60)
        time.sleep(3)  # and again once it is back, with a new leader epoch
        assert projector.poll() is None, stack.log_text("projector")[-3000:]
        assert post_and_read(12) == {"conferences": 2, "conference_attendees": 42}
        assert projector.poll() is None
