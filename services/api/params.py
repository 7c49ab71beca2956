"""The query parameters the read endpoints share, and the ``responses=`` each route documents.

Each schema is what its validation takes, no more and no less: [0-9], not \\d, which would take
other scripts' digits.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import Query
from pydantic import BeforeValidator

from services.api.summary import DIMENSION_ALIASES, DIMENSIONS, Dimension, Frame, parse_group_by
from services.web.problems import invalid_parameter, problem_responses


def responses(*statuses: int, csv: bool = False) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: the problems it can answer, and CSV when it gives CSV."""
    documented = problem_responses(*statuses)
    if csv:
        documented[200] = {
            "content": {
                "text/csv": {
                    "schema": {
                        "type": "string",
                        "description": "The rows as CSV (UTF-8 with a BOM) with a header row: "
                        "asked with format=csv or Accept: text/csv",
                    }
                }
            }
        }
    return documented


ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_day(value: object) -> object:
    """A day is YYYY-MM-DD (format: date), not any string pydantic could read as a date."""
    if isinstance(value, str) and not ISO_DAY.fullmatch(value):
        raise ValueError("a date is YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]
FromQuery = Annotated[
    Day | None, Query(alias="from", examples=["2021-01-01"], description="First day, inclusive")
]
ToQuery = Annotated[Day | None, Query(examples=["2021-12-31"], description="Last day, inclusive")]
# One dimension or several joined by commas, at most one of them a period; district is
# another name for unit. What parse_group_by takes, less the spaces and empty parts it skips.
_PERIODS = ("month", "quarter", "year")
_GROUPS = "|".join([*(d for d in DIMENSIONS if d not in _PERIODS), *DIMENSION_ALIASES])
GROUP_BY_PATTERN = (
    "^(" + "|".join(f"({_GROUPS}|{period})(,({_GROUPS}|{period}))*" for period in _PERIODS) + ")?$"
)
GroupByQuery = Annotated[
    str | None,
    Query(
        max_length=100,
        pattern=GROUP_BY_PATTERN,
        examples=["unit,month"],
        description=(
            "province, unit, month, quarter or year; several joined by commas, at most one "
            "period (district is another name for unit), e.g. unit,month"
        ),
    ),
]
FrameQuery = Annotated[
    Frame,
    Query(
        description=(
            "current: today's 34 provinces, each with its predecessors' history; as_reported: "
            "provinces and units as they were on each event's date"
        )
    ),
]
PROVINCE_PATTERN = r"^(legacy:)?[0-9]{2}$"
ProvinceQuery = Annotated[
    str | None,
    Query(
        pattern=PROVINCE_PATTERN,
        examples=["42"],
        description=(
            "A province: today's code, e.g. 33 (Hưng Yên), or legacy:CODE for one before "
            "2025-07-01, e.g. legacy:34 (Thái Bình)"
        ),
    ),
]
UNIT_PATTERN = r"^(legacy:[0-9]{2,3}|[0-9]{2}|[0-9]{3}|[0-9]{5})$"
UnitQuery = Annotated[
    str | None,
    Query(
        pattern=UNIT_PATTERN,
        examples=["436"],
        description=(
            "A unit: a commune (18073), a legacy district (436), a province (42) or "
            "legacy:CODE (legacy:34)"
        ),
    ),
]
DistrictQuery = Annotated[
    str | None,
    Query(
        pattern=UNIT_PATTERN,
        examples=["436"],
        description="Another name for unit, kept for older callers",
    ),
]
# As parse_after reads them: at most 6 digits of partition and 18 of offset.
_RECEIPT = "[0-9]{1,6}:[0-9]{1,18}"
RECEIPTS_PATTERN = f"^({_RECEIPT}(,{_RECEIPT})*)?$"
AfterQuery = Annotated[
    str | None,
    Query(
        max_length=8000,
        pattern=RECEIPTS_PATTERN,
        examples=["0:0,1:0,2:0"],
        description=(
            "Receipts to wait for, as partition:offset pairs joined by commas (e.g. 0:17,2:5): "
            "the answer waits, bounded, until the read models hold them (504 if they do not "
            "in time)"
        ),
    ),
]


def check_range(date_from: date | None, date_to: date | None) -> None:
    if date_from and date_to and date_from > date_to:
        raise invalid_parameter("from", "after 'to'", "range", "'from' is after 'to'.")


def group_by_dimensions(value: str | None) -> list[Dimension]:
    try:
        return parse_group_by(value)
    except ValueError as exc:
        raise invalid_parameter("group_by", str(exc)) from None
