"""The canonical JSON of an event: its bytes are what receipts' digests and the log hold."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.records import canonical_json


def stdlib_canonical(data: Any) -> bytes:
    """The form every record and receipt digest was written in before orjson."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# What event bodies are made of: text (any code point a client may send, control characters
# and Vietnamese included), 64-bit counts, amounts in hundredths, flags, nulls, nested.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
hundredths = st.integers(0, 100_000_000).map(lambda cents: round(cents / 100, 2))
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | hundredths | texts
bodies = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500)
@given(bodies)
def test_canonical_json_is_byte_for_byte_the_stdlib_form(body: Any) -> None:
    assert canonical_json(body) == stdlib_canonical(body)


def test_canonical_json_sorts_keys_and_keeps_text_as_utf8() -> None:
    body = {"title": "Hội nghị", "attendees": 120, "online": False, "hours": 1.5}
    assert canonical_json(body) == (
        '{"attendees":120,"hours":1.5,"online":false,"title":"Hội nghị"}'.encode()
    )
