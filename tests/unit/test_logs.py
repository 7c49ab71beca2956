"""The log of a task retried in a loop: one line when it starts failing, one when it works again."""

from __future__ import annotations

import logging

import pytest

from shared.logs import RepeatedFailure


def test_an_outage_is_logged_once_with_its_trace_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.repeated")
    outage = RepeatedFailure(logger, "writing receipts")
    with caplog.at_level(logging.INFO, logger="test.repeated"):
        outage.succeeded()  # working all along: nothing to say
        for attempt in range(5):
            outage.failed(ConnectionError(f"refused #{attempt}"))
        outage.succeeded()
        outage.succeeded()
        outage.failed(ConnectionError("refused again"))

    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages == [
        ("ERROR", "writing receipts failed; retrying until it works"),
        ("WARNING", "writing receipts works again"),
        ("ERROR", "writing receipts failed; retrying until it works"),
    ]
    first, back, again = caplog.records
    assert first.exc_info is not None and str(first.exc_info[1]) == "refused #0"
    assert back.fields["after_s"] >= 0  # type: ignore[attr-defined]
    assert again.exc_info is not None and str(again.exc_info[1]) == "refused again"
