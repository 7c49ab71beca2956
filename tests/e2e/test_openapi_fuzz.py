"""Schemathesis against both OpenAPI documents, on the real services: a bounded number of
generated requests per operation; none may get a 5xx, and every error is problem+json."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from services.topics import ensure_topics
from tests.support import Stack, running_stack

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzzed_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("fuzz")
    database_url = f"sqlite:///{Path(logs) / 'ledger.db'}"
    from shared.db.engine import migrate

    migrate(database_url)
    topic = f"test-fuzz-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, topic, 3, f"{topic}.dead-letters")
    with running_stack(kafka_bootstrap, database_url, topic, logs) as stack:
        yield stack


def fuzz_every_operation(schema_url: str, base_url: str, token: str) -> int:
    """Run generated cases for every operation of one document; return how many operations."""
    schema = schemathesis.openapi.from_url(schema_url)
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            assert_no_server_error(case.call(base_url=base_url, headers=headers))

        check()
    return len(operations)


def assert_no_server_error(response: Any) -> None:
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json"), (
            response.text[:200]
        )


def test_generated_ingest_requests_never_get_a_5xx(fuzzed_stack: Stack) -> None:
    token = fuzzed_stack.token("reporter", "436")
    url = fuzzed_stack.ingest_url
    assert fuzz_every_operation(f"{url}/openapi.json", url, token) >= 5


def test_generated_query_api_requests_never_get_a_5xx(fuzzed_stack: Stack) -> None:
    token = fuzzed_stack.token("auditor")
    url = fuzzed_stack.api_url
    assert fuzz_every_operation(f"{url}/openapi.json", url, token) >= 8
