"""Ingest over HTTP against the real broker and database: receipts, validation, auth, limits."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from services.web.auth import create_token, revoke_token
from shared.db.engine import make_engine
from shared.examples import EXAMPLES
from tests.integration.conftest import HA_TINH_CITY, HONG_LINH, Ingest, event, start_ingest


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    return body


# --- receipts -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_every_event_type_is_accepted_and_lands_in_the_log_keyed_by_district(
    ingest: Ingest, kind: str
) -> None:
    sent = event(kind)
    response = ingest.client.post("/v1/events", json=sent, headers=ingest.auth())
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["status"] == "accepted" and receipt["event_id"] == sent["event_id"]
    [stored] = [r for r in ingest.records() if r["event_id"] == sent["event_id"]]
    assert (stored["_partition"], stored["_offset"]) == (receipt["partition"], receipt["offset"])
    assert stored["_key"] == HA_TINH_CITY.encode()
    assert stored["payload"] == json.loads(json.dumps(sent["payload"]))
    assert stored["received_at"]


def test_a_resend_gets_the_original_receipt_and_is_not_appended_again(ingest: Ingest) -> None:
    sent = event()
    headers = ingest.auth()
    first = ingest.client.post("/v1/events", json=sent, headers=headers).json()
    second = ingest.client.post("/v1/events", json=sent, headers=headers).json()
    assert second == {**first, "status": "duplicate"}
    assert [r["event_id"] for r in ingest.records()].count(sent["event_id"]) == 1


def test_the_same_event_id_with_a_different_body_is_a_conflict(ingest: Ingest) -> None:
    sent = event(attendees=10)
    headers = ingest.auth()
    ingest.client.post("/v1/events", json=sent, headers=headers)
    changed = {**sent, "payload": {**sent["payload"], "attendees": 11}}
    body = assert_problem(ingest.client.post("/v1/events", json=changed, headers=headers), 409)
    assert body["conflicting_event_ids"] == [sent["event_id"]]


def test_nfd_and_nfc_spellings_of_one_event_are_the_same_event(ingest: Ingest) -> None:
    import unicodedata

    sent = event(title="Hội nghị ký kết chương trình phối hợp")
    nfd = copy.deepcopy(sent)
    nfd["payload"]["title"] = unicodedata.normalize("NFD", sent["payload"]["title"])
    headers = ingest.auth()
    ingest.client.post("/v1/events", json=sent, headers=headers)
    assert (
        ingest.client.post("/v1/events", json=nfd, headers=headers).json()["status"] == "duplicate"
    )


# --- batches ------------------------------------------------------------------------------


def test_a_batch_gets_one_receipt_per_item_in_order(ingest: Ingest) -> None:
    items = [event(kind) for kind in sorted(EXAMPLES)]
    response = ingest.client.post("/v1/events/batch", json=items, headers=ingest.auth())
    assert response.status_code == 202, response.text
    receipts = response.json()["receipts"]
    assert [r["event_id"] for r in receipts] == [i["event_id"] for i in items]
    assert {r["status"] for r in receipts} == {"accepted"}
    assert len(ingest.records()) == len(items)


def test_an_ndjson_batch_is_accepted_like_a_json_array(ingest: Ingest) -> None:
    items = [event(), event("OutreachSessionHeld")]
    body = "\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n"
    response = ingest.client.post(
        "/v1/events/batch",
        content=body.encode(),
        headers={**ingest.auth(), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    assert len(response.json()["receipts"]) == 2


def test_one_invalid_item_rejects_the_whole_batch_naming_every_bad_index(ingest: Ingest) -> None:
    items = [
        event(),
        event(attendees=-5),
        event(),
        event("CitizenTipsReceived", tips=3, valuable=9),
    ]
    body = assert_problem(
        ingest.client.post("/v1/events/batch", json=items, headers=ingest.auth()), 422
    )
    assert body["invalid_items"] == [1, 3]
    assert {e["field"] for e in body["errors"]} == {"1.payload.attendees", "3.payload"}
    assert ingest.records() == []


def test_a_batch_repeating_an_event_appends_it_once(ingest: Ingest) -> None:
    sent = event()
    receipts = ingest.client.post(
        "/v1/events/batch", json=[sent, sent], headers=ingest.auth()
    ).json()["receipts"]
    assert [r["status"] for r in receipts] == ["accepted", "duplicate"]
    assert receipts[0]["offset"] == receipts[1]["offset"]
    assert len(ingest.records()) == 1


def test_a_batch_over_the_item_limit_or_empty_is_rejected(ingest: Ingest) -> None:
    headers = ingest.auth()
    assert_problem(ingest.client.post("/v1/events/batch", json=[], headers=headers), 422)
    small = {**event(), "payload": {**event()["payload"], "organizers": ["x"], "title": "t"}}
    too_many = [{**small, "event_id": str(uuid.uuid4())} for _ in range(1001)]
    assert_problem(ingest.client.post("/v1/events/batch", json=too_many, headers=headers), 422)
    assert ingest.records() == []


# --- bad input of every shape ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"event_id": ', "application/json", 400),
        (b"\xff\xfe not utf-8", "application/json", 400),
        (b'{"type": NaN}', "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b"null", "application/json", 422),
        (b'"text"', "application/json", 422),
        (b"{}", "text/plain", 415),
        (b"{}", "", 415),
        (b"1" * 5000, "application/json", 400),
    ],
)
def test_malformed_bodies_get_a_clear_4xx(
    ingest: Ingest, body: bytes, content_type: str, status: int
) -> None:
    headers = {**ingest.auth(), "Content-Type": content_type}
    assert_problem(ingest.client.post("/v1/events", content=body, headers=headers), status)
    assert ingest.records() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"payload": None}, "payload"),
        ({"payload": {}}, "payload.title"),
        ({"type": "PartyCongressHeld"}, "type"),
        ({"surplus": 1}, "surplus"),
        ({"district_code": "999"}, "district_code"),
        ({"occurred_at": "2999-01-01"}, "occurred_at"),
        ({"schema_version": 9}, "schema_version"),
        (
            {"payload": {**EXAMPLES["ConferenceHeld"]["payload"], "attendees": 10**30}},
            "payload.attendees",
        ),
    ],
)
def test_invalid_events_are_422_naming_the_field(
    ingest: Ingest, change: dict[str, Any], field: str
) -> None:
    body = assert_problem(
        ingest.client.post("/v1/events", json={**event(), **change}, headers=ingest.auth()), 422
    )
    assert field in {e["field"] for e in body["errors"]}
    assert ingest.records() == []


def test_a_body_over_one_mebibyte_is_413(ingest: Ingest) -> None:
    huge = event(title="x" * (1024 * 1024 + 1))
    assert_problem(ingest.client.post("/v1/events", json=huge, headers=ingest.auth()), 413)


# --- who may write -----------------------------------------------------------------------


def test_the_auth_matrix(ingest: Ingest) -> None:
    sent = event()
    post = ingest.client.post
    assert_problem(post("/v1/events", json=sent), 401)
    assert_problem(
        post("/v1/events", json=sent, headers={"Authorization": "Bearer dl_forged"}), 401
    )
    assert_problem(post("/v1/events", json=sent, headers={"Authorization": "Basic abc"}), 401)
    for role in ("dashboard", "auditor"):
        token = ingest.token(role)
        assert_problem(
            post("/v1/events", json=sent, headers={"Authorization": f"Bearer {token}"}), 403
        )
    assert_problem(post("/v1/events", json=sent, headers=ingest.auth(HONG_LINH)), 403)
    batch = [event(), event(unit=HONG_LINH)]
    body = assert_problem(post("/v1/events/batch", json=batch, headers=ingest.auth()), 403)
    assert body["forbidden_items"] == [1]
    assert ingest.records() == []


def test_a_revoked_token_is_refused_once_the_token_memory_expires(
    kafka_bootstrap: str, sqlite_url: str, topic: str
) -> None:
    for ingest in start_ingest(kafka_bootstrap, sqlite_url, topic, token_cache_seconds=0):
        engine = make_engine(ingest.database_url)
        token_id, token = create_token(engine, "reporter", unit_code=HA_TINH_CITY)
        headers = {"Authorization": f"Bearer {token}"}
        assert ingest.client.post("/v1/events", json=event(), headers=headers).status_code == 202
        assert revoke_token(engine, token_id)
        engine.dispose()
        assert_problem(ingest.client.post("/v1/events", json=event(), headers=headers), 401)


def test_tokens_are_stored_only_as_hashes(ingest: Ingest) -> None:
    import sqlalchemy as sa

    from shared.db.schema import tokens

    token = ingest.token()
    engine = make_engine(ingest.database_url)
    with engine.connect() as conn:
        stored = [tuple(map(str, row)) for row in conn.execute(sa.select(tokens))]
    engine.dispose()
    assert stored and not any(token in column for row in stored for column in row)


def test_a_token_over_its_rate_limit_gets_429_with_retry_after(
    kafka_bootstrap: str, sqlite_url: str, topic: str
) -> None:
    for limited in start_ingest(
        kafka_bootstrap, sqlite_url, topic, rate_limit_per_second=0.5, rate_limit_burst=2
    ):
        headers = limited.auth()
        statuses = [
            limited.client.post("/v1/events", json=event(), headers=headers).status_code
            for _ in range(3)
        ]
        assert statuses[:2] == [202, 202]
        refused = limited.client.post("/v1/events", json=event(), headers=headers)
        body = assert_problem(refused, 429)
        assert int(refused.headers["Retry-After"]) >= 1 and body["detail"]
        assert (
            limited.client.post("/v1/events", json=event(), headers=limited.auth()).status_code
            == 202
        )


def test_health_readiness_metrics_and_openapi_answer(ingest: Ingest) -> None:
    assert ingest.client.get("/healthz").json() == {"status": "ok", "kafka": None, "database": None}
    ready = ingest.client.get("/readyz").json()
    assert ready["kafka"] is True and ready["database"] is True
    ingest.client.post("/v1/events", json=event(), headers=ingest.auth())
    assert 'ingest_events_total{outcome="accepted"}' in ingest.client.get("/metrics").text
    document = ingest.client.get("/openapi.json").json()
    examples = document["paths"]["/v1/events"]["post"]["requestBody"]["content"][
        "application/json"
    ]["examples"]
    assert set(examples) == set(EXAMPLES)
