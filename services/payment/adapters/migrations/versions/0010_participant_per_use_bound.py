"""A participant keeps the most one bill may take from the grants it holds for, so a commit that
asks for more across the legs is refused, not captured.

Transactions prepared before this revision keep none (NULL): their commits are judged leg by leg,
as they were.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("participant_transactions", sa.Column("per_use_bound_fen", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("participant_transactions") as batch:
        batch.drop_column("per_use_bound_fen")
