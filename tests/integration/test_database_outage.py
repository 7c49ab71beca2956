"""Both HTTP services while their PostgreSQL database refuses connections: 503, not 500, except
for summaries the query API can answer from memory.

The outage is real: the test's database stops accepting connections and every session on it is
terminated (what a database restart or failover does to clients), then it is let back in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.api.app import create_app as create_api
from services.web.auth import create_token
from shared.db.engine import make_engine
from shared.settings import ApiSettings
from tests.integration.conftest import event, start_ingest
from tests.integration.test_ingest_http import assert_problem


@contextmanager
def database_down(server_url: str, database_url: str) -> Iterator[None]:
    name = sa.make_url(database_url).database
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
                ),
                {"name": name},
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()


FROM_MEMORY = "api_summaries_served_from_memory_total"


def assert_unavailable(response: Any) -> None:
    body = assert_problem(response, 503)
    assert response.headers["retry-after"]
    assert "database" in body["detail"]


def test_ingest_answers_503_and_appends_nothing_while_the_database_is_down_then_accepts(
    kafka_bootstrap: str, postgres_server_url: str, postgres_url: str, topic: str
) -> None:
    for ingest in start_ingest(kafka_bootstrap, postgres_url, topic):
        headers = ingest.auth()
        assert ingest.client.post("/v1/events", json=event(), headers=headers).status_code == 202
        waiting = event()

        with database_down(postgres_server_url, postgres_url):
            # The token is remembered; the receipts lookup meets the outage.
            assert_unavailable(ingest.client.post("/v1/events", json=waiting, headers=headers))
            assert_unavailable(
                ingest.client.post("/v1/events/batch", json=[event(), event()], headers=headers)
            )
            ready = ingest.client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["database"] is False
            assert len(ingest.records()) == 1  # nothing of the refused requests was appended

        retried = ingest.client.post("/v1/events", json=waiting, headers=headers)
        assert retried.status_code == 202 and retried.json()["status"] == "accepted"
        assert [r["event_id"] for r in ingest.records()].count(waiting["event_id"]) == 1
        assert ingest.client.get("/readyz").json() == {
            "status": "ok",
            "kafka": True,
            "database": True,
        }


def test_the_query_api_serves_remembered_summaries_marked_old_and_503_otherwise_while_the_database_is_down(
    kafka_bootstrap: str, postgres_server_url: str, postgres_url: str, topic: str
) -> None:
    engine = make_engine(postgres_url)
    token = create_token(engine, "dashboard")[1]
    engine.dispose()
    settings = ApiSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=postgres_url,
        events_topic=topic,
        token_cache_seconds=0.2,  # the outage outlasts the token's memory
    )
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_api(settings), raise_server_exceptions=False) as client:
        before = client.get("/v1/summary", headers=headers)
        assert before.status_code == 200
        assert "age" not in before.headers

        from_memory_before = REGISTRY.get_sample_value(FROM_MEMORY) or 0
        with database_down(postgres_server_url, postgres_url):
            time.sleep(0.5)  # the freshness reading and the token are then asked anew
            served = client.get("/v1/summary", headers=headers)
            assert served.status_code == 200, served.text
            assert int(served.headers["age"]) >= 0
            assert REGISTRY.get_sample_value(FROM_MEMORY) == from_memory_before + 1
            assert served.json()["rows"] == before.json()["rows"]
            freshness = served.json()["freshness"]
            assert freshness["applied_offsets"] == before.json()["freshness"]["applied_offsets"]
            assert (freshness["lag_ms"], freshness["log_end_offsets"]) == (None, None)
            # Never computed, or waiting for receipts, or a list: nothing to serve.
            assert_unavailable(client.get("/v1/summary?province=42", headers=headers))
            assert_unavailable(client.get("/v1/summary?after=0:0", headers=headers))
            assert_unavailable(client.get("/v1/conferences", headers=headers))
            assert client.get("/readyz").status_code == 503

        again = client.get("/v1/summary?province=42", headers=headers)
        assert again.status_code == 200 and "age" not in again.headers
