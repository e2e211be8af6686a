"""Wallet credits keep the grantor whose transfer they received, so a receiving node counts
the transfers one grantor sent it in a day.

Rows written before this revision take the grantor the journal's credit entry names; a
declined transfer (never credited) keeps none.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("wallet_credits", sa.Column("grantor_id_number", sa.String(18), server_default="", nullable=False))
    op.execute(
        "UPDATE wallet_credits SET grantor_id_number = COALESCE(("
        " SELECT p.counterpart_id_number FROM journal_entries j JOIN postings p ON p.entry_id = j.entry_id"
        " WHERE j.transfer_id = wallet_credits.transfer_id AND j.purpose = 'WALLET_TRANSFER_IN'"
        " AND p.account_id LIKE 'WALLET:%' LIMIT 1), '')"
        " WHERE NOT declined"
    )
    op.create_index("ix_wallet_credits_grantor", "wallet_credits", ["grantor_id_number", "time"])


def downgrade() -> None:
    op.drop_index("ix_wallet_credits_grantor", table_name="wallet_credits")
    with op.batch_alter_table("wallet_credits") as batch:
        batch.drop_column("grantor_id_number")
