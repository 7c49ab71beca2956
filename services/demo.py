"""Realistic sample data modelled on the seed articles, posted through ingest like a district would.

Per district and year, about what the Hà Tĩnh and Hà Nội articles report: a 2022–2026 program
with six content items, review and summary conferences, monthly outreach sessions (some 1,500
across a province over the period), quarterly citizen tips (tens of thousands province-wide, a
fifth of them valuable), a handful of complex cases resolved, "Dân vận khéo" models,
commendations, and administrative procedures cut by 15–60%.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from shared import registry

PROVINCES = ("42", "01", "34", "70")  # Hà Tĩnh, Hà Nội, Thái Bình, Bình Phước
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


def demo_districts(provinces: tuple[str, ...], per_province: int) -> list[str]:
    chosen: list[str] = []
    for province in provinces:
        codes = sorted(d.code for d in registry.districts().values() if d.province_code == province)
        chosen += codes[:per_province]
    return chosen


def _event(
    kind: str, district: str, day: date, payload: dict[str, Any], rng: random.Random
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": kind,
        "schema_version": 1,
        "district_code": district,
        "occurred_at": day.isoformat(),
        "payload": payload,
    }


def _day(rng: random.Random, year: int, month: int) -> date:
    return date(year, month, 1) + timedelta(days=rng.randrange(28))


def district_year(
    district: str, year: int, seed: int, first: bool = False
) -> Iterator[dict[str, Any]]:
    """One district's reports for one year, in the order it would send them.

    Each (district, year) draws from its own seeded stream, so the same report always has the
    same id and body, whichever years are generated: loading the demo again only resends.
    """
    name = registry.districts()[district].name
    rng = random.Random(f"{seed}:{district}:{year}")
    if first:  # the program of the period is signed at its start
        program_rng = random.Random(f"{seed}:{district}:program")
        yield _event(
            "ProgramSigned",
            district,
            date(2022, 1, 10) + timedelta(days=program_rng.randrange(60)),
            {
                "program_id": f"CTPH-{district}-2022-2026",
                "title": f"Chương trình phối hợp công tác dân vận giai đoạn 2022-2026 ({name})",
                "parties": [f"Ban Dân vận {name}", f"Công an {name}"],
                "period_start": 2022,
                "period_end": 2026,
                "content_items": list(CONTENT_ITEMS),
            },
            program_rng,
        )
    for kind, month in (("review", 6), ("summary", 12)):
        yield _event(
            "ConferenceHeld",
            district,
            _day(rng, year, month),
            {
                "title": f"Hội nghị {'sơ kết' if kind == 'review' else 'tổng kết'} công tác phối hợp năm {year}",
                "kind": kind,
                "organizers": [f"Ban Dân vận {name}", f"Công an {name}"],
                "attendees": rng.randrange(60, 200),
                "online": rng.random() < 0.3,
                "program_id": f"CTPH-{district}-2022-2026",
            },
            rng,
        )
    for month in range(1, 13):
        sessions = rng.randrange(1, 5)
        yield _event(
            "OutreachSessionHeld",
            district,
            _day(rng, year, month),
            {
                "sessions": sessions,
                "attendees": sessions * rng.randrange(50, 300),
                "leaflets": sessions * rng.randrange(0, 400),
                "broadcast_hours": rng.randrange(0, 40) / 4,
                "topic": rng.choice(TOPICS),
            },
            rng,
        )
    for quarter in range(4):
        tips = rng.randrange(60, 160)
        yield _event(
            "CitizenTipsReceived",
            district,
            _day(rng, year, quarter * 3 + 3),
            {
                "tips": tips,
                "valuable": tips // 5 + rng.randrange(0, 10),
                "cases_solved": rng.randrange(0, 4),
            },
            rng,
        )
    for number in range(rng.randrange(1, 4)):
        yield _event(
            "CaseResolved",
            district,
            _day(rng, year, rng.randrange(1, 13)),
            {
                "case_id": f"VV-{district}-{year}-{number + 1:02d}",
                "category": rng.choice(
                    ("complaint", "petition", "land", "security_order", "other")
                ),
                "resolution": "stable" if rng.random() < 0.75 else "temporarily_stable",
                "hotspot_prevented": rng.random() < 0.4,
            },
            rng,
        )
    yield _event(
        "ModelRecognized",
        district,
        _day(rng, year, 9),
        {
            "model_id": f"DVK-{district}-{year}",
            "name": rng.choice(MODELS),
            "field": "an ninh trật tự",
        },
        rng,
    )
    yield _event(
        "CommendationAwarded",
        district,
        _day(rng, year, 12),
        {
            "recipient": f"Công an {name}",
            "recipient_kind": "unit",
            "award": "Giấy khen",
            "awarded_by": "Ban Dân vận Tỉnh ủy",
        },
        rng,
    )
    reduced = _event(
        "ProcedureTimeReduced",
        district,
        _day(rng, year, 7),
        {
            "procedure": rng.choice(PROCEDURES),
            "reduction_percent": rng.randrange(15, 61),
        },
        rng,
    )
    yield reduced
    if rng.random() < 0.2:  # now and then a district corrects a report it filed twice
        yield _event(
            "EventRetracted",
            district,
            _day(rng, year, 8),
            {
                "retracted_event_id": reduced["event_id"],
                "reason": "Báo cáo trùng, đề nghị hủy",
            },
            rng,
        )


def generate(
    provinces: tuple[str, ...] = PROVINCES,
    per_province: int = 12,
    years: tuple[int, ...] = (2022, 2023, 2024, 2025),
    seed: int = 2022,
    until: date | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Events per district, deterministic for a seed; none after ``until`` (a report of the
    future would be refused)."""
    last = (until or date.max).isoformat()
    return {
        district: [
            event
            for year in years
            for event in district_year(district, year, seed, first=year == years[0])
            if event["occurred_at"] <= last
        ]
        for district in demo_districts(provinces, per_province)
    }
