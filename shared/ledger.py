"""Double-entry bookkeeping: every movement of money is a journal
entry whose postings sum to zero, so the sum over all accounts never changes.

Money enters from the external contributions account (每月到账) and leaves to
institutions' receivables; the cash part of a bill never enters the ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.china_time import CHINA_STANDARD_TIME
from shared.errors import DomainError, Reason


class AccountKind(StrEnum):
    PERSONAL_ACCOUNT = "PERSONAL_ACCOUNT"  # 个人账户
    WALLET = "WALLET"  # 医保钱包
    INSTITUTION_RECEIVABLE = "INSTITUTION_RECEIVABLE"  # what gongji owes a designated institution
    EXTERNAL_CONTRIBUTIONS = "EXTERNAL_CONTRIBUTIONS"  # source of monthly credits and adjustments
    CLEARING = "CLEARING"  # what one province owes another


class Purpose(StrEnum):
    MONTHLY_CONTRIBUTION = "MONTHLY_CONTRIBUTION"
    ADJUSTMENT = "ADJUSTMENT"
    SETTLEMENT = "SETTLEMENT"
    REFUND = "REFUND"
    WALLET_TRANSFER_OUT = "WALLET_TRANSFER_OUT"
    WALLET_TRANSFER_IN = "WALLET_TRANSFER_IN"
    REVERSAL = "REVERSAL"


def purpose_seen_by_account(purpose: Purpose, amount_fen: int) -> Purpose:
    """An entry's purpose as one account's statement gives it. A wallet transfer whose wallet
    this node keeps is one entry, out of the grantor's account and into the wallet: the money
    it brings into the wallet is a transfer in, as a credit from another node is."""
    if purpose is Purpose.WALLET_TRANSFER_OUT and amount_fen > 0:
        return Purpose.WALLET_TRANSFER_IN
    return purpose


CONTRIBUTIONS_ACCOUNT = "EXTERNAL_CONTRIBUTIONS:*"


def account_id(kind: AccountKind, owner: str) -> str:
    return f"{kind.value}:{owner}"


def personal_account(id_number: str) -> str:
    return account_id(AccountKind.PERSONAL_ACCOUNT, id_number)


def wallet(id_number: str) -> str:
    return account_id(AccountKind.WALLET, id_number)


def receivable(institution_code: str) -> str:
    return account_id(AccountKind.INSTITUTION_RECEIVABLE, institution_code)


def year_of(moment: datetime) -> int:
    return moment.astimezone(CHINA_STANDARD_TIME).year


# Days and months the ledger is asked about: any real one, and none whose bounds would leave
# what datetime can hold once turned into UTC.
EARLIEST_YEAR, LATEST_YEAR = 1900, 8999


# strptime alone takes "2026-3-2", fullwidth or Arabic-Indic digits and surrounding spaces: a
# day or month is taken only in exactly the ASCII shape it is documented in.
_SHAPES = {"YYYY-MM-DD": r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "YYYY-MM": r"[0-9]{4}-[0-9]{2}"}


def _calendar(text: str, pattern: str, field: str, shape: str) -> datetime:
    if not re.fullmatch(_SHAPES[shape], text):
        raise DomainError(Reason.FIELD_INVALID, f"{field} {text[:16]!r} is not {shape}", field=field)
    try:
        start = datetime.strptime(text, pattern).replace(tzinfo=CHINA_STANDARD_TIME)
    except ValueError:
        raise DomainError(Reason.FIELD_INVALID, f"{field} {text[:16]!r} is not {shape}", field=field) from None
    if not EARLIEST_YEAR <= start.year <= LATEST_YEAR:
        raise DomainError(
            Reason.FIELD_INVALID, f"{field} must lie between {EARLIEST_YEAR} and {LATEST_YEAR}", field=field
        )
    return start


def day_bounds(day: str) -> tuple[datetime, datetime]:
    """The start and end of a "YYYY-MM-DD" day in China Standard Time."""
    start = _calendar(day, "%Y-%m-%d", "date", "YYYY-MM-DD")
    return start, start + timedelta(days=1)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    start = _calendar(month, "%Y-%m", "month", "YYYY-MM")
    following = (
        start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    )
    return start, following


@dataclass(frozen=True)
class Posting:
    account_id: str
    amount_fen: int  # positive into the account, negative out of it
    counterpart_id_number: str = ""
    binding_id: str = ""


@dataclass(frozen=True)
class JournalEntry:
    entry_id: str
    time: datetime
    purpose: Purpose
    postings: tuple[Posting, ...]
    settlement_id: str = ""
    transfer_id: str = ""
    institution_code: str = ""
    request_id: str = ""
    memo: str = ""

    def __post_init__(self) -> None:
        if sum(p.amount_fen for p in self.postings) != 0:
            raise ValueError(f"journal entry {self.entry_id} does not balance: {self.postings}")


# Accounts whose row carries a running balance; the others (receivables, the
# contributions source, clearing) are derived from their postings, so that a
# busy institution is not a single row every settlement must lock.
TRACKED_KINDS: frozenset[AccountKind] = frozenset({AccountKind.PERSONAL_ACCOUNT, AccountKind.WALLET})


@dataclass
class Account:
    account_id: str
    kind: AccountKind
    owner: str
    admdvs: str
    balance_fen: int = 0
    held_fen: int = 0

    @property
    def available_fen(self) -> int:
        return self.balance_fen - self.held_fen

    @property
    def tracked(self) -> bool:
        return self.kind in TRACKED_KINDS


def clearing(own_province: str, other_province: str) -> str:
    """A province's clearing account with another; a positive balance is what it owes the other (清算)."""
    return account_id(AccountKind.CLEARING, f"{own_province}:{other_province}")
