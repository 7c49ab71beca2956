"""``/v1/programs``, ``/v1/conferences``, ``/v1/cases`` and ``/v1/registry-exceptions``: the
lists, a page at a time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from services.api.deps import Api, ApiDep, PrincipalDep
from services.api.freshness import Freshness
from services.api.lists import (
    decode_cursor,
    encode_cursor,
    filters_fingerprint,
    read_page,
)
from services.api.params import (
    AfterQuery,
    Day,
    DistrictQuery,
    FrameQuery,
    FromQuery,
    ProvinceQuery,
    ToQuery,
    UnitQuery,
    check_range,
    responses,
)
from services.api.read_your_writes import parse_after, wait_until_applied
from services.api.scopes import resolve_scope
from services.api.summary import Frame
from services.api.tabular import Tabular, respond
from services.web.auth import Principal
from shared import registry

router = APIRouter(prefix="/v1", tags=["lists"])

CursorQuery = Annotated[
    str | None,
    Query(
        max_length=400,
        pattern="^[A-Za-z0-9_-]*$",  # URL-safe base64 without padding, as encode_cursor makes it
        description="next_cursor of the previous page; omit for the first",
    ),
]
LIST_RESPONSES = responses(401, 403, 422, 503, 504, csv=True)
LimitQuery = Annotated[int, Query(ge=1, le=1000, description="Rows per page")]


class ListedRow(BaseModel):
    event_id: str
    province_code: str  # today's province
    reported_province: str  # the province on the event's date ("legacy:34" before 2025-07-01)
    unit_code: str
    unit_name: str
    unit_level: str


class ProgramRow(ListedRow):
    program_id: str
    title: str
    parties: list[str]
    period_start: int
    period_end: int
    content_items: list[str]
    signed_by: list[str]
    signed_on: date


class ConferenceRow(ListedRow):
    title: str
    kind: str
    organizers: list[str]
    attendees: int
    online: bool
    connection_points: int | None
    program_id: str | None
    held_on: date


class CaseRow(ListedRow):
    case_id: str
    category: str
    resolution: str
    hotspot_prevented: bool
    program_id: str | None
    resolved_on: date


class Programs(BaseModel):
    rows: list[ProgramRow]
    next_cursor: str | None
    freshness: Freshness


class Conferences(BaseModel):
    rows: list[ConferenceRow]
    next_cursor: str | None
    freshness: Freshness


class Cases(BaseModel):
    rows: list[CaseRow]
    next_cursor: str | None
    freshness: Freshness


def _in_range(
    day: sa.ColumnElement[date], date_from: date | None, date_to: date | None
) -> list[sa.ColumnElement[bool]]:
    return [
        *([day >= date_from] if date_from else []),
        *([day <= date_to] if date_to else []),
    ]


def _page(
    request: Request,
    api: Api,
    principal: Principal,
    *,
    name: str,
    table: sa.Table,
    day_column: str,
    frame: Frame,
    province: str | None,
    unit: str | None,
    district: str | None = None,
    filters: dict[str, Any],
    where: Sequence[sa.ColumnElement[bool]],
    cursor: str | None,
    limit: int,
    after: str | None,
) -> tuple[list[dict[str, Any]], str | None, Freshness, dict[str, str]]:
    """What the lists share: scope, cursor, read-your-writes, freshness, the page."""
    scope = resolve_scope(principal, province, unit, district)
    # The cursor is bound to the filters as asked *and* as scoped, so it cannot widen a scope.
    fingerprint = filters_fingerprint(
        name,
        {
            **filters,
            "frame": frame,
            "province": scope.province,
            "unit": scope.unit,
            "limit": scope.limit,
        },
    )
    position = decode_cursor(cursor, fingerprint)
    wanted = parse_after(after)
    wait_until_applied(
        api.engine,
        api.tables,
        api.settings.events_topic,
        wanted,
        api.settings.read_your_writes_timeout_seconds,
        api.applied,
    )
    conditions = [*where, *scope.conditions(table)]
    fresh = api.freshness.reading(recent=not wanted)
    with api.engine.connect() as conn:
        rows, last = read_page(conn, table, day_column, conditions, position, limit)
    next_cursor = None if last is None else encode_cursor(last, fingerprint)
    headers = fresh.headers()
    if next_cursor:
        # For CSV readers, who have no JSON body to find the cursor in.
        query = {k: v for k, v in request.query_params.items() if k not in ("cursor", "after")}
        url = f"{request.url.path}?{urlencode({**query, 'cursor': next_cursor})}"
        headers |= {"X-Next-Cursor": next_cursor, "Link": f'<{url}>; rel="next"'}
    return rows, next_cursor, fresh, headers


@router.get("/programs", response_model=Programs, responses=LIST_RESPONSES)
def list_programs(
    request: Request,
    api: ApiDep,
    principal: PrincipalDep,
    tabular: Tabular,
    frame: FrameQuery = "current",
    province: ProvinceQuery = None,
    unit: UnitQuery = None,
    district: DistrictQuery = None,
    active_on: Annotated[
        Day | None, Query(description="Only programs whose period covers this day's year")
    ] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    after: AfterQuery = None,
) -> Any:
    """Coordination programs signed, newest first."""
    t = api.tables.programs
    where = []
    if active_on:
        where += [t.c.period_start <= active_on.year, t.c.period_end >= active_on.year]
    rows, next_cursor, fresh, headers = _page(
        request,
        api,
        principal,
        name="programs",
        table=t,
        day_column="signed_on",
        frame=frame,
        province=province,
        unit=unit,
        district=district,
        filters={"active_on": active_on},
        where=where,
        cursor=cursor,
        limit=limit,
        after=after,
    )
    body = Programs(rows=[ProgramRow(**r) for r in rows], next_cursor=next_cursor, freshness=fresh)
    return respond(tabular, body, "programs", headers=headers)


@router.get("/conferences", response_model=Conferences, responses=LIST_RESPONSES)
def list_conferences(
    request: Request,
    api: ApiDep,
    principal: PrincipalDep,
    tabular: Tabular,
    frame: FrameQuery = "current",
    province: ProvinceQuery = None,
    unit: UnitQuery = None,
    district: DistrictQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    kind: Annotated[
        Literal["review", "summary", "signing", "training", "other"] | None, Query()
    ] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    after: AfterQuery = None,
) -> Any:
    """Conferences held (sơ kết, tổng kết, ký kết...), newest first."""
    check_range(from_, to)
    t = api.tables.conferences
    where = _in_range(t.c.held_on, from_, to)
    if kind:
        where.append(t.c.kind == kind)
    rows, next_cursor, fresh, headers = _page(
        request,
        api,
        principal,
        name="conferences",
        table=t,
        day_column="held_on",
        frame=frame,
        province=province,
        unit=unit,
        district=district,
        filters={"from": from_, "to": to, "kind": kind},
        where=where,
        cursor=cursor,
        limit=limit,
        after=after,
    )
    body = Conferences(
        rows=[ConferenceRow(**r) for r in rows], next_cursor=next_cursor, freshness=fresh
    )
    return respond(tabular, body, "conferences", headers=headers)


@router.get("/cases", response_model=Cases, responses=LIST_RESPONSES)
def list_cases(
    request: Request,
    api: ApiDep,
    principal: PrincipalDep,
    tabular: Tabular,
    frame: FrameQuery = "current",
    province: ProvinceQuery = None,
    unit: UnitQuery = None,
    district: DistrictQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    category: Annotated[
        Literal["complaint", "petition", "land", "security_order", "other"] | None, Query()
    ] = None,
    resolution: Annotated[Literal["stable", "temporarily_stable"] | None, Query()] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    after: AfterQuery = None,
) -> Any:
    """Complex cases resolved (ổn định / tạm ổn định), newest first."""
    check_range(from_, to)
    t = api.tables.cases
    where = _in_range(t.c.resolved_on, from_, to)
    if category:
        where.append(t.c.category == category)
    if resolution:
        where.append(t.c.resolution == resolution)
    rows, next_cursor, fresh, headers = _page(
        request,
        api,
        principal,
        name="cases",
        table=t,
        day_column="resolved_on",
        frame=frame,
        province=province,
        unit=unit,
        district=district,
        filters={"from": from_, "to": to, "category": category, "resolution": resolution},
        where=where,
        cursor=cursor,
        limit=limit,
        after=after,
    )
    body = Cases(rows=[CaseRow(**r) for r in rows], next_cursor=next_cursor, freshness=fresh)
    return respond(tabular, body, "cases", headers=headers)


class RegistryExceptionRow(ListedRow):
    """An event in the log whose unit does not fit its date (older versions accepted it): it
    counts under its unit's successor province, and the province reviews it here."""

    type: str
    occurred_on: date
    received_at: datetime
    partition: int
    offset: int
    reason: str


class RegistryExceptions(BaseModel):
    rows: list[RegistryExceptionRow]
    next_cursor: str | None
    freshness: Freshness


@router.get("/registry-exceptions", response_model=RegistryExceptions, responses=LIST_RESPONSES)
def list_registry_exceptions(
    request: Request,
    api: ApiDep,
    principal: PrincipalDep,
    tabular: Tabular,
    frame: FrameQuery = "current",
    province: ProvinceQuery = None,
    unit: UnitQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    after: AfterQuery = None,
) -> Any:
    """Events whose unit did not exist on their date, newest first, with their log position and
    why they did not fit. They are counted, under the unit's successor province."""
    t = api.tables.archive
    check_range(from_, to)
    where = [t.c.registry_exception.is_(True), *_in_range(t.c.occurred_on, from_, to)]
    rows, next_cursor, fresh, headers = _page(
        request,
        api,
        principal,
        name="registry-exceptions",
        table=t,
        day_column="occurred_on",
        frame=frame,
        province=province,
        unit=unit,
        filters={"from": from_, "to": to},
        where=where,
        cursor=cursor,
        limit=limit,
        after=after,
    )
    listed = [RegistryExceptionRow(**row, reason=_misfit(row["unit_code"])) for row in rows]
    body = RegistryExceptions(rows=listed, next_cursor=next_cursor, freshness=fresh)
    return respond(tabular, body, "registry-exceptions", headers=headers)


def _misfit(unit_code: str) -> str:
    unit = registry.lookup(unit_code)
    return registry.misfit(unit) if unit is not None else f"No unit {unit_code!r} in the registry."
