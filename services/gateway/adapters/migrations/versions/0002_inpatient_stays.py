"""Inpatient stays and their deposit holds (2303 holds, 2304 captures).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_stays",
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("mdtrt_id", sa.String(length=64), nullable=False),
        sa.Column("psn_no", sa.String(length=32), nullable=False),
        sa.Column("hold_settlement_id", sa.String(length=64), nullable=True),
        sa.Column("hold_msgid", sa.String(length=64), nullable=True),
        sa.Column("held_fen", sa.BigInteger(), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("discharged", sa.Boolean(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("institution_code", "mdtrt_id"),
    )


def downgrade() -> None:
    op.drop_table("gateway_stays")
