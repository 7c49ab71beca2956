"""The HTTP baseline: FastAPI validating one ConferenceHeld with no Kafka and no database.

Ingest's single-event rate is reported beside this, measured with the same load generator in
the same run, so the ratio says what Kafka, receipts and auth cost on top of bare validation.
"""

from __future__ import annotations

from fastapi import FastAPI

from shared.events import ConferenceHeld

app = FastAPI()


@app.post("/sync", status_code=202)
def validate_in_a_thread(event: ConferenceHeld) -> dict[str, str]:
    return {"event_id": str(event.event_id), "status": "accepted"}


@app.post("/async", status_code=202)
async def validate_on_the_loop(event: ConferenceHeld) -> dict[str, str]:
    return {"event_id": str(event.event_id), "status": "accepted"}
