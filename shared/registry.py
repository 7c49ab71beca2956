"""The org registry: provinces and districts with their official administrative codes.

Taken from the maintained ``vietnam-provinces`` dataset (0.6.x: the 63 provinces and their
districts as they stood before the 2025 reorganization, the period of the seed articles).
Codes are the General Statistics Office codes, zero-padded: province "42", district "436".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from vietnam_provinces.enums import DistrictEnum, ProvinceEnum


@dataclass(frozen=True, slots=True)
class Province:
    code: str
    name: str
    codename: str


@dataclass(frozen=True, slots=True)
class District:
    code: str
    name: str
    codename: str
    province_code: str


def province_code(number: int) -> str:
    return f"{number:02d}"


def district_code(number: int) -> str:
    return f"{number:03d}"


@cache
def provinces() -> dict[str, Province]:
    return {
        province_code(p.value.code): Province(
            province_code(p.value.code), p.value.name, p.value.codename
        )
        for p in ProvinceEnum
    }


@cache
def districts() -> dict[str, District]:
    return {
        district_code(d.value.code): District(
            district_code(d.value.code),
            d.value.name,
            d.value.codename,
            province_code(d.value.province_code),
        )
        for d in DistrictEnum
    }


def province_of(district: str) -> str | None:
    found = districts().get(district)
    return found.province_code if found else None
