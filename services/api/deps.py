"""What the API's routes depend on: the container (``Api``) and the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request, Security
from starlette.concurrency import run_in_threadpool

from services.api.answers import AnswerMemory
from services.api.freshness import FreshnessKeeper, LogPositions
from services.api.read_your_writes import AppliedSignal
from services.web.auth import Authenticator, Principal
from services.web.problems import BearerToken
from shared.db.schema import ReadModels, read_models
from shared.settings import ApiSettings


@dataclass
class Api:
    settings: ApiSettings
    engine: sa.Engine
    positions: LogPositions
    authenticate: Authenticator
    freshness: FreshnessKeeper
    tables: ReadModels = field(default=read_models)
    answers: AnswerMemory = field(default_factory=AnswerMemory)
    # Wakes ``after=`` waits when a projector batch commits (PostgreSQL); None: they poll.
    applied: AppliedSignal | None = None


# Dependencies that do no I/O are ``async def`` so FastAPI runs them on the event loop: a
# plain ``def`` one costs a thread-pool hop per request, and a summary used to take four.
async def get_api(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


ApiDep = Annotated[Api, Depends(get_api)]


BEARER = BearerToken(
    "A token of the role dashboard or auditor (or reporter: its own unit's figures)"
)


async def get_principal(
    api: ApiDep, authorization: Annotated[str | None, Security(BEARER)]
) -> Principal:
    principal = api.authenticate.remembered(authorization)
    if principal is None:  # a database lookup: in the thread pool
        principal = await run_in_threadpool(api.authenticate, authorization)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
