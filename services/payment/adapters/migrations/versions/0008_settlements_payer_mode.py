"""Settlements record how the grantors shared the bill (SEQUENTIAL or PROPORTIONAL), so a capture
of less than the holds shrinks the legs the way the bill was split.

Rows written before this revision are taken as SEQUENTIAL, which is what their captures did.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("settlements", sa.Column("payer_mode", sa.String(16), server_default="SEQUENTIAL", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("settlements") as batch:
        batch.drop_column("payer_mode")
