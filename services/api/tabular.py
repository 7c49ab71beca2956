"""CSV for every list and summary: ``Accept: text/csv`` or ``?format=csv``.

UTF-8 with a byte-order mark, so spreadsheet programs open Vietnamese names intact.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel


async def wants_csv(  # no I/O: on the event loop, no thread hop
    format: Annotated[
        Literal["json", "csv"] | None, Query(description="csv for a spreadsheet")
    ] = None,
    accept: Annotated[str | None, Header()] = None,
) -> bool:
    if format is not None:
        return format == "csv"
    return accept is not None and "text/csv" in accept.lower()


Tabular = Annotated[bool, Depends(wants_csv)]


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return out.getvalue()


def respond(
    tabular: bool, body: BaseModel, name: str, headers: dict[str, str] | None = None
) -> Any:
    """The response model as JSON, or its ``rows`` as CSV when the caller asked for CSV.

    A row leaves out the optional fields it was never given (a summary row has only the group
    keys it was grouped by), but keeps a null it was given (a conference with no program).
    """
    rows = [r.model_dump(mode="json", exclude_unset=True) for r in body.rows]  # type: ignore[attr-defined]
    if not tabular:
        payload = body.model_dump(mode="json")
        payload["rows"] = rows
        return JSONResponse(payload, headers=headers)
    row_type: type[BaseModel] = type(body).model_fields["rows"].annotation.__args__[0]  # type: ignore[union-attr]
    # The row model's columns, in order; optional group keys only when some row has them.
    columns = [
        name
        for name, spec in row_type.model_fields.items()
        if spec.is_required() or any(name in r for r in rows)
    ]
    return Response(
        "\ufeff" + to_csv(rows, columns),
        media_type="text/csv; charset=utf-8",
        headers={**(headers or {}), "Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
