"""The org registry: provinces and districts with their Vietnamese names."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.api.deps import ApiDep, PrincipalDep
from services.api.tabular import Tabular, respond
from shared.db.schema import districts, provinces

router = APIRouter(prefix="/v1", tags=["registry"])


class Province(BaseModel):
    code: str
    name: str


class District(BaseModel):
    code: str
    name: str
    province_code: str


class Provinces(BaseModel):
    rows: list[Province]


class Districts(BaseModel):
    rows: list[District]


@router.get("/provinces", response_model=Provinces)
def list_provinces(api: ApiDep, principal: PrincipalDep, tabular: Tabular) -> object:
    """The 63 provinces and centrally-run cities, by official code."""
    with api.engine.connect() as conn:
        rows = (
            conn.execute(sa.select(provinces.c.code, provinces.c.name).order_by(provinces.c.code))
            .mappings()
            .all()
        )
    return respond(tabular, Provinces(rows=[Province(**r) for r in rows]), "provinces")


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
