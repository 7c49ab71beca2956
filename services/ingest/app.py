"""The ingest service: validate, authorize, append to Kafka with acks=all, answer with a receipt."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from services.ingest import receipts
from services.ingest.intake import (
    FORBIDDEN_UNIT,
    NDJSON,
    body_digest,
    parse_json,
    validate_batch,
    validate_event,
)
from services.ingest.log_writer import EventLogWriter, LogUnavailable
from services.ingest.metrics import scrape
from services.ingest.openapi import event_request_body, install_event_schemas
from services.ingest.rate_limit import RateLimiter
from services.web import NO_OPENTELEMETRY, problems
from services.web.auth import Authenticator, Principal, require_role
from services.web.problems import BearerToken, Problem, problem_responses
from shared import registry
from shared.db.engine import database_answers, make_engine
from shared.events import Event, utc_now
from shared.logs import configure_logging
from shared.records import encode_bodies, event_body
from shared.runtime import tune_garbage_collector
from shared.settings import IngestSettings, get_ingest_settings

log = logging.getLogger(__name__)

EVENTS = Counter("ingest_events_total", "Events answered, by outcome", ["outcome"])
LATENCY = Histogram("ingest_request_seconds", "Time to answer an ingest request", ["endpoint"])


class Receipt(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate"]
    partition: int
    offset: int


class BatchReceipts(BaseModel):
    receipts: list[Receipt]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    kafka: bool | None = None
    database: bool | None = None


@dataclass
class Ingest:
    """What a request needs, built once in the lifespan."""

    settings: IngestSettings
    engine: sa.Engine
    writer: EventLogWriter
    receipts: receipts.ReceiptBook
    authenticate: Authenticator
    limiter: RateLimiter


async def get_ingest(request: Request) -> Ingest:  # async: FastAPI runs a sync one in a thread
    ingest: Ingest = request.app.state.ingest
    return ingest


IngestDep = Annotated[Ingest, Depends(get_ingest)]


BEARER = BearerToken(
    "A reporter token: a unit's, which posts that unit's events, or a provincial office's, which "
    "also posts those of the units within its province"
)


async def caller(
    ingest: IngestDep, authorization: Annotated[str | None, Security(BEARER)]
) -> Principal:
    principal = ingest.authenticate.remembered(authorization)  # no thread hop when known
    if principal is None:
        principal = await run_in_threadpool(ingest.authenticate, authorization)
    require_role(principal, "reporter")
    wait = ingest.limiter.take(principal.token_id)
    if wait > 0:
        raise Problem(
            429,
            "Too Many Requests",
            "This token's rate limit is exhausted; retry later.",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    return principal


CallerDep = Annotated[Principal, Depends(caller)]

POST_PROBLEMS = (400, 401, 403, 409, 413, 415, 422, 429, 503)
EVENT_PROBLEMS = {
    403: "Not a reporter token, or the event's unit is not one the token may post for",
    415: "Send application/json",
    422: "The event is invalid: `errors` names each field (a unit the registry lacks on the "
    "event's date included)",
    503: "Kafka (or the database) did not answer: nothing was accepted; retry with the same "
    "event_id after Retry-After seconds",
}
BATCH_PROBLEMS = {
    403: "Not a reporter token, or items of units the token may not post for: "
    "`forbidden_items` lists them, and none was accepted",
    415: "Send application/json (an array) or application/x-ndjson",
    422: "Invalid items (`invalid_items`, and `errors` with each one's index) or not 1 to 1,000 "
    "of them: none was accepted",
    503: "Kafka (or the database) did not answer: nothing was accepted; retry with the same "
    "event_ids after Retry-After seconds",
}


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or get_ingest_settings()
        configure_logging(config.log_level, service="ingest")
        engine = make_engine(config.database_url)
        registry.units()  # loaded now, not by the first request
        writer = EventLogWriter(
            config.kafka_bootstrap_servers, config.events_topic, config.produce_timeout_seconds
        )
        limiter = RateLimiter(config.rate_limit_per_second, config.rate_limit_burst)
        book = receipts.ReceiptBook(engine)
        authenticator = Authenticator(engine, config.token_cache_seconds)
        app.state.ingest = Ingest(config, engine, writer, book, authenticator, limiter)
        tune_garbage_collector()
        yield
        writer.close()
        book.close()
        engine.dispose()

    app = FastAPI(
        title="District Ledger ingest",
        version="1",
        summary="District systems report their coordination work here; Kafka is the record.",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
    )
    problems.install(app)
    install_event_schemas(app)

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=Receipt,
        openapi_extra=event_request_body(batch=False),
        responses=problem_responses(*POST_PROBLEMS, descriptions=EVENT_PROBLEMS),
    )
    async def post_event(request: Request, ingest: IngestDep, principal: CallerDep) -> Receipt:
        """Append one event. 202 only once Kafka acknowledged it (acks=all)."""
        started = time.perf_counter()
        body = await read_body(request, ingest.settings.max_body_bytes, {"application/json"})
        item = parse_json(body)
        event, errors, forbidden = validate_event(item, principal, utc_now())
        if forbidden:
            raise Problem(403, "Forbidden", FORBIDDEN_UNIT)
        if event is None:
            raise Problem(422, "Unprocessable Content", "The event is invalid.", errors=errors)
        [receipt] = await append_events(ingest, [event])
        LATENCY.labels("event").observe(time.perf_counter() - started)
        return receipt

    @app.post(
        "/v1/events/batch",
        status_code=202,
        response_model=BatchReceipts,
        openapi_extra=event_request_body(batch=True),
        responses=problem_responses(*POST_PROBLEMS, descriptions=BATCH_PROBLEMS),
    )
    async def post_batch(
        request: Request, ingest: IngestDep, principal: CallerDep
    ) -> BatchReceipts:
        """Append up to 1,000 events, all or none: one invalid item rejects the whole batch."""
        started = time.perf_counter()
        content_type = content_type_of(request)
        body = await read_body(
            request, ingest.settings.max_body_bytes, {"application/json", NDJSON}
        )
        valid = validate_batch(
            body,
            content_type,
            principal,
            utc_now(),
            ingest.settings.max_batch_items,
        )
        result = await append_events(ingest, valid)
        LATENCY.labels("batch").observe(time.perf_counter() - started)
        return BatchReceipts(receipts=result)

    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        """The process answers."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        responses={503: {"model": Health, "description": "Kafka or the database does not answer"}},
    )
    def readyz(ingest: IngestDep) -> Any:
        """Ready when a Kafka broker answers a metadata request now, and the database (where
        receipts are looked up) answers a query."""
        health = Health(
            status="ok", kafka=ingest.writer.reachable(), database=database_answers(ingest.engine)
        )
        if health.kafka and health.database:
            return health
        return JSONResponse(
            health.model_copy(update={"status": "unavailable"}).model_dump(), status_code=503
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics: the whole service's, every worker's added up."""
        return PlainTextResponse(scrape(), media_type=CONTENT_TYPE_LATEST)

    return app


def content_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int, accepted_types: set[str]) -> bytes:
    content_type = content_type_of(request)
    if content_type not in accepted_types:
        raise Problem(
            415,
            "Unsupported Media Type",
            f"Send {' or '.join(sorted(accepted_types))}, not {content_type or 'nothing'}.",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "Content Too Large", f"The body is over {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():  # counted as it arrives: a missing length can't bypass it
        body.extend(chunk)
        if len(body) > limit:
            raise Problem(413, "Content Too Large", f"The body is over {limit} bytes.")
    return bytes(body)


async def append_events(ingest: Ingest, events: list[Event]) -> list[Receipt]:
    """Append the events not yet accepted; answer resends with their original receipt."""
    ids = [str(e.event_id) for e in events]
    bodies = [event_body(e) for e in events]  # dumped once: for the digest and the record
    digests = [body_digest(b) for b in bodies]
    stored = await ingest.receipts.find(ids)
    first_digest: dict[str, str] = {}  # per id: the stored body, else its first in this request
    for event_id, digest in zip(ids, digests, strict=True):
        first_digest.setdefault(
            event_id, stored[event_id].body_sha256 if event_id in stored else digest
        )
    conflicts = sorted({i for i, d in zip(ids, digests, strict=True) if first_digest[i] != d})
    if conflicts:
        EVENTS.labels("conflict").inc(len(conflicts))
        raise Problem(
            409,
            "Conflict",
            "An event_id was already used for a different event; none was accepted.",
            conflicting_event_ids=conflicts,
        )
    # One per id (repeats in a request have equal bodies: conflicts were refused above).
    new = {i: (e, b) for i, e, b in zip(ids, events, bodies, strict=True) if i not in stored}
    received_at: datetime = utc_now()
    values = encode_bodies((b for _, b in new.values()), received_at)
    records = [(e.unit_code, v) for (e, _), v in zip(new.values(), values, strict=True)]
    try:
        positions = (await ingest.writer.append(records)) if records else []
    except LogUnavailable as exc:
        EVENTS.labels("unavailable").inc(len(events))
        raise Problem(
            503,
            "Service Unavailable",
            "The event log did not acknowledge; nothing was accepted. Retry with the same event_id.",
            headers={"Retry-After": problems.RETRY_AFTER_SECONDS},
        ) from exc
    accepted = {
        event_id: receipts.Receipt(
            event_id, first_digest[event_id], p.partition, p.offset, received_at
        )
        for event_id, p in zip(new, positions, strict=True)
    }
    ingest.receipts.remember(accepted.values())
    answers: list[Receipt] = []
    answered: set[str] = set()
    for event_id in ids:
        original = stored.get(event_id) or accepted[event_id]
        fresh = event_id in accepted and event_id not in answered
        answered.add(event_id)
        answers.append(
            Receipt(
                event_id=event_id,
                status="accepted" if fresh else "duplicate",
                partition=original.partition,
                offset=original.offset,
            )
        )
    EVENTS.labels("accepted").inc(len(accepted))
    EVENTS.labels("duplicate").inc(len(events) - len(accepted))
    return answers
