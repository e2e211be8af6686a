"""Binding service schema: registry, bindings, audit trail, payer orders, policies, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
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
        "binding_events",
        sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("binding_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state_after", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(op.f("ix_binding_events_binding_id"), "binding_events", ["binding_id"], unique=False)
    op.create_table(
        "bindings",
        sa.Column("binding_id", sa.String(length=36), nullable=False),
        sa.Column("grantor_id_number", sa.String(length=18), nullable=False),
        sa.Column("beneficiary_id_number", sa.String(length=18), nullable=False),
        sa.Column("relationship", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("share_all", sa.Boolean(), nullable=False),
        sa.Column("yearly_cap_fen", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("consent_version", sa.String(length=64), nullable=False),
        sa.Column("consent_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("ended_by", sa.String(length=16), nullable=True),
        sa.Column("end_comment", sa.Text(), nullable=False),
        sa.Column("grantor_admdvs", sa.String(length=6), nullable=False),
        sa.Column("beneficiary_admdvs", sa.String(length=6), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("proofs", sa.JSON(), nullable=False),
        sa.Column("beneficiary_sequence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("binding_id"),
        sa.UniqueConstraint("beneficiary_id_number", "beneficiary_sequence", name="uq_bindings_beneficiary_sequence"),
    )
    op.create_index("ix_bindings_beneficiary", "bindings", ["beneficiary_id_number", "state"], unique=False)
    op.create_index("ix_bindings_grantor", "bindings", ["grantor_id_number", "state"], unique=False)
    op.create_index(
        "uq_bindings_open_pair",
        "bindings",
        ["grantor_id_number", "beneficiary_id_number"],
        unique=True,
        sqlite_where=sa.text("state IN ('PENDING_REVIEW', 'ACTIVE', 'SUSPENDED')"),
        postgresql_where=sa.text("state IN ('PENDING_REVIEW', 'ACTIVE', 'SUSPENDED')"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reversed_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_table(
        "insured_persons",
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("insurance_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("admdvs", sa.String(length=6), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=256), nullable=False),
        sa.Column("has_personal_account", sa.Boolean(), nullable=False),
        sa.Column("contact_change_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_number"),
    )
    op.create_table(
        "payer_orders",
        sa.Column("beneficiary_id_number", sa.String(length=18), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("binding_ids", sa.JSON(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("beneficiary_id_number"),
    )
    op.create_table(
        "region_policies",
        sa.Column("admdvs", sa.String(length=6), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("admdvs", "effective_from"),
    )


def downgrade() -> None:
    op.drop_table("region_policies")
    op.drop_table("payer_orders")
    op.drop_table("insured_persons")
    op.drop_table("idempotency_keys")
    op.drop_index(
        "uq_bindings_open_pair",
        table_name="bindings",
        sqlite_where=sa.text("state IN ('PENDING_REVIEW', 'ACTIVE', 'SUSPENDED')"),
        postgresql_where=sa.text("state IN ('PENDING_REVIEW', 'ACTIVE', 'SUSPENDED')"),
    )
    op.drop_index("ix_bindings_grantor", table_name="bindings")
    op.drop_index("ix_bindings_beneficiary", table_name="bindings")
    op.drop_table("bindings")
    op.drop_index(op.f("ix_binding_events_binding_id"), table_name="binding_events")
    op.drop_table("binding_events")
