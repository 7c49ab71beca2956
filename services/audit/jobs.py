"""Whole-log verifications as jobs: started by one request, read by later ones.

A verification of the whole log reads every record, longer than a request should hold anything.
``start`` records the job in the database and runs it on a thread of its own; its status,
progress and at the end its report are in the ``verification_jobs`` row, so whichever API
process a later request reaches can answer it. At most one runs at a time, across processes:
the row's ``running`` column is unique. A job whose process died stops beating its heart and
the next ``start`` takes over its place.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from services.audit.verify import LogSource, verify
from shared.db.schema import ReadModels, verification_jobs
from shared.ledger import utc

log = logging.getLogger(__name__)

# A running job writes its progress at least this often; one silent for ABANDONED_AFTER has
# lost its process.
HEARTBEAT = timedelta(seconds=2)
ABANDONED_AFTER = timedelta(seconds=60)


class AlreadyRunning(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"verification {job_id} is running")
        self.job_id = job_id


def start(
    engine: sa.Engine,
    tables: ReadModels,
    open_log: Callable[[], LogSource],
    requested_by: str,
    *,
    workers: int = 1,
) -> str:
    """Start a whole-log verification (in ``workers`` processes: ``verify``); its id. Raises
    AlreadyRunning if one runs."""
    job_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    jobs = verification_jobs
    try:
        with engine.begin() as conn:
            _fail_abandoned(conn, now)
            running = conn.scalar(sa.select(jobs.c.job_id).where(jobs.c.running == 1))
            if running is not None:
                raise AlreadyRunning(running)
            conn.execute(
                jobs.insert().values(
                    job_id=job_id,
                    status="running",
                    running=1,
                    requested_by=requested_by,
                    created_at=now,
                    updated_at=now,
                    records_read=0,
                )
            )
    except sa.exc.IntegrityError:  # another process started one meanwhile: name it
        with engine.connect() as conn:
            running = conn.scalar(sa.select(jobs.c.job_id).where(jobs.c.running == 1))
        raise AlreadyRunning(running or "?") from None
    thread = threading.Thread(
        target=_run,
        args=(engine, tables, open_log, job_id, workers),
        name=f"verify-{job_id}",
        daemon=True,
    )
    thread.start()
    return job_id


def status(engine: sa.Engine, job_id: str) -> dict[str, Any] | None:
    """The job as the API shows it, or None if there is no such job."""
    jobs = verification_jobs
    with engine.connect() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
    if row is None:
        return None
    shown: dict[str, Any] = {
        "job_id": row["job_id"],
        "status": row["status"],
        "created_at": utc(row["created_at"]),
        "finished_at": utc(row["finished_at"]) if row["finished_at"] else None,
        "progress": {"records_read": row["records_read"], "records_total": row["records_total"]},
    }
    if row["status"] == "running" and datetime.now(UTC) - utc(row["updated_at"]) > ABANDONED_AFTER:
        shown["status"] = "failed"
        shown["error"] = "abandoned: the process running it stopped"
    if row["report"] is not None:
        shown["report"] = row["report"]
    if row["error"] is not None:
        shown["error"] = row["error"]
    return shown


def _run(
    engine: sa.Engine,
    tables: ReadModels,
    open_log: Callable[[], LogSource],
    job_id: str,
    workers: int,
) -> None:
    jobs = verification_jobs
    last_beat = 0.0

    def beat(read: int, total: int) -> None:
        nonlocal last_beat
        if time.monotonic() - last_beat < HEARTBEAT.total_seconds() and read < total:
            return
        last_beat = time.monotonic()
        with engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id)
                .values(records_read=read, records_total=total, updated_at=datetime.now(UTC))
            )

    finished: dict[str, Any]
    try:
        source = open_log()
        try:
            report = verify(source, engine, tables, progress=beat, workers=workers)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        finished = {"status": "done", "report": report}
    except Exception as exc:  # the job fails, with its reason; the process carries on
        log.exception("verification %s failed", job_id)
        finished = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    with engine.begin() as conn:
        conn.execute(
            jobs.update()
            .where(jobs.c.job_id == job_id)
            .values(running=None, finished_at=datetime.now(UTC), **finished)
        )


def _fail_abandoned(conn: sa.Connection, now: datetime) -> None:
    jobs = verification_jobs
    conn.execute(
        jobs.update()
        .where(jobs.c.running == 1, jobs.c.updated_at < now - ABANDONED_AFTER)
        .values(
            status="failed",
            running=None,
            finished_at=now,
            error="abandoned: the process running it stopped",
        )
    )
