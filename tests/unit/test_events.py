"""The event catalogue: every rule of ../shared/DESIGN.md, and history that stays readable."""

from __future__ import annotations

import copy
import json
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.events import (
    CURRENT_VERSION,
    EVENT_TYPES,
    UnknownSchemaVersion,
    parse_event,
    upcast,
)
from shared.examples import EXAMPLES

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def example(event_type: str, /, **payload_changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(EXAMPLES[event_type])
    event["event_id"] = str(uuid.uuid4())
    for key, value in payload_changes.items():
        if value is ...:
            event["payload"].pop(key)
        else:
            event["payload"][key] = value
    return event


def error_fields(data: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        parse_event(data, now=NOW)
    return {".".join(str(p) for p in e["loc"][1:]) for e in caught.value.errors()}


def test_every_golden_file_of_every_version_still_parses() -> None:
    files = sorted(GOLDEN.glob("v*/*.json"))
    versions = sorted({f.parent.name for f in files})
    assert versions == [f"v{n}" for n in range(1, max(CURRENT_VERSION.values()) + 1)]
    for version in versions:  # one file per type and version ever emitted
        assert {f.stem for f in files if f.parent.name == version} == set(EVENT_TYPES)
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        event = parse_event(data)
        assert event.type == path.stem
        assert event.unit_code == data.get("unit_code", data.get("district_code"))


def test_every_type_has_an_example_that_is_accepted() -> None:
    assert set(EXAMPLES) == set(EVENT_TYPES)
    for kind in EXAMPLES:
        assert parse_event(example(kind), now=NOW).type == kind


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("ConferenceHeld", {"attendees": -1}, "payload.attendees"),
        ("ConferenceHeld", {"organizers": []}, "payload.organizers"),
        ("ConferenceHeld", {"kind": "party"}, "payload.kind"),
        ("ConferenceHeld", {"online": "yes"}, "payload.online"),
        ("ConferenceHeld", {"connection_points": -3}, "payload.connection_points"),
        ("ConferenceHeld", {"title": ...}, "payload.title"),
        ("ProgramSigned", {"parties": ["Ban Dân vận"]}, "payload.parties"),
        ("ProgramSigned", {"period_start": 2026, "period_end": 2022}, "payload"),
        ("ProgramSigned", {"content_items": []}, "payload.content_items"),
        ("CaseResolved", {"resolution": "solved"}, "payload.resolution"),
        ("CaseResolved", {"category": "theft"}, "payload.category"),
        ("OutreachSessionHeld", {"sessions": 0}, "payload.sessions"),
        ("OutreachSessionHeld", {"broadcast_hours": -1.5}, "payload.broadcast_hours"),
        ("OutreachSessionHeld", {"broadcast_hours": 1.234}, "payload.broadcast_hours"),
        ("OutreachSessionHeld", {"leaflets": 10**12}, "payload.leaflets"),
        ("OutreachSessionHeld", {"broadcast_hours": 1e308}, "payload.broadcast_hours"),
        ("ProcedureTimeReduced", {"reduction_percent": -1e300}, "payload.reduction_percent"),
        ("OutreachSessionHeld", {"attendees": "100"}, "payload.attendees"),
        ("CitizenTipsReceived", {"tips": 10, "valuable": 11}, "payload"),
        ("CitizenTipsReceived", {"tips": 0}, "payload.tips"),
        ("CitizenTipsReceived", {"cases_solved": -1}, "payload.cases_solved"),
        ("ModelRecognized", {"field": ""}, "payload.field"),
        ("CommendationAwarded", {"recipient_kind": "team"}, "payload.recipient_kind"),
        ("ProcedureTimeReduced", {"reduction_percent": 0}, "payload.reduction_percent"),
        ("ProcedureTimeReduced", {"reduction_percent": 100.5}, "payload.reduction_percent"),
        ("ProcedureTimeReduced", {"reduction_percent": float("nan")}, "payload.reduction_percent"),
        ("EventRetracted", {"retracted_event_id": "not-a-uuid"}, "payload.retracted_event_id"),
        ("EventRetracted", {"surplus": 1}, "payload.surplus"),
    ],
)
def test_each_catalogue_rule_rejects_its_violation_naming_the_field(
    kind: str, change: dict[str, Any], field: str
) -> None:
    assert field in error_fields(example(kind, **change))


def test_envelope_rules_name_their_fields() -> None:
    data = example("ModelRecognized")
    data.update(event_id="x", unit_code="4360", occurred_at="yesterday", extra=True)
    assert {"event_id", "unit_code", "occurred_at", "extra"} <= error_fields(data)


@pytest.mark.parametrize("code", ["1", "4360", "180730", "legacy:34", " 42", "42\n", 42])
def test_a_unit_code_is_two_three_or_five_digits_as_a_string(code: Any) -> None:
    data = example("ModelRecognized")
    data["unit_code"] = code
    assert "unit_code" in error_fields(data)


def test_a_version_2_event_may_not_name_a_district_code() -> None:
    data = example("ModelRecognized")
    data["district_code"] = data["unit_code"]
    assert "district_code" in error_fields(data)


def test_a_version_1_event_names_its_unit_district_code_and_is_upcast_to_unit_code() -> None:
    data = example("ModelRecognized")
    data["district_code"] = data.pop("unit_code")
    data["schema_version"] = 1
    event = parse_event(data, now=NOW)
    assert (event.schema_version, event.unit_code) == (2, "436")


def test_a_version_1_event_naming_both_codes_is_refused_not_overwritten() -> None:
    data = example("ModelRecognized")
    data.update(schema_version=1, district_code="437")
    assert "district_code" in error_fields(data)


def test_an_event_more_than_a_day_ahead_is_rejected_but_a_day_ahead_is_not() -> None:
    ahead = example("ModelRecognized")
    ahead["occurred_at"] = (NOW + timedelta(hours=23)).isoformat()
    parse_event(ahead, now=NOW)
    ahead["occurred_at"] = (NOW + timedelta(days=2)).isoformat()
    assert "occurred_at" in error_fields(ahead)


def test_replaying_history_does_not_apply_the_future_rule() -> None:
    later = example("ModelRecognized")
    later["occurred_at"] = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    assert parse_event(later).type == "ModelRecognized"  # no "now": a stored event is read back


def test_vietnamese_text_is_stored_as_nfc_whatever_form_it_came_in() -> None:
    title = "Hội nghị tổng kết công tác dân vận"
    data = example("ConferenceHeld", title=unicodedata.normalize("NFD", title))
    event = parse_event(data, now=NOW)
    assert event.payload.title == unicodedata.normalize("NFC", title)  # type: ignore[union-attr]
    assert event.payload.title != data["payload"]["title"]  # type: ignore[union-attr]


def test_a_date_and_a_local_datetime_fall_on_the_vietnamese_calendar_day() -> None:
    late_evening_utc = example("ModelRecognized")
    late_evening_utc["occurred_at"] = "2024-03-31T18:30:00+00:00"  # 01:30 on 1 April in Hà Nội
    assert str(parse_event(late_evening_utc).occurred_day) == "2024-04-01"
    plain = example("ModelRecognized")
    plain["occurred_at"] = "2024-03-31"
    assert str(parse_event(plain).occurred_day) == "2024-03-31"


def test_an_unknown_type_is_rejected() -> None:
    data = example("ModelRecognized")
    data["type"] = "PartyHeld"
    with pytest.raises(ValidationError):
        parse_event(data)


def test_upcasters_run_in_a_loop_before_validation() -> None:
    old = {"type": "ModelRecognized", "schema_version": 1, "payload": {"title": "x"}}
    steps = {
        ("ModelRecognized", 1): lambda d: {**d, "payload": {"name": d["payload"]["title"]}},
        ("ModelRecognized", 2): lambda d: {**d, "payload": {**d["payload"], "field": "an ninh"}},
    }
    CURRENT_VERSION["ModelRecognized"] = 3
    try:
        upcasted = upcast(old, steps)
    finally:
        CURRENT_VERSION["ModelRecognized"] = 2
    assert upcasted == {
        "type": "ModelRecognized",
        "schema_version": 3,
        "payload": {"name": "x", "field": "an ninh"},
    }


def test_a_version_newer_than_this_build_is_refused_not_guessed() -> None:
    data = example("ModelRecognized")
    data["schema_version"] = 7
    with pytest.raises(UnknownSchemaVersion):
        parse_event(data)
