"""The registry served: provinces of either edition, and the legacy districts, with their
Vietnamese names, read from the tables the migrations loaded."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.api.deps import ApiDep, PrincipalDep
from services.api.tabular import Tabular, respond
from shared.db.schema import districts, units

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


@router.get("/provinces", response_model=Provinces, response_model_exclude_none=True)
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


@router.get("/districts", response_model=Districts)
def list_districts(
    api: ApiDep,
    principal: PrincipalDep,
    tabular: Tabular,
    province: Annotated[
        str | None, Query(pattern=r"^\d{2}$", description="Province code, e.g. 42")
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
