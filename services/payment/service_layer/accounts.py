"""Use cases on accounts: crediting (每月到账, adjustments) and reading an account with what it
shared this year, its statement, opening the provinces' clearing accounts that cross-province
money passes through, and the daily clearing report (清算) read off them. Each runs inside the
unit of work it is given; the caller commits. `check_credit_amount`, `credit_memo` and
`opening_region` are the rules of a credit that hold before any unit of work opens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.payment.service_layer.ids import new_id
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason
from shared.ledger import (
    CONTRIBUTIONS_ACCOUNT,
    Account,
    AccountKind,
    JournalEntry,
    Posting,
    Purpose,
    account_id,
    clearing,
    day_bounds,
    year_of,
)
from shared.money import MAX_BALANCE_FEN


def check_credit_amount(amount_fen: int, purpose: Purpose) -> int:
    """A credit moves some money; only an adjustment may take money out (a negative amount)."""
    if amount_fen == 0 or (amount_fen < 0 and purpose is not Purpose.ADJUSTMENT):
        raise DomainError(
            Reason.INVALID_AMOUNT,
            "amount_fen must be positive (negative only for an ADJUSTMENT)",
            field="amount_fen",
        )
    return amount_fen


def credit_memo(memo: str, period: str) -> str:
    """The memo a credit is recorded with: the caller's, else "contribution {period}" when the
    credit names the month it pays for, else none."""
    return memo or (f"contribution {period}" if period else "")


@dataclass(frozen=True)
class RegisteredPerson:
    """What the insured-person registry says of a person a personal account is opened for: the
    region where the person is insured, and whether the person has a personal account (个人账户:
    employee-insured, with has_personal_account)."""

    admdvs: str
    has_personal_account: bool
    # Insured in normal status (not suspended, terminated or deceased).
    is_normal: bool = True


def account_exists(uow: PaymentUnitOfWork, id_number: str, kind: AccountKind) -> bool:
    return uow.accounts.get(account_id(kind, id_number)) is not None


def _known(person: RegisteredPerson | None, refused: str) -> RegisteredPerson:
    if person is None:
        raise DomainError(
            Reason.PERSON_NOT_FOUND,
            f"the insured-person registry does not know this person, so {refused}; "
            "register the person (UpsertInsuredPerson) first, or correct id_number",
            field="id_number",
        )
    return person


def _in_registry_region(person: RegisteredPerson, admdvs: str, instead: str) -> None:
    if admdvs != person.admdvs:
        raise DomainError(
            Reason.FIELD_INVALID,
            f"the insured-person registry has this person insured in {person.admdvs}, not {admdvs}; "
            f"{instead.format(admdvs=person.admdvs)}",
            field="admdvs",
            metadata={"registry_admdvs": person.admdvs},
        )


def opening_region(person: RegisteredPerson | None, admdvs: str) -> str:
    """The region a personal account that a credit opens is kept under: the registry's. Only a
    person the registry knows, with a personal account (an employee-insured one), gets one; a
    region the caller gives must be the registry's."""
    person = _known(person, "no personal account is opened")
    if not person.has_personal_account:
        raise DomainError(
            Reason.NO_PERSONAL_ACCOUNT,
            "the insured-person registry has this person without a personal account (only an "
            "employee-insured person has one), so none is opened; correct the registry first",
            field="id_number",
        )
    if admdvs:
        _in_registry_region(person, admdvs, "credit with admdvs {admdvs} (or leave it out)")
    return person.admdvs


def wallet_region(person: RegisteredPerson | None, admdvs: str) -> str:
    """The region a wallet (医保钱包) is activated under: the registry's. Only a person the registry
    knows, insured in normal status, activates one, and under the region the registry has."""
    person = _known(person, "no wallet is activated")
    _in_registry_region(person, admdvs, "activate with admdvs {admdvs}")
    if not person.is_normal:
        raise DomainError(
            Reason.BENEFICIARY_NOT_IN_NORMAL_STATUS,
            "the person's insurance is not in normal status (suspended, ended or deceased), so no wallet is activated",
            field="id_number",
        )
    return person.admdvs


def credit_account(
    uow: PaymentUnitOfWork,
    id_number: str,
    kind: AccountKind,
    amount_fen: int,
    purpose: Purpose,
    admdvs: str,
    memo: str,
    now: datetime,
    request_id: str,
) -> tuple[Account, str]:
    """每月到账 or an adjustment: money from the contributions source into an account.

    A personal account is opened by its first credit, under `admdvs` (the region `opening_region`
    gave, from the registry, on the node that keeps it); a wallet is not. The recipient's wallet
    must be activated first (ActivateWallet, on the node that keeps the wallet's region), so a
    credit into a wallet not activated is refused (WALLET_NOT_ACTIVATED) and opens nothing."""
    target = account_id(kind, id_number)
    if uow.accounts.get(target) is None:
        if kind is AccountKind.WALLET:
            raise DomainError(
                Reason.WALLET_NOT_ACTIVATED,
                "the wallet of the person with this id_number is not activated; ActivateWallet opens it",
                field="id_number",
            )
        if not admdvs:
            raise DomainError(Reason.FIELD_REQUIRED, "admdvs is required to open a new account", field="admdvs")
        uow.accounts.ensure(Account(target, kind, id_number, admdvs), now)
    uow.accounts.ensure(Account(CONTRIBUTIONS_ACCOUNT, AccountKind.EXTERNAL_CONTRIBUTIONS, "*", "000000"), now)
    locked = uow.accounts.lock([target])
    account = locked[target]
    if account.balance_fen + amount_fen > MAX_BALANCE_FEN:
        raise DomainError(
            Reason.AMOUNT_LIMIT_EXCEEDED,
            f"the account would hold more than {MAX_BALANCE_FEN} fen",
            field="amount_fen",
            metadata={"max_balance_fen": str(MAX_BALANCE_FEN)},
        )
    if amount_fen < 0 and account.available_fen < -amount_fen:
        raise DomainError(
            Reason.INSUFFICIENT_FUNDS,
            f"an adjustment of {amount_fen} fen exceeds the available {account.available_fen} fen",
            metadata={"available_fen": str(account.available_fen)},
        )
    entry = JournalEntry(
        entry_id=new_id(),
        time=now,
        purpose=purpose,
        postings=(Posting(CONTRIBUTIONS_ACCOUNT, -amount_fen), Posting(target, amount_fen)),
        request_id=request_id,
        memo=memo,
    )
    uow.journal.record(entry, locked)
    uow.accounts.save_amounts([account])
    return account, entry.entry_id


def get_account(uow: PaymentUnitOfWork, id_number: str, kind: AccountKind) -> Account:
    account = uow.accounts.get(account_id(kind, id_number))
    if account is None:
        raise DomainError(
            Reason.ACCOUNT_NOT_FOUND,
            f"the person with this id_number has no {kind.value.lower().replace('_', ' ')}",
            field="id_number",
        )
    return account


def shares_this_year(uow: PaymentUnitOfWork, id_number: str, kind: AccountKind, now: datetime) -> list[Any]:
    """What a personal account shared with each binding this year; other accounts share nothing."""
    return uow.usage.shares_of(id_number, year_of(now)) if kind is AccountKind.PERSONAL_ACCOUNT else []


def account_with_shares(
    uow: PaymentUnitOfWork, id_number: str, kind: AccountKind, now: datetime
) -> tuple[Account, list[Any]]:
    """An account as it is read back: itself and what it shared this year."""
    account = get_account(uow, id_number, kind)
    return account, shares_this_year(uow, id_number, kind, now)


def statement(
    uow: PaymentUnitOfWork,
    id_number: str,
    kind: AccountKind,
    start: datetime | None,
    end: datetime | None,
    before: int | None,
    limit: int,
) -> list[Any]:
    """Up to `limit` lines of an account's statement in [start, end) (all time when None), newest
    first, before posting `before`; an unknown account is ACCOUNT_NOT_FOUND."""
    get_account(uow, id_number, kind)
    return uow.journal.statement(account_id(kind, id_number), start, end, before, limit)


def ensure_clearing(uow: PaymentUnitOfWork, own: str, other: str, now: datetime) -> str:
    """Opens province `own`'s clearing account with `other` unless it exists; returns its id."""
    account = clearing(own, other)
    uow.accounts.ensure(Account(account, AccountKind.CLEARING, f"{own}:{other}", own + "0000"), now)
    return account


def clearing_report(uow: PaymentUnitOfWork, day: str, local_provinces: frozenset[str]) -> list[tuple[str, str, int]]:
    """What each province owes another for a day, from this node's clearing accounts (清算).

    Each pair is read from one side only: the clearing account of the pair's
    local province (the smaller code when both are local), a positive balance
    being that province's debt.
    """
    start, end = day_bounds(day)
    balances = uow.journal.clearing_movements(start, end)
    owed: dict[tuple[str, str], int] = {}
    for account, amount in balances.items():
        own, other = account.split(":", 1)[1].split(":")
        if own not in local_provinces or (other in local_provinces and other < own):
            continue
        owed[(own, other)] = owed.get((own, other), 0) + amount
    report = []
    for (own, other), amount in sorted(owed.items()):
        if amount > 0:
            report.append((own, other, amount))
        elif amount < 0:
            report.append((other, own, -amount))
    return report
