"""The OpenAPI documents say what the services do: every error a problem+json with the
statuses each operation can answer, the bearer token, and parameter schemas exactly as strict
as their validation (tests/e2e/test_openapi_fuzz.py holds the running services to them)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.api.app import create_app as create_api
from services.api.params import GROUP_BY_PATTERN, RECEIPTS_PATTERN, UNIT_PATTERN
from services.api.read_your_writes import parse_after
from services.api.routes.audit import INSTANT_PATTERN, instant
from services.api.summary import parse_group_by
from services.audit.log import parse_instant
from services.ingest.app import create_app as create_ingest
from services.web.problems import PROBLEM_JSON, Problem
from shared.events import EVENT_TYPES, VIETNAM_TZ


@cache
def api_document() -> dict[str, Any]:
    return create_api().openapi()


@cache
def ingest_document() -> dict[str, Any]:
    return create_ingest().openapi()


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [p for p in operation.get("parameters", []) if p["name"] == name]
    return found


READ = (401, 422, 503)
SCOPED = (401, 403, 422, 503)
WAITING = (401, 403, 422, 503, 504)
POSTING = (400, 401, 403, 409, 413, 415, 422, 429, 503)
ERRORS = {
    "api": {
        "GET /v1/provinces": READ,
        "GET /v1/districts": READ,
        "GET /v1/units": READ,
        "GET /v1/me": (401, 503),
        "GET /v1/summary": WAITING,
        "GET /v1/audit/events": SCOPED,
        "GET /v1/audit/state": SCOPED,
        "GET /v1/audit/verify": SCOPED,
        "POST /v1/audit/verifications": (401, 403, 409, 503),
        "GET /v1/audit/verifications/{job_id}": (401, 403, 404, 422, 503),
        "GET /v1/programs": WAITING,
        "GET /v1/conferences": WAITING,
        "GET /v1/cases": WAITING,
        "GET /v1/registry-exceptions": WAITING,
        "GET /healthz": (),
        "GET /readyz": (503,),
        "GET /metrics": (),
    },
    "ingest": {
        "POST /v1/events": POSTING,
        "POST /v1/events/batch": POSTING,
        "GET /healthz": (),
        "GET /readyz": (503,),
        "GET /metrics": (),
    },
}
DOCUMENTS = {"api": api_document, "ingest": ingest_document}
NOT_PROBLEMS = {"GET /readyz"}  # its 503 is the health report, as its 200 is
HEADERS = {
    401: {"WWW-Authenticate"},
    429: {"Retry-After"},
    503: {"Retry-After"},
    504: {"Retry-After"},
}


@pytest.mark.parametrize("service", ["api", "ingest"])
def test_each_operation_documents_exactly_the_errors_it_can_answer(service: str) -> None:
    documented = {
        label: tuple(sorted(int(s) for s in operation["responses"] if int(s) >= 400))
        for label, operation in operations(DOCUMENTS[service]()).items()
    }

    assert documented == ERRORS[service]


@pytest.mark.parametrize("service", ["api", "ingest"])
def test_every_error_is_a_problem_with_its_own_status_and_headers(service: str) -> None:
    document = DOCUMENTS[service]()
    for label, operation in operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) < 400 or label in NOT_PROBLEMS:
                continue
            [(media_type, content)] = response["content"].items()
            assert media_type == PROBLEM_JSON, label
            assert content["schema"] == {
                "allOf": [{"$ref": "#/components/schemas/Problem"}],
                "properties": {"status": {"const": int(status)}},
            }
            headers = set(response.get("headers", {}))
            assert headers == HEADERS.get(int(status), set()), (label, status)
    assert "HTTPValidationError" not in str(document)
    assert "ValidationError" not in document["components"]["schemas"]


def test_the_problem_schema_describes_what_problems_carry() -> None:
    schemas = api_document()["components"]["schemas"]
    problem = schemas["Problem"]
    assert problem["required"] == ["type", "title", "status"]
    assert {"detail", "instance", "errors", "invalid_items", "forbidden_items"} <= set(
        problem["properties"]
    )
    assert set(schemas["FieldError"]["required"]) == {"loc", "field", "message", "type"}
    body = Problem(422, "Unprocessable Content", "bad", errors=[], invalid_items=[1]).response(
        "/v1/events"
    )
    assert body.media_type == PROBLEM_JSON


@pytest.mark.parametrize("service", ["api", "ingest"])
def test_the_token_is_the_bearer_security_scheme_not_a_header_parameter(service: str) -> None:
    document = DOCUMENTS[service]()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for label, operation in operations(document).items():
        authenticated = " /v1/" in label
        assert operation.get("security") == ([{"bearer": []}] if authenticated else None), label
        names = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}
        assert not names & {"authorization", "accept", "content-type"}, label


def test_every_list_summary_and_state_documents_its_csv() -> None:
    for label, operation in operations(api_document()).items():
        has_format = any(p["name"] == "format" for p in operation.get("parameters", []))
        success = operation["responses"].get("200") or operation["responses"]["202"]
        content = success["content"]
        assert ("text/csv" in content) == has_format, label
        if has_format:
            assert parameter(operation, "format")["schema"]["enum"] == ["json", "csv"]


def test_the_parameters_are_as_strict_as_their_validation() -> None:
    ops = operations(api_document())
    summary, state, events = (
        ops["GET /v1/summary"],
        ops["GET /v1/audit/state"],
        ops["GET /v1/audit/events"],
    )
    for operation in (summary, state):
        assert parameter(operation, "province")["schema"]["pattern"] == r"^(legacy:)?[0-9]{2}$"
        assert parameter(operation, "unit")["schema"]["pattern"] == UNIT_PATTERN
        assert parameter(operation, "district")["schema"]["pattern"] == UNIT_PATTERN
        assert parameter(operation, "frame")["schema"]["enum"] == ["current", "as_reported"]
        assert parameter(operation, "group_by")["schema"]["pattern"] == GROUP_BY_PATTERN
        assert parameter(operation, "from")["schema"]["format"] == "date"
    assert parameter(summary, "after")["schema"]["pattern"] == RECEIPTS_PATTERN
    assert parameter(state, "as_of")["required"] is True
    assert parameter(state, "as_of")["schema"]["pattern"] == INSTANT_PATTERN
    assert parameter(events, "from")["schema"]["pattern"] == INSTANT_PATTERN
    assert parameter(events, "type")["schema"]["enum"] == sorted(EVENT_TYPES)
    assert parameter(ops["GET /v1/provinces"], "edition")["schema"]["enum"] == ["legacy", "2025"]
    assert parameter(ops["GET /v1/units"], "level")["schema"]["enum"] == [
        "province",
        "district",
        "commune",
    ]
    for operation in ops.values():
        for p in operation.get("parameters", []):
            assert "anyOf" not in p["schema"], "a query parameter is a string or absent, never null"
            assert r"\d" not in p["schema"].get("pattern", ""), "\\d takes other scripts' digits"


# --- each pattern against the code that reads the value ------------------------------------

TOKENS = ["province", "unit", "district", "month", "quarter", "year", "week", "", " unit", "Unit"]


@given(st.lists(st.sampled_from(TOKENS), max_size=5).map(",".join))
def test_group_by_matches_its_pattern_exactly_where_parse_group_by_takes_it(value: str) -> None:
    matches = re.search(GROUP_BY_PATTERN, value) is not None
    try:
        parse_group_by(value)
        parsed = True
    except ValueError:
        parsed = False
    assert not matches or parsed  # the pattern admits nothing the parser refuses
    if "" not in value.split(",") and " " not in value:
        assert matches == parsed or value == ""  # and, spaces and empty parts aside, all it takes


@given(st.text(alphabet="0123456789:,²٣ -", max_size=30))
def test_after_matches_its_pattern_exactly_where_parse_after_takes_it(value: str) -> None:
    matches = re.search(RECEIPTS_PATTERN, value) is not None
    if matches:
        parse_after(value)  # every receipt the pattern admits is read
    elif value.isascii() and " " not in value:
        with pytest.raises(Problem):  # and, spaces aside, the parser refuses what it does not
            parse_after(value)


ZONES = st.sampled_from([None, UTC, VIETNAM_TZ, timezone(-timedelta(hours=9, minutes=30))])


@given(
    st.one_of(
        st.dates().map(date.isoformat),
        st.datetimes(timezones=ZONES).map(datetime.isoformat),
        st.datetimes(timezones=ZONES).map(lambda d: d.isoformat(timespec="minutes")),
        st.datetimes(timezones=ZONES).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    )
)
def test_the_instant_pattern_takes_what_isoformat_writes(value: str) -> None:
    assert re.search(INSTANT_PATTERN, value), value
    assert parse_instant(value)


@given(st.from_regex(INSTANT_PATTERN, fullmatch=True).filter(str.isascii))
def test_an_instant_of_the_pattern_is_read_or_a_422(value: str) -> None:
    try:
        instant("as_of", value, end_of_day=True)
    except Problem as problem:  # no such day (02-30), or past datetime's ends (9999-12-31)
        assert problem.status == 422
