"""A payment node's part in another node's cross-province work: hold legs on its own
accounts, then capture, release or refund them as the coordinator decides. Every step
is idempotent by the transaction id.

A participant takes no peer's numbers on trust: it holds only through grants it resolved
itself with the binding service, within its own view of each grantor's caps, quota and
per-use limit, and it captures at most what it holds, and of one bill's legs together no more
than the per-use limit lets its grantors pay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.payment.adapters.node_repository import PageEnd, ParticipantTransaction, PreparedLeg
from services.payment.service_layer.accounts import ensure_clearing
from services.payment.service_layer.ids import new_id
from services.payment.service_layer.settlements import grant_limit
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from services.payment.service_layer.wallets import TRANSFER_WINDOW_HOURS
from shared.deduction import per_use_bound
from shared.errors import DomainError, Reason
from shared.ledger import (
    CHINA_STANDARD_TIME,
    Account,
    JournalEntry,
    Posting,
    Purpose,
    personal_account,
    wallet,
    year_of,
)
from shared.payers import PayerGrant
from shared.regions import province_of

PREPARED, COMMITTED, ABORTED, REFUNDED = "PREPARED", "COMMITTED", "ABORTED", "REFUNDED"


@dataclass(frozen=True)
class LegRequest:
    leg_no: int
    payer_id_number: str
    binding_id: str
    amount_fen: int


@dataclass(frozen=True)
class GrantorCapacity:
    binding_id: str
    grantor_id_number: str
    has_account: bool
    limit_fen: int
    available_fen: int
    admdvs: str


def capacities(
    uow: PaymentUnitOfWork, grants: list[PayerGrant], now: datetime, confirmed: set[str], ceiling_fen: int
) -> list[GrantorCapacity]:
    """What each grantor can give now, and its available balance, each up to `ceiling_fen` (what
    the bill could take from one grantor): the coordinator plans with no more, and a grantor's
    balance beyond it is no business of another province's node. A grant not among the
    `confirmed` binding ids is answered as a grantor without an account here (nothing, and
    nothing about the person)."""
    year = year_of(now)
    usage = uow.usage.of_grantors([g.grantor_id_number for g in grants if g.binding_id in confirmed], year)
    found = []
    for grant in grants:
        account = uow.accounts.get(personal_account(grant.grantor_id_number)) if grant.binding_id in confirmed else None
        if account is None:
            found.append(GrantorCapacity(grant.binding_id, grant.grantor_id_number, False, 0, 0, ""))
            continue
        limit = min(grant_limit(grant, account, usage.get(grant.grantor_id_number, {})), ceiling_fen)
        available = min(account.available_fen, ceiling_fen)
        found.append(GrantorCapacity(grant.binding_id, grant.grantor_id_number, True, limit, available, account.admdvs))
    return found


@dataclass(frozen=True)
class HeldLeg:
    """A leg held on this node, with its payer's balance after the hold and pooling region."""

    leg: PreparedLeg
    available_after_fen: int
    admdvs: str


def prepare(
    uow: PaymentUnitOfWork,
    transaction_id: str,
    coordinator_province: str,
    beneficiary: str,
    institution_code: str,
    legs: list[LegRequest],
    grants: list[PayerGrant],
    expire_time: datetime,
    now: datetime,
    up_to: bool = False,
    seen_before: bool = True,
    capture_at_most: int | None = None,
) -> list[HeldLeg]:
    """Holds every leg at once, within each grant's limits, or none. With `up_to`, each leg's
    amount is a ceiling: a leg holds what its grantor can give now, down to nothing (no grant
    this node resolved, no account here), and such legs are left out.

    With `capture_at_most` too (one round), the legs are captured at once instead, in leg_no
    order, each as much of its ceiling less what the legs before it took as its grantor can give,
    and all together at most that: the payers' order goes on here, so the coordinator needs no
    second call to capture (shared.deduction.fits_one_round).

    A transaction prepared here before answers what it held, to the coordinator and for the
    beneficiary it was prepared for; to any other it is refused. Without `seen_before` that is
    not read first: a transaction known here already then fails (its record exists, or its
    grantor's balance now counts its own hold), and the caller asks again with it."""
    existing = uow.participants.get(transaction_id, for_update=True) if seen_before else None
    if existing is not None:
        if existing.state == ABORTED:
            raise DomainError(
                Reason.REQUEST_REVERSED, f"transaction {transaction_id} was aborted; it cannot be prepared"
            )
        if (existing.coordinator_province, existing.beneficiary_id_number) != (coordinator_province, beneficiary):
            # No retry of it: another node's transaction, or another bill under its id. Told nothing of it.
            raise DomainError(
                Reason.PEER_CLAIM_REJECTED,
                f"transaction {transaction_id} was prepared for another coordinator or beneficiary",
                field="transaction_id",
            )
        locked = {a.account_id: a for a in (uow.accounts.get(leg.account_id) for leg in existing.legs) if a}
        return [
            HeldLeg(leg, account.available_fen, account.admdvs) if (account := locked.get(leg.account_id))
            else HeldLeg(leg, 0, "")
            for leg in existing.legs
        ]  # fmt: skip
    _refuse_repeated_legs(legs)
    at_most = capture_at_most if up_to else None  # a capture at once goes with ceilings only
    if at_most is not None:
        legs = sorted(legs, key=lambda leg: leg.leg_no)
    taken = 0
    grant_of = {g.binding_id: g for g in grants}
    locked = uow.accounts.lock(personal_account(leg.payer_id_number) for leg in legs)
    year = year_of(now)
    usage = uow.usage.of_grantors([leg.payer_id_number for leg in legs], year)
    prepared = []
    for leg in legs:
        account = locked.get(personal_account(leg.payer_id_number))
        grant = grant_of.get(leg.binding_id)
        if grant is None or grant.grantor_id_number != leg.payer_id_number:
            if up_to:
                continue
            raise DomainError(
                Reason.PEER_CLAIM_REJECTED,
                f"binding {leg.binding_id} does not let {leg.payer_id_number} pay for {beneficiary} now",
                field="legs.binding_id",
            )
        if account is None:
            if up_to:
                continue
            raise DomainError(Reason.ACCOUNT_NOT_FOUND, f"no personal account of {leg.payer_id_number} on this node")
        limit = grant_limit(grant, account, usage.get(leg.payer_id_number, {}))
        amount = min(leg.amount_fen, limit) if up_to else leg.amount_fen
        if at_most is not None:
            # A leg's ceiling counts the legs before it as paying nothing: less what they took.
            amount = min(leg.amount_fen - taken, limit, at_most - taken)
            taken += max(amount, 0)
        if amount > limit:
            raise DomainError(
                Reason.INSUFFICIENT_FUNDS,
                f"{leg.payer_id_number} can give {limit} fen now, not {leg.amount_fen}",
                metadata={"limit_fen": str(limit)},
            )
        if amount <= 0:
            continue
        account.held_fen += amount
        uow.usage.add(leg.binding_id, year, leg.payer_id_number, beneficiary, 0, amount)
        # A later leg of this grantor is judged with this hold counted, as the stored usage will.
        shared, held = usage.setdefault(leg.payer_id_number, {}).get(leg.binding_id, (0, 0))
        usage[leg.payer_id_number][leg.binding_id] = (shared, held + amount)
        prepared.append(PreparedLeg(leg.leg_no, leg.payer_id_number, account.account_id, leg.binding_id, amount))
    bound = per_use_bound([grant_of[leg.binding_id].per_use_limit_fen for leg in prepared])
    if not up_to or at_most is not None:
        _within_per_use_bound(sum(leg.amount_fen for leg in prepared), bound, "legs.amount_fen")
    uow.defer_writes()  # every check passed; what follows only writes, to the commit
    txn = ParticipantTransaction(
        transaction_id, coordinator_province, PREPARED, beneficiary, institution_code, expire_time, prepared,
        per_use_bound_fen=bound,
    )  # fmt: skip
    if at_most is not None:
        _take(uow, txn, {leg.leg_no: leg.amount_fen for leg in prepared}, locked, now)
    uow.participants.add(txn, now)
    uow.accounts.save_amounts(list(locked.values()))
    return [HeldLeg(leg, locked[leg.account_id].available_fen, locked[leg.account_id].admdvs) for leg in prepared]


def _refuse_repeated_legs(legs: list[LegRequest]) -> None:
    """A coordinator asks for one leg per binding and numbers its legs once each. The same binding
    twice would have each leg judged against the cap as if it were alone."""
    bindings = [leg.binding_id for leg in legs]
    numbers = [leg.leg_no for leg in legs]
    if len(set(bindings)) != len(bindings) or len(set(numbers)) != len(numbers):
        raise DomainError(
            Reason.PEER_CLAIM_REJECTED,
            "a transaction names each binding and each leg number once",
            field="legs.binding_id" if len(set(bindings)) != len(bindings) else "legs.leg_no",
        )


def commit(uow: PaymentUnitOfWork, transaction_id: str, captures: dict[int, int], now: datetime) -> bool:
    """Captures the prepared legs (at most what each holds) and releases the rest."""
    return commit_many(uow, {transaction_id: captures}, now)[transaction_id]


def commit_many(uow: PaymentUnitOfWork, commits: dict[str, dict[int, int]], now: datetime) -> dict[str, bool]:
    """Commits each transaction as `commit` does, all in this unit of work; whether each was
    applied now (False: it was committed before).

    The transactions are read in the order of their ids, and every account their legs hold on is
    locked at once, in the accounts' order, before any is captured. A batch waiting for one account
    thus keeps no other locked, and two batches whose commits name the same accounts in crossing
    order cannot deadlock."""
    pending = [txn for txn in (_committable(uow, t, commits[t]) for t in sorted(commits)) if txn is not None]
    locked = uow.accounts.lock(sorted({leg.account_id for txn in pending for leg in txn.legs})) if pending else {}
    uow.defer_writes()  # everything read; what follows only writes, to the commit
    for txn in pending:
        _capture(uow, txn, commits[txn.transaction_id], locked, now)
    uow.accounts.save_amounts([locked[account_id] for account_id in sorted(locked)])
    applied = {txn.transaction_id for txn in pending}
    return {transaction_id: transaction_id in applied for transaction_id in commits}


def _committable(
    uow: PaymentUnitOfWork, transaction_id: str, captures: dict[int, int]
) -> ParticipantTransaction | None:
    """The prepared transaction, locked, whose legs `captures` may take; None when it was committed
    (or committed and refunded) before."""
    txn = uow.participants.get(transaction_id, for_update=True)
    if txn is None:
        raise DomainError(Reason.SETTLEMENT_NOT_FOUND, f"transaction {transaction_id} was never prepared here")
    if txn.state in (COMMITTED, REFUNDED):
        return None
    if txn.state == ABORTED:
        raise DomainError(Reason.ALREADY_RELEASED, f"transaction {transaction_id} was aborted here")
    _check_captures(txn, captures)
    return txn


def _capture(
    uow: PaymentUnitOfWork,
    txn: ParticipantTransaction,
    captures: dict[int, int],
    locked: dict[str, Account],
    now: datetime,
) -> None:
    _take(uow, txn, captures, locked, now)
    uow.participants.save(txn, now)


def _take(
    uow: PaymentUnitOfWork,
    txn: ParticipantTransaction,
    captures: dict[int, int],
    locked: dict[str, Account],
    now: datetime,
) -> None:
    """Takes each leg's capture from its locked account, releases the rest of its hold, and owes
    the coordinator's province what was taken; the record is COMMITTED, to be written."""
    year, hold_year = year_of(now), year_of(txn.create_time or now)
    postings: list[Posting] = []
    for leg in txn.legs:
        captured = captures.get(leg.leg_no, 0)
        account = locked[leg.account_id]
        account.held_fen -= leg.amount_fen
        uow.usage.add(leg.binding_id, hold_year, leg.payer_id_number, txn.beneficiary_id_number, 0, -leg.amount_fen)
        uow.usage.add(leg.binding_id, year, leg.payer_id_number, txn.beneficiary_id_number, captured, 0)
        leg.captured_fen = captured
        if captured:
            owes = ensure_clearing(uow, province_of(account.admdvs), txn.coordinator_province, now)
            postings += [
                Posting(leg.account_id, -captured, txn.beneficiary_id_number, leg.binding_id),
                Posting(owes, captured, leg.payer_id_number, leg.binding_id),
            ]
    _record(uow, postings, locked, Purpose.SETTLEMENT, txn, now)
    txn.state = COMMITTED


def _check_captures(txn: ParticipantTransaction, captures: dict[int, int]) -> None:
    """A capture names a prepared leg and takes between nothing and what that leg holds. Taking
    nothing from a leg this node never held is no claim: a prepare with a ceiling leaves out the
    legs it could not hold, and the coordinator's saga still lists them."""
    held = {leg.leg_no: leg.amount_fen for leg in txn.legs}
    for leg_no, amount in captures.items():
        if leg_no not in held and amount == 0:
            continue
        if leg_no not in held:
            raise DomainError(
                Reason.PEER_CLAIM_REJECTED, f"transaction {txn.transaction_id} has no leg {leg_no}", field="captures"
            )
        if not 0 <= amount <= held[leg_no]:
            raise DomainError(
                Reason.AMOUNT_EXCEEDS_HOLD,
                f"leg {leg_no} holds {held[leg_no]} fen; a capture takes 0 to that, not {amount}",
                field="captures.amount_fen",
                metadata={"held_fen": str(held[leg_no])},
            )
    # Each leg holds within its own per-use limit; together they must stay within the bill's too.
    _within_per_use_bound(sum(captures.values()), txn.per_use_bound_fen, "captures.amount_fen")


def _within_per_use_bound(total_fen: int, bound: int | None, field: str) -> None:
    """One bill's legs on this node together take no more than its grantors' per-use limit lets."""
    if bound is not None and total_fen > bound:
        raise DomainError(
            Reason.PEER_CLAIM_REJECTED,
            f"the legs take {total_fen} fen of one bill together; the per-use limit lets the grantors held "
            f"here pay {bound} fen of it",
            field=field,
            metadata={"per_use_limit_fen": str(bound)},
        )


def abort(uow: PaymentUnitOfWork, transaction_id: str, coordinator_province: str, now: datetime) -> bool:
    """Releases prepared legs; an unknown transaction is remembered as aborted so a late prepare fails."""
    txn = uow.participants.get(transaction_id, for_update=True)
    if txn is None:
        uow.participants.add(
            ParticipantTransaction(transaction_id, coordinator_province, ABORTED, "", "", now, []), now
        )
        return True
    if txn.state == ABORTED:
        return False
    if txn.state != PREPARED:
        raise DomainError(Reason.ALREADY_CAPTURED, f"transaction {transaction_id} was already committed here")
    locked = uow.accounts.lock(leg.account_id for leg in txn.legs)
    year = year_of(txn.create_time or now)
    for leg in txn.legs:
        locked[leg.account_id].held_fen -= leg.amount_fen
        uow.usage.add(leg.binding_id, year, leg.payer_id_number, txn.beneficiary_id_number, 0, -leg.amount_fen)
    uow.accounts.save_amounts(list(locked.values()))
    txn.state = ABORTED
    uow.participants.save(txn, now)
    return True


def refund(uow: PaymentUnitOfWork, transaction_id: str, now: datetime) -> bool:
    """撤销 of the legs captured here. What each gives back comes off the shared amount of the year
    it was captured in, as a local undo does: undone in a later year, it must not free that
    year's cap or quota."""
    txn = uow.participants.get(transaction_id, for_update=True)
    if txn is None or txn.state == ABORTED:
        raise DomainError(Reason.NOT_CAPTURED, f"transaction {transaction_id} has nothing captured here")
    if txn.state == REFUNDED:
        return False
    if txn.state == PREPARED:
        raise DomainError(Reason.NOT_CAPTURED, f"transaction {transaction_id} is not committed here yet")
    # A COMMITTED record was last written by its capture.
    captured_year = year_of(txn.update_time or now)
    locked = uow.accounts.lock(leg.account_id for leg in txn.legs)
    postings: list[Posting] = []
    for leg in txn.legs:
        if not leg.captured_fen:
            continue
        account = locked[leg.account_id]
        owes = ensure_clearing(uow, province_of(account.admdvs), txn.coordinator_province, now)
        postings += [
            Posting(leg.account_id, leg.captured_fen, txn.beneficiary_id_number, leg.binding_id),
            Posting(owes, -leg.captured_fen, leg.payer_id_number, leg.binding_id),
        ]
        uow.usage.add(
            leg.binding_id, captured_year, leg.payer_id_number, txn.beneficiary_id_number, -leg.captured_fen, 0
        )
    _record(uow, postings, locked, Purpose.REFUND, txn, now)
    uow.accounts.save_amounts(list(locked.values()))
    txn.state = REFUNDED
    uow.participants.save(txn, now)
    return True


def _record(
    uow: PaymentUnitOfWork,
    postings: list[Posting],
    locked: dict[str, Account],
    purpose: Purpose,
    txn: ParticipantTransaction,
    now: datetime,
) -> None:
    if not postings:
        return
    entry = JournalEntry(
        new_id(), now, purpose, tuple(postings), settlement_id=txn.transaction_id,
        institution_code=txn.institution_code, memo=f"for province {txn.coordinator_province}",
    )  # fmt: skip
    uow.journal.record(entry, locked)


def credit_wallet(
    uow: PaymentUnitOfWork,
    transfer_id: str,
    beneficiary: str,
    grantor: str,
    amount_fen: int,
    source_province: str,
    now: datetime,
    transfers_per_day: int | None = None,
) -> bool:
    """Receives a wallet transfer from another province, once per sending province and transfer id
    (the sending node makes the id; a credit or decline another node sends under it, naming a
    province of its own, is no claim on this one); whether this call applied it. The wallet's
    balance is the beneficiary's: the sending node is not told it.

    Refused for good once the sender declined it to refund it (TRANSFER_REFUNDED). A transfer
    not credited before is refused (PEER_CLAIM_REJECTED) when this node already credited as many
    transfers from the grantor this day as a sender keeping the daily limit can send it (see
    `transfer_day_start`); a retry of one credited before is answered as before.
    """
    target = wallet(beneficiary)
    earlier = uow.transfers.credited(transfer_id, source_province)
    if earlier is None:
        locked = uow.accounts.lock([target])
        account = locked.get(target)
        if account is None:
            raise DomainError(
                Reason.WALLET_NOT_ACTIVATED,
                f"the wallet of {beneficiary} is not activated",
                field="beneficiary_id_number",
            )
        # Read again under the wallet's lock: a concurrent credit of this very transfer makes this
        # a retry, not one more transfer to count.
        earlier = uow.transfers.credited(transfer_id, source_province)
        if earlier is None:
            _within_credits_a_day(uow, transfer_id, grantor, transfers_per_day, now)
            if uow.transfers.claim_credit(
                transfer_id, beneficiary, amount_fen, source_province, now, declined=False, grantor=grantor
            ):
                owed = ensure_clearing(uow, province_of(account.admdvs), source_province, now)
                entry = JournalEntry(
                    new_id(), now, Purpose.WALLET_TRANSFER_IN,
                    (Posting(owed, -amount_fen, grantor), Posting(target, amount_fen, grantor)),
                    transfer_id=transfer_id,
                )  # fmt: skip
                uow.journal.record(entry, locked)
                uow.accounts.save_amounts([account])
                return True
            # A concurrent credit or decline committed first.
            earlier = uow.transfers.credited(transfer_id, source_province)
    if earlier is not None and not earlier.declined:
        _refuse_another_transfer(earlier, transfer_id, beneficiary, amount_fen, source_province)
    if earlier is not None and earlier.declined:
        raise DomainError(
            Reason.TRANSFER_REFUNDED,
            f"transfer {transfer_id} was not accepted in time and went back to its sender",
            field="transfer_id",
        )
    return False


def transfer_day_start(now: datetime) -> datetime:
    """When the day of transfers that `now` falls in began: 06:00 China Standard Time.

    A grantor makes a day's transfers between 06:00 and 22:00, and one not accepted by 06:00
    the next day goes back to its sender. So the credits a receiving node accepts from 06:00 to
    06:00 the next day are the transfers of one day, however late at night a wallet was
    activated or a node came back from an outage; and a transfer refused for the day's count
    and sent again after midnight still counts against the day it was made."""
    local = now.astimezone(CHINA_STANDARD_TIME)
    start = local.replace(hour=TRANSFER_WINDOW_HOURS.start, minute=0, second=0, microsecond=0)
    return start if local >= start else start - timedelta(days=1)


def _within_credits_a_day(
    uow: PaymentUnitOfWork, transfer_id: str, grantor: str, transfers_per_day: int | None, now: datetime
) -> None:
    """At most `transfers_per_day` credits from one grantor in a day of transfers (None: no limit)."""
    if transfers_per_day is None:
        return
    uow.transfers.lock_credits_of_grantor(grantor)
    if uow.transfers.credits_of_grantor_since(grantor, transfer_day_start(now)) >= transfers_per_day:
        raise DomainError(
            Reason.PEER_CLAIM_REJECTED,
            f"transfer {transfer_id} is not credited: this node credited the grantor's {transfers_per_day}"
            " transfers of the day already",
            metadata={"transfer_id": transfer_id, "transfers_per_day": str(transfers_per_day)},
        )


def decline_wallet_credit(
    uow: PaymentUnitOfWork, transfer_id: str, beneficiary: str, amount_fen: int, source_province: str, now: datetime
) -> bool:
    """The sender gives up on a transfer at 06:00 the next day: True if it was
    credited already; otherwise any later credit of it is refused from now on."""
    if uow.transfers.claim_credit(transfer_id, beneficiary, amount_fen, source_province, now, declined=True):
        return False
    earlier = uow.transfers.credited(transfer_id, source_province)
    if earlier is not None and not earlier.declined:
        _refuse_another_transfer(earlier, transfer_id, beneficiary, amount_fen, source_province)
    return earlier is not None and not earlier.declined


def _refuse_another_transfer(
    earlier: Any, transfer_id: str, beneficiary: str, amount_fen: int, source_province: str
) -> None:
    """A credit or decline under the id of a transfer its sending province's node had credited here
    is a retry only when it names the same wallet and amount; any other is told nothing of it. (A
    declined one is not checked: its sender, the only node that declines under its province, must
    learn that it was not credited, to give the money back.)"""
    if (earlier.beneficiary_id_number, earlier.amount_fen, earlier.source_province) != (
        beneficiary, amount_fen, source_province,
    ):  # fmt: skip
        raise DomainError(
            Reason.PEER_CLAIM_REJECTED,
            f"transfer {transfer_id} was received for another wallet or amount",
            field="transfer_id",
        )


def expired_with_provinces(
    uow: PaymentUnitOfWork, now: datetime, limit: int, after: PageEnd | None = None
) -> list[tuple[ParticipantTransaction, list[str]]]:
    """Prepared transactions past their expiry (past `after`), with the provinces their payers
    live in (one node may keep several; [""] for a transaction that holds nothing here)."""
    found = []
    for txn in uow.participants.expired_prepared(now, limit, after):
        accounts = (uow.accounts.get(leg.account_id) for leg in txn.legs)
        provinces = sorted({province_of(account.admdvs) for account in accounts if account})
        found.append((txn, provinces or [""]))
    return found
