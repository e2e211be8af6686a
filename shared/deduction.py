"""Ordered deduction: how one bill's self-pay amount is covered.

First the patient's own personal account (if chosen), then the patient's wallet,
then the grantors in the patient's order, each up to the least of its limits —
or, in PROPORTIONAL mode, split evenly across them within those limits; the rest
is cash. A per-use limit (单次使用限额, e.g. 500 yuan an outpatient visit) is the
bill's: what all relatives together pay for one use, so each grantor pays at most
what the earlier ones left of it. Pure arithmetic on int fen.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from shared.payers import PayerMode


class PaymentSource(StrEnum):
    OWN_ACCOUNT = "OWN_ACCOUNT"  # acct_pay
    MUTUAL_AID = "MUTUAL_AID"  # acct_mulaid_pay
    WALLET = "WALLET"


@dataclass(frozen=True)
class Capacity:
    """What one payer can put towards this bill, and why no more."""

    payer_id_number: str
    source: PaymentSource
    limit_fen: int
    binding_id: str = ""
    policy_version: str = ""
    # A grant's region's per-use limit: the most all grants together pay for this bill (0 = none).
    per_use_limit_fen: int = 0


@dataclass(frozen=True)
class Leg:
    payer_id_number: str
    source: PaymentSource
    amount_fen: int
    binding_id: str = ""
    policy_version: str = ""


@dataclass(frozen=True)
class Split:
    legs: tuple[Leg, ...]
    cash_fen: int

    def total(self, source: PaymentSource) -> int:
        return sum(leg.amount_fen for leg in self.legs if leg.source is source)


def least(*limits: int | None) -> int:
    """The smallest of the limits that apply (None = no limit), never below zero."""
    applicable = [limit for limit in limits if limit is not None]
    return max(0, min(applicable)) if applicable else 0


def split_bill(self_pay_fen: int, own: Sequence[Capacity], grants: Sequence[Capacity], mode: PayerMode) -> Split:
    """Covers self_pay_fen from the patient's own sources, then the grants, then cash."""
    remaining = self_pay_fen
    legs: list[Leg] = []
    for capacity in own:
        take = min(remaining, max(0, capacity.limit_fen))
        if take:
            legs.append(_leg(capacity, take))
            remaining -= take
    budget = per_use_budget(g.per_use_limit_fen for g in grants)
    aid = remaining if budget is None else min(remaining, budget)
    shares = _proportional(aid, grants) if mode is PayerMode.PROPORTIONAL else _sequential(aid, grants)
    for capacity, take in zip(grants, shares, strict=True):
        if take:
            legs.append(_leg(capacity, take))
            remaining -= take
    return Split(tuple(legs), remaining)


def per_use_budget(per_use_limits_fen: Iterable[int]) -> int | None:
    """The most a bill's grants together may pay: the strictest of their regions' per-use limits
    (a family's grantors mostly share a region, so mostly its one limit); None when none sets one."""
    return min((limit for limit in per_use_limits_fen if limit > 0), default=None)


def _leg(capacity: Capacity, amount: int) -> Leg:
    return Leg(capacity.payer_id_number, capacity.source, amount, capacity.binding_id, capacity.policy_version)


def _sequential(amount: int, grants: Sequence[Capacity]) -> list[int]:
    shares = []
    for capacity in grants:
        take = min(amount, max(0, capacity.limit_fen))
        shares.append(take)
        amount -= take
    return shares


def _proportional(amount: int, grants: Sequence[Capacity]) -> list[int]:
    """Even shares, each within its limit; what one cannot take goes to the others
    (water-filling). Odd fen go to the earlier payers, so the result is deterministic."""
    caps = [max(0, g.limit_fen) for g in grants]
    amount = min(amount, sum(caps))
    low, high = 0, max(caps, default=0)
    while low < high:  # the highest level L with sum(min(cap, L)) <= amount
        level = (low + high + 1) // 2
        if sum(min(cap, level) for cap in caps) <= amount:
            low = level
        else:
            high = level - 1
    shares = [min(cap, low) for cap in caps]
    odd = amount - sum(shares)
    for i, cap in enumerate(caps):
        if odd == 0:
            break
        if shares[i] < cap:
            shares[i] += 1
            odd -= 1
    return shares


def ceilings(
    self_pay_fen: int, own: Sequence[Capacity], grants: Sequence[Capacity], mode: PayerMode, unknown: Collection[str]
) -> dict[str, int]:
    """The most the bill could take from each grant in `unknown` (binding ids of grants whose
    limits are not known here, a grantor on another node): its part if it alone of them could
    give the whole bill and the others nothing. Knowing the limits only lowers each part, in payer
    order and in even shares alike, so a grantor held up to its ceiling (or its limit, if less)
    covers what the split with the real limits takes from it. Grants with no part are left out."""
    parts: dict[str, int] = {}
    for binding_id in unknown:
        alone = [
            replace(c, limit_fen=self_pay_fen if c.binding_id == binding_id else 0) if c.binding_id in unknown else c
            for c in grants
        ]
        split = split_bill(self_pay_fen, own, alone, mode)
        part = sum(leg.amount_fen for leg in split.legs if leg.binding_id == binding_id)
        if part > 0:
            parts[binding_id] = part
    return parts


def shrink(legs: Sequence[Leg], cash_fen: int, final_fen: int) -> tuple[list[int], int]:
    """Amounts each leg captures when the final bill is smaller than the authorised one.

    The cash part shrinks first, then the legs from the last payer back, so the
    patient's own account and the first grantors keep their places.
    """
    excess = sum(leg.amount_fen for leg in legs) + cash_fen - final_fen
    cash_cut = min(excess, cash_fen)
    excess -= cash_cut
    captured = [leg.amount_fen for leg in legs]
    for i in reversed(range(len(captured))):
        cut = min(excess, captured[i])
        captured[i] -= cut
        excess -= cut
    return captured, cash_fen - cash_cut
