"""Hypothesis throws arbitrary bodies at both ingest endpoints: never a 5xx, always problem+json."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import EVENT_TYPES
from shared.examples import EXAMPLES
from tests.integration.conftest import Ingest

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def event_like(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly-valid events with some fields replaced by anything at all."""
    kind = draw(st.sampled_from(sorted(EVENT_TYPES)))
    body: dict[str, Any] = json.loads(json.dumps(EXAMPLES[kind]))
    body["event_id"] = str(draw(st.uuids()))
    payload = body["payload"]
    for key in draw(st.lists(st.sampled_from(sorted(payload)), max_size=3, unique=True)):
        payload[key] = draw(json_values)
    for key in draw(
        st.lists(
            st.sampled_from(["district_code", "occurred_at", "type", "schema_version", "reporter"]),
            max_size=2,
        )
    ):
        body[key] = draw(json_values)
    if draw(st.booleans()):
        body[draw(st.text(max_size=8))] = draw(json_values)
    return body


bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    event_like().map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.binary(max_size=200),
)
batch_bodies = st.one_of(
    st.lists(event_like(), max_size=5).map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def assert_no_server_error(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


@FUZZ
@given(body=bodies)
def test_no_single_event_body_gets_a_5xx(ingest: Ingest, body: bytes) -> None:
    headers = {**ingest.auth(), "Content-Type": "application/json"}
    assert_no_server_error(ingest.client.post("/v1/events", content=body, headers=headers))


@FUZZ
@given(body=batch_bodies, ndjson=st.booleans())
def test_no_batch_body_gets_a_5xx(ingest: Ingest, body: bytes, ndjson: bool) -> None:
    content_type = "application/x-ndjson" if ndjson else "application/json"
    headers = {**ingest.auth(), "Content-Type": content_type}
    assert_no_server_error(ingest.client.post("/v1/events/batch", content=body, headers=headers))
