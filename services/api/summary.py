"""The summary: daily figures rolled up in SQL by province, unit and period, in either frame.

Both frames are plain groupings of one table: ``current`` groups by today's province
(``province_code``), ``as_reported`` by the province of the event's date (``reported_province``,
``legacy:34`` before 2025-07-01). Names come from the registry's ``units`` table, keyed alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from shared.db.schema import ReadModels, units
from shared.folds import STORED_FIGURES, summary_row
from shared.projection import received_day_of
from shared.registry import province_label

Frame = Literal["current", "as_reported"]
FRAMES: tuple[Frame, ...] = ("current", "as_reported")
Dimension = Literal["province", "unit", "month", "quarter", "year"]
DIMENSIONS: tuple[Dimension, ...] = ("province", "unit", "month", "quarter", "year")
# Older names that keep working: a district was the reporting unit before 2025.
DIMENSION_ALIASES = {"district": "unit"}


def parse_group_by(value: str | None) -> list[Dimension]:
    """``group_by`` is one dimension or several joined by commas (``unit,month``)."""
    if not value:
        return []
    dims = [part.strip() for part in value.split(",") if part.strip()]
    dims = [DIMENSION_ALIASES.get(d, d) for d in dims]
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown group_by {', '.join(unknown)}; use {', '.join(DIMENSIONS)}")
    if len({*dims} & {"month", "quarter", "year"}) > 1:
        raise ValueError("group by at most one period: month, quarter or year")
    return list(dict.fromkeys(dims))  # type: ignore[arg-type]


def province_column_name(frame: Frame) -> str:
    """The read models' column that holds the province a row counts under in ``frame``."""
    return "province_code" if frame == "current" else "reported_province"


def province_column(table: sa.FromClause, frame: Frame) -> sa.ColumnElement[str]:
    return table.c[province_column_name(frame)]


def _period(figures: sa.FromClause, dim: Dimension) -> sa.ColumnElement[Any]:
    month = figures.c.month  # YYYYMM; floor division, since SQLAlchemy's "/" is true division
    if dim == "year":
        return (month // 100).label("year")
    if dim == "month":
        return month.label("month")
    return ((month // 100) * 10 + (month % 100 + 2) // 3).label("quarter")


# The WHERE conditions on the figures' rows, for the table (or subquery) they come from.
Conditions = Callable[[sa.FromClause], Sequence[sa.ColumnElement[bool]]]


def as_of_figures(tables: ReadModels, moment: datetime) -> sa.Subquery:
    """daily_figures as they stood once everything received by ``moment`` was applied.

    Today's rows less what was received after ``moment``: the figure changes summed per day
    received for the whole days after its own, and the changes themselves for the rest of its
    day. Equal to summing every change received by then (each event's figures, and each
    retraction's negative ones, at the time they entered the log), at the cost of a few
    summaries rather than of the whole log: "now" reads no change at all.
    """
    moment = moment.astimezone(UTC)  # received times are stored in UTC (SQLite: naive)
    day = received_day_of(moment)
    # the calendar's last day has no next midnight: everything after the moment is that day's
    next_midnight = (
        datetime.combine(day + timedelta(days=1), time(), UTC)
        if day < date.max
        else datetime.max.replace(tzinfo=UTC)
    )
    figures, received, changes = tables.figures, tables.received, tables.changes
    columns = ("day", "month", "unit_code", "province_code", "reported_province")

    def rows(table: sa.Table, sign: int) -> sa.Select[Any]:
        sums = [table.c[n] if sign > 0 else (-table.c[n]).label(n) for n in STORED_FIGURES]
        return sa.select(*(table.c[c] for c in columns), *sums)

    later_days = rows(received, -1).where(received.c.received_day > day)
    rest_of_day = rows(changes, -1).where(
        changes.c.received_at > moment, changes.c.received_at < next_midnight
    )
    return sa.union_all(rows(figures, +1), later_days, rest_of_day).subquery("as_of")


def summary_rows(
    conn: sa.Connection,
    tables: ReadModels,
    *,
    frame: Frame = "current",
    where: Conditions = lambda figures: (),
    date_from: date | None = None,
    date_to: date | None = None,
    group_by: Sequence[Dimension] = (),
    received_until: datetime | None = None,
) -> list[dict[str, Any]]:
    """``where`` limits the figures' rows (``Scope.conditions``).

    The figures are summed per group first and the groups named after, so the names are joined
    to a few rows rather than to every day of every unit. With ``received_until``, the summary
    as it stood once everything received by then was applied (``as_of_figures``).
    """
    figures = tables.figures if received_until is None else as_of_figures(tables, received_until)
    by_province = "province" in group_by or "unit" in group_by
    keys: list[sa.ColumnElement[Any]] = []
    if by_province:
        keys.append(province_column(figures, frame).label("province_code"))
    if "unit" in group_by:
        keys.append(figures.c.unit_code)
    keys += [_period(figures, dim) for dim in group_by if dim in ("month", "quarter", "year")]
    sums = [
        sa.func.coalesce(sa.func.sum(figures.c[name]), 0).label(name) for name in STORED_FIGURES
    ]
    query = sa.select(*keys, *sums).where(*where(figures))
    if date_from:
        query = query.where(figures.c.day >= date_from)
    if date_to:
        query = query.where(figures.c.day <= date_to)
    if keys:
        query = query.group_by(*keys)
    groups = query.subquery("groups")
    named: list[sa.ColumnElement[Any]] = []
    joins: sa.FromClause = groups
    if by_province:
        province_unit = units.alias("province_unit")
        joins = joins.join(province_unit, province_unit.c.key == groups.c.province_code)
        named.append(province_unit.c.name.label("province_name"))
    if "unit" in group_by:
        reporting = units.alias("reporting_unit")
        joins = joins.join(reporting, reporting.c.key == groups.c.unit_code)
        named += [
            reporting.c.name.label("unit_name"),
            reporting.c.level.label("unit_level"),
            reporting.c.edition.label("unit_edition"),
        ]
    ordered = [groups.c[key.name] for key in keys]
    rows = []
    for row in conn.execute(
        sa.select(groups, *named).select_from(joins).order_by(*ordered)
    ).mappings():
        if keys and not any(row[name] for name in STORED_FIGURES):
            continue  # a group whose events were all retracted has nothing to show
        rows.append({**_group_keys(row, group_by), **summary_row(dict(row))})
    return rows


def _group_keys(row: sa.RowMapping, group_by: Sequence[Dimension]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    if "province" in group_by or "unit" in group_by:
        keys["province_code"] = row["province_code"]
        keys["province_name"] = province_label(row["province_code"], row["province_name"])
    if "unit" in group_by:
        for name in ("unit_code", "unit_name", "unit_level", "unit_edition"):
            keys[name] = row[name]
    if "year" in group_by:
        keys["period"] = f"{row['year']}"
    if "quarter" in group_by:
        keys["period"] = f"{row['quarter'] // 10}-Q{row['quarter'] % 10}"
    if "month" in group_by:
        keys["period"] = f"{row['month'] // 100}-{row['month'] % 100:02d}"
    return keys
