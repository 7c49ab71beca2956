"""Comparing what is stored with what the log implies, a run of positions at a time.

Verify (``services.audit.verify``) reads the log in chunks, runs the projection core on each
(``shared.projection.project``) and hands the rows it gives, with the rows the database holds at
the same positions, to ``compare_chunk``. Each difference is a JSON-ready dict naming what
differs (a table and row key, or a partition and offset), both values, and the log positions of
the events behind it, so an auditor can replay exactly those. Nothing here does I/O, and nothing
holds more than a chunk: ``Findings`` keeps the first differences and counts the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import Any, TypeVar
from uuid import UUID

from shared.ledger import utc
from shared.projection import Position, Step

Difference = dict[str, Any]
K = TypeVar("K")  # a row key: event_id, (day, unit_code) or (partition, offset)
LIST_MODELS: tuple[str, ...] = ("programs", "conferences", "cases")
# How many positions one difference lists; a count says how many there are in all.
MAX_POSITIONS = 20


@dataclass
class Findings:
    """The differences found so far: the first ``limit`` in full, and how many in all."""

    limit: int
    shown: list[Difference] = field(default_factory=list)
    total: int = 0
    # partition -> [the first chain mismatch, how many]: a rewritten record changes its own hash
    # and every later one, so the first position tells where, the count how far
    chain: dict[int, list[Any]] = field(default_factory=dict)

    def add(self, difference: Difference) -> None:
        self.total += 1
        if len(self.shown) < self.limit:
            self.shown.append(difference)

    def extend(self, differences: Iterable[Difference]) -> None:
        for difference in differences:
            self.add(difference)

    def merge(self, other: Findings) -> None:
        """Add what another check found (of other partitions: their chain breaks are apart)."""
        self.counted(other.total, other.shown[: max(0, self.limit - len(self.shown))])
        self.chain.update(other.chain)

    def counted(self, count: int, shown: list[Difference]) -> None:
        """``count`` differences, of which ``shown`` are described (a query's first rows)."""
        self.extend(shown)
        self.total += count - len(shown)

    def chain_mismatch(self, partition: int, offset: int, served: str, log: str | None) -> None:
        found = self.chain.get(partition)
        if found is None:
            self.chain[partition] = [
                {
                    "kind": "chain",
                    "table": "event_archive",
                    "partition": partition,
                    "offset": offset,
                    "problem": "the stored chain hash differs from the log's from this position",
                    "served": served,
                    "log": log,
                    "positions": [position((partition, offset))],
                },
                1,
            ]
            return
        found[1] += 1
        if len(found[0]["positions"]) < MAX_POSITIONS:
            found[0]["positions"].append(position((partition, offset)))

    def report(self) -> tuple[int, list[Difference]]:
        """(how many differences in all, the ones shown): chain breaks first."""
        chain = [first | {"mismatches": count} for _, (first, count) in sorted(self.chain.items())]
        return self.total + len(chain), (chain + self.shown)[: self.limit]


@dataclass
class StoredRows:
    """What the database holds for one chunk of one partition's positions."""

    archive: dict[str, dict[str, Any]] = field(default_factory=dict)  # by event_id
    changes: dict[Position, dict[str, Any]] = field(default_factory=dict)
    dead_letters: dict[Position, str] = field(default_factory=dict)
    # list model -> event_id -> row, for the events archived in the chunk
    lists: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # event_id -> (retracted_by, province_code), for the targets of the chunk's retractions
    retracted: dict[str, tuple[str | None, str]] = field(default_factory=dict)


def compare_chunk(
    step: Step,
    hashes: Mapping[Position, str],
    stored: StoredRows,
    findings: Findings,
    *,
    province: str | None = None,
) -> None:
    """Every difference between the rows ``step`` gives and the stored ones; ``hashes`` is the
    log's chain hash at each of the chunk's positions.

    With ``province``, only that province's rows count (``stored`` holds only its rows, and the
    dead letters only of the records ``step`` was given).
    """

    def in_scope(row: Mapping[str, Any]) -> bool:
        return province is None or row["province_code"] == province

    expected_archive = {row["event_id"]: row for row in step.archive if in_scope(row)}
    positions = {
        event_id: (row["partition"], row["offset"]) for event_id, row in expected_archive.items()
    }
    for row in stored.archive.values():
        at = (row["partition"], row["offset"])
        if hashes.get(at) != row["chain_hash"]:
            findings.chain_mismatch(at[0], at[1], row["chain_hash"], hashes.get(at))
    findings.extend(
        row_differences(
            "event_archive",
            lambda event_id: {"event_id": event_id},
            expected_archive,
            stored.archive,
            lambda event_id: _event_positions(event_id, positions, stored.archive),
            # the chain is compared above, where it can tell where it broke; retracted_by with
            # the retraction, which may come chunks later
            ignore=("chain_hash", "retracted_by"),
        )
    )
    findings.extend(
        row_differences(
            "figure_changes",
            lambda at: position(at),
            {at: row for at, row in _changes(step).items() if in_scope(row)},
            stored.changes,
            lambda at: [at],
        )
    )
    for model in LIST_MODELS:
        expected = {
            row["event_id"]: row
            for row in step.lists.get(model, [])
            # retracted by a later chunk's retraction (checked there): its row is gone
            if in_scope(row) and stored.archive.get(row["event_id"], {}).get("retracted_by") is None
        }
        findings.extend(
            row_differences(
                model,
                lambda event_id: {"event_id": event_id},
                expected,
                stored.lists.get(model, {}),
                lambda event_id: _event_positions(event_id, positions, stored.archive),
            )
        )
    findings.extend(
        row_differences(
            "dead_letters",
            lambda at: position(at),
            {(r.partition, r.offset): {"reason": reason} for r, reason in step.dead_letters},
            {at: {"reason": reason} for at, reason in stored.dead_letters.items()},
            lambda at: [at],
        )
    )
    for target, retraction in step.retracted.items():
        retracted_by, target_province = stored.retracted.get(target, (None, None))
        if province is not None and target_province not in (province, None):
            continue
        if retracted_by != retraction:
            findings.add(
                {
                    "kind": "row",
                    "table": "event_archive",
                    "key": {"event_id": target},
                    "problem": "the row's values differ from the log's",
                    "columns": {"retracted_by": {"served": retracted_by, "log": retraction}},
                    "positions": [
                        position(positions[event_id])
                        for event_id in (target, retraction)
                        if event_id in positions
                    ],
                }
            )


def _changes(step: Step) -> dict[Position, dict[str, Any]]:
    return {(row["partition"], row["offset"]): row for row in step.changes}


def head_difference(
    kind: str, partition: int, offset: int, served: str, log: str | None, *, saved: bool
) -> Difference:
    """A chain head (the projector's stored one, or one an auditor saved) the log disagrees
    with: a head proves its partition's whole prefix, so any byte rewritten, record removed or
    inserted at or before it changes the hash."""
    if log is None:
        problem = (
            "the log no longer reaches this position"
            if saved
            else "the log ends before the projector's stored position"
        )
    else:
        problem = (
            "the log was rewritten at or before this position"
            if saved
            else "the log does not hash to the projector's stored head"
        )
    difference: Difference = {"kind": kind, "partition": partition, "offset": offset}
    if not saved:
        difference["table"] = "projector_offsets"
    return difference | {
        "problem": problem,
        ("saved" if saved else "served"): served,
        "log": log,
        "positions": [position((partition, offset))],
    }


def row_differences[K](
    table: str,
    describe: Callable[[K], dict[str, Any]],
    expected: Mapping[K, Mapping[str, Any]],
    served: Mapping[K, Mapping[str, Any]],
    positions: Callable[[K], list[Position]],
    *,
    ignore: Iterable[str] = (),
    absent: Mapping[str, Any] | None = None,
) -> list[Difference]:
    """Rows the log implies and the database lacks, has too, or holds with other values."""
    skipped = set(ignore)
    differences: list[Difference] = []
    for key in sorted(_unequal(expected, served, skipped)):  # type: ignore[type-var]
        log_row = expected.get(key, absent)
        served_row = served.get(key, absent)
        if log_row is None or served_row is None:
            problem = "missing" if served_row is None else "unexpected"
            columns = {}
        else:
            columns = {
                name: {"served": plain(served_row.get(name)), "log": plain(value)}
                for name, value in log_row.items()
                # plain() only where the values differ as they come: most rows are equal
                if name not in skipped
                and value != (stored := served_row.get(name))
                and plain(value) != plain(stored)
            }
            if not columns:
                continue
            problem = "differs"
        differences.append(
            {
                "kind": "row",
                "table": table,
                "key": describe(key),
                "problem": PROBLEMS[problem],
                "columns": columns,
                "positions": [position(p) for p in positions(key)],
            }
        )
    return differences


def _unequal[K](
    expected: Mapping[K, Mapping[str, Any]],
    served: Mapping[K, Mapping[str, Any]],
    skipped: set[str],
) -> list[K]:
    """The keys of the rows that may differ: all but those whose compared values are equal
    as they come. Most rows are equal: their values are taken and compared as two tuples (in C),
    with the column names of the first expected row (rows built by one function share them)."""
    first = next(iter(expected.values()), None)
    if first is None:
        return list(served)
    compared = [name for name in first if name not in skipped]
    if len(compared) < 2:  # (one name: itemgetter gives a value, not a tuple)
        return list(expected.keys() | served.keys())
    names, values = first.keys(), itemgetter(*compared)
    left = [key for key in served if key not in expected]
    for key, log_row in expected.items():
        served_row = served.get(key)
        try:
            if (
                served_row is not None
                and log_row.keys() == names
                and values(log_row) == values(served_row)
            ):
                continue
        except KeyError:  # the served row lacks a column: compared by name
            pass
        left.append(key)
    return left


PROBLEMS = {
    "missing": "the log implies this row; the read model lacks it",
    "unexpected": "the read model has this row; the log does not imply it",
    "differs": "the row's values differ from the log's",
}


def _event_positions(
    event_id: str, logged: Mapping[str, Position], archive: Mapping[str, Mapping[str, Any]]
) -> list[Position]:
    found: list[Position] = []
    if event_id in logged:
        found.append(logged[event_id])
    if event_id in archive:
        stored = (archive[event_id]["partition"], archive[event_id]["offset"])
        if stored not in found:
            found.append(stored)
    return found


def position(at: Position) -> dict[str, int]:
    return {"partition": at[0], "offset": at[1]}


def plain(value: Any) -> Any:
    """One representation per value, whichever database (or the fold) it came from."""
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value
