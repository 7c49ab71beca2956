"""One realistic example of each event type, modelled on the seed articles (Hà Tĩnh, Hà Nội):
version 2 envelopes from district 436 (Thành phố Hà Tĩnh), dated before the 2025 reorganization.

Used in the OpenAPI document and by the demo data; the frozen golden files under tests/golden
are the history the parser must keep reading.
"""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, dict[str, Any]] = {
    "ConferenceHeld": {
        "event_id": "6f1c2a52-8d0e-4d0b-9a55-0c1f7c1e2a01",
        "type": "ConferenceHeld",
        "schema_version": 2,
        "unit_code": "436",
        "occurred_at": "2021-09-15T14:00:00+07:00",
        "reporter": "Ban Dân vận Thành ủy Hà Tĩnh",
        "payload": {
            "title": "Hội nghị tổng kết chương trình phối hợp công tác vận động quần chúng giai đoạn 2017-2021",
            "kind": "summary",
            "organizers": ["Ban Dân vận Thành ủy", "Công an thành phố"],
            "chaired_by": ["Trưởng Ban Dân vận Thành ủy", "Trưởng Công an thành phố"],
            "attendees": 120,
            "online": True,
            "connection_points": 13,
        },
    },
    "ProgramSigned": {
        "event_id": "6f1c2a52-8d0e-4d0b-9a55-0c1f7c1e2a02",
        "type": "ProgramSigned",
        "schema_version": 2,
        "unit_code": "436",
        "occurred_at": "2021-09-15",
        "payload": {
            "program_id": "HT-436-2022-2026",
            "title": "Chương trình phối hợp thực hiện công tác dân vận giai đoạn 2022-2026",
            "parties": ["Ban Dân vận Thành ủy Hà Tĩnh", "Công an thành phố Hà Tĩnh"],
            "period_start": 2022,
            "period_end": 2026,
            "content_items": [
                "Tuyên truyền, vận động Nhân dân chấp hành chủ trương, chính sách của Đảng, pháp luật của Nhà nước",
                "Xây dựng phong trào toàn dân bảo vệ an ninh Tổ quốc",
                "Nắm tình hình, giải quyết các vụ việc phức tạp ngay từ cơ sở",
                'Xây dựng và nhân rộng mô hình "Dân vận khéo"',
                "Xây dựng lực lượng Công an nhân dân trong sạch, vững mạnh",
                "Sơ kết, tổng kết, khen thưởng",
            ],
        },
    },
    "CaseResolved": {
        "event_id": "6f1c2a52-8d0e-4d0b-9a55-0c1f7c1e2a03",
        "type": "CaseResolved",
        "schema_version": 2,
        "unit_code": "436",
        "occurred_at": "2021-06-02",
        "payload": {
            "case_id": "VV-2021-017",
            "category": "land",
            "resolution": "stable",
            "hotspot_prevented": True,
            "program_id": "HT-436-2017-2021",
        },
    },
    "OutreachSessionHeld": {
        "event_id": "6f1c2a52-8d0e-4d0b-9a55-0c1f7c1e2a04",
        "type": "OutreachSessionHeld",
        "schema_version": 2,
        "unit_code": "436",
        "occurred_at": "2021-05-20",
        "payload": {
            "sessions": 12,
            "attendees": 1850,
            "leaflets": 3000,
            "broadcast_hours": 6.5,
            "topic": "Phòng, chống tội phạm và tệ nạn xã hội; an toàn giao thông",
        },
    },
    "CitizenTipsReceived": {
        "event_id": "6f1c2a52-8d0e-4d0b-9a55-0c1f7c1e2a05",
        "type": "CitizenTipsReceived",
        "schema_version": 2,
        "unit_code": "436",
        "occurred_at": "2021-06-30",
        "payload": {"tips": 412, "valuable": 96, "cases_solved": 11},
    },
    "ModelRecognized": {
        "event_id": "6f1c2a52-8d0e-4d0b-9a55-0c1f7c1e2a06",
        "type": "ModelRecognized",
        "schema_version": 2,
        "unit_code": "436",
        "occurred_at": "2021-08-10",
        "payload": {
            "model_id": "DVK-436-05",
            "name": "Tổ tự quản an ninh trật tự khu dân cư",
            "field": "an ninh trật tự",
        },
    },
    "CommendationAwarded": {
        "event_id": "6f1c2a52-8d0e-4d0b-9a55-0c1f7c1e2a07",
        "type": "CommendationAwarded",
        "schema_version": 2,
        "unit_code": "436",
        "occurred_at": "2021-09-15",
        "payload": {
            "recipient": "Công an phường Nam Hà",
            "recipient_kind": "unit",
            "award": "Giấy khen",
            "awarded_by": "Ban Dân vận Tỉnh ủy Hà Tĩnh",
        },
    },
    "ProcedureTimeReduced": {
        "event_id": "6f1c2a52-8d0e-4d0b-9a55-0c1f7c1e2a08",
        "type": "ProcedureTimeReduced",
        "schema_version": 2,
        "unit_code": "436",
        "occurred_at": "2021-07-01",
        "payload": {"procedure": "Đăng ký thường trú", "reduction_percent": 40},
    },
    "EventRetracted": {
        "event_id": "6f1c2a52-8d0e-4d0b-9a55-0c1f7c1e2a09",
        "type": "EventRetracted",
        "schema_version": 2,
        "unit_code": "436",
        "occurred_at": "2021-07-02",
        "payload": {
            "retracted_event_id": "6f1c2a52-8d0e-4d0b-9a55-0c1f7c1e2a08",
            "reason": "Nhập trùng số liệu",
        },
    },
}
