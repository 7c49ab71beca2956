"""load the org registry: 63 provinces and their districts (pre-2025 structure)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from shared import registry
from shared.db.schema import districts, provinces

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.bulk_insert(
        provinces,
        [
            {"code": p.code, "name": p.name, "codename": p.codename}
            for p in registry.provinces().values()
        ],
    )
    op.bulk_insert(
        districts,
        [
            {
                "code": d.code,
                "province_code": d.province_code,
                "name": d.name,
                "codename": d.codename,
            }
            for d in registry.districts().values()
        ],
    )


def downgrade() -> None:
    op.execute(sa.delete(districts))
    op.execute(sa.delete(provinces))
