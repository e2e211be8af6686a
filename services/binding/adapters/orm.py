"""The binding service's tables. The domain's dataclasses never see them:
repositories translate rows to dataclasses and back."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from services.common.idempotency import idempotency_table
from services.common.types import UtcDateTime

metadata = MetaData()

OPEN_STATES_SQL = "state IN ('PENDING_REVIEW', 'ACTIVE', 'SUSPENDED')"

insured_persons = Table(
    "insured_persons",
    metadata,
    Column("id_number", String(18), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("insurance_type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("admdvs", String(6), nullable=False),
    Column("phone", String(32), nullable=False, default=""),
    Column("address", String(256), nullable=False, default=""),
    Column("has_personal_account", Boolean, nullable=False),
    Column("contact_change_time", UtcDateTime, nullable=True),
    Column("update_time", UtcDateTime, nullable=False),
)

bindings = Table(
    "bindings",
    metadata,
    Column("binding_id", String(36), primary_key=True),
    Column("grantor_id_number", String(18), nullable=False),
    Column("beneficiary_id_number", String(18), nullable=False),
    Column("relationship", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("share_all", Boolean, nullable=False),
    Column("yearly_cap_fen", BigInteger, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("consent_version", String(64), nullable=False),
    Column("consent_time", UtcDateTime, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime, nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("ended_by", String(16), nullable=True),
    Column("end_comment", Text, nullable=False, default=""),
    Column("grantor_admdvs", String(6), nullable=False),
    Column("beneficiary_admdvs", String(6), nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("proofs", JSON, nullable=False),
    Column("beneficiary_sequence", Integer, nullable=False),
    Index("ix_bindings_grantor", "grantor_id_number", "state"),
    Index("ix_bindings_beneficiary", "beneficiary_id_number", "state"),
    UniqueConstraint("beneficiary_id_number", "beneficiary_sequence", name="uq_bindings_beneficiary_sequence"),
    # The database itself refuses a second open binding of the same pair.
    Index(
        "uq_bindings_open_pair",
        "grantor_id_number",
        "beneficiary_id_number",
        unique=True,
        sqlite_where=text(OPEN_STATES_SQL),
        postgresql_where=text(OPEN_STATES_SQL),
    ),
)

binding_events = Table(
    "binding_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("binding_id", String(36), nullable=False, index=True),
    Column("event_type", String(32), nullable=False),
    Column("actor", String(16), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("channel", String(16), nullable=True),
    Column("time", UtcDateTime, nullable=False),
    Column("state_after", String(16), nullable=False),
    Column("comment", Text, nullable=False),
    Column("request_id", String(128), nullable=False),
)

payer_orders = Table(
    "payer_orders",
    metadata,
    Column("beneficiary_id_number", String(18), primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("binding_ids", JSON, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
)

region_policies = Table(
    "region_policies",
    metadata,
    Column("admdvs", String(6), primary_key=True),
    Column("effective_from", UtcDateTime, primary_key=True),
    # The policy as data (shared.policy.policy_from_dict reads it back).
    Column("document", JSON, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
)

idempotency_keys = idempotency_table(metadata)
