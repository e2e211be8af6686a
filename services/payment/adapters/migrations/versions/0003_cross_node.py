"""Cross-province work: leg provinces, the coordinator saga log, prepared participant legs, wallet transfers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "node_transactions",
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("participants", sa.JSON(), nullable=False),
        sa.Column("acknowledged", sa.JSON(), nullable=False),
        sa.Column("coordinator_province", sa.String(length=2), nullable=False),
        sa.Column("beneficiary_id_number", sa.String(length=18), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("transaction_id"),
    )
    op.create_index("ix_node_transactions_state", "node_transactions", ["state", "update_time"], unique=False)
    op.create_table(
        "participant_legs",
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("leg_no", sa.Integer(), nullable=False),
        sa.Column("payer_id_number", sa.String(length=18), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("binding_id", sa.String(length=36), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("captured_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("transaction_id", "leg_no"),
    )
    op.create_table(
        "participant_transactions",
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("coordinator_province", sa.String(length=2), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("beneficiary_id_number", sa.String(length=18), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("transaction_id"),
    )
    op.create_index(
        "ix_participant_transactions_state", "participant_transactions", ["state", "expire_time"], unique=False
    )
    op.create_table(
        "transfers",
        sa.Column("transfer_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("grantor_id_number", sa.String(length=18), nullable=False),
        sa.Column("beneficiary_id_number", sa.String(length=18), nullable=False),
        sa.Column("binding_id", sa.String(length=36), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("source_province", sa.String(length=2), nullable=False),
        sa.Column("target_province", sa.String(length=2), nullable=False),
        sa.Column("verification_method", sa.String(length=16), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("complete_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("transfer_id"),
    )
    op.create_index(op.f("ix_transfers_grantor_id_number"), "transfers", ["grantor_id_number"], unique=False)
    op.create_table(
        "wallet_credits",
        sa.Column("transfer_id", sa.String(length=36), nullable=False),
        sa.Column("beneficiary_id_number", sa.String(length=18), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("source_province", sa.String(length=2), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("transfer_id"),
    )
    op.add_column("settlement_legs", sa.Column("province", sa.String(length=2), server_default="", nullable=False))


def downgrade() -> None:
    op.drop_column("settlement_legs", "province")
    op.drop_table("wallet_credits")
    op.drop_index(op.f("ix_transfers_grantor_id_number"), table_name="transfers")
    op.drop_table("transfers")
    op.drop_index("ix_participant_transactions_state", table_name="participant_transactions")
    op.drop_table("participant_transactions")
    op.drop_table("participant_legs")
    op.drop_index("ix_node_transactions_state", table_name="node_transactions")
    op.drop_table("node_transactions")
