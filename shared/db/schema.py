"""The database: the registry of administrative units, tokens, ingest receipts, and the projector's read models.

Tables are SQLAlchemy Core; Alembic migrations create them. The read models are built by
``read_model_tables(prefix)`` so that a rebuild can fill a fresh set (``prefix="rebuild_"``)
with the same definitions and then swap it in.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

metadata = sa.MetaData()

# PostgreSQL NOTIFY channel: the projector signals each committed batch on it, so API requests
# waiting for their receipts (``after=``) look again at once instead of polling.
APPLIED_CHANNEL = "district_ledger_applied"

provinces = sa.Table(
    "provinces",
    metadata,
    sa.Column("code", sa.String(2), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("codename", sa.String(100), nullable=False),
    # A unit's validity lets a later reorganization add new units without losing history.
    sa.Column("valid_from", sa.Date, nullable=True),
    sa.Column("valid_to", sa.Date, nullable=True),
)

districts = sa.Table(
    "districts",
    metadata,
    sa.Column("code", sa.String(3), primary_key=True),
    sa.Column("province_code", sa.String(2), sa.ForeignKey("provinces.code"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("codename", sa.String(100), nullable=False),
    sa.Column("valid_from", sa.Date, nullable=True),
    sa.Column("valid_to", sa.Date, nullable=True),
    sa.Index("ix_districts_province", "province_code"),
)

# Both editions of the registry (see shared.registry), keyed as the registry keys them:
# ``legacy:34`` for a legacy province, the bare code for every other unit. Loaded by migrations
# from frozen data, never from the live registry code.
units = sa.Table(
    "units",
    metadata,
    sa.Column("key", sa.String(12), primary_key=True),
    sa.Column("code", sa.String(5), nullable=False),
    sa.Column("edition", sa.String(6), nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("division_type", sa.String(30), nullable=False),
    sa.Column("codename", sa.String(100), nullable=False),
    sa.Column("province_code", sa.String(2), nullable=False),
    sa.Column("successor_province", sa.String(2), nullable=False),
    sa.Column("valid_from", sa.Date, nullable=True),
    sa.Column("valid_to", sa.Date, nullable=True),
    sa.Index("ix_units_edition_province", "edition", "province_code", "level"),
    sa.Index("ix_units_successor", "successor_province", "level"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_id", sa.String(16), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    # A reporter's unit (a registry key: "18073", "436", "42", "legacy:34").
    sa.Column("unit_code", sa.String(12), nullable=True),
    # A dashboard token's scope: a 2025 province ("33") or a legacy one ("legacy:34").
    sa.Column("province_code", sa.String(9), nullable=True),
    sa.Column("label", sa.String(200), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

# What ingest told each sender, so a resend gets its original receipt back.
ingest_receipts = sa.Table(
    "ingest_receipts",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

# Whole-log verifications run as jobs (POST /v1/audit/verifications). ``running`` is 1 for the
# one job running and NULL otherwise: its unique constraint lets at most one run at a time
# across every API process.
verification_jobs = sa.Table(
    "verification_jobs",
    metadata,
    sa.Column("job_id", sa.String(36), primary_key=True),
    sa.Column("status", sa.String(10), nullable=False),  # running, done, failed
    sa.Column("running", sa.Integer, nullable=True, unique=True),
    sa.Column("requested_by", sa.String(16), nullable=False),  # the auditor's token id
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # the running job's heartbeat: a job whose process died stops beating and is taken over
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("records_read", sa.BigInteger, nullable=False, default=0),
    sa.Column("records_total", sa.BigInteger, nullable=True),
    sa.Column("report", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)


@dataclass(frozen=True)
class ReadModels:
    """One complete set of projector tables."""

    offsets: sa.Table
    archive: sa.Table
    figures: sa.Table
    changes: sa.Table
    received: sa.Table
    programs: sa.Table
    conferences: sa.Table
    cases: sa.Table
    dead_letters: sa.Table

    @property
    def prefix(self) -> str:
        """The prefix their names were made with (``read_model_tables``)."""
        return self.offsets.name.removesuffix("projector_offsets")

    @property
    def all(self) -> tuple[sa.Table, ...]:
        return (
            self.offsets,
            self.archive,
            self.figures,
            self.changes,
            self.received,
            self.programs,
            self.conferences,
            self.cases,
            self.dead_letters,
        )

    def list_table(self, name: str) -> sa.Table:
        return {"programs": self.programs, "conferences": self.conferences, "cases": self.cases}[
            name
        ]


def read_model_tables(meta: sa.MetaData, prefix: str = "") -> ReadModels:
    # Imported here: the figure names are defined once, by the folds.
    from shared.folds import STORED_FIGURES

    def attributed() -> list[sa.Column[object]]:
        # Every event in both frames (shared.registry.Attribution): its unit's registry key, today's
        # province (the current frame) and the province of the event's date (as_reported).
        return [
            sa.Column("unit_code", sa.String(12), nullable=False),
            sa.Column("province_code", sa.String(2), nullable=False),
            sa.Column("reported_province", sa.String(9), nullable=False),
        ]

    def scoped(*columns: sa.Column[object]) -> list[sa.Column[object]]:
        return [
            sa.Column("event_id", sa.String(36), primary_key=True),
            *attributed(),
            *columns,
            sa.Column("partition", sa.Integer, nullable=False),
            sa.Column("offset", sa.BigInteger, nullable=False),
        ]

    p = prefix
    return ReadModels(
        # The projector's position, written in the same transaction as the changes it made.
        offsets=sa.Table(
            f"{p}projector_offsets",
            meta,
            sa.Column("topic", sa.String(200), primary_key=True),
            sa.Column("partition", sa.Integer, primary_key=True),
            sa.Column("next_offset", sa.BigInteger, nullable=False),
            sa.Column("chain_hash", sa.String(64), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        ),
        archive=sa.Table(
            f"{p}event_archive",
            meta,
            sa.Column("event_id", sa.String(36), primary_key=True),
            sa.Column("partition", sa.Integer, nullable=False),
            sa.Column("offset", sa.BigInteger, nullable=False),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            *attributed(),
            sa.Column("type", sa.String(40), nullable=False),
            sa.Column("schema_version", sa.Integer, nullable=False),
            sa.Column("occurred_on", sa.Date, nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("chain_hash", sa.String(64), nullable=False),
            sa.Column("retracted_by", sa.String(36), nullable=True),
            sa.Column("note", sa.String(100), nullable=True),
            # The unit does not fit the event's date (an event older versions accepted): it
            # counts under the successor province and is listed for the province to review.
            sa.Column("registry_exception", sa.Boolean, nullable=False, default=False),
            sa.UniqueConstraint("partition", "offset", name=f"uq_{p}archive_position"),
            sa.Index(f"ix_{p}archive_unit_type", "unit_code", "type"),
            sa.Index(f"ix_{p}archive_exceptions", "registry_exception", "province_code"),
        ),
        figures=sa.Table(
            f"{p}daily_figures",
            meta,
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("unit_code", sa.String(12), primary_key=True),
            sa.Column("province_code", sa.String(2), nullable=False),
            sa.Column("reported_province", sa.String(9), nullable=False),
            # The day's month as YYYYMM: summaries by month, quarter and year group on a plain
            # integer instead of extracting it from every row's date (half their time).
            sa.Column("month", sa.Integer, nullable=False),
            *[sa.Column(name, sa.BigInteger, nullable=False, default=0) for name in STORED_FIGURES],
            sa.Index(f"ix_{p}figures_province_day", "province_code", "day"),
            sa.Index(f"ix_{p}figures_reported_day", "reported_province", "day"),
        ),
        # Every change to daily_figures, where and when it entered the log: an event's figures at
        # its position, a retraction's negative figures at the retraction's. daily_figures is
        # their sum per (day, unit); the summary as of a moment is the same SQL over the changes
        # received by then, and verify checks them position by position.
        changes=sa.Table(
            f"{p}figure_changes",
            meta,
            sa.Column("partition", sa.Integer, primary_key=True),
            sa.Column("offset", sa.BigInteger, primary_key=True),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("day", sa.Date, nullable=False),
            sa.Column("month", sa.Integer, nullable=False),
            *attributed(),
            *[sa.Column(name, sa.BigInteger, nullable=False) for name in STORED_FIGURES],
            sa.Index(f"ix_{p}changes_received", "received_at"),
            sa.Index(f"ix_{p}changes_day_unit", "day", "unit_code"),
        ),
        # The figure changes summed per day they were received (UTC): the summary as of a
        # moment reads these for the whole days after it, and figure_changes only for its own.
        received=sa.Table(
            f"{p}figures_by_received_day",
            meta,
            sa.Column("received_day", sa.Date, primary_key=True),
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("unit_code", sa.String(12), primary_key=True),
            sa.Column("month", sa.Integer, nullable=False),
            sa.Column("province_code", sa.String(2), nullable=False),
            sa.Column("reported_province", sa.String(9), nullable=False),
            *[sa.Column(name, sa.BigInteger, nullable=False, default=0) for name in STORED_FIGURES],
        ),
        programs=sa.Table(
            f"{p}programs",
            meta,
            *scoped(
                sa.Column("program_id", sa.String(64), nullable=False),
                sa.Column("title", sa.String(500), nullable=False),
                sa.Column("parties", sa.JSON, nullable=False),
                sa.Column("period_start", sa.Integer, nullable=False),
                sa.Column("period_end", sa.Integer, nullable=False),
                sa.Column("content_items", sa.JSON, nullable=False),
                sa.Column("signed_by", sa.JSON, nullable=False),
                sa.Column("signed_on", sa.Date, nullable=False),
            ),
            sa.Index(f"ix_{p}programs_province", "province_code", "unit_code"),
            sa.Index(f"ix_{p}programs_reported", "reported_province", "unit_code"),
        ),
        conferences=sa.Table(
            f"{p}conferences",
            meta,
            *scoped(
                sa.Column("title", sa.String(500), nullable=False),
                sa.Column("kind", sa.String(20), nullable=False),
                sa.Column("organizers", sa.JSON, nullable=False),
                sa.Column("attendees", sa.Integer, nullable=False),
                sa.Column("online", sa.Boolean, nullable=False),
                sa.Column("connection_points", sa.Integer, nullable=True),
                sa.Column("program_id", sa.String(64), nullable=True),
                sa.Column("held_on", sa.Date, nullable=False),
            ),
            sa.Index(f"ix_{p}conferences_province", "province_code", "unit_code"),
            sa.Index(f"ix_{p}conferences_reported", "reported_province", "unit_code"),
        ),
        cases=sa.Table(
            f"{p}cases",
            meta,
            *scoped(
                sa.Column("case_id", sa.String(64), nullable=False),
                sa.Column("category", sa.String(20), nullable=False),
                sa.Column("resolution", sa.String(20), nullable=False),
                sa.Column("hotspot_prevented", sa.Boolean, nullable=False),
                sa.Column("program_id", sa.String(64), nullable=True),
                sa.Column("resolved_on", sa.Date, nullable=False),
            ),
            sa.Index(f"ix_{p}cases_province", "province_code", "unit_code"),
            sa.Index(f"ix_{p}cases_reported", "reported_province", "unit_code"),
        ),
        # Poison records: parked with the reason and position, never skipped silently.
        dead_letters=sa.Table(
            f"{p}dead_letters",
            meta,
            sa.Column("partition", sa.Integer, primary_key=True),
            sa.Column("offset", sa.BigInteger, primary_key=True),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("value", sa.LargeBinary, nullable=True),
            sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        ),
    )


read_models = read_model_tables(metadata)
