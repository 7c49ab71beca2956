"""``/v1/audit``: replay the log, the summary as of a past moment, and verification. Auditors only.

Everything here reads Kafka itself, never just the read models: the log is the record, and
these endpoints exist to check what the read models say against it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from services.api.deps import Api, ApiDep, PrincipalDep
from services.api.params import (
    PROVINCE_PATTERN,
    DistrictQuery,
    FrameQuery,
    FromQuery,
    GroupByQuery,
    ProvinceQuery,
    ToQuery,
    UnitQuery,
    check_range,
    group_by_dimensions,
    responses,
)
from services.api.routes.summary import ROWS_JSON, SummaryRow
from services.api.scopes import resolve_scope
from services.api.summary import summary_rows
from services.api.tabular import Tabular, respond
from services.audit import jobs
from services.audit.log import TIMESTAMP_SLACK, KafkaLog, LogUnavailable, parse_instant
from services.audit.replay import ReplayFilter, plan_replay, replay_lines
from services.audit.verify import verify
from services.projector.store import applied_offsets
from services.web.auth import Principal, require_role
from services.web.problems import (
    RETRY_AFTER_SECONDS,
    Problem,
    invalid_parameter,
    problem_responses,
)
from shared.db.engine import snapshot
from shared.events import EVENT_TYPES
from shared.registry import LEGACY_PREFIX

router = APIRouter(prefix="/v1/audit", tags=["audit"])


def require_auditor(principal: PrincipalDep) -> Principal:
    require_role(principal, "auditor")
    return principal


Auditor = Annotated[Principal, Depends(require_auditor)]
UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# A date, or a datetime to the minute, second or microsecond, with an offset or without (then
# Vietnam time): the ISO 8601 forms parse_instant reads, and only those. A value of this shape
# can still be no day (2025-02-30): a 422 too.
_TIME = "([01][0-9]|2[0-3]):[0-5][0-9]"
INSTANT_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    rf"(T{_TIME}(:[0-5][0-9](\.[0-9]{{1,6}})?)?(Z|[+-]{_TIME})?)?$"
)
ReceivedFromQuery = Annotated[
    str | None,
    Query(
        alias="from",
        pattern=INSTANT_PATTERN,
        examples=["2021-09-15", "2021-09-15T14:00:00+07:00"],
        description="Received at or after: ISO 8601 datetime, or a date (from its first moment); "
        "without an offset, Vietnam time",
    ),
]
ReceivedToQuery = Annotated[
    str | None,
    Query(
        pattern=INSTANT_PATTERN,
        examples=["2030-12-31", "2030-12-31T23:59:59Z"],
        description="Received at or before: ISO 8601 datetime, or a date (to its last moment)",
    ),
]


def instant(name: str, value: str, *, end_of_day: bool = False) -> datetime:
    try:
        moment = parse_instant(value, end_of_day=end_of_day)
        # The log is read TIMESTAMP_SLACK either side of the moment, in UTC: at the ends of
        # datetime's range (9999-12-31) that arithmetic overflowed, and the answer was a 500.
        _ = (moment - TIMESTAMP_SLACK, moment + TIMESTAMP_SLACK, moment.astimezone(UTC))
    except OverflowError:
        raise invalid_parameter(name, "out of range", "range") from None
    except ValueError as exc:
        raise invalid_parameter(name, f"not an ISO 8601 date or datetime ({exc})") from None
    return moment


def unavailable(exc: Exception) -> Problem:
    return Problem(
        503,
        "Service Unavailable",
        f"Kafka did not answer: {exc}",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def open_log(api: Api) -> KafkaLog:
    # Connecting to a broker that is down takes the whole 10 s timeout: answer 503 at once while
    # the freshness thread's last question to the log went unanswered.
    if api.positions.unreachable:
        raise LogUnavailable("the log did not answer a moment ago")
    return KafkaLog(api.settings.kafka_bootstrap_servers, api.settings.events_topic)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One event a line, in log order",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        **responses(401, 403, 422, 503),
    },
)
def audit_events(
    api: ApiDep,
    auditor: Auditor,
    unit: UnitQuery = None,
    district: DistrictQuery = None,
    type_: Annotated[
        str | None,
        Query(
            alias="type",
            description="One event type",
            json_schema_extra={"enum": sorted(EVENT_TYPES)},  # checked below
        ),
    ] = None,
    from_: ReceivedFromQuery = None,
    to: ReceivedToQuery = None,
) -> StreamingResponse:
    """The unique accepted events, read from Kafka, as NDJSON in log order.

    One line per event: the stored event (received_at included) plus ``partition``, ``offset``
    and ``chain_hash``. Partitions come one after another in ascending order, each in offset
    order; a unit lives in one partition, so a unit's replay is exactly its log order.
    ``from``/``to`` filter on received_at and seek by record timestamp rather than reading from
    offset 0. Duplicates in the log appear once, at their first position. Kafka is asked
    everything it must answer before the first byte (a 503 if it cannot); should it go away
    mid-stream, the response is cut off without its last chunk, so a client never takes a
    partial replay for a whole one.
    """
    if type_ is not None and type_ not in EVENT_TYPES:
        raise invalid_parameter(
            "type", f"unknown event type; one of {', '.join(sorted(EVENT_TYPES))}"
        )
    unit = resolve_scope(auditor, None, unit, district).unit  # a 422 for an unknown unit
    wanted = ReplayFilter(
        unit,
        type_,
        instant("from", from_) if from_ else None,
        instant("to", to, end_of_day=True) if to else None,
    )
    if (
        wanted.received_from
        and wanted.received_until
        and wanted.received_from > wanted.received_until
    ):
        raise invalid_parameter("from", "'from' is after 'to'")
    try:
        log = open_log(api)
        try:
            plan = plan_replay(log, api.engine, api.tables, wanted)
        except Exception:
            log.close()
            raise
    except LogUnavailable as exc:
        raise unavailable(exc) from None

    def stream() -> Iterator[bytes]:
        # A sync generator: Starlette pulls each chunk in its thread pool, so the blocking Kafka
        # reads stay off the event loop, and only when the client has taken the last one.
        try:
            yield from replay_lines(log, api.engine, api.tables, plan, wanted)
        finally:
            log.close()

    return StreamingResponse(stream(), media_type="application/x-ndjson")


class AuditState(BaseModel):
    as_of: datetime
    rows: list[SummaryRow]
    # per partition, the offset the read models had applied up to: the answer holds every
    # record before it that was received by ``as_of``
    read_through: dict[str, int]


@router.get(
    "/state",
    response_model=AuditState,
    response_model_exclude_none=True,
    responses=responses(401, 403, 422, 503, csv=True),
)
def audit_state(
    api: ApiDep,
    auditor: Auditor,
    tabular: Tabular,
    as_of: Annotated[
        str,
        Query(
            pattern=INSTANT_PATTERN,
            examples=["2030-12-31T23:59:59+07:00"],
            description="ISO 8601 datetime (or a date: its last moment), compared with "
            "received_at; without an offset, Vietnam time",
        ),
    ],
    frame: FrameQuery = "current",
    province: ProvinceQuery = None,
    unit: UnitQuery = None,
    district: DistrictQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    group_by: GroupByQuery = None,
) -> Any:
    """The summary (same rows as ``/v1/summary``) as it stood at ``as_of``.

    The summary's own SQL over the figure changes received by then (each event's figures, and
    each retraction's negative ones, at the time they entered the log): what a fold of the log
    up to ``as_of`` gives, once the projector has applied it (``read_through``).
    """
    when = instant("as_of", as_of, end_of_day=True)
    dims = group_by_dimensions(group_by)
    check_range(from_, to)
    scope = resolve_scope(auditor, province, unit, district)
    with snapshot(api.engine) as conn:
        rows = summary_rows(
            conn,
            api.tables,
            frame=frame,
            where=scope.conditions,
            date_from=from_,
            date_to=to,
            group_by=dims,
            received_until=when,
        )
        applied = applied_offsets(conn, api.tables, api.settings.events_topic)
    body = AuditState(
        as_of=when,
        rows=ROWS_JSON.validate_python(rows),
        read_through={str(p): n for p, (n, _) in sorted(applied.items())},
    )
    return respond(tabular, body, "state")


@router.get("/verify", responses=responses(401, 403, 422, 503))
def audit_verify(
    api: ApiDep,
    auditor: Auditor,
    province: Annotated[
        str,
        Query(
            pattern=PROVINCE_PATTERN,
            examples=["42"],
            description="Today's province whose rows to compare. The whole log is a job: "
            "POST /v1/audit/verifications",
        ),
    ],
) -> dict[str, Any]:
    """Compare one province's read models with the log, as the projector would fold it.

    ``{"status": "consistent", ...}``, or ``"inconsistent"`` with the differences: the table
    and row (or partition and offset), both values, and the log positions of the events behind
    it. The log is read up to the offsets the projector has applied, so lag is not a difference.
    """
    scoped = resolve_scope(auditor, province, None).province
    if scoped is None or scoped.startswith(LEGACY_PREFIX):
        raise invalid_parameter(
            "province", "verify compares today's provinces' rows: a province of 2025, e.g. 33"
        )
    try:
        with open_log(api) as log:
            return verify(log, api.engine, api.tables, province=scoped)
    except LogUnavailable as exc:
        raise unavailable(exc) from None


class Verification(BaseModel):
    job_id: str
    status: Literal["running", "done", "failed"]
    created_at: datetime
    finished_at: datetime | None = None
    progress: dict[str, int | None]
    report: dict[str, Any] | None = None
    error: str | None = None


@router.post(
    "/verifications",
    status_code=202,
    response_model=Verification,
    response_model_exclude_none=True,
    responses={
        202: {"headers": {"Location": {"description": "The job", "schema": {"type": "string"}}}},
        **problem_responses(
            401, 403, 409, 503, descriptions={409: "A verification is running: Location names it"}
        ),
    },
)
def start_verification(api: ApiDep, auditor: Auditor, response: Response) -> Any:
    """Verify the whole log, as a job: 202 with its location; ``GET`` it for the status, the
    progress (records read of records to read) and, once done, the report with the chain heads.
    One runs at a time: while one runs, 409 names it."""
    try:
        open_log(api).close()  # a 503 now if the log does not answer, not a failed job later
    except LogUnavailable as exc:
        raise unavailable(exc) from None
    try:
        job_id = jobs.start(
            api.engine,
            api.tables,
            lambda: open_log(api),
            auditor.token_id,
            workers=api.settings.verify_workers,
        )
    except jobs.AlreadyRunning as exc:
        raise Problem(
            409,
            "Conflict",
            f"a verification is running: /v1/audit/verifications/{exc.job_id}",
            headers={"Location": f"/v1/audit/verifications/{exc.job_id}"},
        ) from None
    response.headers["Location"] = f"/v1/audit/verifications/{job_id}"
    return jobs.status(api.engine, job_id)


@router.get(
    "/verifications/{job_id}",
    response_model=Verification,
    response_model_exclude_none=True,
    responses=problem_responses(401, 403, 404, 422, descriptions={404: "No such verification"}),
)
def verification(
    api: ApiDep,
    auditor: Auditor,
    job_id: Annotated[str, Path(pattern=UUID_PATTERN, description="The job's id")],
) -> Any:
    """A verification job: running (with its progress), done (with its report) or failed."""
    found = jobs.status(api.engine, job_id)
    if found is None:
        raise Problem(404, "Not Found", f"no verification {job_id}")
    return found
