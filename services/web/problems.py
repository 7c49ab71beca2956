"""RFC 9457 problem details for every error the HTTP services return.

Bad input is always a 4xx that says exactly what was wrong; a dependency that does not answer
(Kafka, the database) is a 503 with Retry-After; an unexpected error is a bare 500 problem,
logged with its trace on the server and never shown to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"
# The database down, restarting, refusing connections, or its pool exhausted.
DATABASE_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.TimeoutError)


class Problem(Exception):
    """An error answered as problem+json. ``errors`` lists field errors where input was wrong."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self, instance: str | None = None) -> JSONResponse:
        body: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return JSONResponse(
            body, status_code=self.status, headers=self.headers, media_type=PROBLEM_JSON
        )


def invalid_parameter(
    name: str, message: str, kind: str | None = None, detail: str | None = None
) -> Problem:
    """A 422 for one bad query parameter, naming it the way body field errors are named."""
    return Problem(
        422,
        "Unprocessable Content",
        detail or f"{name}: {message}",
        errors=[{"loc": ["query", name], "field": name, "message": message, "type": kind or name}],
    )


def field_errors(
    errors: Iterable[Mapping[str, Any]], prefix: Sequence[str | int] = ()
) -> list[dict[str, Any]]:
    """Pydantic errors as field paths and messages, without echoing the (maybe huge) input."""
    return [
        {
            "loc": [*prefix, *error.get("loc", ())],
            "field": ".".join(str(part) for part in (*prefix, *error.get("loc", ()))),
            "message": error.get("msg", "invalid"),
            "type": error.get("type", "value_error"),
        }
        for error in errors
    ]


def validation_problem(exc: ValidationError, prefix: Sequence[str | int] = ()) -> Problem:
    return Problem(
        422,
        "Unprocessable Content",
        "The request is well-formed but some fields are invalid.",
        errors=field_errors(exc.errors(include_input=False), prefix),
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return exc.response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = Problem(
            422,
            "Unprocessable Content",
            "Some request parameters are invalid.",
            errors=field_errors(exc.errors()),
        )
        return problem.response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        return Problem(
            exc.status_code, _title(exc.status_code), str(exc.detail), headers=headers
        ).response(request.url.path)

    # Not the caller's fault, and worth a retry. Ingest looks up receipts before it appends,
    # so a request that meets this has appended nothing.
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "the database is unavailable",
            extra={"fields": {"path": request.url.path, "error": str(exc).splitlines()[0]}},
        )
        return Problem(
            503,
            "Service Unavailable",
            "The database did not answer; nothing was accepted or changed. Retry later.",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        ).response(request.url.path)

    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return Problem(500, "Internal Server Error").response(request.url.path)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
