"""Auditors against the real system: ingest -> Kafka -> projector -> SQL, and the audit API and CLI."""

from __future__ import annotations

import copy
import json
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer

from services.audit.log import KafkaLog, Slice
from shared.db.engine import make_engine
from shared.db.schema import read_models
from shared.examples import EXAMPLES
from shared.records import canonical_json, chain_hash, genesis_hash
from tests.support import Stack, running_stack

HA_TINH_CITY, BA_DINH = "436", "001"


def make_event(kind: str, district: str, occurred: str, **payload: Any) -> dict[str, Any]:
    event = copy.deepcopy(EXAMPLES[kind])
    event.update(event_id=str(uuid.uuid4()), unit_code=district, occurred_at=occurred)
    event["payload"].update(payload)
    return event


def summary(stack: Stack, token: str, receipts: list[dict[str, Any]], **params: str) -> Any:
    """The summary once the projector has passed every receipt (read-your-writes)."""
    after = ",".join(f"{r['partition']}:{r['offset']}" for r in receipts)
    response = httpx.get(
        f"{stack.api_url}/v1/summary",
        params={**params, "after": after},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def audit(stack: Stack, token: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{stack.api_url}/v1/audit/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def verification(stack: Stack, token: str) -> dict[str, Any]:
    """A whole-log verification, as an auditor runs it: start the job, follow it to its end."""
    headers = {"Authorization": f"Bearer {token}"}
    started = httpx.post(f"{stack.api_url}/v1/audit/verifications", headers=headers, timeout=30)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    deadline = time.monotonic() + 120
    while True:
        job = httpx.get(f"{stack.api_url}{location}", headers=headers, timeout=30).json()
        if job["status"] != "running":
            assert job["status"] == "done", job
            assert job["progress"]["records_read"] == job["progress"]["records_total"], job
            return dict(job["report"])
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def test_an_auditors_replay_of_a_district_returns_its_unique_accepted_events_once_in_log_order(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path
) -> None:
    with running_stack(kafka_bootstrap, postgres_url, topic, tmp_path) as stack:
        auditor = stack.token("auditor")
        ha_tinh = stack.token("reporter", HA_TINH_CITY)
        ours = [
            make_event("ConferenceHeld", HA_TINH_CITY, "2024-01-15", attendees=80),
            make_event("CaseResolved", HA_TINH_CITY, "2024-01-20"),
            make_event("OutreachSessionHeld", HA_TINH_CITY, "2024-02-01"),
        ]
        theirs = [make_event("CitizenTipsReceived", BA_DINH, "2024-01-16")]
        receipts = stack.post_batch(ha_tinh, ours[:2])
        receipts += stack.post_batch(stack.token("reporter", BA_DINH), theirs)
        receipts += stack.post_batch(ha_tinh, [ours[0], ours[2]])  # a resend: ingest says duplicate
        # Two ingest instances racing on one resend can both append it: put a true duplicate
        # of the first event's record in the log, after the others.
        first = receipts[0]
        with KafkaLog(kafka_bootstrap, topic) as log:
            [record] = log.read([Slice(first["partition"], first["offset"], first["offset"] + 1)])
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        duplicate = producer.send(topic, key=HA_TINH_CITY.encode(), value=record.value)
        duplicate_at = duplicate.get(timeout=30)
        producer.close()
        summary(stack, stack.token("dashboard"), receipts)

        lines = ndjson(audit(stack, auditor, "events", district=HA_TINH_CITY))
        cases = ndjson(audit(stack, auditor, "events", district=HA_TINH_CITY, type="CaseResolved"))
        everything = ndjson(audit(stack, auditor, "events"))

    assert [line["event_id"] for line in lines] == [e["event_id"] for e in ours]
    assert [line["offset"] for line in lines] == sorted(line["offset"] for line in lines)
    assert {line["partition"] for line in lines} == {first["partition"]}
    assert duplicate_at.partition == first["partition"]
    assert duplicate_at.offset > max(line["offset"] for line in lines)
    assert [line["event_id"] for line in cases] == [ours[1]["event_id"]]
    assert sorted(line["event_id"] for line in everything) == sorted(
        e["event_id"] for e in ours + theirs
    )
    # Each line is the stored record itself plus where it sits: its bytes give its chain hash.
    opening = lines[0]
    stored = {k: v for k, v in opening.items() if k not in ("partition", "offset", "chain_hash")}
    assert opening["offset"] == 0
    assert opening["chain_hash"] == chain_hash(
        genesis_hash(opening["partition"]), canonical_json(stored)
    )


def test_the_state_as_of_a_moment_equals_the_summary_the_api_served_at_that_moment(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path
) -> None:
    with running_stack(kafka_bootstrap, postgres_url, topic, tmp_path) as stack:
        auditor, dashboard = stack.token("auditor"), stack.token("dashboard")
        ha_tinh = stack.token("reporter", HA_TINH_CITY)
        early = [
            make_event("ConferenceHeld", HA_TINH_CITY, "2024-01-15", attendees=120),
            make_event("ProcedureTimeReduced", HA_TINH_CITY, "2024-02-10", reduction_percent=40.0),
        ]
        receipts = stack.post_batch(ha_tinh, early)
        receipts += stack.post_batch(
            stack.token("reporter", BA_DINH),
            [make_event("CaseResolved", BA_DINH, "2024-03-01")],
        )
        served_then = summary(stack, dashboard, receipts, group_by="district,month")["rows"]
        totals_then = summary(stack, dashboard, receipts)["rows"]
        moment = datetime.now(UTC)

        later = [
            make_event("ConferenceHeld", HA_TINH_CITY, "2024-01-16", attendees=30),
            make_event(
                "EventRetracted",
                HA_TINH_CITY,
                "2024-04-01",
                retracted_event_id=early[1]["event_id"],
                reason="báo cáo nhầm",
            ),
        ]
        receipts += stack.post_batch(ha_tinh, later)
        served_now = summary(stack, dashboard, receipts, group_by="district,month")["rows"]

        as_of_then = audit(
            stack, auditor, "state", as_of=moment.isoformat(), group_by="district,month"
        )
        totals_as_of = audit(stack, auditor, "state", as_of=moment.isoformat())
        as_of_now = audit(
            stack, auditor, "state", as_of=datetime.now(UTC).isoformat(), group_by="district,month"
        )

    assert served_now != served_then
    assert as_of_then.status_code == 200, as_of_then.text
    assert as_of_then.json()["rows"] == served_then
    assert totals_as_of.json()["rows"] == totals_then
    assert as_of_now.json()["rows"] == served_now


def test_verify_is_consistent_until_a_row_is_changed_by_hand_and_saved_heads_prove_the_log(
    kafka_bootstrap: str, postgres_url: str, topic: str, tmp_path: Path
) -> None:
    with running_stack(kafka_bootstrap, postgres_url, topic, tmp_path) as stack:
        auditor = stack.token("auditor")
        conference = make_event("ConferenceHeld", HA_TINH_CITY, "2024-05-05", attendees=64)
        receipts = stack.post_batch(
            stack.token("reporter", HA_TINH_CITY),
            [conference, make_event("ModelRecognized", HA_TINH_CITY, "2024-05-06")],
        )
        summary(stack, stack.token("dashboard"), receipts)
        consistent = verification(stack, auditor)
        scoped = audit(stack, auditor, "verify", province="42")

        heads_file, tampered_file = tmp_path / "heads.json", tmp_path / "tampered.json"
        exported = stack.ledger("verify", "--heads", "--out", str(heads_file))
        kept = stack.ledger("verify", "--against", str(heads_file))
        heads = json.loads(heads_file.read_text())
        [head] = heads["heads"]
        head["hash"] = "0" * 64
        tampered_file.write_text(json.dumps(heads))
        refuted = stack.ledger("verify", "--against", str(tampered_file))
        replayed = stack.ledger("replay", "--district", HA_TINH_CITY)

        engine = make_engine(postgres_url)
        figures = read_models.figures
        with engine.begin() as conn:
            conn.execute(
                figures.update()
                .where(figures.c.unit_code == HA_TINH_CITY, figures.c.day == date(2024, 5, 5))
                .values(conferences=7)
            )
        engine.dispose()
        changed = verification(stack, auditor)
        changed_province = audit(stack, auditor, "verify", province="42").json()
        elsewhere = audit(stack, auditor, "verify", province="01").json()

    assert consistent["status"] == "consistent"
    assert [h["offset"] for h in consistent["heads"]] == [receipts[-1]["offset"]]
    assert scoped.json()["status"] == "consistent"
    assert scoped.json()["checked"]["events"] == 2
    assert exported.returncode == 0, exported.stderr
    assert head["partition"] == receipts[-1]["partition"]
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert json.loads(kept.stdout)["status"] == "consistent"
    assert refuted.returncode == 1
    [wrong_head] = json.loads(refuted.stdout)["differences"]
    assert (wrong_head["kind"], wrong_head["partition"]) == ("saved_head", head["partition"])
    assert replayed.returncode == 0, replayed.stderr
    assert [json.loads(line)["event_id"] for line in replayed.stdout.splitlines()] == [
        r["event_id"] for r in receipts
    ]
    assert changed_province["differences"] == changed["differences"]
    assert elsewhere["status"] == "consistent"
    report = changed
    assert report["status"] == "inconsistent"
    [difference] = report["differences"]
    assert difference["table"] == "daily_figures"
    assert difference["key"] == {"day": "2024-05-05", "unit_code": HA_TINH_CITY}
    assert difference["columns"] == {"conferences": {"served": 7, "log": 1}}
    position = {"partition": receipts[0]["partition"], "offset": receipts[0]["offset"]}
    assert difference["positions"] == [position]
