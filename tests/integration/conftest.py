"""Ingest in process (FastAPI TestClient) against the real broker and database."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.ingest.app import create_app
from services.web.auth import create_token
from shared.db.engine import make_engine
from shared.examples import EXAMPLES
from shared.settings import IngestSettings
from tests.support import log_records

HA_TINH_CITY = "436"
HONG_LINH = "437"  # another district of Hà Tĩnh


def event(kind: str = "ConferenceHeld", unit: str = HA_TINH_CITY, **payload: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLES[kind])
    body["event_id"] = str(uuid.uuid4())
    body["unit_code"] = unit
    body["payload"].update(payload)
    return body


@dataclass
class Ingest:
    client: TestClient
    bootstrap: str
    topic: str
    database_url: str

    def token(self, role: Any = "reporter", unit: str | None = HA_TINH_CITY) -> str:
        engine = make_engine(self.database_url)
        try:
            return create_token(engine, role, unit_code=unit if role == "reporter" else None)[1]
        finally:
            engine.dispose()

    def auth(self, unit: str = HA_TINH_CITY) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token('reporter', unit)}"}

    def records(self) -> list[dict[str, Any]]:
        return log_records(self.bootstrap, self.topic)


def start_ingest(
    kafka_bootstrap: str, database_url: str, topic: str, **overrides: Any
) -> Iterator[Ingest]:
    settings = IngestSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        events_topic=topic,
        produce_timeout_seconds=5,
        **overrides,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Ingest(client, kafka_bootstrap, topic, database_url)


@pytest.fixture
def ingest(kafka_bootstrap: str, sqlite_url: str, topic: str) -> Iterator[Ingest]:
    yield from start_ingest(kafka_bootstrap, sqlite_url, topic)
