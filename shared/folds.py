"""Pure folds: what each event contributes to the read models.

The projector applies these live and for rebuilds; the API uses them to compute state as of a
past moment and to verify the served figures. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from shared import events as ev
from shared.registry import Attribution

# Additive per-day, per-unit figures, as stored. Decimal figures are kept as integer
# hundredths so that adding and (on retraction) subtracting stays exact.
STORED_FIGURES: tuple[str, ...] = (
    "conferences",
    "conference_attendees",
    "programs_signed",
    "cases_resolved",
    "cases_stable",
    "cases_temporarily_stable",
    "hotspots_prevented",
    "outreach_sessions",
    "outreach_attendees",
    "leaflets",
    "broadcast_hours_x100",
    "tips",
    "valuable_tips",
    "tip_cases_solved",
    "models_recognized",
    "commendations",
    "procedure_reductions",
    "reduction_percent_x100",
)

# The figures the API serves, named exactly as the contract says.
SUMMARY_FIGURES: tuple[str, ...] = (
    "conferences",
    "conference_attendees",
    "programs_signed",
    "cases_resolved",
    "cases_stable",
    "cases_temporarily_stable",
    "hotspots_prevented",
    "outreach_sessions",
    "outreach_attendees",
    "leaflets",
    "broadcast_hours",
    "tips",
    "valuable_tips",
    "tip_cases_solved",
    "models_recognized",
    "commendations",
    "procedure_reductions",
    "mean_reduction_percent",
)


def _x100(value: float) -> int:
    return round(value * 100)


def _conference(e: ev.ConferenceHeld) -> dict[str, int]:
    return {"conferences": 1, "conference_attendees": e.payload.attendees}


def _program(e: ev.ProgramSigned) -> dict[str, int]:
    return {"programs_signed": 1}


def _case(e: ev.CaseResolved) -> dict[str, int]:
    stable = e.payload.resolution == "stable"
    return {
        "cases_resolved": 1,
        "cases_stable": int(stable),
        "cases_temporarily_stable": int(not stable),
        "hotspots_prevented": int(e.payload.hotspot_prevented),
    }


def _outreach(e: ev.OutreachSessionHeld) -> dict[str, int]:
    return {
        "outreach_sessions": e.payload.sessions,
        "outreach_attendees": e.payload.attendees,
        "leaflets": e.payload.leaflets,
        "broadcast_hours_x100": _x100(e.payload.broadcast_hours),
    }


def _tips(e: ev.CitizenTipsReceived) -> dict[str, int]:
    return {
        "tips": e.payload.tips,
        "valuable_tips": e.payload.valuable,
        "tip_cases_solved": e.payload.cases_solved or 0,
    }


def _model(e: ev.ModelRecognized) -> dict[str, int]:
    return {"models_recognized": 1}


def _commendation(e: ev.CommendationAwarded) -> dict[str, int]:
    return {"commendations": 1}


def _procedure(e: ev.ProcedureTimeReduced) -> dict[str, int]:
    return {"procedure_reductions": 1, "reduction_percent_x100": _x100(e.payload.reduction_percent)}


# One visible table: event type -> its contribution to the daily figures.
# EventRetracted contributes nothing itself; it takes back what the retracted event gave.
FIGURE_FOLDS: dict[type[ev.Envelope], Callable[[Any], dict[str, int]]] = {
    ev.ConferenceHeld: _conference,
    ev.ProgramSigned: _program,
    ev.CaseResolved: _case,
    ev.OutreachSessionHeld: _outreach,
    ev.CitizenTipsReceived: _tips,
    ev.ModelRecognized: _model,
    ev.CommendationAwarded: _commendation,
    ev.ProcedureTimeReduced: _procedure,
    ev.EventRetracted: lambda e: {},
}


def contribution(event: ev.Envelope) -> dict[str, int]:
    return FIGURE_FOLDS[type(event)](event)


# --- list read models: one row per event, keyed by its event_id -----------------------------


def _program_row(e: ev.ProgramSigned) -> dict[str, Any]:
    p = e.payload
    return {
        "program_id": p.program_id,
        "title": p.title,
        "parties": list(p.parties),
        "period_start": p.period_start,
        "period_end": p.period_end,
        "content_items": list(p.content_items),
        "signed_by": list(p.signed_by or []),
        "signed_on": e.occurred_day,
    }


def _conference_row(e: ev.ConferenceHeld) -> dict[str, Any]:
    p = e.payload
    return {
        "title": p.title,
        "kind": p.kind,
        "organizers": list(p.organizers),
        "attendees": p.attendees,
        "online": p.online,
        "connection_points": p.connection_points,
        "program_id": p.program_id,
        "held_on": e.occurred_day,
    }


def _case_row(e: ev.CaseResolved) -> dict[str, Any]:
    p = e.payload
    return {
        "case_id": p.case_id,
        "category": p.category,
        "resolution": p.resolution,
        "hotspot_prevented": p.hotspot_prevented,
        "program_id": p.program_id,
        "resolved_on": e.occurred_day,
    }


# Event type -> (list read model, row builder).
LIST_FOLDS: dict[type[ev.Envelope], tuple[str, Callable[[Any], dict[str, Any]]]] = {
    ev.ProgramSigned: ("programs", _program_row),
    ev.ConferenceHeld: ("conferences", _conference_row),
    ev.CaseResolved: ("cases", _case_row),
}


# --- folding a stream of stored events -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the log holds it: the validated event plus where and when it was stored."""

    event: ev.Event
    partition: int
    offset: int
    received_at: datetime
    raw: bytes
    # Where its figures count: its unit and its province in both frames (shared.registry).
    attribution: Attribution
    # The envelope version as written to the log (``event`` is upcast to the current one).
    stored_version: int

    @property
    def event_id(self) -> UUID:
        return self.event.event_id


@dataclass
class Changes:
    """What a run of events does to the read models. Built in memory, written in one go."""

    archived: list[StoredEvent] = field(default_factory=list)
    duplicates: list[StoredEvent] = field(default_factory=list)
    # event_id of the retracted event -> event_id of the retraction
    retracted: dict[UUID, UUID] = field(default_factory=dict)
    # event_id of a retraction that changed nothing -> why
    retraction_notes: dict[UUID, str] = field(default_factory=dict)
    # event_id -> its figures, for every event counted or taken back by this run
    contributions: dict[UUID, dict[str, int]] = field(default_factory=dict)
    list_rows: dict[str, dict[UUID, dict[str, Any]]] = field(default_factory=dict)
    list_removals: dict[str, set[UUID]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KnownEvent:
    """What the fold must know of an event archived earlier: enough to take its effect back."""

    event: ev.Event
    attribution: Attribution
    retracted: bool


def fold(
    stored: Iterable[StoredEvent],
    known: Mapping[UUID, KnownEvent],
) -> Changes:
    """Fold a run of events in log order into read-model changes.

    ``known`` holds the events archived before this run that the run refers to (its own ids,
    to skip duplicates, and the targets of its retractions). An event already known or seen
    earlier in the run is a duplicate: recorded, never counted twice.
    """
    changes = Changes()
    seen: dict[UUID, KnownEvent] = dict(known)
    for item in stored:
        event = item.event
        if event.event_id in seen:
            changes.duplicates.append(item)
            continue
        seen[event.event_id] = KnownEvent(event, item.attribution, retracted=False)
        changes.archived.append(item)
        if isinstance(event, ev.EventRetracted):
            _retract(event, seen, changes)
            continue
        changes.contributions[event.event_id] = contribution(event)
        if type(event) in LIST_FOLDS:
            model, build = LIST_FOLDS[type(event)]
            changes.list_rows.setdefault(model, {})[event.event_id] = build(event)
    return changes


def _retract(retraction: ev.EventRetracted, seen: dict[UUID, KnownEvent], changes: Changes) -> None:
    target_id = retraction.payload.retracted_event_id
    target = seen.get(target_id)
    # Another unit's events sit in another partition (the key is the unit code), whose progress
    # relative to this one differs between the live projector, a rebuild and a verify: whether
    # such a target is known yet (or retracted yet) must not change the outcome, so it is
    # unknown here, always.
    if target is None or target.event.unit_code != retraction.unit_code:
        changes.retraction_notes[retraction.event_id] = "unknown_event"
        return
    if target.retracted:
        changes.retraction_notes[retraction.event_id] = "already_retracted"
        return
    if isinstance(target.event, ev.EventRetracted):
        changes.retraction_notes[retraction.event_id] = "cannot_retract_a_retraction"
        return
    seen[target_id] = KnownEvent(target.event, target.attribution, retracted=True)
    changes.retracted[target_id] = retraction.event_id
    event = target.event
    if target_id not in changes.contributions:
        changes.contributions[target_id] = contribution(event)
    if type(event) in LIST_FOLDS:
        model, _ = LIST_FOLDS[type(event)]
        rows = changes.list_rows.get(model, {})
        if target_id in rows:
            del rows[target_id]  # added and retracted within this run: never written
        else:
            changes.list_removals.setdefault(model, set()).add(target_id)


# The served figures stand where the stored ones do; two of them are turned back into decimals.
_BROADCAST = STORED_FIGURES.index("broadcast_hours_x100")
_REDUCTIONS = STORED_FIGURES.index("procedure_reductions")
_REDUCTION_PERCENT = STORED_FIGURES.index("reduction_percent_x100")
_RENAMED = [
    i for i, (s, n) in enumerate(zip(STORED_FIGURES, SUMMARY_FIGURES, strict=True)) if s != n
]
if sorted({_BROADCAST, _REDUCTION_PERCENT}) != _RENAMED:
    raise RuntimeError("SUMMARY_FIGURES must follow STORED_FIGURES, renaming only the two decimals")


def served_figures(stored: Sequence[int]) -> list[int | float]:
    """The served figures (``SUMMARY_FIGURES`` order) from summed stored ones (``STORED_FIGURES``
    order): hundredths back to decimals, the reductions' percents to their mean."""
    served: list[int | float] = list(stored)
    served[_BROADCAST] = stored[_BROADCAST] / 100
    reductions = stored[_REDUCTIONS]
    total = stored[_REDUCTION_PERCENT]
    served[_REDUCTION_PERCENT] = round(total / 100 / reductions, 2) if reductions else 0.0
    return served


def summary_row(stored: Mapping[str, Any]) -> dict[str, int | float]:
    """Turn summed stored figures into the served figures (hundredths back to decimals)."""
    values = [int(stored.get(name, 0)) for name in STORED_FIGURES]
    return dict(zip(SUMMARY_FIGURES, served_figures(values), strict=True))
