"""Comparing what is served and stored with a fresh fold of the log.

The caller reads the database into ``ServedModels`` and folds the log (up to the projector's
stored offsets) into a ``Ledger``; ``compare`` lists every difference. Each difference is a
JSON-ready dict naming what differs (a table and row key, or a partition and offset), the two
values, and the log positions of the events behind it, so an auditor can replay exactly those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar
from uuid import UUID

from shared.folds import STORED_FIGURES
from shared.ledger import FigureKey, Head, Ledger, Position, utc

Difference = dict[str, Any]
K = TypeVar("K")  # a row key: event_id, (day, unit_code) or (partition, offset)
LIST_MODELS: tuple[str, ...] = ("programs", "conferences", "cases")
# How many positions one chain difference lists; the count says how many there are in all.
MAX_POSITIONS = 20


@dataclass
class ServedModels:
    """The read models as the database holds them, as plain rows keyed like a Ledger's."""

    # partition -> (next_offset, chain hash of the last applied record)
    offsets: dict[int, tuple[int, str]] = field(default_factory=dict)
    archive: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: dict[FigureKey, dict[str, Any]] = field(default_factory=dict)
    lists: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    dead_letters: dict[Position, str] = field(default_factory=dict)


def compare(
    ledger: Ledger, served: ServedModels, *, province: str | None = None
) -> list[Difference]:
    """Every difference between the served models and the ledger, chain first, then rows.

    With ``province``, rows are compared for that province only (``served`` is expected to hold
    only its rows); the partition heads and dead letters belong to no province and are always
    compared.
    """

    def in_scope(province_code: str | None) -> bool:
        return province is None or province_code == province

    differences = _heads(ledger, served)
    differences += _chain(ledger, served)
    differences += _rows(
        "event_archive",
        lambda event_id: {"event_id": event_id},
        {k: r for k, r in ledger.archive.items() if in_scope(r["province_code"])},
        served.archive,
        lambda event_id: _positions_of(event_id, ledger, served.archive),
        ignore=("chain_hash",),  # compared by _chain, which can tell where the chain broke
    )
    zeros = dict.fromkeys(STORED_FIGURES, 0)
    differences += _rows(
        "daily_figures",
        lambda key: {"day": key[0].isoformat(), "unit_code": key[1]},
        {k: r for k, r in ledger.figures.items() if in_scope(r["province_code"])},
        served.figures,
        lambda key: ledger.figure_sources.get(key, []),
        absent=zeros,  # a day whose events were all retracted may keep a row of zeros
    )
    for model in LIST_MODELS:
        differences += _rows(
            model,
            lambda event_id: {"event_id": event_id},
            {k: r for k, r in ledger.lists.get(model, {}).items() if in_scope(r["province_code"])},
            served.lists.get(model, {}),
            lambda event_id: _positions_of(event_id, ledger, served.archive),
        )
    differences += _rows(
        "dead_letters",
        lambda position: {"partition": position[0], "offset": position[1]},
        {p: {"reason": reason} for p, reason in ledger.dead_letters.items()},
        {p: {"reason": reason} for p, reason in served.dead_letters.items()},
        lambda position: [position],
    )
    return differences


def check_heads(ledger: Ledger, saved: Iterable[Head]) -> list[Difference]:
    """Whether the log still hashes to heads an auditor saved earlier.

    A head proves the whole prefix of its partition: any byte rewritten, record removed or
    inserted at or before it changes the hash. To name the exact position, compare with the
    archive's chain (``compare``), which holds a hash per event.
    """
    differences: list[Difference] = []
    for head in saved:
        found = ledger.hash_at(head.partition, head.offset)
        if found == head.hash:
            continue
        differences.append(
            {
                "kind": "saved_head",
                "partition": head.partition,
                "offset": head.offset,
                "problem": (
                    "the log no longer reaches this position"
                    if found is None
                    else "the log was rewritten at or before this position"
                ),
                "saved": head.hash,
                "log": found,
                "positions": [_position((head.partition, head.offset))],
            }
        )
    return differences


def _heads(ledger: Ledger, served: ServedModels) -> list[Difference]:
    differences: list[Difference] = []
    for partition, (next_offset, stored_hash) in sorted(served.offsets.items()):
        if next_offset == 0:
            continue
        last = (partition, next_offset - 1)
        found = ledger.hashes.get(last)
        if found == stored_hash:
            continue
        differences.append(
            {
                "kind": "chain_head",
                "table": "projector_offsets",
                "partition": partition,
                "offset": last[1],
                "problem": (
                    "the log ends before the projector's stored position"
                    if found is None
                    else "the log does not hash to the projector's stored head"
                ),
                "served": stored_hash,
                "log": found,
                "positions": [_position(last)],
            }
        )
    return differences


def _chain(ledger: Ledger, served: ServedModels) -> list[Difference]:
    """Per partition, where the archive's stored chain and the log's chain part ways.

    A rewritten record changes its own hash and every later one; a hand-edited archive hash
    changes only its row. The first mismatch names the position, the count tells which it was.
    """
    mismatches: dict[int, list[tuple[int, str, str | None]]] = {}
    for row in served.archive.values():
        position = (row["partition"], row["offset"])
        found = ledger.hashes.get(position)
        if found != row["chain_hash"]:
            mismatches.setdefault(position[0], []).append((position[1], row["chain_hash"], found))
    differences: list[Difference] = []
    for partition, found_rows in sorted(mismatches.items()):
        found_rows.sort()
        offset, stored_hash, log_hash = found_rows[0]
        differences.append(
            {
                "kind": "chain",
                "table": "event_archive",
                "partition": partition,
                "offset": offset,
                "problem": "the stored chain hash differs from the log's from this position",
                "served": stored_hash,
                "log": log_hash,
                "mismatches": len(found_rows),
                "positions": [_position((partition, o)) for o, _, _ in found_rows[:MAX_POSITIONS]],
            }
        )
    return differences


def _rows[K](
    table: str,
    describe: Callable[[K], dict[str, Any]],
    expected: Mapping[K, Mapping[str, Any]],
    served: Mapping[K, Mapping[str, Any]],
    positions: Callable[[K], list[Position]],
    *,
    ignore: Iterable[str] = (),
    absent: Mapping[str, Any] | None = None,
) -> list[Difference]:
    skipped = set(ignore)
    differences: list[Difference] = []
    for key in sorted(expected.keys() | served.keys(), key=_sort_key):
        log_row = expected.get(key, absent)
        served_row = served.get(key, absent)
        if log_row is None or served_row is None:
            problem = "missing" if served_row is None else "unexpected"
            columns = {}
        else:
            columns = {
                name: {"served": _plain(served_row.get(name)), "log": _plain(value)}
                for name, value in log_row.items()
                if name not in skipped and _plain(value) != _plain(served_row.get(name))
            }
            if not columns:
                continue
            problem = "differs"
        differences.append(
            {
                "kind": "row",
                "table": table,
                "key": describe(key),
                "problem": {
                    "missing": "the log implies this row; the read model lacks it",
                    "unexpected": "the read model has this row; the log does not imply it",
                    "differs": "the row's values differ from the log's",
                }[problem],
                "columns": columns,
                "positions": [_position(p) for p in positions(key)],
            }
        )
    return differences


def _positions_of(
    event_id: str, ledger: Ledger, archive: Mapping[str, Mapping[str, Any]]
) -> list[Position]:
    found: list[Position] = []
    if event_id in ledger.positions:
        found.append(ledger.positions[event_id])
    if event_id in archive:
        stored = (archive[event_id]["partition"], archive[event_id]["offset"])
        if stored not in found:
            found.append(stored)
    retraction = (ledger.archive.get(event_id) or {}).get("retracted_by")
    if retraction in ledger.positions:
        found.append(ledger.positions[retraction])
    return found


def _position(position: Position) -> dict[str, int]:
    return {"partition": position[0], "offset": position[1]}


def _sort_key(key: Any) -> Any:
    return key  # keys of one table are all of one comparable kind


def _plain(value: Any) -> Any:
    """One representation per value, whichever database (or the fold) it came from."""
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
