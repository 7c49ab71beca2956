"""Answers remembered by the projection position they were computed at.

The read models change only when the projector advances its offsets (in the same transaction),
so an answer computed at or after a position is still right for any request that read that same
position: the position in the key is what invalidates it. Under a steady dashboard load most
summaries are then served without touching the database.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any


class AnswerMemory:
    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def recall(self, question: Hashable, position: Mapping[str, int]) -> Any:
        """The answer remembered for this question at this position, or None."""
        key = _key(question, position)
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        return None

    def get_or_compute(
        self, question: Hashable, position: Mapping[str, int], compute: Callable[[], Any]
    ) -> Any:
        if (remembered := self.recall(question, position)) is not None:
            return remembered
        key = _key(question, position)
        answer = compute()  # outside the lock: concurrent misses may compute twice, harmlessly
        with self._lock:
            self._answers[key] = answer
            while len(self._answers) > self.capacity:
                self._answers.popitem(last=False)
        return answer


def _key(question: Hashable, position: Mapping[str, int]) -> Hashable:
    return (question, tuple(sorted(position.items())))
