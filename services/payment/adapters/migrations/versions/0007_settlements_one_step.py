"""Settlements record whether a Settle took them in one step, so the metrics tell a Settle from a Capture.

Rows written before this revision are filled in from their times: a Settle holds and captures
in the same transaction, under one clock reading, so its capture_time equals its create_time;
an AuthorizeSettlement captured later has a later capture_time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("settlements", sa.Column("one_step", sa.Boolean(), server_default=sa.false(), nullable=False))
    settlements = sa.table(
        "settlements",
        sa.column("one_step", sa.Boolean()),
        sa.column("create_time", sa.DateTime()),
        sa.column("capture_time", sa.DateTime()),
    )
    op.execute(
        settlements.update()
        .where(settlements.c.capture_time.is_not(None), settlements.c.capture_time == settlements.c.create_time)
        .values(one_step=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("settlements") as batch:
        batch.drop_column("one_step")
