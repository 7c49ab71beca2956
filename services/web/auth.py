"""Bearer tokens and roles. Tokens are random secrets stored only as their SHA-256 hash.

A token is high-entropy (32 random bytes), so a fast hash is the right store: there is nothing
to brute-force, and verifying costs one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import sqlalchemy as sa

from services.web.problems import DATABASE_UNAVAILABLE, Problem
from shared.db.schema import tokens

# reporter: posts its unit's events (a province's reporter, the provincial office, also those of
# any unit within the province); dashboard: reads, optionally scoped to a province; auditor: reads
# and audits. Migration 0003 turned the old "district" role into reporters of legacy districts.
Role = Literal["reporter", "dashboard", "auditor"]
ROLES: tuple[Role, ...] = ("reporter", "dashboard", "auditor")
TOKEN_PREFIX = "dl_"


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    role: Role
    unit_code: str | None  # a reporter's unit, as a registry key ("18073", "436", "legacy:34")
    province_code: str | None  # a dashboard token's scope ("33" or "legacy:34")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    engine: sa.Engine,
    role: Role,
    *,
    unit_code: str | None = None,
    province_code: str | None = None,
    label: str | None = None,
) -> tuple[str, str]:
    """Store a new token's hash; return (token_id, the token itself, shown only this once)."""
    token_id = secrets.token_hex(8)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            tokens.insert().values(
                token_id=token_id,
                token_hash=hash_token(token),
                role=role,
                unit_code=unit_code,
                province_code=province_code,
                label=label,
                created_at=datetime.now(UTC),
            )
        )
    return token_id, token


def revoke_token(engine: sa.Engine, token_id: str) -> bool:
    with engine.begin() as conn:
        result = conn.execute(
            tokens.update()
            .where(tokens.c.token_id == token_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
    return result.rowcount == 1


class Authenticator:
    """``authenticate`` with a short memory: a busy token costs one lookup per ``ttl`` seconds.

    A revocation therefore takes effect within ``ttl`` seconds (0 disables the memory).
    """

    def __init__(self, engine: sa.Engine, ttl: float) -> None:
        self.engine = engine
        self.ttl = ttl
        self._known: dict[str, tuple[float, Principal]] = {}

    def remembered(self, authorization: str | None) -> Principal | None:
        """The principal if verified less than ``ttl`` ago: no I/O, safe on an event loop."""
        if self.ttl > 0 and authorization:
            hit = self._known.get(authorization)
            if hit and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
        return None

    def __call__(self, authorization: str | None) -> Principal:
        if (principal := self.remembered(authorization)) is not None:
            return principal
        try:
            principal = authenticate(self.engine, authorization)
        except DATABASE_UNAVAILABLE:
            # Nothing can be revoked while the database is down: a token verified before it
            # went down stays good until it is back, so remembered answers can still be served.
            if authorization and (hit := self._known.get(authorization)):
                return hit[1]
            raise
        if self.ttl > 0 and authorization:
            if len(self._known) > 10_000:
                self._known.clear()  # bounded: forged tokens are never stored, real ones are few
            self._known[authorization] = (time.monotonic(), principal)
        return principal


def authenticate(engine: sa.Engine, authorization: str | None) -> Principal:
    """The principal behind an ``Authorization: Bearer`` header, or a 401 problem."""
    unauthorized = {"WWW-Authenticate": 'Bearer realm="district-ledger"'}
    if not authorization:
        raise Problem(
            401, "Unauthorized", "An Authorization: Bearer token is required.", headers=unauthorized
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "Unauthorized", "Use the Bearer scheme.", headers=unauthorized)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(tokens).where(tokens.c.token_hash == hash_token(token.strip()))
        ).first()
    if row is None or row.revoked_at is not None:
        raise Problem(401, "Unauthorized", "The token is unknown or revoked.", headers=unauthorized)
    return Principal(row.token_id, row.role, row.unit_code, row.province_code)


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        raise Problem(
            403,
            "Forbidden",
            f"This needs the role {' or '.join(roles)}; the token is {principal.role}.",
        )
