"""Payment ledger: accounts, journal, settlements and legs, binding usage, violations, suspensions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
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
        "accounts",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=32), nullable=False),
        sa.Column("admdvs", sa.String(length=6), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("held_fen", sa.BigInteger(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "binding_usage",
        sa.Column("binding_id", sa.String(length=36), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("grantor_id_number", sa.String(length=18), nullable=False),
        sa.Column("beneficiary_id_number", sa.String(length=18), nullable=False),
        sa.Column("shared_fen", sa.BigInteger(), nullable=False),
        sa.Column("held_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("binding_id", "year"),
    )
    op.create_index("ix_binding_usage_grantor", "binding_usage", ["grantor_id_number", "year"], unique=False)
    op.create_table(
        "journal_entries",
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("settlement_id", sa.String(length=36), nullable=False),
        sa.Column("transfer_id", sa.String(length=36), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    op.create_table(
        "postings",
        sa.Column("posting_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=False),
        sa.Column("counterpart_id_number", sa.String(length=32), nullable=False),
        sa.Column("binding_id", sa.String(length=36), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("posting_id"),
    )
    op.create_index("ix_postings_account", "postings", ["account_id", "posting_id"], unique=False)
    op.create_index(op.f("ix_postings_entry_id"), "postings", ["entry_id"], unique=False)
    op.create_table(
        "settlement_legs",
        sa.Column("settlement_id", sa.String(length=36), nullable=False),
        sa.Column("leg_no", sa.Integer(), nullable=False),
        sa.Column("payer_id_number", sa.String(length=18), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("binding_id", sa.String(length=36), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("captured_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("payer_admdvs", sa.String(length=6), nullable=False),
        sa.Column("payer_balance_after_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("settlement_id", "leg_no"),
    )
    op.create_table(
        "settlements",
        sa.Column("settlement_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("patient_id_number", sa.String(length=18), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("institution_admdvs", sa.String(length=6), nullable=False),
        sa.Column("institution_settlement_id", sa.String(length=64), nullable=False),
        sa.Column("use_category", sa.String(length=40), nullable=False),
        sa.Column("self_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("chronic_disease", sa.Boolean(), nullable=False),
        sa.Column("use_own_account", sa.Boolean(), nullable=False),
        sa.Column("refuse_cash_part", sa.Boolean(), nullable=False),
        sa.Column("credential_type", sa.String(length=8), nullable=False),
        sa.Column("credential_holder", sa.String(length=18), nullable=False),
        sa.Column("cash_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("captured_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("capture_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("settlement_id"),
    )
    op.create_index("ix_settlements_institution", "settlements", ["institution_code", "capture_time"], unique=False)
    op.create_index("ix_settlements_open", "settlements", ["state", "expire_time"], unique=False)
    op.create_table(
        "suspensions",
        sa.Column("holder_id_number", sa.String(length=18), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("operator_id", sa.String(length=64), nullable=False),
        sa.Column("suspend_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lift_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("holder_id_number"),
    )
    op.create_table(
        "violations",
        sa.Column("violation_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("holder_id_number", sa.String(length=18), nullable=False),
        sa.Column("patient_id_number", sa.String(length=18), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("violation_id"),
    )
    op.create_index(op.f("ix_violations_holder_id_number"), "violations", ["holder_id_number"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_violations_holder_id_number"), table_name="violations")
    op.drop_table("violations")
    op.drop_table("suspensions")
    op.drop_index("ix_settlements_open", table_name="settlements")
    op.drop_index("ix_settlements_institution", table_name="settlements")
    op.drop_table("settlements")
    op.drop_table("settlement_legs")
    op.drop_index(op.f("ix_postings_entry_id"), table_name="postings")
    op.drop_index("ix_postings_account", table_name="postings")
    op.drop_table("postings")
    op.drop_table("journal_entries")
    op.drop_index("ix_binding_usage_grantor", table_name="binding_usage")
    op.drop_table("binding_usage")
    op.drop_table("accounts")
