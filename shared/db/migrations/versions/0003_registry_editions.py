"""registry editions: the units table (legacy and 2025), tokens and read models keyed by unit

Revision ID: 0003
Revises: 0002

The registry now holds two editions (see DESIGN.md, "Administrative units over time"): `legacy`
(63 provinces, 696 districts, in force until 2025-06-30) and `2025` (34 provinces, 3,321
communes, from 2025-07-01). This migration

- creates ``units`` and loads it from ../data/0003_units.csv, a frozen copy of
  ``shared.registry.units()`` as it stood with vietnam-provinces 2026.9.0 (one row per unit,
  ``Unit.key`` as the key, ``valid_from``/``valid_to`` from the Unit properties). It never
  imports the live registry: tests/unit/test_registry_data.py fails when the live registry
  drifts from the file, and the answer to that is a new migration, never an edited file;
- turns district tokens into reporter tokens bound to their unit (the district's code), and
  rewrites a token's province scope NN as ``legacy:NN``: it was granted over the old province,
  and must not widen to the (larger) 2025 province that now carries the code;
- keys the read models by unit: ``unit_code`` takes the district code, ``province_code`` becomes
  today's (2025) province, the successor of the old one (read from the frozen units data), and
  ``reported_province`` is the province of the event's date: ``legacy:NN`` before 2025-07-01,
  the successor from then on. Rows dated from 2025-07-01 come from districts after their end
  (older versions accepted them): ``event_archive.registry_exception`` marks them.
"""

import csv
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DATA = Path(__file__).resolve().parent.parent / "data"
UNITS_FILE = DATA / "0003_units.csv"

REFORM_DAY = date(2025, 7, 1)  # Resolution 202/2025/QH15: the 2025 edition is in force from it
LEGACY_PREFIX = "legacy:"

# Each read model, the date that says which edition its rows were reported in, and its indexes
# as they were (revision 0001) and as they are now. Names written out: this revision must not
# change when shared.db.schema does.
READ_MODELS: dict[str, str] = {
    "event_archive": "occurred_on",
    "daily_figures": "day",
    "programs": "signed_on",
    "conferences": "held_on",
    "cases": "resolved_on",
}
OLD_INDEXES: dict[str, list[str]] = {
    "event_archive": ["ix_archive_district_type"],
    "daily_figures": [],  # ix_figures_province_day (province_code, day) stays as it is
    "programs": ["ix_programs_province"],
    "conferences": ["ix_conferences_province"],
    "cases": ["ix_cases_province"],
}
NEW_INDEXES: dict[str, dict[str, list[str]]] = {
    "event_archive": {
        "ix_archive_unit_type": ["unit_code", "type"],
        "ix_archive_exceptions": ["registry_exception", "province_code"],
    },
    "daily_figures": {"ix_figures_reported_day": ["reported_province", "day"]},
    "programs": {
        "ix_programs_province": ["province_code", "unit_code"],
        "ix_programs_reported": ["reported_province", "unit_code"],
    },
    "conferences": {
        "ix_conferences_province": ["province_code", "unit_code"],
        "ix_conferences_reported": ["reported_province", "unit_code"],
    },
    "cases": {
        "ix_cases_province": ["province_code", "unit_code"],
        "ix_cases_reported": ["reported_province", "unit_code"],
    },
}

units = sa.table(
    "units",
    sa.column("key", sa.String),
    sa.column("code", sa.String),
    sa.column("edition", sa.String),
    sa.column("level", sa.String),
    sa.column("name", sa.String),
    sa.column("division_type", sa.String),
    sa.column("codename", sa.String),
    sa.column("province_code", sa.String),
    sa.column("successor_province", sa.String),
    sa.column("valid_from", sa.Date),
    sa.column("valid_to", sa.Date),
)


def read_units() -> list[dict[str, object]]:
    with UNITS_FILE.open(encoding="utf-8", newline="") as f:
        rows: list[dict[str, object]] = []
        for row in csv.DictReader(f):
            unit: dict[str, object] = dict(row)
            for day in ("valid_from", "valid_to"):
                unit[day] = date.fromisoformat(row[day]) if row[day] else None
            rows.append(unit)
    return rows


def successors(rows: list[dict[str, object]]) -> dict[str, str]:
    """Legacy province code -> the 2025 province it merged into, from the frozen units data."""
    return {
        str(row["code"]): str(row["successor_province"])
        for row in rows
        if row["edition"] == "legacy" and row["level"] == "province"
    }


def upgrade() -> None:
    rows = read_units()
    create_units(rows)
    migrate_tokens()
    successor = successors(rows)
    for table, day in READ_MODELS.items():
        migrate_read_model(table, day, successor)


def create_units(rows: list[dict[str, object]]) -> None:
    op.create_table(
        "units",
        sa.Column("key", sa.String(length=12), nullable=False),
        sa.Column("code", sa.String(length=5), nullable=False),
        sa.Column("edition", sa.String(length=6), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("division_type", sa.String(length=30), nullable=False),
        sa.Column("codename", sa.String(length=100), nullable=False),
        sa.Column("province_code", sa.String(length=2), nullable=False),
        sa.Column("successor_province", sa.String(length=2), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_units_edition_province", "units", ["edition", "province_code", "level"])
    op.create_index("ix_units_successor", "units", ["successor_province", "level"])
    op.bulk_insert(units, rows)


def migrate_tokens() -> None:
    tokens = sa.table(
        "tokens",
        sa.column("role", sa.String),
        sa.column("district_code", sa.String),
        sa.column("unit_code", sa.String),
        sa.column("province_code", sa.String),
    )
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("unit_code", sa.String(length=12), nullable=True))
        batch.alter_column(
            "province_code",
            existing_type=sa.String(length=2),
            type_=sa.String(length=9),
            existing_nullable=True,
        )
    op.execute(
        tokens.update()
        .where(tokens.c.role == "district")
        .values(role="reporter", unit_code=tokens.c.district_code)
    )
    # Every scope stored so far is an old province (only dashboard tokens had one): keep it the
    # old province, never the 2025 province that reuses its code.
    op.execute(
        tokens.update()
        .where(tokens.c.province_code.is_not(None))
        .values(province_code=sa.literal(LEGACY_PREFIX) + tokens.c.province_code)
    )
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("district_code")


def migrate_read_model(name: str, day_column: str, successor: dict[str, str]) -> None:
    archive = name == "event_archive"
    stored = sa.table(name, sa.column("province_code", sa.String))
    # Every stored province must be a legacy province the frozen data knows, or the successor
    # below would be NULL: stop with the codes rather than guess.
    unknown = (
        op.get_bind()
        .scalars(
            sa.select(stored.c.province_code)
            .distinct()
            .where(stored.c.province_code.not_in(sorted(successor)))
        )
        .all()
    )
    if unknown:
        raise RuntimeError(
            f"{name} has rows of provinces {sorted(unknown)} that the legacy edition of the "
            f"registry ({UNITS_FILE.name}) does not hold; no successor province can be given."
        )

    # The district code becomes the unit code: renamed, so it keeps its place in daily_figures'
    # primary key, which becomes (day, unit_code) on both databases.
    with op.batch_alter_table(name) as batch:
        for index in OLD_INDEXES[name]:
            batch.drop_index(index)
        batch.alter_column(
            "district_code",
            new_column_name="unit_code",
            existing_type=sa.String(length=3),
            type_=sa.String(length=12),
            existing_nullable=False,
        )
        batch.add_column(sa.Column("reported_province", sa.String(length=9), nullable=True))
        if archive:
            batch.add_column(sa.Column("registry_exception", sa.Boolean(), nullable=True))

    table = sa.table(
        name,
        sa.column("province_code", sa.String),
        sa.column("reported_province", sa.String),
        sa.column("registry_exception", sa.Boolean),
        sa.column(day_column, sa.Date),
    )
    day = table.c[day_column]
    successor_of = sa.case(successor, value=table.c.province_code)
    # Two statements, so that reported_province reads province_code before it is rewritten.
    values: dict[str, object] = {
        "reported_province": sa.case(
            (day < REFORM_DAY, sa.literal(LEGACY_PREFIX) + table.c.province_code),
            else_=successor_of,
        ),
    }
    if archive:
        values["registry_exception"] = sa.case((day >= REFORM_DAY, True), else_=False)
    op.execute(table.update().values(values))
    op.execute(table.update().values(province_code=successor_of))

    with op.batch_alter_table(name) as batch:
        batch.alter_column("reported_province", existing_type=sa.String(length=9), nullable=False)
        if archive:
            batch.alter_column("registry_exception", existing_type=sa.Boolean(), nullable=False)
        for index, columns in NEW_INDEXES[name].items():
            batch.create_index(index, columns)


def downgrade() -> None:
    raise NotImplementedError(
        "0003 cannot be undone faithfully: since it ran, tokens and rows may name 2025 units "
        "(communes, 2025 provinces) that the district-keyed schema of 0002 cannot hold, and a "
        "legacy scope ('legacy:NN') and a 2025 one ('NN') would collapse into one code. Restore "
        "the database from a backup taken before the upgrade, or migrate a fresh database to "
        "0002 and rebuild the read models from the log with the release that used it."
    )
