"""The query API: aggregates and lists for dashboards, replay and verification for auditors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from services.api.deps import Api, ApiDep
from services.api.freshness import FreshnessKeeper, LogPositions
from services.api.read_your_writes import AppliedSignal
from services.api.routes import audit, dashboard, lists, me, registry, summary
from services.web import NO_OPENTELEMETRY, problems, shedding
from services.web.auth import Authenticator
from shared.db.engine import database_answers, make_engine
from shared.db.schema import read_models
from shared.logs import configure_logging
from shared.runtime import tune_garbage_collector
from shared.settings import ApiSettings, get_api_settings

# Answered however busy the process is: a probe or a scrape must not read overload as death.
NEVER_SHED = ("/healthz", "/readyz", "/metrics")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: bool | None = None


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or get_api_settings()
        configure_logging(config.log_level, service="api")
        engine = make_engine(
            config.database_url, statement_timeout=config.api_statement_timeout_seconds
        )
        positions = LogPositions(config.kafka_bootstrap_servers, config.events_topic)
        fresh = FreshnessKeeper(
            engine, read_models, config.events_topic, positions, config.freshness_budget_seconds
        )
        authenticator = Authenticator(engine, config.token_cache_seconds)
        applied = AppliedSignal(engine) if engine.dialect.name == "postgresql" else None
        app.state.api = Api(config, engine, positions, authenticator, fresh, applied=applied)
        tune_garbage_collector()
        fresh.start()
        yield
        fresh.close()
        if applied is not None:
            applied.close()
        engine.dispose()

    app = FastAPI(
        title="District Ledger query API",
        version="1",
        summary="Provincial dashboards read the aggregates here; auditors replay the history.",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
    )
    problems.install(app)
    app.add_middleware(
        shedding.LoadShedding,
        limit=lambda: app.state.api.settings.api_max_concurrent_requests,
        exempt=NEVER_SHED,
    )
    app.include_router(registry.router)
    app.include_router(me.router)
    app.include_router(summary.router)
    app.include_router(audit.router)
    app.include_router(lists.router)
    dashboard.install(app)

    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        """The process answers."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        responses={503: {"model": Health, "description": "The database does not answer"}},
    )
    def readyz(api: ApiDep) -> Any:
        """Ready when the read-model database answers."""
        if database_answers(api.engine):
            return Health(status="ok", database=True)
        return JSONResponse(
            Health(status="unavailable", database=False).model_dump(), status_code=503
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    build_document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = problems.finish_document(build_document())
            app.openapi_schema = shedding.document(document, NEVER_SHED)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
