"""The event catalogue: the envelope, the nine event types, and how stored events are read.

Version 2 of the envelope names the reporting unit ``unit_code`` (a province, a legacy district
or a 2025 commune, read in the registry edition in force on ``occurred_at``); version 1 named it
``district_code`` and is upcast on read.

Events are frozen pydantic models with ``extra="forbid"``; ``Event`` is the one registry, a
discriminated union keyed by the stable ``type`` string. Stored events of an older
``schema_version`` are upcast (plain functions on dicts) before validation, so every event ever
written stays readable.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

# Units report in Vietnam's local time; a datetime without an offset is read as ICT.
VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")
MAX_FUTURE = timedelta(days=1)
UNIT_CODE_PATTERN = r"^(\d{2}|\d{3}|\d{5})$"
MAX_COUNT = 10_000_000  # larger than any unit's figure; bounds "huge numbers" to a clear 422


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


# Strict scalars: a count sent as "12" or a flag sent as "yes" is a sender's bug worth a 422.
Text = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(_nfc),
]
Identifier = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_nfc),
]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_COUNT)]
PositiveCount = Annotated[int, Strict(), Field(ge=1, le=MAX_COUNT)]
Year = Annotated[int, Strict(), Field(ge=1945, le=2100)]
Flag = Annotated[bool, Strict()]


def _two_decimals(value: float) -> float:
    # Stored as integer hundredths so sums and retractions stay exact on every database.
    scaled = value * 100
    if not math.isfinite(scaled) or abs(scaled) > 1e15:
        raise ValueError("out of range")  # the field's own bounds then say which
    if abs(round(scaled) - scaled) > 1e-6:
        raise ValueError("at most two decimal places")
    return round(value, 2)


Hundredths = Annotated[float, Strict(), Field(allow_inf_nan=False), AfterValidator(_two_decimals)]


def _parse_occurred_at(value: Any) -> date | datetime:
    # A bare "YYYY-MM-DD" is a date; anything longer must be a full ISO 8601 datetime.
    if isinstance(value, datetime | date):
        return value
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("occurred_at is an ISO 8601 date or datetime string")
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date or datetime") from None


OccurredAt = Annotated[
    date | datetime,
    PlainValidator(_parse_occurred_at),
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "description": "ISO 8601 date or datetime", "examples": ["2021-09-15"]}
    ),
]


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConferenceHeldPayload(Payload):
    title: Text
    kind: Literal["review", "summary", "signing", "training", "other"]
    organizers: list[Text] = Field(min_length=1, max_length=50)
    chaired_by: list[Text] | None = Field(default=None, max_length=50)
    attendees: Count
    online: Flag
    connection_points: Count | None = None
    program_id: Identifier | None = None


class ProgramSignedPayload(Payload):
    program_id: Identifier
    title: Text
    parties: list[Text] = Field(min_length=2, max_length=50)
    period_start: Year
    period_end: Year
    content_items: list[Text] = Field(min_length=1, max_length=100)
    signed_by: list[Text] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _period_in_order(self) -> ProgramSignedPayload:
        if self.period_end < self.period_start:
            raise ValueError("period_end must not be before period_start")
        return self


class CaseResolvedPayload(Payload):
    case_id: Identifier
    category: Literal["complaint", "petition", "land", "security_order", "other"]
    resolution: Literal["stable", "temporarily_stable"]
    hotspot_prevented: Flag
    program_id: Identifier | None = None


class OutreachSessionHeldPayload(Payload):
    sessions: PositiveCount
    attendees: Count
    leaflets: Count
    broadcast_hours: Annotated[Hundredths, Field(ge=0, le=1_000_000)]
    topic: Text


class CitizenTipsReceivedPayload(Payload):
    tips: PositiveCount
    valuable: Count
    cases_solved: Count | None = None

    @model_validator(mode="after")
    def _valuable_within_tips(self) -> CitizenTipsReceivedPayload:
        if self.valuable > self.tips:
            raise ValueError("valuable must not exceed tips")
        return self


class ModelRecognizedPayload(Payload):
    model_id: Identifier
    name: Text
    field: Text


class CommendationAwardedPayload(Payload):
    recipient: Text
    recipient_kind: Literal["unit", "individual"]
    award: Text
    awarded_by: Text


class ProcedureTimeReducedPayload(Payload):
    procedure: Text
    reduction_percent: Annotated[Hundredths, Field(gt=0, le=100)]


class EventRetractedPayload(Payload):
    retracted_event_id: UUID
    reason: Text


class Envelope(BaseModel):
    """Fields every event carries; ``payload`` is typed by each subclass."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    schema_version: Literal[2] = 2
    # A province (2 digits), a legacy district (3) or a 2025 commune (5); whether the code names
    # a unit on the event's date is the registry's question (shared.registry.attribute).
    unit_code: Annotated[str, Strict(), StringConstraints(pattern=UNIT_CODE_PATTERN)]
    occurred_at: OccurredAt
    reporter: Annotated[Text, Field(max_length=200)] | None = None

    @field_validator("occurred_at")
    @classmethod
    def _not_far_in_future(cls, value: date | datetime, info: ValidationInfo) -> date | datetime:
        # Checked only when a caller passes "now": replaying history must never reject an
        # event that was valid the day it was received.
        now = info.context.get("now") if isinstance(info.context, dict) else None
        if now is not None and occurred_instant(value) > now + MAX_FUTURE:
            raise ValueError("occurred_at is more than a day in the future")
        return value

    @property
    def occurred_day(self) -> date:
        """The calendar day in Vietnam on which the event happened: its aggregation period."""
        if isinstance(self.occurred_at, datetime):
            return occurred_instant(self.occurred_at).astimezone(VIETNAM_TZ).date()
        return self.occurred_at


def occurred_instant(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=VIETNAM_TZ)
    return datetime(value.year, value.month, value.day, tzinfo=VIETNAM_TZ)


class ConferenceHeld(Envelope):
    type: Literal["ConferenceHeld"]
    payload: ConferenceHeldPayload


class ProgramSigned(Envelope):
    type: Literal["ProgramSigned"]
    payload: ProgramSignedPayload


class CaseResolved(Envelope):
    type: Literal["CaseResolved"]
    payload: CaseResolvedPayload


class OutreachSessionHeld(Envelope):
    type: Literal["OutreachSessionHeld"]
    payload: OutreachSessionHeldPayload


class CitizenTipsReceived(Envelope):
    type: Literal["CitizenTipsReceived"]
    payload: CitizenTipsReceivedPayload


class ModelRecognized(Envelope):
    type: Literal["ModelRecognized"]
    payload: ModelRecognizedPayload


class CommendationAwarded(Envelope):
    type: Literal["CommendationAwarded"]
    payload: CommendationAwardedPayload


class ProcedureTimeReduced(Envelope):
    type: Literal["ProcedureTimeReduced"]
    payload: ProcedureTimeReducedPayload


class EventRetracted(Envelope):
    type: Literal["EventRetracted"]
    payload: EventRetractedPayload


Event = Annotated[
    ConferenceHeld
    | ProgramSigned
    | CaseResolved
    | OutreachSessionHeld
    | CitizenTipsReceived
    | ModelRecognized
    | CommendationAwarded
    | ProcedureTimeReduced
    | EventRetracted,
    Field(discriminator="type"),
]
EVENT_TYPES: dict[str, type[Envelope]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in Envelope.__subclasses__()
}
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)

# The version each type is written at today, and the upcasters that bring an older stored
# event up to it: (type, from_version) -> function returning the dict at from_version + 1.
CURRENT_VERSION: dict[str, int] = dict.fromkeys(EVENT_TYPES, 2)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def upcast_v1_v2(event: dict[str, Any]) -> dict[str, Any]:
    """Version 1 named the reporting unit ``district_code`` (always a legacy district). An
    event naming both is left as it is, and validation names the extra field."""
    if "district_code" in event and "unit_code" not in event:
        event["unit_code"] = event.pop("district_code")
    return event


UPCASTERS: dict[tuple[str, int], Upcaster] = {(kind, 1): upcast_v1_v2 for kind in EVENT_TYPES}


class UnknownSchemaVersion(ValueError):
    """A stored event at a version this build cannot read (written by a newer build)."""


def upcast(
    data: Mapping[str, Any], upcasters: Mapping[tuple[str, int], Upcaster] = UPCASTERS
) -> dict[str, Any]:
    """Bring a stored event dict up to its type's current version, one step at a time."""
    event = dict(data)
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in CURRENT_VERSION:
        return event  # validation names the unknown type
    version = event.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return event  # validation names the bad version
    while version < CURRENT_VERSION[kind]:
        step = upcasters.get((kind, version))
        if step is None:
            raise UnknownSchemaVersion(f"no upcaster for {kind} v{version}")
        event = step(event)
        version += 1
        event["schema_version"] = version
    if version > CURRENT_VERSION[kind]:
        raise UnknownSchemaVersion(
            f"{kind} v{version} is newer than this build reads (v{CURRENT_VERSION[kind]})"
        )
    return event


def parse_event(data: Mapping[str, Any], *, now: datetime | None = None) -> Event:
    """Validate one event dict (after upcasting). ``now`` enables the "not in the future" rule."""
    context = {"now": now} if now is not None else {}
    return event_adapter.validate_python(upcast(data), context=context)


def utc_now() -> datetime:
    return datetime.now(UTC)
