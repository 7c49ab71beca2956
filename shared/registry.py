"""The registry of administrative units: two editions, and which one was in force on a date.

| edition  | in force         | units that report                                   |
|----------|------------------|-----------------------------------------------------|
| `legacy` | until 2025-06-30 | 63 provinces, 696 districts                         |
| `2025`   | from 2025-07-01  | 34 provinces, 3,321 communes (xã, phường, đặc khu)  |

Taken from the maintained ``vietnam-provinces`` package (``vietnam_provinces`` and
``vietnam_provinces.legacy``). Codes are the General Statistics Office codes, zero-padded:
provinces 2 digits, districts 3, communes 5. Codes are reused across the editions for other
territory (old 24 is Bắc Giang, new 24 is Bắc Ninh), so a code alone never names a unit: an
event's unit is its code read in the edition in force on its date; elsewhere a plain code means
the ``2025`` unit, ``legacy:CODE`` a legacy one, and a 3-digit (district) code is legacy by itself.

Every legacy province lies whole in one ``2025`` province (its successor), so every legacy unit's
figures roll up exactly into today's provinces. Nothing here does I/O beyond reading the package.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache, lru_cache
from typing import Literal

Edition = Literal["legacy", "2025"]
Level = Literal["province", "district", "commune"]
EDITIONS: tuple[Edition, ...] = ("legacy", "2025")

REFORM_DAY = date(2025, 7, 1)  # Resolution 202/2025/QH15: new provinces, no district level
LEGACY_LAST_DAY = REFORM_DAY - timedelta(days=1)
LEGACY_PREFIX = "legacy:"

# Corrections to the package's old -> new province table. It maps old 82 (Tiền Giang) to both
# new 80 and 82, because of one mislabelled ward (27691, Phường 4 of Tân An, Long An) in its
# source table; Tiền Giang merged whole into Đồng Tháp (82).
SUCCESSOR_CORRECTIONS: dict[str, str] = {"82": "82"}

_DIGITS: dict[Level, int] = {"province": 2, "district": 3, "commune": 5}


@dataclass(frozen=True, slots=True)
class Unit:
    """One administrative unit of one edition."""

    code: str  # as its edition writes it: "34", "436", "18073"
    edition: Edition
    level: Level
    name: str
    division_type: str  # "tỉnh", "thành phố trung ương", "huyện", "quận", "xã", "phường", ...
    codename: str
    # The province it belongs to in its own edition (a province's is its own code).
    province_code: str
    # Today's (2025) province its territory lies in; for a 2025 unit its own province.
    successor_province: str

    @property
    def key(self) -> str:
        """The unit's name across editions: ``legacy:34`` for a legacy province, else the code
        (a 3-digit code is a legacy district by itself; 5-digit codes are 2025 communes)."""
        if self.edition == "legacy" and self.level == "province":
            return LEGACY_PREFIX + self.code
        return self.code

    @property
    def province_key(self) -> str:
        """The key of its province in its own edition: ``legacy:42`` or ``42``."""
        prefix = LEGACY_PREFIX if self.edition == "legacy" else ""
        return prefix + self.province_code

    @property
    def valid_from(self) -> date | None:
        return None if self.edition == "legacy" else REFORM_DAY

    @property
    def valid_to(self) -> date | None:
        return LEGACY_LAST_DAY if self.edition == "legacy" else None

    def valid_on(self, day: date) -> bool:
        return edition_on(day) == self.edition

    def describe(self) -> str:
        """``district 436 (Thành phố Hà Tĩnh)``: how messages name the unit."""
        return f"{self.level} {self.code} ({self.name})"


@dataclass(frozen=True, slots=True)
class Attribution:
    """Where an event's figures go: its unit and the province in each frame.

    ``exception`` says why the unit does not fit the event's date (None when it does); such an
    event, already in the log, still counts, under its unit's successor province.
    """

    unit: Unit
    reported_province: str  # the as_reported frame's group: ``legacy:34`` or ``33``
    current_province: str  # the current frame's group: always a 2025 province code
    exception: str | None = None


def province_label(key: str, name: str) -> str:
    """A province's name as a figure's group shows it: a legacy one is labelled so that it
    cannot be taken for today's, "Tỉnh Thái Bình (đến 30/6/2025)"."""
    if key.startswith(LEGACY_PREFIX):
        return f"{name} (đến {LEGACY_LAST_DAY.day}/{LEGACY_LAST_DAY.month}/{LEGACY_LAST_DAY.year})"
    return name


def edition_on(day: date) -> Edition:
    return "legacy" if day < REFORM_DAY else "2025"


@cache
def _units() -> dict[tuple[Edition, str], Unit]:
    from vietnam_provinces import Province, Ward
    from vietnam_provinces.legacy import District as LegacyDistrict
    from vietnam_provinces.legacy import Province as LegacyProvince

    def pad(level: Level, number: int) -> str:
        return f"{number:0{_DIGITS[level]}d}"

    successors = _successors()
    units: dict[tuple[Edition, str], Unit] = {}

    def add(unit: Unit) -> None:
        units[(unit.edition, unit.code)] = unit

    for p in Province.iter_all():
        code = pad("province", int(p.code))
        add(Unit(code, "2025", "province", p.name, str(p.division_type), p.codename, code, code))
    for w in Ward.iter_all():
        province = pad("province", int(w.province_code))
        add(
            Unit(
                pad("commune", int(w.code)),
                "2025",
                "commune",
                w.name,
                str(w.division_type),
                w.codename,
                province,
                province,
            )
        )
    for lp in LegacyProvince.iter_all():
        code = pad("province", int(lp.code))
        add(
            Unit(
                code,
                "legacy",
                "province",
                lp.name,
                str(lp.division_type),
                lp.codename,
                code,
                successors[code],
            )
        )
    for d in LegacyDistrict.iter_all():
        province = pad("province", int(d.province_code))
        add(
            Unit(
                pad("district", int(d.code)),
                "legacy",
                "district",
                d.name,
                str(d.division_type),
                d.codename,
                province,
                successors[province],
            )
        )
    return units


@cache
def _successors() -> dict[str, str]:
    """Legacy province code -> the one 2025 province it merged into."""
    from vietnam_provinces import Province
    from vietnam_provinces.legacy import Province as LegacyProvince

    table: dict[str, str] = {}
    for lp in LegacyProvince.iter_all():
        code = f"{int(lp.code):02d}"
        found = {f"{int(m.province.code):02d}" for m in Province.search_from_legacy(code=int(code))}
        if code in SUCCESSOR_CORRECTIONS:
            found = {SUCCESSOR_CORRECTIONS[code]}
        if len(found) != 1:
            raise RuntimeError(f"legacy province {code} has successors {sorted(found)}, not one")
        table[code] = found.pop()
    return table


def load() -> None:
    """Read both editions now; otherwise the first lookup does (a worker process loads them
    before it starts, so that its garbage collector can leave them out)."""
    _units()


def lookup(ref: str, on: date | None = None) -> Unit | None:
    """A unit by ``legacy:CODE``, by a code read in the edition in force ``on`` a date, or by a
    plain code (a 2025 unit; a 3-digit code is a legacy district). None if there is none."""
    if ref.startswith(LEGACY_PREFIX):
        return _units().get(("legacy", ref.removeprefix(LEGACY_PREFIX)))
    if on is not None:
        return _units().get((edition_on(on), ref))
    edition: Edition = "legacy" if len(ref) == _DIGITS["district"] else "2025"
    return _units().get((edition, ref))


def units(edition: Edition | None = None, level: Level | None = None) -> Iterator[Unit]:
    """The registry's units, of one edition and level if asked."""
    for unit in _units().values():
        if (edition is None or unit.edition == edition) and (level is None or unit.level == level):
            yield unit


def successor_of(legacy_province: str) -> str:
    """The 2025 province a legacy province merged into."""
    return _successors()[legacy_province]


def predecessors_of(province: str) -> list[str]:
    """The legacy provinces (codes) whose territory is in this 2025 province."""
    return sorted(old for old, new in _successors().items() if new == province)


def attribute(code: str, day: date) -> Attribution | None:
    """Where an event of the unit ``code`` dated ``day`` counts; None if no edition has the code.

    A unit that fits its date counts under its own province in the as_reported frame and under
    today's province in the current frame. A unit of the other edition (an event older versions
    accepted) counts under its successor province in both, with the reason it did not fit.
    """
    return _attribute(code, edition_on(day))


@lru_cache(maxsize=16_384)  # bounded: codes come from callers, and a code's answer never changes
def _attribute(code: str, edition: Edition) -> Attribution | None:
    unit = _units().get((edition, code))
    if unit is not None:
        return Attribution(unit, unit.province_key, unit.successor_province)
    other: Edition = "2025" if edition == "legacy" else "legacy"
    unit = _units().get((other, code))
    if unit is None:
        return None
    return Attribution(unit, unit.successor_province, unit.successor_province, misfit(unit))


def current_provinces_of(code: str) -> frozenset[str]:
    """Today's provinces an event of the unit ``code`` can count under, whatever its date: a
    code may name a unit in each edition (province codes were reused in 2025)."""
    found = (_attribute(code, edition) for edition in ("legacy", "2025"))
    return frozenset(a.current_province for a in found if a is not None)


def misfit(unit: Unit) -> str:
    """Why ``unit`` cannot report for ``day``, in words an office can act on."""
    if unit.edition == "legacy":
        successor = lookup(unit.successor_province)
        now_in = f"province {unit.successor_province}" + (
            f" ({successor.name})" if successor else ""
        )
        after = "its communes report" if unit.level == "district" else f"{now_in} reports for it"
        return (
            f"{unit.describe()} existed until {LEGACY_LAST_DAY.isoformat()}, and its territory is "
            f"now in {now_in}; from {REFORM_DAY.isoformat()} {after}."
        )
    return (
        f"{unit.describe()} exists from {REFORM_DAY.isoformat()}; before that date the legacy "
        "units (the districts and the old provinces) reported."
    )


def unknown(code: str, day: date) -> str:
    """Why no unit answers to ``code`` on ``day``."""
    edition = edition_on(day)
    return (
        f"No unit has code {code!r} in the {edition} edition of the registry (in force on "
        f"{day.isoformat()}), nor in the other edition."
    )


def contains(outer: Unit, inner: Unit) -> bool:
    """Whether ``inner`` lies within the province ``outer`` (a province contains itself).

    A 2025 province contains its own communes and every legacy unit of its predecessors; a legacy
    province its own districts only.
    """
    if outer.level != "province":
        return outer == inner
    if outer.edition == "2025":
        return inner.successor_province == outer.code
    return inner.edition == "legacy" and inner.province_code == outer.code
