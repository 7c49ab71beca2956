"""The projection core: what a run of log records does to the read models. Pure: no I/O.

``project`` takes records in log order (within each partition), the chain hash each partition
continues from, and the events archived earlier that the records refer to; it returns the rows
to write. The projector's store (live, and for a rebuild) writes them; verify compares them with
what is stored; ``shared.ledger.fold_log`` folds a whole log with it. One definition of what a
record does, whoever asks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from shared import events as ev
from shared import registry
from shared.folds import (
    STORED_FIGURES,
    Changes,
    KnownEvent,
    StoredEvent,
    fold,
)
from shared.records import UndecodableRecord, chain_hash, decode_record, genesis_hash

log = logging.getLogger(__name__)

Position = tuple[int, int]  # (partition, offset)


@dataclass(frozen=True, slots=True)
class Record:
    """One log record: where it sits and its exact bytes (no Kafka types in shared/)."""

    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None
    key: bytes | None = None  # the unit code, as ingest keys a record


@dataclass(frozen=True, slots=True)
class Decoded:
    """A record with its event, or with the reason it is poison."""

    record: Record
    event: StoredEvent | None
    problem: str | None = None


def decode(records: Iterable[Record]) -> list[Decoded]:
    """Decode and validate records: the costly Python part, kept apart so that a pipeline can
    decode the next batch while the database writes this one."""
    decoded = []
    for record in records:
        try:
            item = decode_record(record.value, record.partition, record.offset)
        except UndecodableRecord as exc:
            decoded.append(Decoded(record, None, str(exc)))
            continue
        decoded.append(Decoded(record, item))
    return decoded


def referenced_ids(decoded: Iterable[Decoded]) -> set[str]:
    """The event ids ``project`` must be told about if archived earlier: the records' own (a
    resend is a duplicate) and the targets of their retractions."""
    ids: set[str] = set()
    for item in decoded:
        if item.event is None:
            continue
        event = item.event.event
        ids.add(str(event.event_id))
        if isinstance(event, ev.EventRetracted):
            ids.add(str(event.payload.retracted_event_id))
    return ids


@dataclass
class Step:
    """What a run of records does to the read models, as rows keyed like the tables'."""

    # the chain hash after every record (duplicates and poison included)
    hashes: dict[Position, str] = field(default_factory=dict)
    # event_archive rows of the events archived; retracted_by is set when this run retracts them
    archive: list[dict[str, Any]] = field(default_factory=list)
    # retracted event id -> the retraction's id, for every retraction that took effect
    retracted: dict[str, str] = field(default_factory=dict)
    # figure_changes rows: one per event counted, and a negative one per retraction
    changes: list[dict[str, Any]] = field(default_factory=list)
    # list model -> rows to insert (or replace), and event ids whose rows go
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    list_removals: dict[str, list[str]] = field(default_factory=dict)
    # records parked with the reason: undecodable, or their fold raised
    dead_letters: list[tuple[Record, str]] = field(default_factory=list)
    duplicates: int = 0

    def figures(self) -> list[dict[str, Any]]:
        """The daily_figures changes: the figure changes summed per (day, unit)."""
        return _summed(self.changes, by_received_day=False)

    def received(self) -> list[dict[str, Any]]:
        """The figures_by_received_day changes: summed per (received day, day, unit)."""
        return _summed(self.changes, by_received_day=True)


def _summed(changes: Iterable[dict[str, Any]], *, by_received_day: bool) -> list[dict[str, Any]]:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for change in changes:
        received_day = received_day_of(change["received_at"]) if by_received_day else None
        key = (received_day, change["day"], change["unit_code"])
        row = rows.get(key)
        if row is None:
            row = rows[key] = {k: v for k, v in change.items() if k not in CHANGE_ONLY}
            if by_received_day:
                row["received_day"] = received_day
            continue
        for name in STORED_FIGURES:
            row[name] += change[name]
    return list(rows.values())


def received_day_of(moment: datetime) -> date:
    """The UTC day of a received time (SQLite hands them back naive, in UTC)."""
    return (moment if moment.tzinfo is None else moment.astimezone(UTC)).date()


# figure_changes columns that daily_figures does not have: where and when a change entered.
CHANGE_ONLY = ("partition", "offset", "received_at")


def project(
    decoded: Sequence[Decoded],
    starts: Mapping[int, str],
    known: Mapping[UUID, KnownEvent],
    *,
    hashes: Mapping[Position, str] | None = None,
) -> Step:
    """The rows ``decoded`` (log order within each partition) gives, after records already
    applied: ``starts[p]`` is the chain hash before the first record of partition ``p`` here
    (absent: the partition's genesis), ``known`` the events archived earlier among
    ``referenced_ids(decoded)``, each with whether it is retracted already. ``hashes``: the
    chain hash at each record, when the caller hashed them already (verify does, as it reads).
    """
    step = Step()
    last = dict(starts)
    for item in decoded:
        record = item.record
        at = (record.partition, record.offset)
        if hashes is not None:
            step.hashes[at] = hashes[at]
            continue
        previous = last.get(record.partition) or genesis_hash(record.partition)
        last[record.partition] = step.hashes[at] = chain_hash(previous, record.value)
    step.dead_letters = [(d.record, d.problem or "") for d in decoded if d.event is None]
    stored = [d.event for d in decoded if d.event is not None]
    changes = _fold_parking(stored, known, step)
    step.duplicates = len(changes.duplicates)
    archived = {s.event_id: s for s in changes.archived}
    for stored_event in changes.archived:
        retraction = changes.retracted.get(stored_event.event_id)
        step.archive.append(
            archive_row(
                stored_event,
                step.hashes[(stored_event.partition, stored_event.offset)],
                retracted_by=str(retraction) if retraction else None,
                note=changes.retraction_notes.get(stored_event.event_id),
            )
        )
        if not isinstance(stored_event.event, ev.EventRetracted):
            step.changes.append(
                change_row(
                    stored_event,
                    stored_event.event,
                    stored_event.attribution,
                    changes.contributions[stored_event.event_id],
                )
            )
    for target_id, retraction_id in changes.retracted.items():
        step.retracted[str(target_id)] = str(retraction_id)
        target = archived.get(target_id)
        target_event, attribution = (
            (target.event, target.attribution)
            if target
            else (known[target_id].event, known[target_id].attribution)
        )
        taken_back = {name: -value for name, value in changes.contributions[target_id].items()}
        step.changes.append(
            change_row(archived[retraction_id], target_event, attribution, taken_back)
        )
    for model, rows in changes.list_rows.items():
        step.lists[model] = [list_row(archived[event_id], row) for event_id, row in rows.items()]
    for model, removed in changes.list_removals.items():
        step.list_removals[model] = sorted(str(i) for i in removed)
    return step


def _fold_parking(
    stored: Sequence[StoredEvent], known: Mapping[UUID, KnownEvent], step: Step
) -> Changes:
    """Fold; if the fold raises, park the events that make it raise and fold the rest.

    A fold that raises is a bug in this build, but one event must not stop every unit's reports
    behind it: the event is parked with the error, and a fixed build can replay it. Verify parks
    it the same way, so it reports what the projector did rather than failing.
    """
    try:
        return fold(stored, known)
    except Exception:
        log.exception("a fold raised; folding the run one event at a time to find the cause")
    # fold() carries only the ids it has seen and their retraction flag from one event to the
    # next, so folding each event alone against that running state finds exactly the culprits.
    seen: dict[UUID, KnownEvent] = dict(known)
    good: list[StoredEvent] = []
    for item in stored:
        try:
            one = fold([item], seen)
        except Exception as exc:
            reason = f"fold failed: {type(exc).__name__}: {exc}"
            step.dead_letters.append((Record(item.partition, item.offset, item.raw), reason))
            continue
        good.append(item)
        for archived in one.archived:
            seen[archived.event_id] = KnownEvent(archived.event, archived.attribution, False)
        for target in one.retracted:
            seen[target] = KnownEvent(seen[target].event, seen[target].attribution, True)
    step.dead_letters.sort(key=lambda parked: (parked[0].partition, parked[0].offset))
    return fold(good, known)


# --- rows as the tables hold them ------------------------------------------------------------


def attribution_columns(attribution: registry.Attribution) -> dict[str, str]:
    """The columns every read model has for both frames."""
    return {
        "unit_code": attribution.unit.key,
        "province_code": attribution.current_province,
        "reported_province": attribution.reported_province,
    }


def change_row(
    entered: StoredEvent,
    event: ev.Event,
    attribution: registry.Attribution,
    delta: Mapping[str, int],
) -> dict[str, Any]:
    """A figure_changes row: ``delta`` to ``event``'s day and unit, at the position and received
    time of ``entered`` (the event itself, or the retraction that takes it back)."""
    day = event.occurred_day
    return {
        "partition": entered.partition,
        "offset": entered.offset,
        "received_at": entered.received_at,
        "day": day,
        "month": day.year * 100 + day.month,
        **attribution_columns(attribution),
        **NO_FIGURES,
        **delta,
    }


# Every stored figure at zero: a change row names them all (a contribution only its own).
NO_FIGURES = dict.fromkeys(STORED_FIGURES, 0)


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
