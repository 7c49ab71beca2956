"""What the API's routes depend on: the database, the log's positions, the caller and scope."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Header, Request
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from services.web.auth import Principal, authenticate
from services.web.problems import Problem
from shared.db.schema import ReadModels, districts, read_models
from shared.settings import ApiSettings


class LogPositions:
    """The log's end offsets, asked of Kafka at most every ``max_age`` seconds."""

    def __init__(self, bootstrap_servers: str, topic: str, max_age: float = 0.5) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.max_age = max_age
        self._lock = threading.Lock()
        self._consumer: KafkaConsumer | None = None
        self._cached: tuple[float, dict[int, int]] | None = None

    def end_offsets(self) -> dict[int, int] | None:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.max_age:
                return self._cached[1]
            try:
                if self._consumer is None:
                    self._consumer = KafkaConsumer(
                        bootstrap_servers=self.bootstrap_servers,
                        client_id="district-ledger-api",
                        request_timeout_ms=3000,
                        bootstrap_timeout_ms=3000,
                    )
                partitions = self._consumer.partitions_for_topic(self.topic) or set()
                ends = self._consumer.end_offsets(
                    [TopicPartition(self.topic, p) for p in partitions]
                )
            except KafkaError:
                return None
            result = {tp.partition: offset for tp, offset in ends.items()}
            self._cached = (time.monotonic(), result)
            return result

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


@dataclass
class Api:
    settings: ApiSettings
    engine: sa.Engine
    positions: LogPositions
    tables: ReadModels = field(default=read_models)


def get_api(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


ApiDep = Annotated[Api, Depends(get_api)]


def get_principal(api: ApiDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return authenticate(api.engine, authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


@dataclass(frozen=True)
class Scope:
    """The province and district a read is limited to, after checking the caller may see them."""

    province: str | None
    district: str | None


def resolve_scope(
    api: Api, principal: Principal, province: str | None, district: str | None
) -> Scope:
    if district is not None:
        with api.engine.connect() as conn:
            district_province = conn.scalar(
                sa.select(districts.c.province_code).where(districts.c.code == district)
            )
        if district_province is None:
            raise Problem(
                422,
                "Unprocessable Content",
                f"Unknown district {district!r}.",
                errors=[
                    {
                        "loc": ["query", "district"],
                        "field": "district",
                        "message": "unknown district",
                        "type": "unknown_district",
                    }
                ],
            )
        if province is not None and province != district_province:
            raise Problem(
                422, "Unprocessable Content", f"District {district} is not in province {province}."
            )
        province = district_province
    if principal.role == "district":
        if district is None:
            district = principal.district_code
        elif district != principal.district_code:
            raise Problem(403, "Forbidden", "A district token reads only its own district.")
        with api.engine.connect() as conn:
            province = conn.scalar(
                sa.select(districts.c.province_code).where(districts.c.code == district)
            )
    elif principal.role == "dashboard" and principal.province_code is not None:
        if province is None:
            province = principal.province_code
        elif province != principal.province_code:
            raise Problem(403, "Forbidden", "This dashboard token is scoped to another province.")
    return Scope(province, district)


def freshness(api: Api) -> dict[str, Any]:
    """How far the read models are behind the log, for every response."""
    offsets = api.tables.offsets
    with api.engine.connect() as conn:
        rows = conn.execute(
            sa.select(offsets.c.partition, offsets.c.next_offset, offsets.c.updated_at)
        ).all()
    applied = {row.partition: row.next_offset for row in rows}
    last_update = max((row.updated_at for row in rows), default=None)
    ends = api.positions.end_offsets()
    behind = (
        None if ends is None else sum(max(0, end - applied.get(p, 0)) for p, end in ends.items())
    )
    lag_ms = 0
    if behind and last_update is not None:
        if last_update.tzinfo is None:
            last_update = last_update.replace(tzinfo=UTC)
        lag_ms = max(0, int((datetime.now(UTC) - last_update).total_seconds() * 1000))
    return {
        "applied_offsets": {str(p): o for p, o in sorted(applied.items())},
        "log_end_offsets": None if ends is None else {str(p): o for p, o in sorted(ends.items())},
        "records_behind": behind,
        "lag_ms": lag_ms,
        "projected_at": last_update.isoformat() if last_update else None,
    }
