"""Shedding load: past a number of requests in flight, answer 503 at once instead of queueing.

A service that takes every request it is sent queues what it cannot answer yet, and under
saturation every request then waits (the bench saw queries time out after 30 s) while the
ones its clients gave up on are still worked on. Answered at once with Retry-After, a client
backs off and retries, and the requests the service did take are answered in their usual time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from prometheus_client import Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from services.web.problems import RETRY_AFTER_SECONDS, Problem, problem_responses

SHED = Counter(
    "http_requests_shed_total",
    "Requests answered 503 at once because as many as the service answers at a time were in flight",
)
IN_FLIGHT = Gauge("http_requests_in_flight", "Requests being answered now, shed ones not counted")

DESCRIPTION = (
    "A dependency (the database or Kafka) did not answer or took too long, or the service is "
    "answering as many requests as it can; nothing was changed, retry after Retry-After seconds"
)


class LoadShedding:
    """ASGI middleware: at most ``limit()`` requests in flight (from the first byte in to the
    last one out, a streamed answer included); the next one is a 503 problem with Retry-After.
    Paths in ``exempt`` (health checks, metrics) are always answered, and not counted.

    Counted on the event loop, which runs every ASGI call of the process: no lock."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int], exempt: Collection[str]) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit():
            SHED.inc()
            refused = Problem(
                503,
                "Service Unavailable",
                "The service is answering as many requests as it can; retry later.",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
            await refused.response(scope["path"])(scope, receive, send)
            return
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()


def document(openapi: dict[str, Any], exempt: Collection[str]) -> dict[str, Any]:
    """Every operation but the exempt ones can be shed: each documents the 503 problem."""
    refused = problem_responses(503, descriptions={503: DESCRIPTION})[503]
    for path, operations in openapi.get("paths", {}).items():
        if path in exempt:
            continue
        for operation in operations.values():
            operation.setdefault("responses", {})["503"] = refused
    return openapi
