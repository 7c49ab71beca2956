"""figure_changes: every change to daily_figures, with where and when it entered the log,
and figures_by_received_day, their sums per day received; verification_jobs

Revision ID: 0005
Revises: 0004

The summary as of a past moment is the summary's SQL over the changes received by then, and
verify checks the changes position by position instead of folding the whole log in memory.
The projector writes a change per event counted and a negative one per retraction, and adds
them up per day received (the as-of question reads those for whole days); this fills both for
the events archived before, in chunks, from the archive's stored bodies.
"""

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

from shared.db.upserts import insert_or_add, insert_rows
from shared.folds import contribution
from shared.projection import Step, change_row
from shared.records import decode_record

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHUNK = 5_000
# The stored figures at this revision (shared.folds.STORED_FIGURES then).
FIGURES = (
    "conferences",
    "conference_attendees",
    "programs_signed",
    "cases_resolved",
    "cases_stable",
    "cases_temporarily_stable",
    "hotspots_prevented",
    "outreach_sessions",
    "outreach_attendees",
    "leaflets",
    "broadcast_hours_x100",
    "tips",
    "valuable_tips",
    "tip_cases_solved",
    "models_recognized",
    "commendations",
    "procedure_reductions",
    "reduction_percent_x100",
)


def figure_changes(meta: sa.MetaData) -> sa.Table:
    return sa.Table(
        "figure_changes",
        meta,
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("offset", sa.BigInteger, primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("month", sa.Integer, nullable=False),
        sa.Column("unit_code", sa.String(12), nullable=False),
        sa.Column("province_code", sa.String(2), nullable=False),
        sa.Column("reported_province", sa.String(9), nullable=False),
        *[sa.Column(name, sa.BigInteger, nullable=False) for name in FIGURES],
        sa.Index("ix_changes_received", "received_at"),
        sa.Index("ix_changes_day_unit", "day", "unit_code"),
    )


def figures_by_received_day(meta: sa.MetaData) -> sa.Table:
    return sa.Table(
        "figures_by_received_day",
        meta,
        sa.Column("received_day", sa.Date, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("unit_code", sa.String(12), primary_key=True),
        sa.Column("month", sa.Integer, nullable=False),
        sa.Column("province_code", sa.String(2), nullable=False),
        sa.Column("reported_province", sa.String(9), nullable=False),
        *[sa.Column(name, sa.BigInteger, nullable=False) for name in FIGURES],
    )


def upgrade() -> None:
    op.create_table(
        "verification_jobs",
        sa.Column("job_id", sa.String(36), primary_key=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("running", sa.Integer, nullable=True, unique=True),
        sa.Column("requested_by", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("records_read", sa.BigInteger, nullable=False),
        sa.Column("records_total", sa.BigInteger, nullable=True),
        sa.Column("report", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    conn = op.get_bind()
    meta = sa.MetaData()
    changes, received = figure_changes(meta), figures_by_received_day(meta)
    changes.create(conn)
    received.create(conn)
    batch: list[dict[str, Any]] = []
    for row in _backfill(conn):
        batch.append(row)
        if len(batch) >= CHUNK:
            _write(conn, changes, received, batch)
            batch = []
    if batch:
        _write(conn, changes, received, batch)


def _write(
    conn: sa.Connection, changes: sa.Table, received: sa.Table, rows: list[dict[str, Any]]
) -> None:
    insert_rows(conn, changes, rows)
    step = Step(changes=rows)  # the projector's own sums per day received
    insert_or_add(
        conn, received, step.received(), key=("received_day", "day", "unit_code"), added=FIGURES
    )


def _backfill(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    archive = sa.Table("event_archive", sa.MetaData(), autoload_with=conn)
    counted = (
        sa.select(archive.c.body, archive.c.partition, archive.c.offset)
        .where(archive.c.type != "EventRetracted")
        .order_by(archive.c.partition, archive.c.offset)
    )
    for body, partition, offset in conn.execute(counted.execution_options(yield_per=CHUNK)):
        stored = decode_record(body.encode(), partition, offset)
        yield change_row(stored, stored.event, stored.attribution, contribution(stored.event))
    retraction = archive.alias("retraction")
    retracted = (
        sa.select(
            archive.c.body,
            archive.c.partition,
            archive.c.offset,
            retraction.c.body.label("retraction_body"),
            retraction.c.partition.label("retraction_partition"),
            retraction.c.offset.label("retraction_offset"),
        )
        .join(retraction, retraction.c.event_id == archive.c.retracted_by)
        .order_by(retraction.c.partition, retraction.c.offset)
    )
    for row in conn.execute(retracted.execution_options(yield_per=CHUNK)):
        target = decode_record(row.body.encode(), row.partition, row.offset)
        entered = decode_record(
            row.retraction_body.encode(), row.retraction_partition, row.retraction_offset
        )
        taken_back = {name: -value for name, value in contribution(target.event).items()}
        yield change_row(entered, target.event, target.attribution, taken_back)


def downgrade() -> None:
    op.drop_table("figure_changes")
    op.drop_table("figures_by_received_day")
    op.drop_table("verification_jobs")
