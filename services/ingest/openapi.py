"""The request bodies in the OpenAPI document: every event type, with a realistic example."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.web.problems import finish_document
from shared.events import event_adapter
from shared.examples import EXAMPLES

_SCHEMA = event_adapter.json_schema(ref_template="#/components/schemas/{model}")
_DEFINITIONS: dict[str, Any] = _SCHEMA.pop("$defs", {})


def event_request_body(*, batch: bool) -> dict[str, Any]:
    body_schema = (
        {"type": "array", "items": _SCHEMA, "minItems": 1, "maxItems": 1000} if batch else _SCHEMA
    )
    examples = {
        name: {"summary": name, "value": [example] if batch else example}
        for name, example in EXAMPLES.items()
    }
    content: dict[str, Any] = {"application/json": {"schema": body_schema, "examples": examples}}
    if batch:
        content["application/x-ndjson"] = {
            "schema": {"type": "string", "description": "One event per line."}
        }
    return {"requestBody": {"required": True, "content": content}}


def install_event_schemas(app: FastAPI) -> None:
    """Add the event models to the document's components, where the request bodies point."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(_DEFINITIONS)
            app.openapi_schema = finish_document(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
