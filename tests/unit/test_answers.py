"""Remembered answers: one computation per question and projection position."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from services.api.answers import AnswerMemory


class Counting:
    """A slow computation that counts how often it ran."""

    def __init__(self, result: object = "rows", error: Exception | None = None) -> None:
        self.calls = 0
        self.result, self.error = result, error
        self._lock = threading.Lock()

    def __call__(self) -> object:
        with self._lock:
            self.calls += 1
        time.sleep(0.05)
        if self.error:
            raise self.error
        return self.result


def test_requests_that_miss_together_share_one_computation() -> None:
    memory, compute = AnswerMemory(), Counting()

    async def many() -> list[object]:
        asks = [memory.answer(("summary",), {"0": 5}, compute) for _ in range(30)]
        return await asyncio.gather(*asks)

    assert asyncio.run(many()) == [("rows", 0.0)] * 30
    assert compute.calls == 1


def test_a_new_position_is_computed_and_an_old_one_is_remembered() -> None:
    memory, compute = AnswerMemory(), Counting()

    async def asks() -> None:
        await memory.answer(("summary",), {"0": 5}, compute)
        await memory.answer(("summary",), {"0": 6}, compute)
        await memory.answer(("summary",), {"0": 5}, compute)

    asyncio.run(asks())
    assert compute.calls == 2


def test_a_failed_computation_fails_its_waiters_and_is_not_remembered() -> None:
    memory, failing = AnswerMemory(), Counting(error=RuntimeError("database gone"))

    async def asks() -> list[object]:
        together = [memory.answer(("summary",), {"0": 5}, failing) for _ in range(5)]
        return await asyncio.gather(*together, return_exceptions=True)

    results = asyncio.run(asks())
    assert [str(r) for r in results] == ["database gone"] * 5
    assert failing.calls == 1
    working = Counting()
    assert asyncio.run(memory.answer(("summary",), {"0": 5}, working)) == ("rows", 0.0)
    assert working.calls == 1


def test_a_caller_that_goes_away_does_not_cancel_the_others() -> None:
    memory, compute = AnswerMemory(), Counting()

    async def asks() -> object:
        leaving = asyncio.ensure_future(memory.answer(("summary",), {"0": 5}, compute))
        staying = asyncio.ensure_future(memory.answer(("summary",), {"0": 5}, compute))
        await asyncio.sleep(0.01)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        return await staying

    assert asyncio.run(asks()) == ("rows", 0.0)
    assert compute.calls == 1


def test_while_a_new_position_is_computed_a_young_answer_is_served_with_its_age() -> None:
    memory = AnswerMemory()
    old, new = Counting("old rows"), Counting("new rows")

    async def asks() -> None:
        await memory.answer(("summary",), {"0": 5}, old)
        meanwhile = await asyncio.gather(
            *[memory.answer(("summary",), {"0": 9}, new, stale_for=10) for _ in range(20)]
        )
        assert {answer for answer, _ in meanwhile} == {"old rows"}
        assert all(age > 0 for _, age in meanwhile)
        await asyncio.sleep(0.2)  # the refresh the first of them started is done
        assert await memory.answer(("summary",), {"0": 9}, new, stale_for=10) == ("new rows", 0.0)

    asyncio.run(asks())
    assert new.calls == 1  # one refresh, not one per request


def test_without_stale_for_or_past_it_a_request_waits_for_its_position() -> None:
    memory = AnswerMemory()

    async def asks() -> None:
        await memory.answer(("summary",), {"0": 5}, Counting("old rows"))
        assert await memory.answer(("summary",), {"0": 6}, Counting("newer")) == ("newer", 0.0)
        await asyncio.sleep(0.1)
        too_old = await memory.answer(("summary",), {"0": 7}, Counting("newest"), stale_for=0.05)
        assert too_old == ("newest", 0.0)

    asyncio.run(asks())


def test_a_young_enough_answer_is_served_without_starting_a_computation() -> None:
    memory, new = AnswerMemory(), Counting("new rows")

    async def asks() -> tuple[object, float]:
        await memory.answer(("summary",), {"0": 5}, Counting("old rows"))
        return await memory.answer(("summary",), {"0": 9}, new, stale_for=10, refresh_every=5)

    answer, age = asyncio.run(asks())
    assert answer == "old rows" and 0 < age < 5
    assert new.calls == 0


def test_the_newest_answer_of_a_question_is_recalled_with_its_age_whatever_its_position() -> None:
    memory = AnswerMemory()

    async def asks() -> None:
        await memory.answer(("summary",), {"0": 5}, Counting("older"))
        await memory.answer(("summary",), {"0": 6}, Counting("newer"))

    asyncio.run(asks())
    time.sleep(0.1)
    newest = memory.newest(("summary",))
    assert newest is not None
    answer, age = newest
    assert answer == "newer" and 0.1 <= age < 5
    assert memory.newest(("summary", "42")) is None
