"""What a read covers: the province and unit asked for, within what the caller's token may see.

A province is named by its registry key: a 2025 code (``33``) or ``legacy:CODE`` (``legacy:34``);
a unit likewise (``18073``, ``436``, ``legacy:34``). The token's limit:
- a dashboard token scoped to a 2025 province sees its whole territory's history, predecessors
  included, in both frames; one scoped to a legacy province only that old province's own events;
- a reporter token reads its own unit (a provincial office's: its province, as above);
- other tokens read everything.

A province asked for is a territory in the same way, whatever the frame: ``province=33`` covers
today's Hưng Yên with its predecessors' history (grouped, in the as_reported frame, under the
province of each event's date: ``legacy:33``, ``legacy:34``, then ``33``), and
``province=legacy:34`` old Thái Bình's own events. The frame says how figures are grouped, never
which are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from services.web.auth import Principal
from services.web.problems import Problem, invalid_parameter
from shared import registry


@dataclass(frozen=True, slots=True)
class Scope:
    """The filters of a read, checked against the registry and the caller's token."""

    province: str | None  # asked for: a province key
    unit: str | None  # asked for: a unit key
    limit: str | None = None  # the token's: a province or unit key

    def conditions(self, table: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        """The WHERE conditions on a read model (one with the attribution columns)."""
        found: list[sa.ColumnElement[bool]] = []
        if self.limit is not None:
            found.append(_territory(table, self.limit))
        if self.province is not None:
            found.append(_territory(table, self.province))
        if self.unit is not None:
            found.append(table.c.unit_code == self.unit)
        return found


def _territory(table: sa.FromClause, key: str) -> sa.ColumnElement[bool]:
    return table.c[_territory_column(key)] == key


def _territory_column(key: str) -> str:
    """The column that holds a unit's territory whatever the frame: today's province for a
    2025 province (its whole history), the reported one for a legacy province (only its own
    events), the unit itself otherwise."""
    unit = _unit(key)
    if unit.level != "province":
        return "unit_code"
    return "reported_province" if unit.edition == "legacy" else "province_code"


def _unit(key: str) -> registry.Unit:
    unit = registry.lookup(key)
    if unit is None:  # keys here were checked by resolve_scope or come from a stored token
        raise ValueError(f"no unit {key!r}")
    return unit


def _unknown(name: str, value: str, why: str) -> Problem:
    return invalid_parameter(name, f"unknown {name}", f"unknown_{name}", why)


def resolve_scope(
    principal: Principal, province: str | None, unit: str | None, district: str | None = None
) -> Scope:
    """The caller's filters, checked against the registry and limited to what the token may
    read. 422 for a unit the registry lacks, 403 for one outside the token's scope.
    ``district`` is the older name of ``unit``; an error names the parameter the caller sent."""
    unit_param = "unit"
    if district is not None:
        if unit is not None and unit != district:
            raise invalid_parameter(
                "district", "differs from unit", "conflict", "district= is another name for unit="
            )
        unit, unit_param = district, "district"
    province_unit = registry.lookup(province) if province is not None else None
    if province is not None and (province_unit is None or province_unit.level != "province"):
        raise _unknown("province", province, f"No province {province!r} in the registry.")
    found = registry.lookup(unit) if unit is not None else None
    if unit is not None and found is None:
        raise _unknown(unit_param, unit, f"No unit {unit!r} in the registry.")
    if (
        province_unit is not None
        and found is not None
        and not registry.contains(province_unit, found)
    ):
        raise Problem(
            422,
            "Unprocessable Content",
            f"{found.describe()} is not in province {province_unit.key} ({province_unit.name}).",
        )
    limit = _limit_of(principal)
    if limit is not None:
        allowed = registry.lookup(limit)
        asked = found or province_unit
        # A commune's or district's token may also name its own province: its limit still holds.
        if asked is not None and (
            allowed is None
            or not (
                registry.contains(allowed, asked)
                or (allowed.level != "province" and registry.contains(asked, allowed))
            )
        ):
            raise Problem(403, "Forbidden", f"This token reads only {allowed_name(allowed)}.")
    return Scope(province_unit.key if province_unit else None, found.key if found else None, limit)


def _limit_of(principal: Principal) -> str | None:
    if principal.role == "reporter":
        return principal.unit_code or ""
    if principal.role == "dashboard":
        return principal.province_code
    return None


def allowed_name(unit: registry.Unit | None) -> str:
    if unit is None:
        return "a unit the registry no longer has"
    if unit.level == "province" and unit.edition == "2025":
        return f"province {unit.key} ({unit.name}) and its predecessors"
    return f"{unit.describe().replace(unit.code, unit.key, 1)}"
