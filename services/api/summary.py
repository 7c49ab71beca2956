"""The summary: daily figures rolled up in SQL by province, unit and period, in either frame.

Both frames are plain groupings of one table: ``current`` groups by today's province
(``province_code``), ``as_reported`` by the province of the event's date (``reported_province``,
``legacy:34`` before 2025-07-01). Names come from the registry (``shared.registry``), keyed alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal

import sqlalchemy as sa

from shared.db.schema import ReadModels
from shared.folds import STORED_FIGURES, SUMMARY_FIGURES, served_figures
from shared.projection import received_day_of
from shared.registry import Unit, lookup, province_label

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

    The figures are summed per group in SQL and the groups named here, from the registry (a
    join to the ``units`` table cost a hash of all its rows, more than the naming itself). With
    ``received_until``, the summary as it stood once everything received by then was applied
    (``as_of_figures``).
    """
    figures = tables.figures if received_until is None else as_of_figures(tables, received_until)
    by_unit = "unit" in group_by
    by_province = "province" in group_by or by_unit
    period = next((dim for dim in group_by if dim in PERIOD_LABELS), None)
    keys: list[sa.ColumnElement[Any]] = []
    if by_province:
        keys.append(province_column(figures, frame).label("province_code"))
    if by_unit:
        keys.append(figures.c.unit_code)
    if period:
        keys.append(_period(figures, period))
    # PostgreSQL's sum() of bigints is a numeric: a 128-bit state per group and a numeric built
    # at its end, which a summary of many groups paid per group. bigint_sum (migration 0006)
    # adds them as bigints. SQLite's sum() of integers is one already.
    total = sa.func.bigint_sum if conn.dialect.name == "postgresql" else sa.func.sum
    sums = [
        sa.func.coalesce(total(figures.c[name]), 0, type_=sa.BigInteger).label(name)
        for name in STORED_FIGURES
    ]
    query = sa.select(*keys, *sums).where(*where(figures))
    if date_from:
        query = query.where(figures.c.day >= date_from)
    if date_to:
        query = query.where(figures.c.day <= date_to)
    if keys:
        query = query.group_by(*keys).order_by(*keys)
    # Each row: the group's key fields (named from the registry), then the served figures.
    names: list[str] = []
    if by_province:
        names += ["province_code", "province_name"]
    if by_unit:
        names += ["unit_code", "unit_name", "unit_level", "unit_edition"]
    if period:
        names.append("period")
    names += SUMMARY_FIGURES
    width = len(keys)
    label = PERIOD_LABELS[period] if period else None
    rows: list[dict[str, Any]] = []
    for values in conn.execute(query).all():  # one fetchall: a fetch per row costs as much again
        stored = values[width:]
        if width and not any(stored):
            continue  # a group whose events were all retracted has nothing to show
        fields: tuple[str, ...] | None = ()
        if by_province:
            fields = _province_fields(values[0])
        if by_unit and fields is not None:
            unit = _unit_fields(values[1])
            fields = None if unit is None else fields + unit
        if fields is None:
            continue  # a key the registry does not have names no group
        if label:
            fields += (label(values[width - 1]),)
        rows.append(dict(zip(names, (*fields, *served_figures(stored)), strict=False)))
    return rows


# The groups' names, from the registry in memory: it holds exactly what the ``units`` table
# does (both are its two editions; tests/unit/test_registry.py holds the table's frozen data to
# the live registry). Cached: a long answer names the same few provinces on every row.
@lru_cache(maxsize=1024)
def _province_fields(key: str) -> tuple[str, str] | None:
    """``province_code`` and ``province_name`` of the province keyed ``key``; None if none is."""
    unit = _registered(key)
    return None if unit is None else (key, province_label(key, unit.name))


@lru_cache(maxsize=8192)
def _unit_fields(key: str) -> tuple[str, str, str, str] | None:
    """``unit_code``, ``unit_name``, ``unit_level`` and ``unit_edition``; None if no unit is."""
    unit = _registered(key)
    return None if unit is None else (key, unit.name, unit.level, unit.edition)


def _registered(key: str) -> Unit | None:
    """The unit whose registry key is ``key`` (``legacy:34``, ``33``, ``436``), None if none is."""
    unit = lookup(key)
    return unit if unit is not None and unit.key == key else None


# How a period's number (from ``_period``) is shown.
PERIOD_LABELS: dict[str, Callable[[int], str]] = {
    "year": lru_cache(maxsize=1024)(str),
    "quarter": lru_cache(maxsize=4096)(lambda quarter: f"{quarter // 10}-Q{quarter % 10}"),
    "month": lru_cache(maxsize=4096)(lambda month: f"{month // 100}-{month % 100:02d}"),
}
