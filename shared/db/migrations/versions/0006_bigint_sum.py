"""bigint_sum: a sum of bigints that stays a bigint, for the summaries on PostgreSQL

Revision ID: 0006
Revises: 0005

PostgreSQL sums bigints into numeric: a 128-bit state per group and a numeric built at its end,
which made the summary by province and month (hundreds or thousands of groups) pay per group
what the summary by province does not. This aggregate adds bigints as bigints; a total past
2**63 raises "bigint out of range" rather than being served wrong. SQLite's sum() of integers is
already one.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE AGGREGATE bigint_sum(bigint) "
            "(SFUNC = int8pl, STYPE = bigint, COMBINEFUNC = int8pl, PARALLEL = SAFE)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP AGGREGATE bigint_sum(bigint)")
