"""The registry served: provinces of either edition, the units in force on a day, and the legacy
districts, with their Vietnamese names, read from the tables the migrations loaded."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.api.deps import ApiDep, PrincipalDep
from services.api.params import Day, ProvinceQuery, responses
from services.api.tabular import Tabular, respond
from services.web.problems import invalid_parameter
from shared import registry
from shared.db.schema import districts, units
from shared.events import VIETNAM_TZ

router = APIRouter(prefix="/v1", tags=["registry"])


class Province(BaseModel):
    code: str  # its registry key: "33", or "legacy:34" for one before 2025-07-01
    name: str
    edition: Literal["legacy", "2025"]
    valid_from: date | None
    valid_to: date | None
    # A 2025 province's legacy predecessors; a legacy province's 2025 successor.
    predecessors: list[str] | None = None
    successor: str | None = None


class District(BaseModel):
    code: str
    name: str
    province_code: str


class Provinces(BaseModel):
    rows: list[Province]


class Districts(BaseModel):
    rows: list[District]


@router.get(
    "/provinces",
    response_model=Provinces,
    response_model_exclude_none=True,
    responses=responses(401, 422, 503, csv=True),
)
def list_provinces(
    api: ApiDep,
    principal: PrincipalDep,
    tabular: Tabular,
    edition: Annotated[
        Literal["legacy", "2025"],
        Query(description="2025: today's 34 provinces; legacy: the 63 before 2025-07-01"),
    ] = "2025",
) -> object:
    """The provinces and centrally-run cities of one edition, by official code."""
    with api.engine.connect() as conn:
        found = conn.execute(
            sa.select(units).where(units.c.level == "province").order_by(units.c.code)
        ).mappings()
        rows = [dict(r) for r in found]
    rows_out = []
    for row in rows:
        if row["edition"] != edition:
            continue
        province = Province(
            code=row["key"],
            name=row["name"],
            edition=row["edition"],
            valid_from=row["valid_from"],
            valid_to=row["valid_to"],
        )
        if edition == "2025":
            province.predecessors = [
                r["key"]
                for r in rows
                if r["edition"] == "legacy" and r["successor_province"] == row["code"]
            ]
        else:
            province.successor = row["successor_province"]
        rows_out.append(province)
    return respond(tabular, Provinces(rows=rows_out), "provinces")


@router.get("/districts", response_model=Districts, responses=responses(401, 422, 503, csv=True))
def list_districts(
    api: ApiDep,
    principal: PrincipalDep,
    tabular: Tabular,
    province: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{2}$", description="A legacy province's code, e.g. 42"),
    ] = None,
) -> object:
    """Districts, optionally of one province."""
    query = sa.select(districts.c.code, districts.c.name, districts.c.province_code).order_by(
        districts.c.code
    )
    if province:
        query = query.where(districts.c.province_code == province)
    with api.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return respond(tabular, Districts(rows=[District(**r) for r in rows]), "districts")


class Unit(BaseModel):
    code: str  # its registry key: "18073", "436", "33", "legacy:34"
    name: str
    level: Literal["province", "district", "commune"]
    edition: Literal["legacy", "2025"]
    valid_from: date | None
    valid_to: date | None
    province_code: str  # its province in its own edition: "33" or "legacy:34"
    successor_province: str  # today's province its territory is in


class Units(BaseModel):
    rows: list[Unit]


@router.get("/units", response_model=Units, responses=responses(401, 422, 503, csv=True))
def list_units(
    api: ApiDep,
    principal: PrincipalDep,
    tabular: Tabular,
    province: ProvinceQuery = None,
    on: Annotated[
        Day | None,
        Query(
            description="The day whose edition is read (default: today): before 2025-07-01 legacy"
        ),
    ] = None,
    level: Annotated[
        Literal["province", "district", "commune"] | None, Query(description="Only this level")
    ] = None,
) -> object:
    """The units in force on a day, of one province's territory if asked, by code.

    Today's Hưng Yên (33) lists its communes; with ``on=2024-06-01`` the old provinces whose
    territory it now holds (``legacy:33``, ``legacy:34``) and their districts. An old province
    asked for a day after 2025-06-30 is a 422: its territory's communes are not its own.
    """
    day = on or datetime.now(VIETNAM_TZ).date()
    edition = registry.edition_on(day)
    query = sa.select(units).where(units.c.edition == edition)
    if province is not None:
        asked = registry.lookup(province)
        if asked is None or asked.level != "province":
            raise invalid_parameter(
                "province", "unknown province", "unknown_province", f"No province {province!r}."
            )
        if asked.edition == "legacy" and edition == "2025":
            raise invalid_parameter(
                "on",
                "after the old province's end",
                "unit_not_in_force",
                f"{asked.describe()} existed until {registry.LEGACY_LAST_DAY.isoformat()}; "
                f"ask for province {asked.successor_province} on {day.isoformat()}.",
            )
        # Today's province on a day before the reform: the old provinces it holds, and theirs.
        within = units.c.successor_province if edition != asked.edition else units.c.province_code
        query = query.where(within == asked.code)
    if level is not None:
        query = query.where(units.c.level == level)
    order = sa.case((units.c.level == "province", 0), else_=1)
    with api.engine.connect() as conn:
        found = conn.execute(query.order_by(order, units.c.code)).mappings().all()
    prefix = registry.LEGACY_PREFIX if edition == "legacy" else ""
    rows = [
        Unit(
            code=row["key"],
            name=row["name"],
            level=row["level"],
            edition=row["edition"],
            valid_from=row["valid_from"],
            valid_to=row["valid_to"],
            province_code=prefix + row["province_code"],
            successor_province=row["successor_province"],
        )
        for row in found
    ]
    return respond(tabular, Units(rows=rows), "units")
