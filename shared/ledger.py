"""The hash chain, and a whole log folded in memory: the read models the log alone implies.

``fold_log`` is the projection core (``shared.projection.project``) run over a whole log at once,
from nothing: the definition the served read models are held to in tests, at any size the test
can hold. Production code never folds a whole log in memory: the projector applies it batch by
batch, and verify compares it chunk by chunk (``services.audit.verify``). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from shared.folds import STORED_FIGURES
from shared.projection import CHANGE_ONLY, Position, Record, decode, project
from shared.records import chain_hash, genesis_hash

FigureKey = tuple[date, str]  # daily_figures' primary key: (day, unit_code)


@dataclass(frozen=True, slots=True)
class Head:
    """The chain hash after a partition's record at ``offset``: what an auditor keeps."""

    partition: int
    offset: int
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {"partition": self.partition, "offset": self.offset, "hash": self.hash}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Head:
        return cls(int(data["partition"]), int(data["offset"]), str(data["hash"]))


def chained(
    records: Iterable[Record], starts: Mapping[int, str] | None = None
) -> Iterator[tuple[Record, str]]:
    """Each record with its chain hash, records in log order within each partition.

    A partition's chain starts from ``starts[partition]`` (the hash just before its first record
    given) or, if absent, from its genesis hash.
    """
    last: dict[int, str] = dict(starts or {})
    for record in records:
        previous = last.get(record.partition) or genesis_hash(record.partition)
        last[record.partition] = chain_hash(previous, record.value)
        yield record, last[record.partition]


@dataclass
class Ledger:
    """The read models as a fresh fold of the log has them, keyed like the database's rows."""

    hashes: dict[Position, str] = field(default_factory=dict)
    dead_letters: dict[Position, str] = field(default_factory=dict)
    archive: dict[str, dict[str, Any]] = field(default_factory=dict)  # by event_id
    changes: dict[Position, dict[str, Any]] = field(default_factory=dict)  # figure_changes
    figures: dict[FigureKey, dict[str, Any]] = field(default_factory=dict)  # daily_figures
    lists: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # model -> id -> row

    def figures_received_until(self, moment: datetime) -> dict[FigureKey, dict[str, Any]]:
        """daily_figures as they stood once everything received by ``moment`` was applied."""
        figures: dict[FigureKey, dict[str, Any]] = {}
        for change in self.changes.values():
            if utc(change["received_at"]) > moment:
                continue
            key = (change["day"], change["unit_code"])
            row = figures.setdefault(
                key,
                {k: v for k, v in change.items() if k not in CHANGE_ONLY}
                | dict.fromkeys(STORED_FIGURES, 0),
            )
            for name in STORED_FIGURES:
                row[name] += change[name]
        return figures


def fold_log(records: Iterable[Record]) -> Ledger:
    """Fold a whole log (log order within each partition, each from offset 0) into a Ledger."""
    step = project(decode(records), {}, {})
    ledger = Ledger(hashes=step.hashes)
    ledger.dead_letters = {(r.partition, r.offset): reason for r, reason in step.dead_letters}
    ledger.archive = {row["event_id"]: row for row in step.archive}
    ledger.changes = {(c["partition"], c["offset"]): c for c in step.changes}
    ledger.figures = {(row["day"], row["unit_code"]): row for row in step.figures()}
    for model, rows in step.lists.items():
        ledger.lists[model] = {row["event_id"]: row for row in rows}
    return ledger


def utc(value: datetime) -> datetime:
    """An instant in UTC; a naive value (SQLite drops the offset) is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
