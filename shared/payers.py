"""Which grantors may pay a beneficiary's bill, in which order, within which limits
(relationship, cap, contact changes, earmarked amounts). The payment service draws on the result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.bindings import Binding, BindingState
from shared.errors import DomainError, Reason
from shared.persons import InsuredPerson
from shared.policy import RegionPolicy, UseCategory
from shared.relationships import Relationship

# How far two services' clocks may differ. A binding made up to this long after the moment a
# payment node asks about counts as made: else a node whose clock runs behind the binding
# service's would pass over a binding made a moment ago, and its patient pay in cash. (A caller's
# time of an event may lie as far ahead of the binding service's clock.)
CLOCK_ALLOWANCE = timedelta(minutes=5)


class PayerMode(StrEnum):
    SEQUENTIAL = "SEQUENTIAL"
    PROPORTIONAL = "PROPORTIONAL"  # seed 000: split costs over several accounts


@dataclass(frozen=True)
class PayerOrder:
    beneficiary_id_number: str
    binding_ids: tuple[str, ...]
    mode: PayerMode = PayerMode.SEQUENTIAL


@dataclass(frozen=True)
class PayerGrant:
    binding_id: str
    grantor_id_number: str
    grantor_admdvs: str
    relationship: Relationship
    priority: int
    share_all: bool
    yearly_cap_fen: int
    annual_share_ratio_percent: int
    per_use_limit_fen: int
    earmark_shared_amount: bool
    min_grantor_balance_fen: int
    policy_version: str


@dataclass(frozen=True)
class ExcludedPayer:
    binding_id: str
    grantor_id_number: str
    reason: Reason


@dataclass(frozen=True)
class PayerResolution:
    grants: tuple[PayerGrant, ...]
    excluded: tuple[ExcludedPayer, ...]
    mode: PayerMode
    policy_version: str
    beneficiary_admdvs: str
    earmarked: tuple[EarmarkedShare, ...] = ()
    # Until when the answer holds by the clock alone (see resolution_valid_until); None: no end known.
    valid_until: datetime | None = None


@dataclass(frozen=True)
class EarmarkedShare:
    """A yearly amount a grantor set for a relative where the region earmarks it:
    what is not yet shared of it this year is reserved, and the grantor may not spend it himself."""

    binding_id: str
    beneficiary_id_number: str
    yearly_cap_fen: int
    policy_version: str


def earmarked_shares(
    grantor_policy: RegionPolicy, bindings_as_grantor: Sequence[Binding]
) -> tuple[EarmarkedShare, ...]:
    """The grantor's active bindings with a set amount, where his region's policy earmarks it.

    A binding that shares everything (share_all) sets no amount, so it reserves nothing.
    """
    if not grantor_policy.earmark_shared_amount:
        return ()
    return tuple(
        EarmarkedShare(b.binding_id, b.beneficiary_id_number, b.yearly_cap_fen, grantor_policy.version)
        for b in sorted(bindings_as_grantor, key=lambda b: b.binding_id)
        if b.state is BindingState.ACTIVE and not b.share_all and b.yearly_cap_fen > 0
    )


def reserved_by_earmarks(earmarked: Sequence[EarmarkedShare], usage: dict[str, tuple[int, int]]) -> int:
    """What the earmarked shares still reserve this year: each set amount less what was shared
    or is held on it (usage: binding id → (shared, held))."""
    reserved = 0
    for share in earmarked:
        shared, held = usage.get(share.binding_id, (0, 0))
        reserved += max(0, share.yearly_cap_fen - shared - held)
    return reserved


def in_payer_order(bindings: Sequence[Binding], order: PayerOrder | None) -> list[Binding]:
    """The beneficiary's chosen order first; the rest follow in binding order."""
    by_time = sorted(bindings, key=lambda b: (b.sequence, b.create_time, b.binding_id))
    if order is None:
        return by_time
    rank = {binding_id: i for i, binding_id in enumerate(order.binding_ids)}
    return sorted(by_time, key=lambda b: rank.get(b.binding_id, len(rank)))


def resolve_payers(
    beneficiary: InsuredPerson,
    candidates: Sequence[tuple[Binding, InsuredPerson]],
    order: PayerOrder | None,
    policy_of: Callable[[str], RegionPolicy],
    use: UseCategory,
    chronic_disease: bool,
    now: datetime,
) -> PayerResolution:
    """Grants usable for one bill; bindings that may not pay are listed with their reason.

    The beneficiary's region decides which uses are allowed; each grantor's
    region sets the limits on his or her account.
    """
    beneficiary_policy = policy_of(beneficiary.admdvs)
    if not beneficiary_policy.allows_use(use):
        raise DomainError(
            Reason.USE_NOT_ALLOWED,
            f"region {beneficiary.admdvs} does not allow mutual-aid payment for {use.value}",
            field="use_category",
            metadata={"policy_version": beneficiary_policy.version},
        )
    # A bill of the chronic-disease outpatient use (门诊慢特病) is one whether or not its flag is set.
    chronic_disease = chronic_disease or use is UseCategory.CHRONIC_DISEASE_OUTPATIENT
    grants: list[PayerGrant] = []
    excluded: list[ExcludedPayer] = []
    grantor_of = {binding.binding_id: grantor for binding, grantor in candidates}
    for binding in in_payer_order([binding for binding, _ in candidates], order):
        if not made_by(binding, now):
            continue  # asked about a time before the binding was made: it did not exist yet
        grantor = grantor_of[binding.binding_id]
        policy = policy_of(grantor.admdvs)
        reason = _exclusion(binding, grantor, beneficiary, policy, beneficiary_policy, use, now)
        if reason is not None:
            excluded.append(ExcludedPayer(binding.binding_id, binding.grantor_id_number, reason))
            continue
        grants.append(
            PayerGrant(
                binding_id=binding.binding_id,
                grantor_id_number=grantor.id_number,
                grantor_admdvs=grantor.admdvs,
                relationship=binding.relationship,
                priority=len(grants) + 1,
                share_all=binding.share_all,
                yearly_cap_fen=0 if binding.share_all else binding.yearly_cap_fen,
                annual_share_ratio_percent=policy.annual_share_ratio_percent,
                per_use_limit_fen=policy.per_use_limit(chronic_disease),
                earmark_shared_amount=policy.earmark_shared_amount,
                min_grantor_balance_fen=policy.min_grantor_balance_fen,
                policy_version=policy.version,
            )
        )
    return PayerResolution(
        grants=tuple(grants),
        excluded=tuple(excluded),
        mode=order.mode if order else PayerMode.SEQUENTIAL,
        policy_version=beneficiary_policy.version,
        beneficiary_admdvs=beneficiary.admdvs,
    )


def made_by(binding: Binding, moment: datetime) -> bool:
    """Whether the binding existed at `moment`, as read by a clock up to CLOCK_ALLOWANCE behind."""
    return binding.create_time <= moment + CLOCK_ALLOWANCE


def resolution_valid_until(
    beneficiary: InsuredPerson,
    candidates: Sequence[tuple[Binding, InsuredPerson]],
    policy_of: Callable[[str], RegionPolicy],
    next_policy_change: datetime | None,
    at: datetime,
) -> datetime | None:
    """The first instant after `at` at which the same question could get another answer with
    nothing changed by a call: a binding not yet made at `at` comes into being, a contact change
    of the beneficiary or a grantor falls overdue (after its region's grace days), or a policy
    version comes into force. An answer kept for reuse holds for bills dated from `at` up to
    (not including) this instant."""
    bounds = [next_policy_change] if next_policy_change is not None else []
    bounds += [binding.create_time - CLOCK_ALLOWANCE for binding, _ in candidates if not made_by(binding, at)]
    for person in (beneficiary, *(grantor for _, grantor in candidates)):
        deadline = person.contact_change_deadline(policy_of(person.admdvs).contact_change_grace_days)
        if deadline is not None and deadline >= at:
            # Overdue strictly after the deadline; the instant just past it must be asked anew.
            bounds.append(deadline)
    return min(bounds, default=None)


def _exclusion(
    binding: Binding,
    grantor: InsuredPerson,
    beneficiary: InsuredPerson,
    grantor_policy: RegionPolicy,
    beneficiary_policy: RegionPolicy,
    use: UseCategory,
    now: datetime,
) -> Reason | None:
    standing = _standing_refusal(binding, grantor, beneficiary)
    if standing is not None:
        return standing
    if not grantor_policy.allows_use(use):
        return Reason.USE_NOT_ALLOWED
    return _contact_refusal(grantor, beneficiary, grantor_policy, beneficiary_policy, now)


def transfer_refusal(
    binding: Binding,
    grantor: InsuredPerson,
    beneficiary: InsuredPerson,
    grantor_policy: RegionPolicy,
    beneficiary_policy: RegionPolicy,
    now: datetime,
) -> Reason | None:
    """Why the grantor may not move money to the beneficiary's wallet (医保钱包) over this binding
    now, or None: what passes a grantor over for a bill, but for the bill's use."""
    standing = _standing_refusal(binding, grantor, beneficiary)
    return standing or _contact_refusal(grantor, beneficiary, grantor_policy, beneficiary_policy, now)


def _standing_refusal(binding: Binding, grantor: InsuredPerson, beneficiary: InsuredPerson) -> Reason | None:
    if binding.state is not BindingState.ACTIVE:
        return Reason.BINDING_NOT_ACTIVE
    if not beneficiary.is_normal:
        return Reason.BENEFICIARY_NOT_IN_NORMAL_STATUS
    if not grantor.is_normal:
        return Reason.GRANTOR_NOT_IN_NORMAL_STATUS
    return None


def _contact_refusal(
    grantor: InsuredPerson,
    beneficiary: InsuredPerson,
    grantor_policy: RegionPolicy,
    beneficiary_policy: RegionPolicy,
    now: datetime,
) -> Reason | None:
    """A contact change (phone, address) left unconfirmed past the grace days stops mutual aid."""
    if beneficiary.contact_change_overdue(now, beneficiary_policy.contact_change_grace_days):
        return Reason.CONTACT_CHANGE_OVERDUE
    if grantor.contact_change_overdue(now, grantor_policy.contact_change_grace_days):
        return Reason.CONTACT_CHANGE_OVERDUE
    return None
