"""A batch validated as a whole from its bytes must accept exactly what the item-by-item path
accepts, as the same events: it only makes the common case cheaper."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest import intake
from services.web.auth import Principal
from services.web.problems import Problem
from shared import events
from shared.examples import EXAMPLES

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

CALLER = Principal("t1", "reporter", "436", None)
LIMIT = 1000


def one_at_a_time(body: bytes) -> list[events.Event]:
    """What the item-by-item path accepts (it raises a Problem for anything else)."""
    items = intake.parse_batch_body(body, "application/json")
    accepted = []
    for item in items:
        event, _, _ = intake.validate_event(item, CALLER, NOW)
        if event is None:
            raise AssertionError("the item-by-item path refuses it")
        accepted.append(event)
    return accepted


def examples() -> list[dict[str, Any]]:
    items = []
    for example in EXAMPLES.values():
        item = copy.deepcopy(example)
        item["event_id"] = str(uuid.uuid4())
        items.append(item)
    return items


def test_a_valid_batch_is_accepted_as_a_whole_as_the_same_events() -> None:
    body = json.dumps(examples()).encode()
    whole = intake._accepted_as_a_whole(body, CALLER, NOW, LIMIT)
    assert whole is not None  # the fast path is taken for the common case
    assert whole == one_at_a_time(body)
    assert intake.validate_batch(body, "application/json", CALLER, NOW, LIMIT) == whole


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda items: items.append({**items[0], "unit_code": "437"}), id="other"),
        pytest.param(lambda items: items.append({**items[0], "unit_code": "999"}), id="unknown"),
        pytest.param(lambda items: items[0]["payload"].update(attendees=-1), id="invalid"),
        pytest.param(lambda items: items.clear(), id="empty"),
    ],
)
def test_a_batch_that_fails_any_check_is_left_to_the_item_by_item_path(change: Any) -> None:
    items = examples()
    change(items)
    body = json.dumps(items).encode()
    assert intake._accepted_as_a_whole(body, CALLER, NOW, LIMIT) is None
    with pytest.raises(Problem) as refused:
        intake.validate_batch(body, "application/json", CALLER, NOW, LIMIT)
    assert refused.value.status in (403, 422)


def test_nan_is_refused_as_unreadable_json_as_before() -> None:
    body = json.dumps(examples()).replace('"connection_points": 13', '"connection_points": NaN')
    assert intake._accepted_as_a_whole(body.encode(), CALLER, NOW, LIMIT) is None
    with pytest.raises(Problem) as refused:
        intake.validate_batch(body.encode(), "application/json", CALLER, NOW, LIMIT)
    assert refused.value.status == 400


def test_a_version_1_batch_takes_the_item_by_item_path_and_is_upcast() -> None:
    items = examples()
    for item in items:
        item["schema_version"] = 1
        item["district_code"] = item.pop("unit_code")
    body = json.dumps(items).encode()
    assert intake._accepted_as_a_whole(body, CALLER, NOW, LIMIT) is None
    accepted = intake.validate_batch(body, "application/json", CALLER, NOW, LIMIT)
    assert [(e.schema_version, e.unit_code) for e in accepted] == [(2, "436")] * len(items)


# Values near the rules' edges.
EDGES: list[Any] = [
    *["2999-01-01", "2021-09-15T14:00:00", "2021-09-15", "2021-09-15T14:00:00Z", "15/09/2021"],
    *[" 436", "437", "", " x ", "e\u0301", "1", "6F1C2A52-8D0E-4D0B-9A55-0C1F7C1E2A01", "x" * 501],
    *[1.5, 1.25, 1.0, 0, -1, 10**7 + 1, 2**64, True, None, [], {}, ["a"], [1]],
]


def test_every_field_at_every_edge_is_accepted_alike() -> None:
    """Each field of each example replaced by each edge value, or removed, one at a time."""
    compared = accepted = 0
    for example in examples():
        for where in ("event", "payload"):
            for key in [*(example if where == "event" else example["payload"]), "extra"]:
                for value in [*EDGES, ...]:
                    item = copy.deepcopy(example)
                    target = item if where == "event" else item["payload"]
                    if value is ...:
                        target.pop(key, None)
                    else:
                        target[key] = value
                    body = json.dumps([item]).encode()
                    whole = intake._accepted_as_a_whole(body, CALLER, NOW, LIMIT)
                    compared += 1
                    if whole is not None:
                        accepted += 1
                        assert whole == one_at_a_time(body), (key, value)
    assert accepted > 100 and compared - accepted > 1000  # both outcomes were exercised


# Any JSON value, to put anywhere in an event.
json_values = st.sampled_from(EDGES) | st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated_batches(draw: st.DrawFn) -> bytes:
    """Valid examples with a few fields replaced, removed or added, sometimes with a key
    repeated in the text (JSON readers differ on repeats more than on anything else)."""
    items = draw(st.lists(st.sampled_from(examples()), min_size=1, max_size=3))
    items = copy.deepcopy(items)
    for _ in range(draw(st.integers(0, 3))):
        item = draw(st.sampled_from(items))
        payload = item.get("payload")
        target = payload if isinstance(payload, dict) and draw(st.booleans()) else item
        key = draw(st.sampled_from([*target, "extra", "schema_version"]))
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = draw(json_values)
    text = json.dumps(items, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        text = text.replace('{"event_id"', '{"unit_code": "437", "event_id"', 1)
    return text.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_batches())
def test_whatever_the_whole_batch_accepts_the_item_by_item_path_accepts_alike(body: bytes) -> None:
    whole = intake._accepted_as_a_whole(body, CALLER, NOW, LIMIT)
    if whole is not None:
        assert whole == one_at_a_time(body)
