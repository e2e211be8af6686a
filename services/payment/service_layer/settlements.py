"""Use cases on settlements: the payers a bill may draw on, the
ordered deduction (quote, authorize), and the lifecycle after it (capture, release, expiry,
refund, reversal), plus the legs a bill would take from other nodes. Each runs inside the
unit of work it is given, with every account it touches locked in sorted order; the caller
commits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.payment.service_layer import coordination
from services.payment.service_layer.accounts import ensure_clearing
from services.payment.service_layer.coordination import Prepared, RemoteCapacity
from services.payment.service_layer.ids import new_id
from services.payment.service_layer.suspensions import check_not_suspended
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.deduction import (
    Capacity,
    Leg,
    PaymentSource,
    ceilings,
    least,
    per_use_budget,
    shrink,
    split_bill,
    together_at_most,
)
from shared.errors import DomainError, Reason
from shared.ledger import (
    Account,
    AccountKind,
    JournalEntry,
    Posting,
    Purpose,
    personal_account,
    receivable,
    wallet,
    year_of,
)
from shared.payers import EarmarkedShare, PayerGrant, PayerMode, reserved_by_earmarks
from shared.regions import province_of
from shared.settlements import (
    Bill,
    PassedOver,
    Settlement,
    SettlementLeg,
    SettlementState,
    check_capturable,
    check_own_card,
    check_refundable,
    check_releasable,
    settlement_not_found,
)


@dataclass(frozen=True)
class Payers:
    """What the binding service's ResolvePayers answered for one bill."""

    grants: tuple[PayerGrant, ...] = ()
    mode: PayerMode = PayerMode.SEQUENTIAL
    policy_version: str = ""
    # Amounts the patient, as a grantor, has earmarked for relatives.
    earmarked: tuple[EarmarkedShare, ...] = ()
    # Relatives bound to the patient who may not pay now, with the binding service's reason.
    passed_over: tuple[PassedOver, ...] = ()


# Ordered deduction ----------------------------------------------------------


@dataclass
class Draw:
    """The locked accounts and usage a bill is split over."""

    own: list[Capacity]
    grants: list[Capacity]
    accounts: dict[str, Account]
    year: int
    remote: dict[str, RemoteCapacity]


def _draw(
    uow: PaymentUnitOfWork,
    bill: Bill,
    payers: Payers,
    now: datetime,
    remote: dict[str, RemoteCapacity] | None = None,
    local_provinces: frozenset[str] | None = None,
    check_holder: bool = False,
    holds_at: datetime | None = None,
) -> Draw:
    """Locks the local accounts a bill may draw on and says what each payer can give; with
    `check_holder`, first refuses a card holder whose networked settlement is suspended (read
    with the lock). Holds are judged lapsed at `holds_at` (by default `now`): the moment the
    accounts are read, which a quote for another time does not move.

    Grants on another node's accounts take the capacity that node reported
    (`remote`, by binding id); without it they are left out.
    """
    patient = bill.patient_id_number
    remote = remote or {}

    def local(grant: PayerGrant) -> bool:
        return local_provinces is None or province_of(grant.grantor_admdvs) in local_provinces

    grants = [g for g in payers.grants if g.grantor_id_number != patient and (local(g) or g.binding_id in remote)]
    wanted = [wallet(patient), *(personal_account(g.grantor_id_number) for g in grants if local(g))]
    if bill.use_own_account:
        wanted.append(personal_account(patient))
    if check_holder:
        locked, suspended, lapsed = uow.accounts.lock_with_holder(wanted, bill.credential_holder, holds_at or now)
        check_not_suspended(uow, bill.credential_holder, suspended)
        if lapsed:
            raise HoldsLapsed(
                Reason.CONCURRENT_CHANGE,
                "holds past their expiry were still taken; retry with the same request_id",
                account_ids=lapsed,
            )
    else:
        locked = uow.accounts.lock(wanted)
    year = year_of(now)
    mine = locked.get(personal_account(patient)) if bill.use_own_account else None
    earmarking = mine is not None and bool(payers.earmarked)
    usage = uow.usage.of_grantors([g.grantor_id_number for g in grants] + ([patient] if earmarking else []), year)
    own: list[Capacity] = []
    if mine is not None:
        reserved = reserved_by_earmarks(payers.earmarked, usage.get(patient, {})) if earmarking else 0
        own.append(
            Capacity(
                patient, PaymentSource.OWN_ACCOUNT, max(0, mine.available_fen - reserved),
                policy_version=payers.policy_version,
            )
        )  # fmt: skip
    purse = locked.get(wallet(patient))
    if purse is not None:
        own.append(Capacity(patient, PaymentSource.WALLET, purse.available_fen, policy_version=payers.policy_version))
    capacities = []
    for grant in grants:
        if not local(grant):
            far = remote[grant.binding_id]
            capacities.append(
                Capacity(grant.grantor_id_number, PaymentSource.MUTUAL_AID, far.limit_fen, grant.binding_id,
                         grant.policy_version, grant.per_use_limit_fen)
            )  # fmt: skip
            continue
        account = locked.get(personal_account(grant.grantor_id_number))
        if account is None:
            continue  # no personal account on this node
        capacities.append(
            Capacity(
                grant.grantor_id_number,
                PaymentSource.MUTUAL_AID,
                grant_limit(grant, account, usage.get(grant.grantor_id_number, {})),
                grant.binding_id,
                grant.policy_version,
                grant.per_use_limit_fen,
            )
        )
    drawn = {g.binding_id for g in grants}
    return Draw(own, capacities, locked, year, {b: r for b, r in remote.items() if b in drawn})


def shared_per_use(bill: Bill, payers: Payers) -> int | None:
    """What the grants together may pay for the bill in even shares: the strictest per-use limit
    of all the patient's grantors, whether or not this node drew on them (None: none sets one)."""
    return per_use_budget(g.per_use_limit_fen for g in payers.grants if g.grantor_id_number != bill.patient_id_number)


def grant_limit(grant: PayerGrant, account: Account, usage: dict[str, tuple[int, int]]) -> int:
    """The least of: available balance (less any minimum the region makes the grantor keep),
    the binding's yearly cap left, the regional annual quota left, the per-use limit. `usage` is
    the year's shared amounts and every hold still open, whatever year it was placed in: it will
    be booked to the year it is captured in."""
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
    split = split_bill(bill.self_pay_fen, draw.own, draw.grants, payers.mode, shared_per_use(bill, payers))
    if bill.refuse_cash_part and split.cash_fen:
        # Why relatives bound to the patient paid nothing (e.g. CONTACT_CHANGE_OVERDUE), so the
        # counter can tell the patient what to do; the reasons only, naming nobody.
        why = sorted({passed.reason for passed in payers.passed_over})
        raise DomainError(
            Reason.INSUFFICIENT_FUNDS,
            f"the accounts cover {bill.self_pay_fen - split.cash_fen} of {bill.self_pay_fen} fen and the caller "
            "refused a cash part" + (f"; relatives passed over: {', '.join(why)}" if why else ""),
            metadata={"shortfall_fen": str(split.cash_fen)} | ({"passed_over": ",".join(why)} if why else {}),
        )
    legs = []
    for number, leg in enumerate(split.legs, start=1):
        far = draw.remote.get(leg.binding_id) if leg.source is PaymentSource.MUTUAL_AID else None
        if far is not None:
            province = province_of(far.admdvs)
            target, admdvs, available = f"REMOTE:{province}:{leg.payer_id_number}", far.admdvs, far.available_fen
        else:
            province = ""
            own_kind = leg.source is PaymentSource.WALLET
            target = wallet(leg.payer_id_number) if own_kind else personal_account(leg.payer_id_number)
            admdvs, available = draw.accounts[target].admdvs, draw.accounts[target].available_fen
        legs.append(
            SettlementLeg(
                leg_no=number,
                payer_id_number=leg.payer_id_number,
                account_id=target,
                source=leg.source,
                amount_fen=leg.amount_fen,
                binding_id=leg.binding_id,
                policy_version=leg.policy_version,
                payer_admdvs=admdvs,
                payer_balance_after_fen=available - leg.amount_fen,
                province=province,
            )
        )
    return Settlement(
        settlement_id=new_id() if request_id else "",
        request_id=request_id,
        bill=bill,
        state=SettlementState.AUTHORIZED,
        legs=legs,
        cash_pay_fen=split.cash_fen,
        policy_version=payers.policy_version,
        create_time=now,
        expire_time=expire_time,
        passed_over=payers.passed_over,
        payer_mode=payers.mode,
    )


def check_bill_not_settled(uow: PaymentUnitOfWork, bill: Bill) -> None:
    """One bill of an institution (its medins_setl_id) is settled once: a second settlement while
    the first holds or took money is refused, naming the first. (A unique index backs this up
    against two at once.)"""
    if not bill.institution_settlement_id:
        return
    first = uow.settlements.live_for_bill(bill.institution_code, bill.institution_settlement_id)
    if first is not None:
        raise DomainError(
            Reason.DUPLICATE_BILL,
            f"bill {bill.institution_settlement_id[:64]} of {bill.institution_code} is settled already "
            f"({first}); undo or release it first",
            field="bill.institution_settlement_id",
            metadata={"settlement_id": first},
        )


def quote(
    uow: PaymentUnitOfWork,
    bill: Bill,
    payers: Payers,
    now: datetime,
    remote: dict[str, RemoteCapacity] | None = None,
    local_provinces: frozenset[str] | None = None,
    holds_at: datetime | None = None,
) -> Settlement:
    """预结算: the split the bill would take at `now` (the quote's at_time), grantors on other
    nodes included (with what their nodes said they can give, `remote`); nothing is written or
    held. Holds count as they stand at `holds_at` (the service's clock): one that lapses before
    `now` is still held until it is released or captured."""
    check_own_card(bill.patient_id_number, bill.credential_holder)
    draw = _draw(uow, bill, payers, now, remote, local_provinces, check_holder=True, holds_at=holds_at)
    return _settlement_from_split(bill, payers, draw, "", now, None)


def authorize(
    uow: PaymentUnitOfWork,
    bill: Bill,
    payers: Payers,
    expire_time: datetime,
    now: datetime,
    request_id: str,
    capture: bool = False,
    prepared: Prepared | None = None,
) -> Settlement:
    """Holds every leg at once (all or none); with capture, settles in the same transaction.

    With `prepared`, legs on other nodes' accounts were held there already (up to
    the prepared amounts); the settlement and the saga record that will commit or
    abort them are written together here.
    """
    check_bill_not_settled(uow, bill)
    remote = prepared.capacities if prepared else None
    local_provinces = prepared.local_provinces if prepared else None
    draw = _draw(uow, bill, payers, now, remote, local_provinces, check_holder=True)
    settlement = _settlement_from_split(bill, payers, draw, request_id, now, expire_time)
    if capture:
        for leg in settlement.legs:
            leg.captured_fen = leg.amount_fen
        settlement.state = SettlementState.CAPTURED
        settlement.capture_time = now
        settlement.captured_fen = sum(leg.captured_fen for leg in settlement.legs)
    if prepared is not None:
        if prepared.captured:
            _check_takes_what_was_captured(settlement, prepared)
        settlement.settlement_id = prepared.transaction_id
        coordination.record(uow, settlement, prepared, now)  # the saga must still be preparing
    uow.defer_writes()  # everything read; what follows only writes, to the commit
    if capture:
        _post_capture(uow, settlement, draw.accounts, now, release_holds=False)
    else:
        for leg in _local(settlement):
            draw.accounts[leg.account_id].held_fen += leg.amount_fen
            if leg.source is PaymentSource.MUTUAL_AID:
                uow.usage.add(leg.binding_id, draw.year, leg.payer_id_number, bill.patient_id_number, 0, leg.amount_fen)
    uow.accounts.save_amounts([draw.accounts[a] for a in sorted({leg.account_id for leg in _local(settlement)})])
    uow.settlements.add(settlement)
    return settlement


class HoldsLapsed(DomainError):
    """Accounts a bill would draw on still hold money for settlements past their expiry, which the
    sweeper has not released yet. Transient, so nothing is stored: they are released (see
    services.payment.service_layer.lapsed_holds) and the bill drawn again, so a lapsed hold never
    takes money the bill could have had."""

    def __init__(self, reason: Reason, message: str, account_ids: list[str]) -> None:
        super().__init__(reason, message)
        self.account_ids = account_ids


class PlannedTooLittle(DomainError):
    """The other nodes were asked to hold too little: this node's payers gave less than they
    seemed to when the ceilings were set (a concurrent bill took it). Transient, so nothing is
    stored; the bill is planned and held again."""


def check_planned_enough(settlement: Settlement, prepared: Prepared, payers: Payers) -> None:
    """Raises PlannedTooLittle when the patient would pay cash because this node's payers give
    less than they could when the other nodes were asked to hold (`prepared.local_fen`): asked
    again with what they give now, the other nodes' grantors may cover the cash. Not when the
    relatives paid all that one use may take: every grantor's region sets a per-use limit and
    they paid the loosest, so no split could cover more."""
    local = sum(leg.amount_fen for leg in _local(settlement))
    limits = [g.per_use_limit_fen for g in payers.grants if g.grantor_id_number != settlement.bill.patient_id_number]
    aid = sum(leg.amount_fen for leg in settlement.legs if leg.source is PaymentSource.MUTUAL_AID)
    if limits and min(limits) > 0 and aid >= max(limits):
        return
    if settlement.cash_pay_fen > 0 and local < prepared.local_fen:
        raise PlannedTooLittle(
            Reason.CONCURRENT_CHANGE,
            "this node's payers gave less than when the other nodes were asked; retry with the same request_id",
        )


def _check_takes_what_was_captured(settlement: Settlement, prepared: Prepared) -> None:
    """Raises PlannedTooLittle unless the settlement's remote legs take just what the other node
    captured at once: this node's payers gave more than when it was asked (a refund came in), so
    the order now wants less of the later grantors. What was captured goes back, and the bill is
    planned again."""
    taken = {leg.binding_id: leg.captured_fen for leg in settlement.legs if leg.is_remote}
    captured = {binding_id: c.limit_fen for binding_id, c in prepared.capacities.items() if c.limit_fen}
    if taken != captured or settlement.state is not SettlementState.CAPTURED:
        raise PlannedTooLittle(
            Reason.CONCURRENT_CHANGE,
            "this node's payers gave more than when the other node captured; retry with the same request_id",
        )


def _local(settlement: Settlement) -> list[SettlementLeg]:
    return [leg for leg in settlement.legs if not leg.is_remote]


# The lifecycle -------------------------------------------------------------


def get_settlement(uow: PaymentUnitOfWork, settlement_id: str, for_update: bool = False) -> Settlement:
    settlement = uow.settlements.get(settlement_id, for_update=for_update)
    if settlement is None:
        raise settlement_not_found(settlement_id)
    return settlement


def _post_capture(
    uow: PaymentUnitOfWork, settlement: Settlement, locked: dict[str, Account], now: datetime, release_holds: bool
) -> None:
    bill = settlement.bill
    institution = receivable(bill.institution_code)
    uow.accounts.ensure(
        Account(institution, AccountKind.INSTITUTION_RECEIVABLE, bill.institution_code, bill.institution_admdvs), now
    )
    year, hold_year = year_of(now), year_of(settlement.create_time)
    postings: list[Posting] = []
    for leg in settlement.legs:
        if leg.is_remote:
            # The payer's node moves the money; here the institution is owed it by that province.
            if leg.captured_fen:
                postings += _via_clearing(uow, bill, leg, leg.captured_fen, now, payer_side=False)
            continue
        if release_holds:
            locked[leg.account_id].held_fen -= leg.amount_fen
        if leg.source is PaymentSource.MUTUAL_AID:
            _count_usage(uow, leg, bill.patient_id_number, year, leg.captured_fen, hold_year if release_holds else None)
        if leg.captured_fen:
            postings += _via_clearing(uow, bill, leg, leg.captured_fen, now, payer_side=True)
        leg.payer_balance_after_fen = locked[leg.account_id].available_fen - (0 if release_holds else leg.captured_fen)
    if postings:
        entry = JournalEntry(
            new_id(), now, Purpose.SETTLEMENT, tuple(postings), settlement_id=settlement.settlement_id,
            institution_code=bill.institution_code, request_id=settlement.request_id,
        )  # fmt: skip
        uow.journal.record(entry, locked)
    if release_holds:
        for leg in _local(settlement):
            leg.payer_balance_after_fen = locked[leg.account_id].available_fen


def _count_usage(
    uow: PaymentUnitOfWork, leg: SettlementLeg, beneficiary: str, year: int, captured: int, hold_year: int | None
) -> None:
    """Counts a capture in its own year, and takes the hold back from the year it was placed in.
    An open hold is kept in its placing year's row but reserves every later year's cap and quota
    too (see `UsageRepository.of_grantors`), so a deposit held over New Year is counted once in
    the year it is captured in, and never twice."""
    if hold_year is None or hold_year == year:
        uow.usage.add(
            leg.binding_id, year, leg.payer_id_number, beneficiary, captured, -leg.amount_fen if hold_year else 0
        )
        return
    uow.usage.add(leg.binding_id, hold_year, leg.payer_id_number, beneficiary, 0, -leg.amount_fen)
    uow.usage.add(leg.binding_id, year, leg.payer_id_number, beneficiary, captured, 0)


def _via_clearing(
    uow: PaymentUnitOfWork, bill: Bill, leg: SettlementLeg, amount: int, now: datetime, payer_side: bool
) -> list[Posting]:
    """Postings that pay the institution `amount` from the leg's payer (a negative amount gives it back).

    Money that crosses a province line passes through both provinces' clearing
    accounts, so each province's debt to another can be read off the journal (清算).
    With payer_side False the payer's own node books the payer's half.
    """
    institution = receivable(bill.institution_code)
    institution_province = province_of(bill.institution_admdvs)
    payer_province = province_of(leg.payer_admdvs) if leg.payer_admdvs else institution_province
    postings = []
    if payer_side:
        postings.append(Posting(leg.account_id, -amount, bill.patient_id_number, leg.binding_id))
    if payer_province != institution_province:
        owed_to_payer_side = ensure_clearing(uow, institution_province, payer_province, now)
        if payer_side:
            payer_owes = ensure_clearing(uow, payer_province, institution_province, now)
            postings.append(Posting(payer_owes, amount, leg.payer_id_number))
        postings.append(Posting(owed_to_payer_side, -amount, leg.payer_id_number, leg.binding_id))
    postings.append(Posting(institution, amount, leg.payer_id_number, leg.binding_id))
    return postings


def _release_holds(uow: PaymentUnitOfWork, settlement: Settlement, state: SettlementState, now: datetime) -> None:
    locked = uow.accounts.lock(leg.account_id for leg in _local(settlement))
    year = year_of(settlement.create_time)
    for leg in _local(settlement):
        locked[leg.account_id].held_fen -= leg.amount_fen
        if leg.source is PaymentSource.MUTUAL_AID:
            uow.usage.add(
                leg.binding_id, year, leg.payer_id_number, settlement.bill.patient_id_number, 0, -leg.amount_fen
            )
    uow.accounts.save_amounts(list(locked.values()))
    settlement.state = state
    settlement.close_time = now
    uow.settlements.save(settlement)
    coordination.decide(uow, settlement, coordination.ABORTING, now)


def capture(uow: PaymentUnitOfWork, settlement_id: str, final_fen: int, now: datetime) -> Settlement:
    """Settles what was held, possibly less, never more; the rest of the holds is released."""
    settlement = get_settlement(uow, settlement_id, for_update=True)
    if lapsed(settlement, now):
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
    captured, cash = shrink(legs, settlement.cash_pay_fen, final, settlement.payer_mode)
    for leg, amount in zip(settlement.legs, captured, strict=True):
        leg.captured_fen = amount
    locked = uow.accounts.lock(leg.account_id for leg in _local(settlement))
    _post_capture(uow, settlement, locked, now, release_holds=True)
    uow.accounts.save_amounts(list(locked.values()))
    settlement.state = SettlementState.CAPTURED
    settlement.cash_pay_fen = cash
    settlement.captured_fen = sum(captured)
    settlement.capture_time = now
    uow.settlements.save(settlement)
    coordination.decide(uow, settlement, coordination.COMMITTING, now)
    return settlement


def release(uow: PaymentUnitOfWork, settlement_id: str, now: datetime) -> Settlement:
    settlement = get_settlement(uow, settlement_id, for_update=True)
    if lapsed(settlement, now):
        # The holds lapsed at their expiry, whether or not anything released them since.
        _release_holds(uow, settlement, SettlementState.EXPIRED, now)
        raise DomainError(Reason.ALREADY_RELEASED, "the settlement's holds expired", keep_effects=True)
    check_releasable(settlement.state)
    _release_holds(uow, settlement, SettlementState.RELEASED, now)
    return settlement


def expired_settlements(uow: PaymentUnitOfWork, now: datetime, limit: int = 200) -> list[str]:
    return uow.settlements.expired_ids(now, limit)


def lapsed(settlement: Settlement, now: datetime) -> bool:
    """Whether an authorised settlement's holds are past their expiry (released or not yet)."""
    expire = settlement.expire_time
    return settlement.state is SettlementState.AUTHORIZED and expire is not None and expire <= now


def expired_holding(uow: PaymentUnitOfWork, account_ids: list[str], now: datetime, limit: int = 50) -> list[str]:
    """Settlements whose holds on these accounts lapsed and the sweeper has not released yet."""
    return uow.settlements.expired_ids_on(account_ids, now, limit) if account_ids else []


def expire_if_due(uow: PaymentUnitOfWork, settlement_id: str, now: datetime) -> bool:
    """Releases one settlement's holds if they are past their expiry; they are never captured then.

    Call it in a transaction of its own per settlement: like capture and release,
    it locks the settlement row first and the accounts after, so it never holds
    one settlement's account locks while waiting for another's row (a deadlock).
    """
    settlement = get_settlement(uow, settlement_id, for_update=True)
    if not lapsed(settlement, now):
        return False
    _release_holds(uow, settlement, SettlementState.EXPIRED, now)
    return True


def refund(uow: PaymentUnitOfWork, settlement_id: str, now: datetime, request_id: str) -> Settlement:
    """撤销: every captured leg goes back to the account it came from."""
    settlement = get_settlement(uow, settlement_id, for_update=True)
    check_refundable(settlement.state)
    _move_back(uow, settlement, now, request_id, direction=+1)
    settlement.state = SettlementState.REFUNDED
    settlement.close_time = now
    uow.settlements.save(settlement)
    coordination.decide(uow, settlement, coordination.REFUNDING, now)
    return settlement


def _move_back(
    uow: PaymentUnitOfWork,
    settlement: Settlement,
    now: datetime,
    request_id: str,
    direction: int,
    purpose: Purpose = Purpose.REFUND,
    payers: Payers | DomainError | None = None,
) -> None:
    """direction +1 refunds the captured legs; -1 charges them again (a reversed undo), within
    what each grantor may give now (`payers`: who may pay the bill now, see
    `_check_grantors_may_pay_again`)."""
    bill = settlement.bill
    if direction < 0 and any(leg.is_remote for leg in settlement.legs):
        raise DomainError(
            Reason.FIELD_INVALID,
            "an undo of a cross-province settlement cannot be reversed; settle the bill again",
            field="original_request_id",
        )
    locked = uow.accounts.lock(leg.account_id for leg in _local(settlement))
    year = year_of(settlement.capture_time or now)
    if direction < 0:
        _check_grantors_may_pay_again(uow, settlement, locked, year, payers)
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
        postings += _via_clearing(uow, bill, leg, -amount, now, payer_side=not leg.is_remote)
        leg.refunded_fen = leg.captured_fen if direction > 0 else 0
        if leg.source is PaymentSource.MUTUAL_AID and not leg.is_remote:
            uow.usage.add(leg.binding_id, year, leg.payer_id_number, bill.patient_id_number, -amount, 0)
    entry = JournalEntry(
        new_id(), now, purpose, tuple(postings), settlement_id=settlement.settlement_id,
        institution_code=bill.institution_code, request_id=request_id,
    )  # fmt: skip
    if postings:
        uow.journal.record(entry, locked)
    uow.accounts.save_amounts(list(locked.values()))
    for leg in _local(settlement):
        leg.payer_balance_after_fen = locked[leg.account_id].available_fen
    settlement.refunded_fen = sum(leg.refunded_fen for leg in settlement.legs)


def _aid_legs(settlement: Settlement) -> list[SettlementLeg]:
    """The legs relatives on this node paid of a settlement (what charging it again draws on)."""
    return [leg for leg in _local(settlement) if leg.source is PaymentSource.MUTUAL_AID and leg.captured_fen]


def _check_grantors_may_pay_again(
    uow: PaymentUnitOfWork,
    settlement: Settlement,
    locked: dict[str, Account],
    year: int,
    payers: Payers | DomainError | None,
) -> None:
    """Charging an undone bill again (a reversed undo) is refused unless every grantor may still
    give his leg, as for a new bill: a grantor the binding service no longer lets pay for the
    patient is not charged, and none pays more than the least of his share cap left, the regional
    annual quota left, the per-use limit and his balance less what the region makes him keep. The
    leg counts as shared in `year`, the year the bill was captured in, so it must fit what is left
    of that year's cap and quota after whatever was shared or held since the undo."""
    aid = _aid_legs(settlement)
    if not aid:
        return
    if payers is None:
        # The original was not this undo when the grants were asked for; it changed since.
        raise DomainError(
            Reason.CONCURRENT_CHANGE, "the undo changed while its reversal was prepared; retry with the same request_id"
        )
    if isinstance(payers, DomainError):
        raise payers
    grants = {grant.binding_id: grant for grant in payers.grants}
    passed_over = {passed.binding_id: passed.reason for passed in payers.passed_over}
    usage = uow.usage.of_grantors(sorted({leg.payer_id_number for leg in aid}), year)
    for leg in aid:
        grant = grants.get(leg.binding_id)
        if grant is None or grant.grantor_id_number != leg.payer_id_number:
            why = passed_over.get(leg.binding_id, "")
            raise DomainError(
                Reason._value2member_map_.get(why, Reason.BINDING_NOT_ACTIVE),  # type: ignore[arg-type]
                f"binding {leg.binding_id} no longer lets its grantor pay for the patient; settle the bill again",
                metadata={"binding_id": leg.binding_id},
            )
        limit = grant_limit(grant, locked[leg.account_id], usage.get(leg.payer_id_number, {}))
        if leg.captured_fen > limit:
            raise DomainError(
                Reason.INSUFFICIENT_FUNDS,
                f"the grantor of binding {leg.binding_id} can give {max(0, limit)} fen more in {year} (share cap, "
                f"regional quota, per-use limit, balance), not {leg.captured_fen}; settle the bill again",
                metadata={"limit_fen": str(max(0, limit))},
            )


# Reversal (冲正) --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reversal:
    original_found: bool
    original_method: str
    settlement: Settlement | None


def check_reversal(original_request_id: str, request_id: str) -> None:
    """A reversal (冲正) names another request than itself."""
    if original_request_id == request_id:
        raise DomainError(Reason.FIELD_INVALID, "a reversal cannot reverse itself", field="original_request_id")


def reversed_refusal(original_request_id: str, request_id: str) -> DomainError:
    """The refusal a reversed request gets from then on, whenever it arrives or is retried."""
    return DomainError(Reason.REQUEST_REVERSED, f"request {original_request_id} was reversed (冲正) by {request_id}")


def reverse(
    uow: PaymentUnitOfWork,
    principal: str,
    original_request_id: str,
    encode_refusal: Callable[[DomainError], bytes],
    settlement_of: Callable[[str, bytes], str | None],
    now: datetime,
    request_id: str,
    payers: Payers | DomainError | None = None,
) -> Reversal:
    """Cancels whatever effect the original request had, whether or not it arrived.

    The original's key is marked reversed (or reserved, when it never arrived), storing
    `reversed_refusal` as `encode_refusal` writes a refusal, so any later arrival or retry of it
    is refused with REQUEST_REVERSED. Only the caller's own requests are found: request ids are
    kept per principal. An undo (撤销) is reversed by charging its bill again, within what the
    grantors may give now: `payers` are who may pay that bill now (see `undone_bill`).
    """
    from services.common.idempotency import REVERSED_BEFORE_ARRIVAL, Outcome

    refusal = Outcome(False, encode_refusal(reversed_refusal(original_request_id, request_id)))
    stored = uow.idempotency.get(principal, original_request_id, for_update=True)
    if stored is None:
        uow.idempotency.tombstone(principal, original_request_id, request_id, refusal, now)
        return Reversal(False, "", None)
    if stored.method == REVERSED_BEFORE_ARRIVAL:
        return Reversal(False, "", None)  # reversed before it arrived, and repeated: nothing changes
    if stored.reversed_by is not None:
        # Repeated: nothing changes, and the answer names the settlement the first reversal named
        # (the original's own answer was replaced by the refusal its retries get).
        first = uow.idempotency.get(principal, stored.reversed_by)
        answered = first is not None and first.outcome is not None and first.outcome.succeeded
        settlement_id = settlement_of(first.method, first.outcome.payload) if answered else None  # type: ignore[union-attr]
        return Reversal(True, stored.method, uow.settlements.get(settlement_id) if settlement_id else None)
    if stored.outcome is None or not stored.outcome.succeeded:
        uow.idempotency.mark_reversed(principal, original_request_id, request_id, refusal)
        return Reversal(True, stored.method, None)
    method = stored.method.rsplit("/", 1)[-1]
    # A reversal's answer names a settlement too, but a reversal itself is not reversed.
    settlement_id = None if method == "ReverseRequest" else settlement_of(stored.method, stored.outcome.payload)
    if settlement_id is None:
        raise DomainError(
            Reason.FIELD_INVALID,
            f"a {stored.method} request cannot be reversed; use the matching operation instead",
            field="original_request_id",
        )
    settlement = get_settlement(uow, settlement_id, for_update=True)
    if method == "RefundSettlement" and settlement.state is SettlementState.REFUNDED:
        _check_made_by_a_live_request(uow, principal, settlement)
    _undo(uow, settlement, method, now, request_id, payers)
    uow.idempotency.mark_reversed(principal, original_request_id, request_id, refusal)
    return Reversal(True, stored.method, settlement)


def _check_made_by_a_live_request(uow: PaymentUnitOfWork, principal: str, settlement: Settlement) -> None:
    """Charging an undone bill again is refused when the request that made its settlement
    (Settle or AuthorizeSettlement) was reversed since: that reversal cancelled the bill's payment,
    and charging it again would bring it back, so the bill would be paid or not depending on the
    order the two reversals came in."""
    made_by = uow.idempotency.get(principal, settlement.request_id) if settlement.request_id else None
    if made_by is not None and made_by.reversed_by is not None:
        raise DomainError(
            Reason.REQUEST_REVERSED,
            f"settlement {settlement.settlement_id} was made by request {settlement.request_id[:64]}, which was "
            f"reversed (冲正) by {made_by.reversed_by[:64]}; its undo stands, settle the bill again if it is due",
            metadata={"settlement_id": settlement.settlement_id},
        )


def undone_bill(
    uow: PaymentUnitOfWork, principal: str, original_request_id: str, settlement_of: Callable[[str, bytes], str | None]
) -> Bill | None:
    """The bill a reversal of `original_request_id` would charge again: that of the settlement the
    original undid (撤销), when the original is an undo not yet reversed and its settlement is still
    undone; None for any other original. Read before the reversal's transaction, so who may pay
    the bill is asked of the binding service with no lock held."""
    stored = uow.idempotency.get(principal, original_request_id)
    if stored is None or stored.reversed_by is not None or stored.outcome is None or not stored.outcome.succeeded:
        return None
    if stored.method.rsplit("/", 1)[-1] != "RefundSettlement":
        return None
    settlement_id = settlement_of(stored.method, stored.outcome.payload)
    settlement = uow.settlements.get(settlement_id) if settlement_id else None
    if settlement is None or settlement.state is not SettlementState.REFUNDED:
        return None
    # A bill only the patient's own accounts and cash paid needs nobody's leave to be charged again.
    return settlement.bill if _aid_legs(settlement) else None


def _undo(
    uow: PaymentUnitOfWork,
    settlement: Settlement,
    method: str,
    now: datetime,
    request_id: str,
    payers: Payers | DomainError | None,
) -> None:
    state = settlement.state
    if method in ("AuthorizeSettlement", "Settle", "CaptureSettlement"):
        if state is SettlementState.AUTHORIZED:
            # Holds past their expiry gave the money back then; the reversal finds them expired.
            gone = SettlementState.EXPIRED if lapsed(settlement, now) else SettlementState.REVERSED
            _release_holds(uow, settlement, gone, now)
        elif state is SettlementState.CAPTURED:
            _move_back(uow, settlement, now, request_id, direction=+1, purpose=Purpose.REVERSAL)
            settlement.state, settlement.close_time = SettlementState.REVERSED, now
            uow.settlements.save(settlement)
            coordination.decide(uow, settlement, coordination.REFUNDING, now)
    elif method == "RefundSettlement" and state is SettlementState.REFUNDED:
        # The undone bill may have been settled anew since; charged again, it would be paid twice.
        check_bill_not_settled(uow, settlement.bill)
        _move_back(uow, settlement, now, request_id, direction=-1, purpose=Purpose.REVERSAL, payers=payers)
        settlement.state, settlement.close_time = SettlementState.CAPTURED, None
        uow.settlements.save(settlement)
    elif method == "ReleaseSettlement" and state is SettlementState.RELEASED:
        raise DomainError(
            Reason.ALREADY_RELEASED, "released holds are not placed again; authorize the bill anew", keep_effects=False
        )


def remote_ceilings(
    uow: PaymentUnitOfWork,
    bill: Bill,
    payers: Payers,
    remote: list[PayerGrant],
    local_provinces: frozenset[str],
    now: datetime,
    known: dict[str, RemoteCapacity] | None = None,
) -> tuple[dict[str, int], int, int]:
    """What to ask each grantor on another node to hold for this bill, by binding id, with this
    node's payers as they are now (nothing is written): the most the bill could take from it (see
    `shared.deduction.ceilings`), or, with what each can give `known`, exactly its part. Also what
    this node's payers could give, which those parts count on, and the most the bill could take
    from those grantors together (`shared.deduction.together_at_most`)."""
    unbounded = {
        g.binding_id: RemoteCapacity(g.binding_id, g.grantor_id_number, bill.self_pay_fen, 0, g.grantor_admdvs)
        for g in remote
    }
    draw = _draw(uow, bill, payers, now, unbounded if known is None else known, local_provinces)
    local_fen = sum(c.limit_fen for c in [*draw.own, *draw.grants] if c.binding_id not in draw.remote)
    shared = shared_per_use(bill, payers)
    if known is None:
        far = draw.remote.keys()
        return (
            ceilings(bill.self_pay_fen, draw.own, draw.grants, payers.mode, far, shared),
            local_fen,
            together_at_most(bill.self_pay_fen, draw.own, draw.grants, payers.mode, far, shared),
        )
    split = split_bill(bill.self_pay_fen, draw.own, draw.grants, payers.mode, shared)
    parts = {leg.binding_id: leg.amount_fen for leg in split.legs if leg.binding_id in draw.remote}
    return parts, local_fen, sum(parts.values())
