"""The registry of administrative units: two editions, which one is in force on a date, and how
every legacy unit rolls up into today's provinces (../shared/notes/administrative-units-2025.md)."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from vietnam_provinces import Province

from shared import registry

FROZEN_UNITS = Path(__file__).resolve().parents[2] / "shared/db/migrations/data/0003_units.csv"
BEFORE, AFTER = date(2025, 6, 30), date(2025, 7, 1)


def test_the_editions_hold_the_units_of_the_resolutions() -> None:
    counts = Counter((u.edition, u.level) for u in registry.units())
    assert counts == {
        ("legacy", "province"): 63,
        ("legacy", "district"): 696,
        ("2025", "province"): 34,
        ("2025", "commune"): 3321,
    }


def test_every_legacy_province_has_exactly_one_successor_and_every_2025_one_a_predecessor() -> None:
    legacy = [u.code for u in registry.units("legacy", "province")]
    today = {u.code for u in registry.units("2025", "province")}
    assert {registry.successor_of(code) for code in legacy} == today
    assert sum(len(registry.predecessors_of(code)) for code in today) == len(legacy) == 63
    assert registry.predecessors_of("33") == ["33", "34"]  # Hưng Yên + Thái Bình
    assert registry.predecessors_of("75") == ["70", "75"]  # Bình Phước + Đồng Nai
    assert registry.predecessors_of("42") == ["42"]  # Hà Tĩnh, unchanged


def test_tien_giang_merged_into_dong_thap_alone_though_the_package_says_two() -> None:
    in_package = {int(m.province.code) for m in Province.search_from_legacy(code=82)}
    assert in_package == {80, 82}, "the package's flaw is fixed: drop SUCCESSOR_CORRECTIONS"
    assert registry.successor_of("82") == "82"
    assert registry.lookup("legacy:82").successor_province == "82"  # type: ignore[union-attr]


def test_a_code_is_read_in_the_edition_in_force_on_the_date() -> None:
    old, new = registry.lookup("24", on=BEFORE), registry.lookup("24", on=AFTER)
    assert old is not None and new is not None
    assert (old.edition, old.name, old.successor_province) == ("legacy", "Tỉnh Bắc Giang", "24")
    assert (new.edition, new.name) == ("2025", "Thành phố Bắc Ninh")  # a city since 2026
    assert registry.lookup("436", on=AFTER) is None  # no district level since 2025-07-01
    assert registry.lookup("18073", on=BEFORE) is None


def test_a_plain_code_is_a_2025_unit_legacy_code_an_old_one_and_3_digits_a_district() -> None:
    thai_binh = registry.lookup("legacy:34")
    assert thai_binh is not None
    assert (thai_binh.name, thai_binh.key, thai_binh.successor_province) == (
        "Tỉnh Thái Bình",
        "legacy:34",
        "33",
    )
    assert thai_binh.valid_to == BEFORE and thai_binh.valid_from is None
    district = registry.lookup("436")
    assert district is not None
    assert (district.level, district.edition, district.province_key) == (
        "district",
        "legacy",
        "legacy:42",
    )
    commune = registry.lookup("18073")
    assert commune is not None
    assert (commune.level, commune.province_code, commune.valid_from) == ("commune", "42", AFTER)
    # 34 was Thái Bình's code; today it names no province (Thái Bình is in Hưng Yên, 33).
    assert registry.lookup("legacy:436") == district
    for missing in ("34", "99", "999", "99999", "448", "legacy:99"):
        assert registry.lookup(missing) is None, missing


@pytest.mark.parametrize(
    ("code", "day", "reported", "current"),
    [
        ("436", date(2024, 5, 1), "legacy:42", "42"),
        ("34", date(2023, 1, 1), "legacy:34", "33"),  # old Thái Bình's own office
        ("18073", date(2026, 1, 1), "42", "42"),
        ("33", date(2026, 1, 1), "33", "33"),  # today's Hưng Yên's office
    ],
)
def test_an_event_fitting_its_date_counts_under_its_province_in_each_frame(
    code: str, day: date, reported: str, current: str
) -> None:
    found = registry.attribute(code, day)
    assert found is not None and found.exception is None
    assert (found.reported_province, found.current_province) == (reported, current)


def test_a_unit_that_does_not_fit_its_date_counts_under_its_successor_and_says_why() -> None:
    late = registry.attribute("436", date(2026, 1, 1))
    assert late is not None
    assert (late.unit.key, late.reported_province, late.current_province) == ("436", "42", "42")
    assert late.exception == (
        "district 436 (Thành phố Hà Tĩnh) existed until 2025-06-30, and its territory is now in "
        "province 42 (Tỉnh Hà Tĩnh); from 2025-07-01 its communes report."
    )
    early = registry.attribute("18073", date(2024, 1, 1))
    assert early is not None and early.exception is not None
    assert early.current_province == "42" and "exists from 2025-07-01" in early.exception
    assert registry.attribute("99999", date(2026, 1, 1)) is None


def test_a_2025_province_contains_its_communes_and_its_predecessors_units() -> None:
    def unit(ref: str) -> registry.Unit:
        found = registry.lookup(ref)
        assert found is not None, ref
        return found

    hung_yen, thai_binh = unit("33"), unit("legacy:34")
    thai_binh_district = next(
        d for d in registry.units("legacy", "district") if d.province_code == "34"
    )
    hung_yen_commune = next(c for c in registry.units("2025", "commune") if c.province_code == "33")
    for inner in (hung_yen, thai_binh, thai_binh_district, hung_yen_commune, unit("legacy:33")):
        assert registry.contains(hung_yen, inner)
    assert registry.contains(thai_binh, thai_binh_district)
    assert not registry.contains(thai_binh, hung_yen_commune)  # old Thái Bình: its own only
    assert not registry.contains(thai_binh, unit("legacy:33"))
    assert not registry.contains(unit("42"), thai_binh_district)
    assert not registry.contains(unit("436"), unit("437"))  # a district contains only itself
    assert registry.contains(unit("436"), unit("436"))


def test_the_migrations_frozen_units_are_the_live_registry() -> None:
    """Migration 0003 loads a frozen copy of the registry. When this fails the registry has
    changed: that is a new migration with a new data file, never an edit of 0003's."""
    with FROZEN_UNITS.open(encoding="utf-8", newline="") as f:
        frozen = {row["key"]: row for row in csv.DictReader(f)}
    live = {
        u.key: {
            "key": u.key,
            "code": u.code,
            "edition": u.edition,
            "level": u.level,
            "name": u.name,
            "division_type": u.division_type,
            "codename": u.codename,
            "province_code": u.province_code,
            "successor_province": u.successor_province,
            "valid_from": u.valid_from.isoformat() if u.valid_from else "",
            "valid_to": u.valid_to.isoformat() if u.valid_to else "",
        }
        for u in registry.units()
    }
    assert frozen == live
