"""``/v1/summary``: the figures per province, unit and period, in either frame, computed in SQL."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, TypeAdapter
from starlette.concurrency import run_in_threadpool

from services.api.deps import Api, ApiDep, PrincipalDep
from services.api.freshness import Freshness
from services.api.params import (
    AfterQuery,
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
from services.api.read_your_writes import parse_after, wait_until_applied
from services.api.scopes import Scope, resolve_scope
from services.api.summary import Dimension, Frame, summary_rows
from services.api.tabular import Tabular, respond
from services.web.problems import DATABASE_UNAVAILABLE

router = APIRouter(prefix="/v1", tags=["summary"])

SERVED_FROM_MEMORY = Counter(
    "api_summaries_served_from_memory_total",
    "Summaries answered from memory, marked with Age, because the database did not answer",
)


class SummaryRow(BaseModel):
    model_config = ConfigDict(extra="allow")  # the group's keys, then the figures

    province_code: str | None = None
    province_name: str | None = None
    unit_code: str | None = None
    unit_name: str | None = None
    unit_level: str | None = None
    unit_edition: str | None = None
    period: str | None = None
    conferences: int
    conference_attendees: int
    programs_signed: int
    cases_resolved: int
    cases_stable: int
    cases_temporarily_stable: int
    hotspots_prevented: int
    outreach_sessions: int
    outreach_attendees: int
    leaflets: int
    broadcast_hours: float
    tips: int
    valuable_tips: int
    tip_cases_solved: int
    models_recognized: int
    commendations: int
    procedure_reductions: int
    mean_reduction_percent: float


class Summary(BaseModel):
    rows: list[SummaryRow]
    freshness: Freshness


ROWS_JSON = TypeAdapter(list[SummaryRow])


@router.get(
    "/summary", response_model=Summary, responses=responses(401, 403, 422, 503, 504, csv=True)
)
async def get_summary(
    api: ApiDep,
    principal: PrincipalDep,
    tabular: Tabular,
    frame: FrameQuery = "current",
    province: ProvinceQuery = None,
    unit: UnitQuery = None,
    district: DistrictQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    group_by: GroupByQuery = None,
    after: AfterQuery = None,
) -> Any:
    """The coordination figures, one row per group (or one row of totals)."""
    # On the event loop: a remembered answer is served without a thread-pool hop, which under
    # load cost more in waiting for the GIL than the work itself. Database work goes to threads.
    dims = group_by_dimensions(group_by)
    check_range(from_, to)
    wanted = parse_after(after)
    scope = resolve_scope(principal, province, unit, district)
    if wanted:
        await run_in_threadpool(
            wait_until_applied,
            api.engine,
            api.tables,
            api.settings.events_topic,
            wanted,
            api.settings.read_your_writes_timeout_seconds,
            api.applied,
        )
    question = ("summary", frame, scope, from_, to, tuple(dims))
    headers: dict[str, str] = {}
    try:
        rows, rows_json, shown = await _summary_at_freshness(
            api, question, frame, scope, dims, from_, to, recent=not wanted
        )
    except DATABASE_UNAVAILABLE:
        # A dashboard keeps its last figures through a database restart, marked as old
        # (``Age``, RFC 9111) with the lag unknown; a caller waiting for its receipts cannot.
        remembered = None if wanted else api.answers.newest(question)
        if remembered is None:
            raise
        (rows, rows_json, then), age = remembered
        SERVED_FROM_MEMORY.inc()
        shown = then.unknown_lag()
        headers["Age"] = str(int(age))
    headers.update(shown.headers())
    if tabular:
        return respond(tabular, Summary(rows=rows, freshness=shown), "summary", headers)
    return Response(
        b'{"rows":' + rows_json + b',"freshness":' + shown.model_dump_json().encode() + b"}",
        media_type="application/json",
        headers=headers,
    )


async def _summary_at_freshness(
    api: Api,
    question: tuple[Any, ...],
    frame: Frame,
    scope: Scope,
    dims: list[Dimension],
    from_: date | None,
    to: date | None,
    *,
    recent: bool,
) -> tuple[list[SummaryRow], bytes, Freshness]:
    """The rows (and their JSON) at the projection position the freshness read, with it."""
    fresh = await api.freshness.reading_on_loop(recent=recent)

    def compute() -> tuple[list[SummaryRow], bytes, Freshness]:
        with api.engine.connect() as conn:
            found = summary_rows(
                conn,
                api.tables,
                frame=frame,
                where=scope.conditions,
                date_from=from_,
                date_to=to,
                group_by=dims,
            )
        # Validated all at once: a model built per row took ~1.6 times as long.
        rows = ROWS_JSON.validate_python(found)
        # Encoded once per projection position: a year by district and month is ~200 rows,
        # and encoding them on every request was most of a remembered answer's cost.
        return rows, ROWS_JSON.dump_json(rows, exclude_unset=True), fresh

    # A caller waiting for its receipts needs the answer at its position; others may get the
    # previous one while it is computed, with the freshness that one was computed at.
    (rows, rows_json, freshness_then), age = await api.answers.answer(
        question,
        fresh.applied_offsets,
        compute,
        stale_for=api.settings.summary_stale_seconds if recent else 0,
        refresh_every=api.settings.summary_refresh_seconds,
    )
    return rows, rows_json, freshness_then.aged(age) if age else fresh
