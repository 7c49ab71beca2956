"""The summary: daily figures rolled up in SQL by province, district and period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

import sqlalchemy as sa

from shared.db.schema import ReadModels, districts, provinces
from shared.folds import STORED_FIGURES, summary_row

Dimension = Literal["province", "district", "month", "quarter", "year"]
DIMENSIONS: tuple[Dimension, ...] = ("province", "district", "month", "quarter", "year")


def parse_group_by(value: str | None) -> list[Dimension]:
    """``group_by`` is one dimension or several joined by commas (``district,month``)."""
    if not value:
        return []
    dims = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown group_by {', '.join(unknown)}; use {', '.join(DIMENSIONS)}")
    if len({*dims} & {"month", "quarter", "year"}) > 1:
        raise ValueError("group by at most one period: month, quarter or year")
    return list(dict.fromkeys(dims))  # type: ignore[arg-type]


def _period(figures: sa.Table, dim: Dimension) -> sa.ColumnElement[Any]:
    year = sa.cast(sa.extract("year", figures.c.day), sa.Integer)
    month = sa.cast(sa.extract("month", figures.c.day), sa.Integer)
    if dim == "year":
        return year.label("year")
    if dim == "month":
        return (year * 100 + month).label("month")
    # Floor division: SQLAlchemy's "/" is true division, which would make each month a quarter.
    return (year * 10 + (month + 2) // 3).label("quarter")


def summary_rows(
    conn: sa.Connection,
    tables: ReadModels,
    *,
    province: str | None = None,
    district: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    group_by: Sequence[Dimension] = (),
) -> list[dict[str, Any]]:
    figures = tables.figures
    keys: list[sa.ColumnElement[Any]] = []
    joins: sa.FromClause = figures
    if "province" in group_by or "district" in group_by:
        joins = joins.join(provinces, provinces.c.code == figures.c.province_code)
        keys += [figures.c.province_code, provinces.c.name.label("province_name")]
    if "district" in group_by:
        joins = joins.join(districts, districts.c.code == figures.c.district_code)
        keys += [figures.c.district_code, districts.c.name.label("district_name")]
    keys += [_period(figures, dim) for dim in group_by if dim in ("month", "quarter", "year")]
    sums = [
        sa.func.coalesce(sa.func.sum(figures.c[name]), 0).label(name) for name in STORED_FIGURES
    ]
    query = sa.select(*keys, *sums).select_from(joins)
    if province:
        query = query.where(figures.c.province_code == province)
    if district:
        query = query.where(figures.c.district_code == district)
    if date_from:
        query = query.where(figures.c.day >= date_from)
    if date_to:
        query = query.where(figures.c.day <= date_to)
    if keys:
        query = query.group_by(*keys).order_by(*keys)
    rows = []
    for row in conn.execute(query).mappings():
        if keys and not any(row[name] for name in STORED_FIGURES):
            continue  # a group whose events were all retracted has nothing to show
        rows.append({**_group_keys(row, group_by), **summary_row(dict(row))})
    return rows


def _group_keys(row: sa.RowMapping, group_by: Sequence[Dimension]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    if "province" in group_by or "district" in group_by:
        keys["province_code"] = row["province_code"]
        keys["province_name"] = row["province_name"]
    if "district" in group_by:
        keys["district_code"] = row["district_code"]
        keys["district_name"] = row["district_name"]
    if "year" in group_by:
        keys["period"] = f"{row['year']}"
    if "quarter" in group_by:
        keys["period"] = f"{row['quarter'] // 10}-Q{row['quarter'] % 10}"
    if "month" in group_by:
        keys["period"] = f"{row['month'] // 100}-{row['month'] % 100:02d}"
    return keys
