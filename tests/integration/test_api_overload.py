"""Requests that cannot sink the query API: past its limit of requests in flight it answers 503
at once, and a statement that runs past its time limit is cancelled and answered 503.

The API runs as a real process on PostgreSQL; the requests it holds are held for real (waiting
for a receipt that only the test lets through, or behind a lock the test holds).
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from shared.db.engine import make_engine
from shared.db.schema import read_models
from tests.integration.test_ingest_http import assert_problem
from tests.support import running_stack


def metric(api_url: str, name: str) -> float:
    text = httpx.get(f"{api_url}/metrics", timeout=10).text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_past_its_limit_the_api_answers_503_at_once_and_still_answers_the_requests_it_took(
    kafka_bootstrap: str,
    postgres_url: str,
    topic: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_MAX_CONCURRENT_REQUESTS", "2")
    monkeypatch.setenv("READ_YOUR_WRITES_TIMEOUT_SECONDS", "60")
    with (
        running_stack(kafka_bootstrap, postgres_url, topic, tmp_path, services=("api",)) as stack,
        ThreadPoolExecutor(2) as pool,
    ):
        headers = {"Authorization": f"Bearer {stack.token('dashboard')}"}
        # Two requests wait for a receipt no projector will apply: the API holds both.
        held = [
            pool.submit(
                httpx.get,
                f"{stack.api_url}/v1/summary",
                params={"after": "0:0"},
                headers=headers,
                timeout=60,
            )
            for _ in range(2)
        ]
        deadline = time.monotonic() + 30
        while metric(stack.api_url, "http_requests_in_flight") < 2:
            assert time.monotonic() < deadline, "the API never held both requests"
            assert not any(request.done() for request in held), held[0].result().text
            time.sleep(0.05)

        refused = httpx.get(f"{stack.api_url}/v1/summary", headers=headers, timeout=60)
        body = assert_problem(refused, 503)
        assert int(refused.headers["retry-after"]) > 0
        assert "as many requests as it can" in body["detail"]
        # Answered while both held requests were still in flight: not queued behind them.
        assert not any(request.done() for request in held)
        assert metric(stack.api_url, "http_requests_shed_total") == 1
        assert httpx.get(f"{stack.api_url}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{stack.api_url}/readyz", timeout=10).status_code == 200

        # The receipt is applied (as a projector's batch would): the held requests are answered.
        engine = make_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(read_models.offsets).values(
                    topic=topic,
                    partition=0,
                    next_offset=1,
                    chain_hash="0" * 64,
                    updated_at=datetime.now(UTC),
                )
            )
        engine.dispose()
        for request in held:
            answered = request.result(timeout=60)
            assert answered.status_code == 200, answered.text
            assert answered.json()["freshness"]["applied_offsets"] == {"0": 1}
        again = httpx.get(f"{stack.api_url}/v1/summary", headers=headers, timeout=60)
        assert again.status_code == 200, again.text
        assert metric(stack.api_url, "http_requests_shed_total") == 1


def test_a_statement_that_runs_past_the_time_limit_is_cancelled_and_answered_503(
    kafka_bootstrap: str,
    postgres_url: str,
    topic: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_STATEMENT_TIMEOUT_SECONDS", "0.5")
    with running_stack(kafka_bootstrap, postgres_url, topic, tmp_path, services=("api",)) as stack:
        headers = {"Authorization": f"Bearer {stack.token('dashboard')}"}
        summary = f"{stack.api_url}/v1/summary"
        engine = make_engine(postgres_url)
        try:
            with engine.connect() as conn, conn.begin():
                # The summary's table is locked: its query waits, and the API cancels it.
                conn.exec_driver_sql(
                    f"LOCK TABLE {read_models.figures.name} IN ACCESS EXCLUSIVE MODE"
                )
                cancelled = httpx.get(summary, params={"group_by": "province"}, headers=headers)
                body = assert_problem(cancelled, 503)
                assert int(cancelled.headers["retry-after"]) > 0
                assert "cancelled" in body["detail"]
                # The API holds nothing of it: other requests are answered meanwhile.
                assert httpx.get(f"{stack.api_url}/v1/me", headers=headers).status_code == 200
            answered = httpx.get(summary, params={"group_by": "province"}, headers=headers)
            assert answered.status_code == 200, answered.text
        finally:
            engine.dispose()
