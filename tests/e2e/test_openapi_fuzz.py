"""Schemathesis against both OpenAPI documents, on the real services, with all its checks.

Each operation gets its documented examples, the coverage phase's boundary and negative
cases (missing and malformed values, methods the path does not have) and a bounded number of
generated requests, valid and invalid. Every answer must be what the document says: a
documented status with its headers and content type, a body matching its schema, invalid
input refused with a 4xx, valid input accepted, never a 5xx, and no answer without the token.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from schemathesis.config import PositiveDataAcceptanceConfig, SchemathesisConfig
from schemathesis.engine import Status, StopReason, from_schema
from schemathesis.engine.events import EngineFinished, FatalError, NonFatalError, ScenarioFinished
from schemathesis.schemas import BaseSchema

from services.topics import ensure_topics
from shared.examples import EXAMPLES
from tests.support import Stack, running_stack

MAX_QUERY_BYTES = 32 * 1024
MAX_EXAMPLES = 20  # generated requests per operation and mode; the whole file takes ~1 min

# Operations whose valid-looking input can still be refused with a 422 that no schema can
# foresee: a code of the right shape that the registry lacks (or that is not in the province
# given), `from` after `to`, a cursor not given out by this API, a day that does not exist
# (2023-02-30 has the right shape), an event dated in the future. The 422 is documented there.
REGISTRY_AND_RANGE_CHECKED = (
    r"^/v1/(units|summary|programs|conferences|cases|registry-exceptions|audit/.*|events.*)$"
)
# A receipt in `after` that the log has not reached is waited for, bounded, then answered 504
# with Retry-After: the documented read-your-writes contract, not a server fault.
WAITS_FOR_RECEIPTS = r"^/v1/(summary|programs|conferences|cases|registry-exceptions)$"
POSITIVE_DEFAULT = PositiveDataAcceptanceConfig().expected_statuses  # 2xx, 3xx, 401, 403...


def config(token: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"bearer": {"bearer": token}}},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
            # Every check is on. ignored_auth sends each operation once without a token and
            # once with a wrong one. max_response_time bounds every answer (an after= wait is
            # 0.1 s here). use_after_free, ensure_resource_availability and
            # object_level_authorization look for a resource created by one request and read,
            # deleted or read by another identity through a link: these documents have no
            # such resource (events are read back as aggregates, never by id), so those three
            # run on every answer, the stateful phase's included, but have nothing to find.
            "checks": {"max_response_time": 10},
            "operations": [
                {
                    "include-path-regex": REGISTRY_AND_RANGE_CHECKED,
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": [*POSITIVE_DEFAULT, "422"],
                        }
                    },
                },
                {
                    "include-path-regex": WAITS_FOR_RECEIPTS,
                    "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "4xx", "504"]}},
                },
            ],
        }
    )


@pytest.fixture(scope="module")
def fuzzed_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("fuzz")
    database_url = f"sqlite:///{Path(logs) / 'ledger.db'}"
    from shared.db.engine import migrate

    migrate(database_url)
    topic = f"test-fuzz-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, topic, 3, f"{topic}.dead-letters")
    with pytest.MonkeyPatch.context() as env:
        # Generated receipts are mostly past the log's end: each waits this long for its 504.
        env.setenv("READ_YOUR_WRITES_TIMEOUT_SECONDS", "0.1")
        with running_stack(kafka_bootstrap, database_url, topic, logs) as stack:
            # Something for the lists, the summary and the audit log to show.
            after = stack.post_reports({"436": list(EXAMPLES.values())})
            projected = httpx.get(
                f"{stack.api_url}/v1/summary",
                params={"after": after},
                headers={"Authorization": f"Bearer {stack.token('auditor')}"},
                timeout=30,
            )
            deadline = time.monotonic() + 60
            while projected.status_code == 504 and time.monotonic() < deadline:
                time.sleep(0.2)
                projected = httpx.get(projected.request.url, headers=projected.request.headers)
            assert projected.status_code == 200, projected.text
            yield stack


def load_document(schema_url: str, token: str) -> BaseSchema:
    schema = schemathesis.openapi.from_url(schema_url, config=config(token))

    @schema.hook
    def filter_query(context: Any, query: dict[str, Any] | None) -> bool:
        # uvicorn refuses a request head over 64 KiB with a plain-text 400 of its own before
        # the application sees it; a negative `after` of 8,001 four-byte characters, sent
        # percent-encoded, is 96 KiB. That limit is the HTTP server's, not the documents'.
        return not query or len(urlencode(query, doseq=True)) <= MAX_QUERY_BYTES

    return schema


def run_schemathesis(schema_url: str, token: str) -> tuple[set[str], list[str]]:
    """Every phase and check schemathesis's CLI runs, on one document; the operations it
    tested, and a line per failure (each check's finding with a curl to reproduce it)."""
    schema = load_document(schema_url, token)
    tested: set[str] = set()
    failures: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, ScenarioFinished):
            if event.label and event.status is not Status.SKIP:
                tested.add(event.label)
            if event.status is Status.ERROR:
                failures.append(f"[{event.phase.value}] {event.label}: error {event.skip_reason}")
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        failures.append(
                            f"[{event.phase.value}] {event.label}: {check.name}: "
                            f"{failure.title}\n{failure.message}\n"
                            f"{check.failure_info.code_sample}"
                        )
        elif isinstance(event, NonFatalError | FatalError):
            failures.append(f"error: {event!r}")
        elif isinstance(event, EngineFinished) and event.stop_reason is not StopReason.COMPLETED:
            failures.append(f"stopped: {event.stop_reason}")
    return tested, sorted(set(failures))


def test_the_ingest_service_answers_as_its_document_says(fuzzed_stack: Stack) -> None:
    token = fuzzed_stack.token("reporter", "436")
    tested, failures = run_schemathesis(f"{fuzzed_stack.ingest_url}/openapi.json", token)

    assert not failures, "\n\n".join(failures)
    assert {"POST /v1/events", "POST /v1/events/batch", "GET /readyz"} <= tested


def test_the_query_api_answers_as_its_document_says(fuzzed_stack: Stack) -> None:
    tested, failures = run_schemathesis(
        f"{fuzzed_stack.api_url}/openapi.json", fuzzed_stack.token("auditor")
    )

    assert not failures, "\n\n".join(failures)
    assert {"GET /v1/summary", "GET /v1/audit/state", "GET /v1/cases"} <= tested
