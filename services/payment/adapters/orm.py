"""The payment service's tables: accounts, the journal, settlements and their
legs, per-binding usage, violations and suspensions."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text, false, text

from services.common.idempotency import idempotency_table
from services.common.types import UtcDateTime

metadata = MetaData()
LIVE_BILL = "institution_settlement_id <> '' AND state IN ('AUTHORIZED', 'CAPTURED')"

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("owner", String(32), nullable=False),
    Column("admdvs", String(6), nullable=False),
    # balance = sum of the account's postings; held = sum of its open holds.
    Column("balance_fen", BigInteger, nullable=False),
    Column("held_fen", BigInteger, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("time", UtcDateTime, nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("settlement_id", String(36), nullable=False),
    Column("transfer_id", String(36), nullable=False),
    Column("institution_code", String(32), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("memo", Text, nullable=False),
)

postings = Table(
    "postings",
    metadata,
    Column("posting_id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(36), nullable=False, index=True),
    Column("account_id", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("balance_after_fen", BigInteger, nullable=False),
    Column("counterpart_id_number", String(32), nullable=False),
    Column("binding_id", String(36), nullable=False),
    Column("time", UtcDateTime, nullable=False),
    Index("ix_postings_account", "account_id", "posting_id"),
)

settlements = Table(
    "settlements",
    metadata,
    Column("settlement_id", String(36), primary_key=True),
    Column("request_id", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("patient_id_number", String(18), nullable=False),
    Column("institution_code", String(32), nullable=False),
    Column("institution_admdvs", String(6), nullable=False),
    Column("institution_settlement_id", String(64), nullable=False),
    Column("use_category", String(40), nullable=False),
    Column("self_pay_fen", BigInteger, nullable=False),
    Column("chronic_disease", Boolean, nullable=False),
    Column("use_own_account", Boolean, nullable=False),
    Column("refuse_cash_part", Boolean, nullable=False),
    Column("credential_type", String(8), nullable=False),
    Column("credential_holder", String(18), nullable=False),
    Column("cash_pay_fen", BigInteger, nullable=False),
    Column("captured_fen", BigInteger, nullable=False),
    Column("refunded_fen", BigInteger, nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("expire_time", UtcDateTime, nullable=True),
    Column("capture_time", UtcDateTime, nullable=True),
    Column("close_time", UtcDateTime, nullable=True),
    # [[binding_id, grantor_id_number, reason], …]: relatives not asked to pay, and why.
    Column("passed_over", JSON, nullable=False, server_default="[]"),
    # True when a Settle held and captured it in one call; False when AuthorizeSettlement held it
    # (captured later by CaptureSettlement, if at all). The metrics tell "settle" from "capture" by it.
    Column("one_step", Boolean, nullable=False, server_default=false()),
    # SEQUENTIAL or PROPORTIONAL: how the grantors shared the bill, kept for a smaller capture.
    Column("payer_mode", String(16), nullable=False, server_default="SEQUENTIAL"),
    Index("ix_settlements_open", "state", "expire_time"),
    Index("ix_settlements_institution", "institution_code", "capture_time"),
    # One live settlement per bill of an institution (see settlements.check_bill_not_settled).
    Index(
        "uq_settlements_live_bill",
        "institution_code",
        "institution_settlement_id",
        unique=True,
        sqlite_where=text(LIVE_BILL),
        postgresql_where=text(LIVE_BILL),
    ),
)

settlement_legs = Table(
    "settlement_legs",
    metadata,
    Column("settlement_id", String(36), primary_key=True),
    Column("leg_no", Integer, primary_key=True),
    Column("payer_id_number", String(18), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("binding_id", String(36), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("captured_fen", BigInteger, nullable=False),
    Column("refunded_fen", BigInteger, nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("payer_admdvs", String(6), nullable=False),
    Column("payer_balance_after_fen", BigInteger, nullable=False),
    # The payer's province when another node holds the account; "" when local.
    Column("province", String(2), nullable=False, server_default=""),
)

binding_usage = Table(
    "binding_usage",
    metadata,
    Column("binding_id", String(36), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("grantor_id_number", String(18), nullable=False),
    Column("beneficiary_id_number", String(18), nullable=False),
    # Captured minus refunded this year, and what open holds reserve.
    Column("shared_fen", BigInteger, nullable=False),
    Column("held_fen", BigInteger, nullable=False),
    Index("ix_binding_usage_grantor", "grantor_id_number", "year"),
)

violations = Table(
    "violations",
    metadata,
    Column("violation_id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("holder_id_number", String(18), nullable=False, index=True),
    Column("patient_id_number", String(18), nullable=False),
    Column("institution_code", String(32), nullable=False),
    Column("time", UtcDateTime, nullable=False),
)

suspensions = Table(
    "suspensions",
    metadata,
    Column("holder_id_number", String(18), primary_key=True),
    Column("active", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("operator_id", String(64), nullable=False),
    Column("suspend_time", UtcDateTime, nullable=False),
    Column("lift_time", UtcDateTime, nullable=True),
)

# The coordinator's durable log of cross-node work (saga / two-phase commit),
# written in the same transaction as the local state it belongs to.
node_transactions = Table(
    "node_transactions",
    metadata,
    Column("transaction_id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # SETTLEMENT or TRANSFER
    Column("state", String(16), nullable=False),
    # province → legs ({leg_no, payer_id_number, binding_id, amount_fen, captured_fen}) on that node
    Column("participants", JSON, nullable=False),
    # provinces that acknowledged the current phase
    Column("acknowledged", JSON, nullable=False),
    Column("coordinator_province", String(2), nullable=False),
    Column("beneficiary_id_number", String(18), nullable=False),
    Column("institution_code", String(32), nullable=False),
    Column("expire_time", UtcDateTime, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
    Index("ix_node_transactions_state", "state", "update_time"),
)

# A participant's side of cross-node work: holds prepared for a coordinator.
participant_transactions = Table(
    "participant_transactions",
    metadata,
    Column("transaction_id", String(36), primary_key=True),
    Column("coordinator_province", String(2), nullable=False),
    Column("state", String(16), nullable=False),
    Column("beneficiary_id_number", String(18), nullable=False),
    Column("institution_code", String(32), nullable=False),
    Column("expire_time", UtcDateTime, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
    # The most the bill may take from the grants held here, all legs together (NULL: no limit).
    Column("per_use_bound_fen", BigInteger, nullable=True),
    Index("ix_participant_transactions_state", "state", "expire_time"),
)

participant_legs = Table(
    "participant_legs",
    metadata,
    Column("transaction_id", String(36), primary_key=True),
    Column("leg_no", Integer, primary_key=True),
    Column("payer_id_number", String(18), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("binding_id", String(36), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("captured_fen", BigInteger, nullable=False),
)

transfers = Table(
    "transfers",
    metadata,
    Column("transfer_id", String(36), primary_key=True),
    Column("request_id", String(128), nullable=False),
    Column("grantor_id_number", String(18), nullable=False, index=True),
    Column("beneficiary_id_number", String(18), nullable=False),
    Column("binding_id", String(36), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("source_province", String(2), nullable=False),
    Column("target_province", String(2), nullable=False),
    Column("verification_method", String(16), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("complete_time", UtcDateTime, nullable=True),
)

# Wallet credits received from other nodes, one per transfer (idempotency). A transfer is known
# by its sending province and its id: the sending node makes the id, so a decline or credit
# another node sends under it, naming a province of its own, is no claim on that node's transfer.
wallet_credits = Table(
    "wallet_credits",
    metadata,
    Column("transfer_id", String(36), primary_key=True),
    Column("beneficiary_id_number", String(18), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("source_province", String(2), primary_key=True),
    Column("time", UtcDateTime, nullable=False),
    # True when the sender refunded the transfer instead (not accepted by 06:00 the next
    # day): the row then refuses any later credit of it.
    Column("declined", Boolean, nullable=False, server_default=false()),
    # Whose personal account the credited transfer came from, so a node counts the transfers it
    # received from one grantor in a day; empty for a declined transfer and for rows written
    # before it was kept whose credit the journal does not name.
    Column("grantor_id_number", String(18), nullable=False, server_default=""),
    Index("ix_wallet_credits_grantor", "grantor_id_number", "time"),
)

idempotency_keys = idempotency_table(metadata)
