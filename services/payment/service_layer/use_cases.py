"""Use cases of the payment service (DOMAIN §3.1–3.4, §3.6). Each runs inside
the unit of work it is given, with every account it touches locked in sorted
order; the caller commits."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.deduction import Capacity, Leg, PaymentSource, least, shrink, split_bill
from shared.errors import DomainError, Reason
from shared.ledger import (
    CONTRIBUTIONS_ACCOUNT,
    Account,
    AccountKind,
    JournalEntry,
    Posting,
    Purpose,
    account_id,
    personal_account,
    receivable,
    wallet,
    year_of,
)
from shared.payers import PayerGrant, PayerMode
from shared.settlements import (
    Bill,
    Settlement,
    SettlementLeg,
    SettlementState,
    check_capturable,
    check_own_card,
    check_refundable,
    check_releasable,
)


@dataclass(frozen=True)
class Payers:
    """What the binding service's ResolvePayers answered for one bill."""

    grants: tuple[PayerGrant, ...] = ()
    mode: PayerMode = PayerMode.SEQUENTIAL
    policy_version: str = ""


def _new_id() -> str:
    return str(uuid.uuid4())


# Accounts ---------------------------------------------------------------------------


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
    """每月到账 or an adjustment: money from the contributions source into an account."""
    target = account_id(kind, id_number)
    if uow.accounts.get(target) is None:
        if not admdvs:
            raise DomainError(Reason.FIELD_REQUIRED, "admdvs is required to open a new account", field="admdvs")
        uow.accounts.ensure(Account(target, kind, id_number, admdvs), now)
    uow.accounts.ensure(Account(CONTRIBUTIONS_ACCOUNT, AccountKind.EXTERNAL_CONTRIBUTIONS, "*", "000000"), now)
    locked = uow.accounts.lock([target])
    account = locked[target]
    if amount_fen < 0 and account.available_fen < -amount_fen:
        raise DomainError(
            Reason.INSUFFICIENT_FUNDS,
            f"an adjustment of {amount_fen} fen exceeds the available {account.available_fen} fen",
            metadata={"available_fen": str(account.available_fen)},
        )
    entry = JournalEntry(
        entry_id=_new_id(),
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
        raise DomainError(Reason.ACCOUNT_NOT_FOUND, f"no {kind.value.lower()} of {id_number}", field="id_number")
    return account


# Ordered deduction (DOMAIN §3.3) ----------------------------------------------------------


@dataclass
class Draw:
    """The locked accounts and usage a bill is split over."""

    own: list[Capacity]
    grants: list[Capacity]
    accounts: dict[str, Account]
    year: int


def _draw(uow: PaymentUnitOfWork, bill: Bill, payers: Payers, now: datetime) -> Draw:
    patient = bill.patient_id_number
    grants = [g for g in payers.grants if g.grantor_id_number != patient]
    wanted = [wallet(patient), *(personal_account(g.grantor_id_number) for g in grants)]
    if bill.use_own_account:
        wanted.append(personal_account(patient))
    locked = uow.accounts.lock(wanted)
    year = year_of(now)
    usage = uow.usage.of_grantors([g.grantor_id_number for g in grants], year)
    own: list[Capacity] = []
    mine = locked.get(personal_account(patient)) if bill.use_own_account else None
    if mine is not None:
        own.append(
            Capacity(patient, PaymentSource.OWN_ACCOUNT, mine.available_fen, policy_version=payers.policy_version)
        )
    purse = locked.get(wallet(patient))
    if purse is not None:
        own.append(Capacity(patient, PaymentSource.WALLET, purse.available_fen, policy_version=payers.policy_version))
    capacities = []
    for grant in grants:
        account = locked.get(personal_account(grant.grantor_id_number))
        if account is None:
            continue  # no personal account on this node
        capacities.append(
            Capacity(
                grant.grantor_id_number,
                PaymentSource.MUTUAL_AID,
                _grant_limit(grant, account, usage.get(grant.grantor_id_number, {})),
                grant.binding_id,
                grant.policy_version,
            )
        )
    return Draw(own, capacities, locked, year)


def _grant_limit(grant: PayerGrant, account: Account, usage: dict[str, tuple[int, int]]) -> int:
    """The least of: available balance (less any minimum the region makes the grantor keep),
    the binding's yearly cap left, the regional annual quota left, the per-use limit."""
    shared_here, held_here = usage.get(grant.binding_id, (0, 0))
    shared_all = sum(shared for shared, _ in usage.values())
    held_all = sum(held for _, held in usage.values())
    cap_left = None if grant.share_all else grant.yearly_cap_fen - shared_here - held_here
    quota_left = None
    if grant.annual_share_ratio_percent:
        # The quota is a share of what the account held this year before sharing.
        quota = (account.balance_fen + shared_all) * grant.annual_share_ratio_percent // 100
        quota_left = quota - shared_all - held_all
    per_use = grant.per_use_limit_fen or None
    return least(account.available_fen - grant.min_grantor_balance_fen, cap_left, quota_left, per_use)


def _settlement_from_split(
    bill: Bill, payers: Payers, draw: Draw, request_id: str, now: datetime, expire_time: datetime | None
) -> Settlement:
    split = split_bill(bill.self_pay_fen, draw.own, draw.grants, payers.mode)
    if bill.refuse_cash_part and split.cash_fen:
        raise DomainError(
            Reason.INSUFFICIENT_FUNDS,
            f"the accounts cover {bill.self_pay_fen - split.cash_fen} of {bill.self_pay_fen} fen and the caller "
            "refused a cash part",
            metadata={"shortfall_fen": str(split.cash_fen)},
        )
    legs = []
    for number, leg in enumerate(split.legs, start=1):
        target = (
            personal_account(leg.payer_id_number)
            if leg.source is not PaymentSource.WALLET
            else wallet(leg.payer_id_number)
        )
        account = draw.accounts[target]
        legs.append(
            SettlementLeg(
                leg_no=number,
                payer_id_number=leg.payer_id_number,
                account_id=target,
                source=leg.source,
                amount_fen=leg.amount_fen,
                binding_id=leg.binding_id,
                policy_version=leg.policy_version,
                payer_admdvs=account.admdvs,
                payer_balance_after_fen=account.available_fen - leg.amount_fen,
            )
        )
    return Settlement(
        settlement_id=_new_id() if request_id else "",
        request_id=request_id,
        bill=bill,
        state=SettlementState.AUTHORIZED,
        legs=legs,
        cash_pay_fen=split.cash_fen,
        policy_version=payers.policy_version,
        create_time=now,
        expire_time=expire_time,
    )


def check_not_suspended(uow: PaymentUnitOfWork, holder: str) -> None:
    suspension = uow.violations.suspension(holder)
    if suspension is not None and suspension.active:
        raise DomainError(
            Reason.SETTLEMENT_SUSPENDED,
            "networked settlement (联网结算) of this card is suspended until an operator lifts it",
            metadata={"holder_id_number": holder},
        )


def quote(uow: PaymentUnitOfWork, bill: Bill, payers: Payers, now: datetime) -> Settlement:
    """预结算: the split the bill would take now; nothing is written."""
    check_own_card(bill.patient_id_number, bill.credential_holder)
    check_not_suspended(uow, bill.credential_holder)
    return _settlement_from_split(bill, payers, _draw(uow, bill, payers, now), "", now, None)


def authorize(
    uow: PaymentUnitOfWork,
    bill: Bill,
    payers: Payers,
    expire_time: datetime,
    now: datetime,
    request_id: str,
    capture: bool = False,
) -> Settlement:
    """Holds every leg at once (all or none); with capture, settles in the same transaction."""
    check_not_suspended(uow, bill.credential_holder)
    draw = _draw(uow, bill, payers, now)
    settlement = _settlement_from_split(bill, payers, draw, request_id, now, expire_time)
    if capture:
        for leg in settlement.legs:
            leg.captured_fen = leg.amount_fen
        _post_capture(uow, settlement, draw.accounts, now, release_holds=False)
        settlement.state = SettlementState.CAPTURED
        settlement.capture_time = now
        settlement.captured_fen = sum(leg.captured_fen for leg in settlement.legs)
    else:
        for leg in settlement.legs:
            draw.accounts[leg.account_id].held_fen += leg.amount_fen
            if leg.source is PaymentSource.MUTUAL_AID:
                uow.usage.add(leg.binding_id, draw.year, leg.payer_id_number, bill.patient_id_number, 0, leg.amount_fen)
    uow.accounts.save_amounts([draw.accounts[a] for a in sorted({leg.account_id for leg in settlement.legs})])
    uow.settlements.add(settlement)
    return settlement


def record_impersonation(uow: PaymentUnitOfWork, bill: Bill, suspension_threshold: int, now: datetime) -> None:
    """DOMAIN §3.2: records the violation against the card's holder, suspends at the
    region's threshold, and refuses the settlement."""
    holder = bill.credential_holder
    count = uow.violations.add(_new_id(), holder, bill.patient_id_number, bill.institution_code, now)
    if suspension_threshold and count >= suspension_threshold:
        current = uow.violations.suspension(holder, for_update=True)
        if current is None or not current.active:
            uow.violations.suspend(holder, f"{count} impersonations (冒名就医)", "system", now)
    check_own_card(bill.patient_id_number, holder)


# The lifecycle (DOMAIN §3.4) -------------------------------------------------------------


def get_settlement(uow: PaymentUnitOfWork, settlement_id: str, for_update: bool = False) -> Settlement:
    settlement = uow.settlements.get(settlement_id, for_update=for_update)
    if settlement is None:
        raise DomainError(Reason.SETTLEMENT_NOT_FOUND, f"no settlement {settlement_id}", field="settlement_id")
    return settlement


def _post_capture(
    uow: PaymentUnitOfWork, settlement: Settlement, locked: dict[str, Account], now: datetime, release_holds: bool
) -> None:
    bill = settlement.bill
    institution = receivable(bill.institution_code)
    uow.accounts.ensure(
        Account(institution, AccountKind.INSTITUTION_RECEIVABLE, bill.institution_code, bill.institution_admdvs), now
    )
    year = year_of(now)
    postings: list[Posting] = []
    for leg in settlement.legs:
        if release_holds:
            locked[leg.account_id].held_fen -= leg.amount_fen
        if leg.source is PaymentSource.MUTUAL_AID:
            held_back = -leg.amount_fen if release_holds else 0
            uow.usage.add(
                leg.binding_id, year, leg.payer_id_number, bill.patient_id_number, leg.captured_fen, held_back
            )
        if leg.captured_fen:
            postings += [
                Posting(leg.account_id, -leg.captured_fen, bill.patient_id_number, leg.binding_id),
                Posting(institution, leg.captured_fen, leg.payer_id_number, leg.binding_id),
            ]
        leg.payer_balance_after_fen = locked[leg.account_id].available_fen - (0 if release_holds else leg.captured_fen)
    if postings:
        entry = JournalEntry(
            _new_id(), now, Purpose.SETTLEMENT, tuple(postings), settlement_id=settlement.settlement_id,
            institution_code=bill.institution_code, request_id=settlement.request_id,
        )  # fmt: skip
        uow.journal.record(entry, locked)
    if release_holds:
        for leg in settlement.legs:
            leg.payer_balance_after_fen = locked[leg.account_id].available_fen


def _release_holds(uow: PaymentUnitOfWork, settlement: Settlement, state: SettlementState, now: datetime) -> None:
    locked = uow.accounts.lock(leg.account_id for leg in settlement.legs)
    year = year_of(settlement.create_time)
    for leg in settlement.legs:
        locked[leg.account_id].held_fen -= leg.amount_fen
        if leg.source is PaymentSource.MUTUAL_AID:
            uow.usage.add(
                leg.binding_id, year, leg.payer_id_number, settlement.bill.patient_id_number, 0, -leg.amount_fen
            )
    uow.accounts.save_amounts(list(locked.values()))
    settlement.state = state
    settlement.close_time = now
    uow.settlements.save(settlement)


def capture(uow: PaymentUnitOfWork, settlement_id: str, final_fen: int, now: datetime) -> Settlement:
    """Settles what was held, possibly less, never more; the rest of the holds is released."""
    settlement = get_settlement(uow, settlement_id, for_update=True)
    if settlement.state is SettlementState.AUTHORIZED and settlement.expire_time and now >= settlement.expire_time:
        _release_holds(uow, settlement, SettlementState.EXPIRED, now)
        raise DomainError(
            Reason.HOLD_EXPIRED, "the holds expired before the capture; authorize again", keep_effects=True
        )
    check_capturable(settlement.state, settlement.expire_time, now)
    authorised = settlement.bill.self_pay_fen
    final = final_fen or authorised
    if final > authorised:
        raise DomainError(
            Reason.AMOUNT_EXCEEDS_HOLD,
            f"capture of {final} fen exceeds the authorised {authorised} fen",
            field="amount_fen",
            metadata={"authorized_fen": str(authorised)},
        )
    legs = [Leg(leg.payer_id_number, leg.source, leg.amount_fen, leg.binding_id) for leg in settlement.legs]
    captured, cash = shrink(legs, settlement.cash_pay_fen, final)
    for leg, amount in zip(settlement.legs, captured, strict=True):
        leg.captured_fen = amount
    locked = uow.accounts.lock(leg.account_id for leg in settlement.legs)
    _post_capture(uow, settlement, locked, now, release_holds=True)
    uow.accounts.save_amounts(list(locked.values()))
    settlement.state = SettlementState.CAPTURED
    settlement.cash_pay_fen = cash
    settlement.captured_fen = sum(captured)
    settlement.capture_time = now
    uow.settlements.save(settlement)
    return settlement


def release(uow: PaymentUnitOfWork, settlement_id: str, now: datetime) -> Settlement:
    settlement = get_settlement(uow, settlement_id, for_update=True)
    check_releasable(settlement.state)
    _release_holds(uow, settlement, SettlementState.RELEASED, now)
    return settlement


def sweep_expired(uow: PaymentUnitOfWork, now: datetime, limit: int = 200) -> int:
    """Releases holds past their expiry; they are never captured."""
    released = 0
    for settlement_id in uow.settlements.expired_ids(now, limit):
        settlement = get_settlement(uow, settlement_id, for_update=True)
        if settlement.state is SettlementState.AUTHORIZED:
            _release_holds(uow, settlement, SettlementState.EXPIRED, now)
            released += 1
    return released


def refund(uow: PaymentUnitOfWork, settlement_id: str, now: datetime, request_id: str) -> Settlement:
    """撤销: every captured leg goes back to the account it came from."""
    settlement = get_settlement(uow, settlement_id, for_update=True)
    check_refundable(settlement.state)
    _move_back(uow, settlement, now, request_id, direction=+1)
    settlement.state = SettlementState.REFUNDED
    settlement.close_time = now
    uow.settlements.save(settlement)
    return settlement


def _move_back(uow: PaymentUnitOfWork, settlement: Settlement, now: datetime, request_id: str, direction: int) -> None:
    """direction +1 refunds the captured legs; -1 charges them again (a reversed undo)."""
    bill = settlement.bill
    institution = receivable(bill.institution_code)
    locked = uow.accounts.lock(leg.account_id for leg in settlement.legs)
    year = year_of(settlement.capture_time or now)
    postings: list[Posting] = []
    for leg in settlement.legs:
        amount = leg.captured_fen * direction
        if not amount:
            continue
        if direction < 0 and locked[leg.account_id].available_fen < leg.captured_fen:
            raise DomainError(
                Reason.INSUFFICIENT_FUNDS,
                f"{leg.payer_id_number} no longer has {leg.captured_fen} fen to pay the settlement again",
            )
        postings += [
            Posting(leg.account_id, amount, bill.patient_id_number, leg.binding_id),
            Posting(institution, -amount, leg.payer_id_number, leg.binding_id),
        ]
        leg.refunded_fen = leg.captured_fen if direction > 0 else 0
        if leg.source is PaymentSource.MUTUAL_AID:
            uow.usage.add(leg.binding_id, year, leg.payer_id_number, bill.patient_id_number, -amount, 0)
    purpose = Purpose.REFUND if direction > 0 else Purpose.REVERSAL
    entry = JournalEntry(
        _new_id(), now, purpose, tuple(postings), settlement_id=settlement.settlement_id,
        institution_code=bill.institution_code, request_id=request_id,
    )  # fmt: skip
    if postings:
        uow.journal.record(entry, locked)
    uow.accounts.save_amounts(list(locked.values()))
    for leg in settlement.legs:
        leg.payer_balance_after_fen = locked[leg.account_id].available_fen
    settlement.refunded_fen = sum(leg.refunded_fen for leg in settlement.legs)


# Reversal (冲正) --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reversal:
    original_found: bool
    original_method: str
    settlement: Settlement | None


def reverse(
    uow: PaymentUnitOfWork,
    original_request_id: str,
    refusal_payload: bytes,
    settlement_of: Callable[[str, bytes], str | None],
    now: datetime,
    request_id: str,
) -> Reversal:
    """Cancels whatever effect the original request had, whether or not it arrived.

    The original's key is marked reversed (or reserved, when it never arrived),
    so any later arrival or retry of it is refused with REQUEST_REVERSED.
    """
    from services.common.idempotency import Outcome

    refusal = Outcome(False, refusal_payload)
    stored = uow.idempotency.get(original_request_id, for_update=True)
    if stored is None:
        uow.idempotency.tombstone(original_request_id, request_id, refusal, now)
        return Reversal(False, "", None)
    if stored.reversed_by is not None or stored.outcome is None or not stored.outcome.succeeded:
        if stored.reversed_by is None:
            uow.idempotency.mark_reversed(original_request_id, request_id, refusal)
        return Reversal(True, stored.method, None)
    settlement_id = settlement_of(stored.method, stored.outcome.payload)
    settlement = None
    if settlement_id is not None:
        settlement = get_settlement(uow, settlement_id, for_update=True)
        method = stored.method.rsplit("/", 1)[-1]
        _undo(uow, settlement, method, now, request_id)
    else:
        raise DomainError(
            Reason.FIELD_INVALID,
            f"a {stored.method} request cannot be reversed; use the matching operation instead",
            field="original_request_id",
        )
    uow.idempotency.mark_reversed(original_request_id, request_id, refusal)
    return Reversal(True, stored.method, settlement)


def _undo(uow: PaymentUnitOfWork, settlement: Settlement, method: str, now: datetime, request_id: str) -> None:
    state = settlement.state
    if method in ("AuthorizeSettlement", "Settle", "CaptureSettlement"):
        if state is SettlementState.AUTHORIZED:
            _release_holds(uow, settlement, SettlementState.REVERSED, now)
        elif state is SettlementState.CAPTURED:
            _move_back(uow, settlement, now, request_id, direction=+1)
            settlement.state, settlement.close_time = SettlementState.REVERSED, now
            uow.settlements.save(settlement)
    elif method == "RefundSettlement" and state is SettlementState.REFUNDED:
        _move_back(uow, settlement, now, request_id, direction=-1)
        settlement.state, settlement.close_time = SettlementState.CAPTURED, None
        uow.settlements.save(settlement)
    elif method == "ReleaseSettlement" and state is SettlementState.RELEASED:
        raise DomainError(
            Reason.ALREADY_RELEASED, "released holds are not placed again; authorize the bill anew", keep_effects=False
        )
