"""Realistic sample data modelled on the seed articles, posted through ingest as the units would.

From 2022 to today, across the reform of 2025-07-01 (DESIGN.md, "Administrative units over
time"), for four of today's provinces and every legacy province now inside them: Hà Tĩnh 42 and
Hà Nội 01 (unchanged), Hưng Yên 33 (legacy Hưng Yên 33 and Thái Bình 34) and Đồng Nai 75 (legacy
Đồng Nai 75 and Bình Phước 70). Who reports what:

- **legacy districts**, until 2025-06-30. Per district and year, about what the Hà Tĩnh and Hà
  Nội articles report: a 2022–2026 program with six content items, review and summary
  conferences, monthly outreach sessions (some 1,500 across a province over the period),
  quarterly citizen tips (tens of thousands province-wide, a fifth of them valuable), a handful
  of complex cases resolved, "Dân vận khéo" models, commendations, and administrative
  procedures cut by 15–60%. In 2025 they report the first half year and close with a summary
  conference in June; their tips of the second quarter come late, filed after the reform by
  today's provincial office (a provincial office may post for any unit within its province).
- **communes** of the 2025 provinces, from 2025-07-01: a 2025–2030 program, the same kinds of
  reports at a commune's size (a province has four to six times as many communes as it had
  districts, so a commune's tips and cases are about a fifth of a district's).
- **provincial offices** (Ban Dân vận, from 2025 Ban Tuyên giáo và Dân vận, with the provincial
  police): their program, their own conferences (the year's summary in January, often online
  to every district or commune as in the Bình Phước article, a mid-year review, a training) and
  the Bằng khen awarded at the summary. The legacy province reports until 2025-06-30, today's
  from 2025-07-01.

Everything is drawn from seeded streams, one per (unit, year), so the same report always has
the same id and body whatever the period asked: loading the demo again only resends.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

from shared import registry
from shared.registry import LEGACY_LAST_DAY, LEGACY_PREFIX, REFORM_DAY, Unit

# Today's provinces (2025 codes); their predecessors come with them.
# Hà Tĩnh, Hà Nội, Hưng Yên (with Thái Bình), Đồng Nai (with Bình Phước).
PROVINCES = ("42", "01", "33", "75")
FIRST_YEAR = 2022
# Units always among the chosen ones: Phường Thành Sen, the heart of old Thành phố Hà Tĩnh (436).
FEATURED = frozenset({"436", "18073"})
# Early 2025 the Ban Tuyên giáo and the Ban Dân vận merged, and the district police ended.
BANS_MERGED = date(2025, 3, 1)
# The district level's last quarter: its tips came after the reform, filed by the province.
LAST_QUARTER = date(2025, 4, 1)
# The coordination programs: the one of the legacy units, and the one signed after the reform.
PROGRAM_PERIODS = {"legacy": (2022, 2026), "2025": (2025, 2030)}

TOPICS = (
    "Phòng, chống tội phạm và tệ nạn xã hội",
    "Bảo đảm trật tự an toàn giao thông",
    "Phòng, chống lừa đảo trên không gian mạng",
    "Phong trào toàn dân bảo vệ an ninh Tổ quốc",
    "Phòng, chống ma túy trong thanh thiếu niên",
)
CONTENT_ITEMS = (
    "Tuyên truyền, vận động Nhân dân chấp hành chủ trương, chính sách, pháp luật",
    "Xây dựng phong trào toàn dân bảo vệ an ninh Tổ quốc",
    "Nắm tình hình, giải quyết các vụ việc phức tạp ngay từ cơ sở",
    'Xây dựng và nhân rộng mô hình "Dân vận khéo"',
    "Xây dựng lực lượng Công an nhân dân trong sạch, vững mạnh",
    "Sơ kết, tổng kết, khen thưởng",
)
PROCEDURES = ("Đăng ký thường trú", "Cấp căn cước", "Đăng ký xe", "Xác nhận cư trú")
MODELS = ("Tổ tự quản an ninh trật tự", "Camera an ninh khu dân cư", "Dòng họ không có tội phạm")
CATEGORIES = ("complaint", "petition", "land", "security_order", "other")
_TYPE_WORDS = ("thành phố", "tỉnh", "thị xã", "huyện", "quận", "phường", "xã", "đặc khu")
_COMMITTEES = {"huyện": "Huyện ủy", "quận": "Quận ủy", "thị xã": "Thị ủy", "thành phố": "Thành ủy"}


@dataclass(frozen=True, slots=True)
class Size:
    """How much a local unit reports: ranges as for ``randrange``; chances per year, or per
    month for outreach."""

    review_chance: float  # a mid-year review conference besides the year's summary
    conference_attendees: tuple[int, int]
    outreach_chance: float
    sessions_per_month: tuple[int, int]
    attendees_per_session: tuple[int, int]
    leaflets_per_session: tuple[int, int]
    broadcast_quarter_hours: int
    tips_per_quarter: tuple[int, int]
    extra_valuable: int
    cases_solved: int
    cases_per_year: tuple[int, int]
    model_chance: float
    commendation_chance: float
    procedure_chance: float


DISTRICT = Size(
    review_chance=1,
    conference_attendees=(60, 200),
    outreach_chance=1,
    sessions_per_month=(1, 5),
    attendees_per_session=(50, 300),
    leaflets_per_session=(0, 400),
    broadcast_quarter_hours=40,
    tips_per_quarter=(60, 160),
    extra_valuable=10,
    cases_solved=4,
    cases_per_year=(1, 4),
    model_chance=1,
    commendation_chance=1,
    procedure_chance=1,
)
# A province has four to six times as many communes as it had districts: a commune reports
# about a fifth of what a district did, so a province's figures run on across the reform.
COMMUNE = Size(
    review_chance=0.3,
    conference_attendees=(30, 90),
    outreach_chance=0.4,
    sessions_per_month=(1, 3),
    attendees_per_session=(30, 150),
    leaflets_per_session=(0, 150),
    broadcast_quarter_hours=16,
    tips_per_quarter=(12, 32),
    extra_valuable=3,
    cases_solved=2,
    cases_per_year=(0, 2),
    model_chance=0.3,
    commendation_chance=0.5,
    procedure_chance=0.4,
)


# --- the units ----------------------------------------------------------------------------


def _unit(key: str) -> Unit:
    unit = registry.lookup(key)
    if unit is None:
        raise LookupError(f"no unit {key!r} in the registry")
    return unit


def _province_of(unit: Unit) -> Unit:
    return _unit(unit.province_key)


@cache
def _members(edition: registry.Edition, province: str) -> tuple[Unit, ...]:
    """The reporting units (districts or communes) of one province of an edition, by code,
    the featured ones first."""
    level: registry.Level = "district" if edition == "legacy" else "commune"
    found = [u for u in registry.units(edition, level) if u.province_code == province]
    return tuple(sorted(found, key=lambda u: (u.code not in FEATURED, u.code)))


def demo_units(provinces: tuple[str, ...] = PROVINCES, per_province: int = 12) -> list[Unit]:
    """The units that report in the demo, in the order they post: for each of today's
    ``provinces``, ``per_province`` districts of each of its legacy provinces, then as large a
    share of its communes as those districts were of its districts (so a province's figures run
    on at about the same size across the reform); then the provincial offices, legacy and
    today's."""
    districts: list[Unit] = []
    communes: list[Unit] = []
    offices: list[Unit] = []
    for province in provinces:
        chosen = all_districts = 0
        for old in registry.predecessors_of(province):
            members = _members("legacy", old)
            districts += members[:per_province]
            chosen += len(members[:per_province])
            all_districts += len(members)
            offices.append(_unit(LEGACY_PREFIX + old))
        members = _members("2025", province)
        communes += members[: math.ceil(len(members) * chosen / max(all_districts, 1))]
        offices.append(_unit(province))
    return districts + communes + offices


def poster_of(unit: Unit, event: dict[str, Any]) -> str:
    """The registry key of the token that posts ``unit``'s ``event``: the unit's own, except a
    district's tips of its last quarter, which today's provincial office files after the reform."""
    late = (
        unit.level == "district"
        and event["type"] == "CitizenTipsReceived"
        and event["occurred_at"] >= LAST_QUARTER.isoformat()
    )
    return unit.successor_province if late else unit.key


# --- names as the reports write them ------------------------------------------------------


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _bare(name: str) -> str:
    """``Hà Tĩnh`` from ``Tỉnh Hà Tĩnh``."""
    for word in _TYPE_WORDS:
        if name.lower().startswith(word + " "):
            return name[len(word) + 1 :]
    return name


def _committee(unit: Unit) -> str:
    """The Party committee: Tỉnh ủy Hà Tĩnh, Huyện ủy Hương Sơn, Đảng ủy phường Thành Sen."""
    if unit.level == "commune":
        return f"Đảng ủy {_lower_first(unit.name)}"
    if unit.level == "province":
        word = "Thành ủy" if unit.division_type == "thành phố trung ương" else "Tỉnh ủy"
    else:
        word = _COMMITTEES.get(unit.division_type, "Huyện ủy")
    return f"{word} {_bare(unit.name)}"


def _mobilization(unit: Unit, day: date) -> str:
    """Who does mass mobilization: the committee's Ban, or a commune's Party committee itself."""
    if unit.level == "commune":
        return _committee(unit)
    ban = "Ban Dân vận" if day < BANS_MERGED else "Ban Tuyên giáo và Dân vận"
    return f"{ban} {_committee(unit)}"


def _police(unit: Unit, day: date) -> str:
    """The police of a unit; a district's were folded into the province's on 2025-03-01."""
    if unit.level == "district" and day >= BANS_MERGED:
        unit = _province_of(unit)
    return f"Công an {_lower_first(unit.name)}"


def _program_id(unit: Unit) -> str:
    start, end = PROGRAM_PERIODS[unit.edition]
    return f"CTPH-{unit.code}-{start}-{end}"


# --- one unit's year ----------------------------------------------------------------------


class _Year:
    """One unit's reports for one year: its seeded stream, and the months it was in force."""

    def __init__(self, unit: Unit, year: int, seed: int) -> None:
        self.unit, self.year = unit, year
        self.first = max(date(year, 1, 1), unit.valid_from or date.min)
        self.last = min(date(year, 12, 31), unit.valid_to or date.max)
        # "v2:": the version 1 demo drew from "{seed}:{district}:{year}"; another stream, so no
        # id of its events comes back here with another body (a 409 on a log that holds them).
        self.rng = random.Random(f"v2:{seed}:{unit.key}:{year}")
        self.events: list[dict[str, Any]] = []

    @property
    def in_force(self) -> bool:
        return self.first <= self.last

    def has(self, month: int) -> bool:
        return self.first.month <= month <= self.last.month

    @property
    def months(self) -> range:
        return range(self.first.month, self.last.month + 1)

    def day(self, month: int) -> date:
        """A day of ``month``, or of the nearest month the unit was in force."""
        month = min(max(month, self.first.month), self.last.month)
        return date(self.year, month, 1) + timedelta(days=self.rng.randrange(28))

    def add(self, kind: str, day: date, payload: dict[str, Any]) -> dict[str, Any]:
        event = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "type": kind,
            "schema_version": 2,
            "unit_code": self.unit.code,
            "occurred_at": day.isoformat(),
            "payload": payload,
        }
        self.events.append(event)
        return event

    def program(self, day: date, signers: list[str] | None = None) -> None:
        start, end = PROGRAM_PERIODS[self.unit.edition]
        parties = [_mobilization(self.unit, day), _police(self.unit, day)]
        if signers is None:
            head = "Bí thư" if self.unit.level == "commune" else "Trưởng"
            signers = [f"{head} {parties[0]}", f"Trưởng {parties[1]}"]
        self.add(
            "ProgramSigned",
            day,
            {
                "program_id": _program_id(self.unit),
                "title": (
                    f"Chương trình phối hợp công tác dân vận giai đoạn {start}-{end} "
                    f"({self.unit.name})"
                ),
                "parties": parties,
                "period_start": start,
                "period_end": end,
                "content_items": list(CONTENT_ITEMS),
                "signed_by": signers,
            },
        )

    def conference(
        self,
        kind: str,
        title: str,
        day: date,
        attendees: tuple[int, int],
        online_chance: float = 0.3,
        connection_points: int | None = None,
        chaired_by: list[str] | None = None,
        program: bool = True,
    ) -> None:
        online = self.rng.random() < online_chance
        payload: dict[str, Any] = {
            "title": title,
            "kind": kind,
            "organizers": [_mobilization(self.unit, day), _police(self.unit, day)],
            "attendees": self.rng.randrange(*attendees),
            "online": online,
        }
        if chaired_by:
            payload["chaired_by"] = chaired_by
        if online and connection_points:
            payload["connection_points"] = connection_points
        if program:
            payload["program_id"] = _program_id(self.unit)
        self.add("ConferenceHeld", day, payload)


def local_year(unit: Unit, year: int, seed: int) -> list[dict[str, Any]]:
    """A district's or commune's reports for one year (the months it was in force), in the
    order it would send them."""
    y = _Year(unit, year, seed)
    if not y.in_force:
        return []
    size = DISTRICT if unit.level == "district" else COMMUNE
    rng = y.rng
    start, _ = PROGRAM_PERIODS[unit.edition]
    if year == start:  # the program of the period is signed at its start
        opening = date(2022, 1, 10) if unit.edition == "legacy" else REFORM_DAY + timedelta(14)
        y.program(opening + timedelta(days=rng.randrange(60)))
    if y.has(6) and y.has(12) and rng.random() < size.review_chance:
        y.conference(
            "review",
            f"Hội nghị sơ kết công tác phối hợp 6 tháng đầu năm {year}",
            y.day(6),
            size.conference_attendees,
        )
    closing = f"năm {year}"
    if y.last == LEGACY_LAST_DAY:  # the district level ends: its last summary, in June
        closing = f"giai đoạn {start}-{year}, kết thúc hoạt động cấp huyện"
    y.conference(
        "summary",
        f"Hội nghị tổng kết công tác phối hợp {closing}",
        y.day(12),
        size.conference_attendees,
    )
    for month in y.months:
        if rng.random() >= size.outreach_chance:
            continue
        sessions = rng.randrange(*size.sessions_per_month)
        y.add(
            "OutreachSessionHeld",
            y.day(month),
            {
                "sessions": sessions,
                "attendees": sessions * rng.randrange(*size.attendees_per_session),
                "leaflets": sessions * rng.randrange(*size.leaflets_per_session),
                "broadcast_hours": rng.randrange(0, size.broadcast_quarter_hours) / 4,
                "topic": rng.choice(TOPICS),
            },
        )
    for month in (3, 6, 9, 12):
        if y.has(month):
            tips = rng.randrange(*size.tips_per_quarter)
            y.add(
                "CitizenTipsReceived",
                y.day(month),
                {
                    "tips": tips,
                    "valuable": min(tips, tips // 5 + rng.randrange(0, size.extra_valuable)),
                    "cases_solved": rng.randrange(0, size.cases_solved),
                },
            )
    for number in range(rng.randrange(*size.cases_per_year)):
        y.add(
            "CaseResolved",
            y.day(rng.randrange(y.first.month, y.last.month + 1)),
            {
                "case_id": f"VV-{unit.code}-{year}-{number + 1:02d}",
                "category": rng.choice(CATEGORIES),
                "resolution": "stable" if rng.random() < 0.75 else "temporarily_stable",
                "hotspot_prevented": rng.random() < 0.4,
                "program_id": _program_id(unit),
            },
        )
    if rng.random() < size.model_chance:
        y.add(
            "ModelRecognized",
            y.day(9),
            {
                "model_id": f"DVK-{unit.code}-{year}",
                "name": rng.choice(MODELS),
                "field": "an ninh trật tự",
            },
        )
    if rng.random() < size.commendation_chance:
        day = y.day(12)
        province = _province_of(unit)
        y.add(
            "CommendationAwarded",
            day,
            {
                "recipient": _police(unit, day),
                "recipient_kind": "unit",
                "award": "Giấy khen",
                "awarded_by": _mobilization(province, day)
                if unit.level == "district"
                else f"Chủ tịch UBND {_lower_first(unit.name)}",
            },
        )
    if rng.random() < size.procedure_chance:
        day = y.day(7)
        reduced = y.add(
            "ProcedureTimeReduced",
            day,
            {
                "procedure": rng.choice(PROCEDURES),
                "reduction_percent": rng.randrange(15, 61),
            },
        )
        if rng.random() < 0.2:  # now and then a unit corrects a report it filed twice
            y.add(
                "EventRetracted",
                min(day + timedelta(days=rng.randrange(1, 30)), y.last),
                {
                    "retracted_event_id": reduced["event_id"],
                    "reason": "Báo cáo trùng, đề nghị hủy",
                },
            )
    return y.events


def office_year(unit: Unit, year: int, seed: int) -> list[dict[str, Any]]:
    """A provincial office's own reports for one year: its program, its conferences (the
    previous year's summary in January, a mid-year review, a training) and the Bằng khen given
    at the summary."""
    y = _Year(unit, year, seed)
    if not y.in_force:
        return []
    rng = y.rng
    start, end = PROGRAM_PERIODS[unit.edition]
    members = _members(unit.edition, unit.code)
    attendees = (100, 300)

    def chairs(day: date) -> list[str]:
        return [f"Trưởng {_mobilization(unit, day)}", f"Giám đốc {_police(unit, day)}"]

    if year == start:
        opening = date(2022, 1, 20) if unit.edition == "legacy" else date(2025, 8, 1)
        day = opening + timedelta(days=rng.randrange(45))
        y.program(day, chairs(day))
        y.conference(
            "signing",
            f"Hội nghị ký kết chương trình phối hợp công tác dân vận giai đoạn {start}-{end}",
            day,
            attendees,
            chaired_by=chairs(day),
        )
    if y.has(1):  # the previous year's summary, online to every district or commune
        day = date(year, 1, 5) + timedelta(days=rng.randrange(20))
        y.conference(
            "summary",
            f"Hội nghị tổng kết công tác dân vận và chương trình phối hợp năm {year - 1}",
            day,
            attendees,
            online_chance=0.6,
            connection_points=len(members) + 1,
            chaired_by=chairs(day),
            program=year > start,  # in the program's first year, the work before it
        )
        for _ in range(rng.randrange(1, 4)):
            recipient = rng.choice(members) if members else unit
            y.add(
                "CommendationAwarded",
                day,
                {
                    "recipient": _police(recipient, day),
                    "recipient_kind": "unit",
                    "award": "Bằng khen",
                    "awarded_by": f"Chủ tịch UBND {_lower_first(unit.name)}",
                },
            )
    if y.last == LEGACY_LAST_DAY:  # the old province's last conference before the merger
        day = y.day(6)
        y.conference(
            "summary",
            f"Hội nghị tổng kết công tác phối hợp giai đoạn {start}-{year}, "
            "trước khi sắp xếp đơn vị hành chính",
            day,
            attendees,
            online_chance=0.6,
            connection_points=len(members) + 1,
            chaired_by=chairs(day),
        )
    elif y.has(7) and y.first.month < 7:
        day = y.day(7)
        y.conference(
            "review",
            f"Hội nghị sơ kết công tác phối hợp 6 tháng đầu năm {year}",
            day,
            attendees,
            chaired_by=chairs(day),
        )
    trainees = "cán bộ cấp xã" if unit.edition == "2025" else "cán bộ cấp huyện, cấp xã"
    earliest = min(y.first.month + (2 if y.first.month == 1 else 3), y.last.month)
    y.conference(
        "training",
        f"Tập huấn nghiệp vụ công tác dân vận cho {trainees} năm {year}",
        y.day(rng.randrange(earliest, y.last.month + 1)),
        (80, 250),
    )
    return y.events


def unit_year(unit: Unit, year: int, seed: int) -> list[dict[str, Any]]:
    return (
        office_year(unit, year, seed) if unit.level == "province" else local_year(unit, year, seed)
    )


# --- the whole demo -----------------------------------------------------------------------


def generate(
    provinces: tuple[str, ...] = PROVINCES,
    per_province: int = 12,
    years: tuple[int, ...] | None = None,
    seed: int = 2022,
    until: date | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Events per poster (the registry key of the reporter token that posts them: ``436``,
    ``18073``, ``legacy:34``, ``33``), deterministic for a seed, in date order.

    ``years`` defaults to 2022 to ``until``'s year; ``until`` to today: nothing later is
    generated, since ingest refuses a report of the future. Posters with nothing to post in
    the period are left out.
    """
    last = until or date.today()
    chosen_years = years or tuple(range(FIRST_YEAR, last.year + 1))
    units = demo_units(provinces, per_province)
    posters: dict[str, list[dict[str, Any]]] = {unit.key: [] for unit in units}
    for unit in units:
        for year in chosen_years:
            for event in unit_year(unit, year, seed):
                if event["occurred_at"] <= last.isoformat():
                    posters.setdefault(poster_of(unit, event), []).append(event)
    return {
        key: sorted(events, key=lambda e: e["occurred_at"])  # stable: a retraction stays after
        for key, events in posters.items()
        if events
    }


def kind_of(unit_code: str, day: date) -> str:
    """``legacy district``, ``commune``, ``legacy province``, ``province``: for counts."""
    unit = registry.lookup(unit_code, on=day)
    if unit is None:
        return "unknown unit"
    return f"{'legacy ' if unit.edition == 'legacy' else ''}{unit.level}"


def census(data: dict[str, list[dict[str, Any]]]) -> Counter[tuple[str, str]]:
    """How many events per kind of reporting unit and period (before or from the reform), and
    of those how many today's provincial office filed for a unit no longer in force."""
    counts: Counter[tuple[str, str]] = Counter()
    for poster, events in data.items():
        for event in events:
            day = date.fromisoformat(event["occurred_at"][:10])
            period = f"until {LEGACY_LAST_DAY}" if day < REFORM_DAY else f"from {REFORM_DAY}"
            kind = kind_of(event["unit_code"], day)
            counts[kind, period] += 1
            if poster != event["unit_code"] and poster != LEGACY_PREFIX + event["unit_code"]:
                counts[f"{kind}: of those, filed late by today's province", period] += 1
    return counts
