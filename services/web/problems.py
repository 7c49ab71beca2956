"""RFC 9457 problem details for every error the HTTP services return.

Bad input is always a 4xx that says exactly what was wrong; a dependency that does not answer
(Kafka, the database) is a 503 with Retry-After; an unexpected error is a bare 500 problem,
logged with its trace on the server and never shown to the caller.

The OpenAPI documents say the same: ``problem_responses`` documents an operation's error
answers with the ``Problem`` schema, ``BearerToken`` the Authorization header whose absence or
fault is the 401, and ``finish_document`` adds what both documents share.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.responses import JSONResponse
from fastapi.security.base import SecurityBase
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"
# The database down, restarting, refusing connections, its pool exhausted, or a statement
# cancelled past the engine's statement_timeout.
DATABASE_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.TimeoutError)
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout


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
        cancelled = getattr(getattr(exc, "orig", None), "sqlstate", None) == QUERY_CANCELED
        log.warning(
            "a query ran too long" if cancelled else "the database is unavailable",
            extra={"fields": {"path": request.url.path, "error": str(exc).splitlines()[0]}},
        )
        return Problem(
            503,
            "Service Unavailable",
            "The database took longer than one request may hold it, and the query was "
            "cancelled; nothing was accepted or changed. Retry later."
            if cancelled
            else "The database did not answer; nothing was accepted or changed. Retry later.",
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


# --- what the OpenAPI documents say ---------------------------------------------------------

SCHEMA_REF = "#/components/schemas/"

FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "title": "FieldError",
    "description": "One thing wrong with the input, named by where it is.",
    "type": "object",
    "properties": {
        "loc": {
            "description": 'The path to the value: a parameter (`["query", "from"]`) or a '
            "field of the body (a batch item's index first)",
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "field": {"description": "`loc` joined by dots", "type": "string"},
        "message": {"description": "What is wrong, in words", "type": "string"},
        "type": {"description": "What is wrong, as a code (e.g. `unknown_unit`)", "type": "string"},
        "index": {
            "description": "In a batch: the index of the item the error is in",
            "type": "integer",
            "minimum": 0,
        },
    },
    "required": ["loc", "field", "message", "type"],
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. Clients ignore members they do not know.",
    "type": "object",
    "properties": {
        "type": {
            "description": "about:blank: the status says what kind of problem it is",
            "type": "string",
            "format": "uri-reference",
        },
        "title": {"description": "The status's reason phrase", "type": "string"},
        "status": {"description": "The HTTP status code", "type": "integer"},
        "detail": {"description": "What happened, for a person to read", "type": "string"},
        "instance": {"description": "The path of the request", "type": "string"},
        "errors": {
            "description": "Where input was wrong: every field error",
            "type": "array",
            "items": {"$ref": SCHEMA_REF + "FieldError"},
        },
        "invalid_items": {
            "description": "A rejected batch: the indexes of its invalid items",
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
        },
        "forbidden_items": {
            "description": "A rejected batch: the indexes of the items of units the token may not "
            "post for",
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
        },
        "conflicting_event_ids": {
            "description": "A 409: the event_ids already used for a different event",
            "type": "array",
            "items": {"type": "string", "format": "uuid"},
        },
    },
    "required": ["type", "title", "status"],
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with",
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer( |$)"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
    504: _RETRY_AFTER,
}
_DESCRIPTIONS: dict[int, str] = {
    400: "The body is not JSON (or a line of NDJSON is not)",
    401: "No Authorization header, not the Bearer scheme, or a token unknown or revoked",
    403: "The token's role or scope does not allow this",
    409: "An event_id was already used for a different event; none was accepted",
    413: "The body is larger than the limit (1 MiB)",
    415: "A Content-Type the operation does not take",
    422: "Some input is invalid: `errors` names each field to blame (a value of the right "
    "shape may still name nothing the registry has, or a range may run backwards)",
    429: "This token's rate limit is exhausted; retry after Retry-After seconds",
    503: "A dependency (the database or Kafka) did not answer; nothing was changed, retry after "
    "Retry-After seconds",
    504: "The read models did not reach the receipts given in `after` within the bounded wait; "
    "retry after Retry-After seconds",
}


def problem_responses(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route for the problems it can answer: problem+json, a status
    member equal to the response's, and the headers that come with it (Retry-After...)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": (descriptions or {}).get(status) or _DESCRIPTIONS[status],
            "content": {
                PROBLEM_JSON: {
                    "schema": {
                        "allOf": [{"$ref": SCHEMA_REF + "Problem"}],
                        "properties": {"status": {"const": status}},
                    }
                }
            },
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        documented[status] = response
    return documented


class BearerToken(SecurityBase):
    """The ``Authorization`` header, as the documents show it: the bearer scheme. The value
    comes as sent, whatever its scheme; authenticating it (a 401 problem) is the caller's."""

    def __init__(self, description: str) -> None:
        self.model = HTTPBearerModel(description=description)
        self.scheme_name = "bearer"

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("authorization")


# OpenAPI: "If in is header and the name is Accept, Content-Type or Authorization, the
# parameter definition SHALL be ignored": the token is the security scheme, the response
# types the content of each response.
_HEADERS_NOT_PARAMETERS = {"accept", "content-type", "authorization"}


def finish_document(document: dict[str, Any]) -> dict[str, Any]:
    """What both documents share: the problem schemas, and parameters as the wire has them.

    An optional query parameter is absent or a string, never null, so its schema is the
    string's alone. FastAPI's own 422 (HTTPValidationError) is never what is answered: an
    operation that does not document its 422 gets the problem.
    """
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["FieldError"] = FIELD_ERROR_SCHEMA
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation["parameters"] = [
                _not_null(parameter)
                for parameter in operation.get("parameters", [])
                if not (
                    parameter["in"] == "header"
                    and parameter["name"].lower() in _HEADERS_NOT_PARAMETERS
                )
            ]
            if not operation["parameters"]:
                del operation["parameters"]
            responses = operation.get("responses", {})
            if "application/json" in responses.get("422", {}).get("content", {}):
                responses["422"] = problem_responses(422)[422]  # not FastAPI's default
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def _not_null(parameter: dict[str, Any]) -> dict[str, Any]:
    schema = parameter.get("schema", {})
    options = schema.get("anyOf")
    if parameter.get("required") or not options:
        return parameter
    others = [option for option in options if option != {"type": "null"}]
    if len(others) != 1:
        return parameter
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if rest.get("default", "") is None:
        del rest["default"]
    return {**parameter, "schema": {**others[0], **rest}}
