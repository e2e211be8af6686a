"""Gateway schema: first answers by message id, sign-ins, relayed settlements, reversals.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_answers",
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("msgid", sa.String(length=64), nullable=False),
        sa.Column("infno", sa.String(length=8), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("institution_code", "msgid"),
    )
    op.create_table(
        "gateway_sign_ins",
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("opter", sa.String(length=64), nullable=False),
        sa.Column("sign_day", sa.String(length=10), nullable=False),
        sa.Column("sign_no", sa.String(length=32), nullable=False),
        sa.Column("sign_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("institution_code", "opter", "sign_day"),
    )
    op.create_table(
        "gateway_settlements",
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("setl_id", sa.String(length=64), nullable=False),
        sa.Column("settle_msgid", sa.String(length=64), nullable=False),
        sa.Column("infno", sa.String(length=8), nullable=False),
        sa.Column("clr_type", sa.String(length=2), nullable=False),
        sa.Column("mdtrt_id", sa.String(length=64), nullable=False),
        sa.Column("psn_no", sa.String(length=32), nullable=False),
        sa.Column("in_gongji", sa.Boolean(), nullable=False),
        sa.Column("mid_setl", sa.Boolean(), nullable=False),
        sa.Column("medfee_fen", sa.BigInteger(), nullable=False),
        sa.Column("fund_fen", sa.BigInteger(), nullable=False),
        sa.Column("psn_part_fen", sa.BigInteger(), nullable=False),
        sa.Column("own_account_fen", sa.BigInteger(), nullable=False),
        sa.Column("mutual_aid_fen", sa.BigInteger(), nullable=False),
        sa.Column("cash_fen", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("undo_msgid", sa.String(length=64), nullable=True),
        sa.Column("settle_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("close_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("institution_code", "setl_id"),
        sa.UniqueConstraint("institution_code", "settle_msgid", name="uq_gateway_settlements_settle_msgid"),
    )
    op.create_table(
        "gateway_reversals",
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("omsgid", sa.String(length=64), nullable=False),
        sa.Column("msgid", sa.String(length=64), nullable=False),
        sa.Column("reverse_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("institution_code", "omsgid"),
    )
    op.create_index(
        "ix_gateway_settlements_period", "gateway_settlements", ["institution_code", "settle_time"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_gateway_settlements_period", table_name="gateway_settlements")
    op.drop_table("gateway_reversals")
    op.drop_table("gateway_settlements")
    op.drop_table("gateway_sign_ins")
    op.drop_table("gateway_answers")
