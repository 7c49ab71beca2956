"""load the org registry: 63 provinces and their districts (pre-2025 structure)

Revision ID: 0002
Revises: 0001

The rows come from frozen files, not from the live registry code, so that this migration
produces the same rows whatever version of the registry package is installed. The files
(../data/0002_provinces.csv, ../data/0002_districts.csv) were generated once from
vietnam-provinces 0.6.0, exactly as this migration built its rows from it before:
provinces from ``vietnam_provinces.enums.ProvinceEnum`` (code zero-padded to 2 digits, name,
codename), districts from ``DistrictEnum`` (code padded to 3 digits, province code to 2, name,
codename). Never edit them: a change to the registry is a new migration.
"""

import csv
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DATA = Path(__file__).resolve().parent.parent / "data"

provinces = sa.table(
    "provinces",
    sa.column("code", sa.String),
    sa.column("name", sa.String),
    sa.column("codename", sa.String),
)

districts = sa.table(
    "districts",
    sa.column("code", sa.String),
    sa.column("province_code", sa.String),
    sa.column("name", sa.String),
    sa.column("codename", sa.String),
)


def read_rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def upgrade() -> None:
    op.bulk_insert(provinces, read_rows("0002_provinces.csv"))
    op.bulk_insert(districts, read_rows("0002_districts.csv"))


def downgrade() -> None:
    op.execute(sa.delete(districts))
    op.execute(sa.delete(provinces))
