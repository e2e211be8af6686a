"""A received wallet transfer is known by its sending province and its id, not by its id alone.

A transfer id is made by the sending node. Keyed by the id alone, a decline (or credit) another
node sent under a pending transfer's id, naming a province of its own, took the id's one row, and
the true sender's credit was refused when it came. Each sending province now has ids of its own.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_COLUMNS = "transfer_id, beneficiary_id_number, amount_fen, source_province, time, declined, grantor_id_number"


def _primary_key(*columns: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("wallet_credits_pkey", "wallet_credits", type_="primary")
        op.create_primary_key("wallet_credits_pkey", "wallet_credits", list(columns))
        return
    # SQLite changes a primary key only by copying the table.
    op.create_table(
        "wallet_credits_copy",
        sa.Column("transfer_id", sa.String(length=36), nullable=False),
        sa.Column("beneficiary_id_number", sa.String(length=18), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("source_province", sa.String(length=2), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("declined", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("grantor_id_number", sa.String(18), server_default="", nullable=False),
        sa.PrimaryKeyConstraint(*columns),
    )
    op.execute(f"INSERT INTO wallet_credits_copy ({_COLUMNS}) SELECT {_COLUMNS} FROM wallet_credits")
    op.drop_table("wallet_credits")
    op.rename_table("wallet_credits_copy", "wallet_credits")
    op.create_index("ix_wallet_credits_grantor", "wallet_credits", ["grantor_id_number", "time"])


def upgrade() -> None:
    _primary_key("transfer_id", "source_province")


def downgrade() -> None:
    # One row an id: of an id two provinces used, a declined row gives way to the other.
    op.execute(
        "DELETE FROM wallet_credits WHERE declined AND EXISTS (SELECT 1 FROM wallet_credits o"
        " WHERE o.transfer_id = wallet_credits.transfer_id AND o.source_province <> wallet_credits.source_province"
        " AND (NOT o.declined OR o.source_province < wallet_credits.source_province))"
    )
    _primary_key("transfer_id")
