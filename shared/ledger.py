"""A fresh fold of the log, in memory: the read models and hash chain the log alone implies.

The projector builds these rows incrementally in SQL. Auditors need them computed from nothing
but the log: to answer what the summary was *as of* a past moment, and to check the served read
models and the stored chain (see ``shared.verification``). Both go through ``shared.folds.fold``,
so there is one definition of what an event does. Nothing here does I/O: records come in as
plain values, from Kafka, a file, or a test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from shared import events as ev
from shared import registry
from shared.folds import STORED_FIGURES, DayKey, StoredEvent, fold, summary_row
from shared.records import UndecodableRecord, chain_hash, decode_record, genesis_hash

Position = tuple[int, int]  # (partition, offset)
FigureKey = tuple[date, str]  # daily_figures' primary key: (day, unit_code)


@dataclass(frozen=True, slots=True)
class Record:
    """One log record: where it sits and its exact bytes (no Kafka types in shared/)."""

    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None


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

    # partition -> the last record read, with its hash
    heads: dict[int, Head] = field(default_factory=dict)
    # the chain hash after every record read (duplicates and poison included)
    hashes: dict[Position, str] = field(default_factory=dict)
    # position -> reason, for records the projector parks as dead letters
    dead_letters: dict[Position, str] = field(default_factory=dict)
    # event_id -> the event_archive row
    archive: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (day, unit_code) -> the daily_figures row: both frames' provinces and the stored figures
    figures: dict[FigureKey, dict[str, Any]] = field(default_factory=dict)
    # (day, unit_code) -> positions of the events (and retractions) that made that row
    figure_sources: dict[FigureKey, list[Position]] = field(default_factory=dict)
    # list model ("programs", "conferences", "cases") -> event_id -> row
    lists: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # event_id -> its position, for every event archived
    positions: dict[str, Position] = field(default_factory=dict)

    def hash_at(self, partition: int, offset: int) -> str | None:
        return self.hashes.get((partition, offset))


def fold_log(
    records: Iterable[Record],
    *,
    received_until: datetime | None = None,
    fold_before: Mapping[int, int] | None = None,
) -> Ledger:
    """Fold records (log order within each partition, each partition from offset 0) into a Ledger.

    Every record is hashed. Only events received at or before ``received_until`` are folded (the
    state *as of* that moment), and with ``fold_before`` only records below that offset of their
    partition (partitions absent from it are not folded at all): this lets one read of the log
    check both the read models, which stop where the projector stopped, and heads saved further on.
    """
    ledger = Ledger()

    def events() -> Iterator[StoredEvent]:
        for record, hashed in chained(records):
            position = (record.partition, record.offset)
            ledger.hashes[position] = hashed
            ledger.heads[record.partition] = Head(record.partition, record.offset, hashed)
            if fold_before is not None and record.offset >= fold_before.get(record.partition, 0):
                continue
            try:
                stored = decode_record(record.value, record.partition, record.offset)
            except UndecodableRecord as exc:
                ledger.dead_letters[position] = str(exc)
                continue
            if received_until is not None and stored.received_at > received_until:
                continue
            yield stored

    changes = fold(events(), {})
    by_id = {s.event_id: s for s in changes.archived}
    for stored in changes.archived:
        event = stored.event
        event_id = str(stored.event_id)
        position = (stored.partition, stored.offset)
        ledger.positions[event_id] = position
        retracted_by = changes.retracted.get(stored.event_id)
        ledger.archive[event_id] = archive_row(
            stored,
            ledger.hashes[position],
            retracted_by=str(retracted_by) if retracted_by else None,
            note=changes.retraction_notes.get(stored.event_id),
        )
        if not isinstance(event, ev.EventRetracted):
            key = DayKey(event.occurred_day, stored.attribution).row_key()
            ledger.figure_sources.setdefault(key, []).append(position)
    for target, retraction in changes.retracted.items():
        target_event = by_id[target]
        key = DayKey(target_event.event.occurred_day, target_event.attribution).row_key()
        ledger.figure_sources.setdefault(key, []).append(ledger.positions[str(retraction)])
    for day_key, delta in changes.figures.items():
        ledger.figures[day_key.row_key()] = figure_row(day_key, delta)
    for model, rows in changes.list_rows.items():
        for row_id, row in rows.items():
            ledger.lists.setdefault(model, {})[str(row_id)] = list_row(by_id[row_id], row)
    return ledger


# --- rows as the projector writes them ---------------------------------------------------------


def attribution_columns(attribution: registry.Attribution) -> dict[str, str]:
    """The columns every read model has for both frames."""
    return {
        "unit_code": attribution.unit.key,
        "province_code": attribution.current_province,
        "reported_province": attribution.reported_province,
    }


def figure_row(key: DayKey, delta: Mapping[str, int]) -> dict[str, Any]:
    """A daily_figures row (or the change to add to one)."""
    return {
        "day": key.day,
        "month": key.day.year * 100 + key.day.month,
        **attribution_columns(key.attribution),
        **{name: delta.get(name, 0) for name in STORED_FIGURES},
    }


def archive_row(
    stored: StoredEvent, hashed: str, *, retracted_by: str | None, note: str | None
) -> dict[str, Any]:
    event = stored.event
    return {
        "event_id": str(stored.event_id),
        "partition": stored.partition,
        "offset": stored.offset,
        "received_at": stored.received_at,
        **attribution_columns(stored.attribution),
        "type": event.type,
        "schema_version": stored.stored_version,
        "occurred_on": event.occurred_day,
        "body": stored.raw.decode(),
        "chain_hash": hashed,
        "retracted_by": retracted_by,
        "note": note,
        "registry_exception": stored.attribution.exception is not None,
    }


def list_row(stored: StoredEvent, row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(stored.event_id),
        **attribution_columns(stored.attribution),
        "partition": stored.partition,
        "offset": stored.offset,
        **row,
    }


# --- the summary, computed from folded figures -------------------------------------------------

PERIODS = ("month", "quarter", "year")


def summarize(
    figures: Mapping[FigureKey, Mapping[str, Any]],
    *,
    province_column: str = "province_code",
    keep: Callable[[Mapping[str, Any]], bool] = lambda row: True,
    date_from: date | None = None,
    date_to: date | None = None,
    group_by: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The ``/v1/summary`` rows for these figures: the same groups, keys, order and figures.

    Mirrors the SQL in services/api/summary.py: totals are one row even when empty; a group whose
    figures are all zero (its events were all retracted) is left out. ``province_column`` is
    the frame's (``reported_province`` as reported); ``keep`` says which rows are in scope.
    """
    groups: dict[tuple[Any, ...], dict[str, int]] = {}
    for (day, code), stored in figures.items():
        province_key = stored[province_column]
        if not keep(stored) or (date_from and day < date_from) or (date_to and day > date_to):
            continue
        totals = groups.setdefault(_group_key(day, code, province_key, group_by), {})
        for name in STORED_FIGURES:
            totals[name] = totals.get(name, 0) + stored.get(name, 0)
    if not group_by:
        return [summary_row(groups.get((), {}))]
    return [
        {**_group_fields(key, group_by), **summary_row(totals)}
        for key, totals in sorted(groups.items())
        if any(totals.values())
    ]


def _group_key(day: date, unit: str, province: str, group_by: Sequence[str]) -> tuple[Any, ...]:
    key: list[Any] = []
    if "province" in group_by or "unit" in group_by:
        key.append(province)
    if "unit" in group_by:
        key.append(unit)
    for dim in group_by:
        if dim == "year":
            key.append(day.year)
        elif dim == "quarter":
            key.append(day.year * 10 + (day.month + 2) // 3)
        elif dim == "month":
            key.append(day.year * 100 + day.month)
    return tuple(key)


def _group_fields(key: tuple[Any, ...], group_by: Sequence[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    parts = iter(key)
    if "province" in group_by or "unit" in group_by:
        code = next(parts)
        province = registry.lookup(code)
        assert province is not None  # the projector attributed it
        fields["province_code"] = code
        fields["province_name"] = registry.province_label(code, province.name)
    if "unit" in group_by:
        found = registry.lookup(next(parts))
        assert found is not None
        fields |= {
            "unit_code": found.key,
            "unit_name": found.name,
            "unit_level": found.level,
            "unit_edition": found.edition,
        }
    period = next(parts, None)
    if "year" in group_by:
        fields["period"] = f"{period}"
    elif "quarter" in group_by and period is not None:
        fields["period"] = f"{period // 10}-Q{period % 10}"
    elif "month" in group_by and period is not None:
        fields["period"] = f"{period // 100}-{period % 100:02d}"
    return fields


def utc(value: datetime) -> datetime:
    """An instant in UTC; a naive value (SQLite drops the offset) is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
