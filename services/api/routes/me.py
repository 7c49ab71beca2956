"""``/v1/me``: what the caller's token may read, so a dashboard can offer only that."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from services.api.deps import PrincipalDep
from services.api.params import responses
from services.web.auth import Role

router = APIRouter(prefix="/v1", tags=["registry"])


class Me(BaseModel):
    role: Role
    province_code: str | None  # a dashboard token's scope: "33" or "legacy:34"
    unit_code: str | None  # a reporter token's unit


@router.get("/me", response_model=Me, responses=responses(401, 503))
def who_am_i(principal: PrincipalDep) -> Me:
    """The token's role and scope (never the token itself)."""
    return Me(
        role=principal.role,
        province_code=principal.province_code,
        unit_code=principal.unit_code,
    )
