"""One live settlement per bill of an institution; settlements name the relatives passed over.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_BILL = "institution_settlement_id <> '' AND state IN ('AUTHORIZED', 'CAPTURED')"


def upgrade() -> None:
    op.add_column("settlements", sa.Column("passed_over", sa.JSON(), server_default="[]", nullable=False))
    op.create_index(
        "uq_settlements_live_bill",
        "settlements",
        ["institution_code", "institution_settlement_id"],
        unique=True,
        sqlite_where=sa.text(LIVE_BILL),
        postgresql_where=sa.text(LIVE_BILL),
    )


def downgrade() -> None:
    op.drop_index("uq_settlements_live_bill", table_name="settlements")
    with op.batch_alter_table("settlements") as batch:
        batch.drop_column("passed_over")
