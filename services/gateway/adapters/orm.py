"""The gateway's tables: the first answer to each message id, the day's sign-ins, the
settlements it relayed (for undo checks and the 3201 reconciliation), the reversals, and the
inpatient stays with their deposit holds."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, LargeBinary, MetaData, String, Table, UniqueConstraint

from services.common.types import UtcDateTime

metadata = MetaData()

# The first answer to (institution, msgid), byte for byte; a repeat gets these bytes back.
# The row is written before the work, with an empty answer, to claim the msgid for one body.
answers = Table(
    "gateway_answers",
    metadata,
    Column("institution_code", String(32), primary_key=True),
    Column("msgid", String(64), primary_key=True),
    Column("infno", String(8), nullable=False),
    # SHA-256 (hex) of the request body: the same msgid with another body is refused.
    Column("request_digest", String(64), nullable=False),
    Column("answer", LargeBinary, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
)

# 9001: one sign_no per institution, operator and China day.
sign_ins = Table(
    "gateway_sign_ins",
    metadata,
    Column("institution_code", String(32), primary_key=True),
    Column("opter", String(64), primary_key=True),
    Column("sign_day", String(10), primary_key=True),
    Column("sign_no", String(32), nullable=False),
    Column("sign_time", UtcDateTime, nullable=False),
)

# Every settlement the gateway relayed, with the figures of the institution's request that
# gongji does not keep (medfee_sumamt, fund_pay_sumamt) and the split it reported.
settlements = Table(
    "gateway_settlements",
    metadata,
    Column("institution_code", String(32), primary_key=True),
    Column("setl_id", String(64), primary_key=True),
    Column("settle_msgid", String(64), nullable=False),
    Column("infno", String(8), nullable=False),
    Column("clr_type", String(2), nullable=False),
    Column("mdtrt_id", String(64), nullable=False),
    Column("psn_no", String(32), nullable=False),
    # False: nothing reached the accounts (acct_used_flag 0, or no personal share), so no
    # settlement exists in the payment service and undo and reversal are the gateway's own.
    Column("in_gongji", Boolean, nullable=False),
    Column("mid_setl", Boolean, nullable=False),
    Column("medfee_fen", BigInteger, nullable=False),
    Column("fund_fen", BigInteger, nullable=False),
    Column("psn_part_fen", BigInteger, nullable=False),
    Column("own_account_fen", BigInteger, nullable=False),
    Column("mutual_aid_fen", BigInteger, nullable=False),
    Column("cash_fen", BigInteger, nullable=False),
    # SETTLED, UNDONE (2208/2305/2103) or REVERSED (2601 of the settlement).
    Column("state", String(12), nullable=False),
    Column("undo_msgid", String(64), nullable=True),
    Column("settle_time", UtcDateTime, nullable=False),
    Column("close_time", UtcDateTime, nullable=True),
    UniqueConstraint("institution_code", "settle_msgid", name="uq_gateway_settlements_settle_msgid"),
    Index("ix_gateway_settlements_period", "institution_code", "settle_time"),
)

# 2601 reversals by the message id they cancel, so that an original the gateway settles alone
# (no account pays) is refused when it arrives after its reversal, as gongji refuses its own.
reversals = Table(
    "gateway_reversals",
    metadata,
    Column("institution_code", String(32), primary_key=True),
    Column("omsgid", String(64), primary_key=True),
    Column("msgid", String(64), nullable=False),
    Column("reverse_time", UtcDateTime, nullable=False),
)

# Inpatient stays (mdtrt_id) and the deposit hold each has on the patient's accounts now: the
# hold a 2303 placed or renewed, until a 2304 captures it (or it is released or expires).
stays = Table(
    "gateway_stays",
    metadata,
    Column("institution_code", String(32), primary_key=True),
    Column("mdtrt_id", String(64), primary_key=True),
    Column("psn_no", String(32), nullable=False),
    Column("hold_settlement_id", String(64), nullable=True),
    Column("hold_msgid", String(64), nullable=True),
    Column("held_fen", BigInteger, nullable=False),
    Column("expire_time", UtcDateTime, nullable=True),
    Column("discharged", Boolean, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
)
