"""Ordered deduction: how one bill's self-pay amount is covered.

First the patient's own personal account (if chosen), then the patient's wallet,
then the grantors in the patient's order, each up to the least of its limits —
or, in PROPORTIONAL mode, split evenly across them within those limits; the rest
is cash. A per-use limit (单次使用限额, e.g. 500 yuan an outpatient visit) caps what
relatives together pay for one bill: in order, each grantor pays at most what the
earlier ones left of its region's limit; in even shares, the grantors share the
strictest limit among all the patient's grantors, which the caller gives
(`shared_per_use_fen`), since a grantor another node holds nothing for is not among
`grants`.
Pure arithmetic on int fen.
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
    # The grantor's region's per-use limit: the most the bill's grants pay together, up to and
    # including this one (0 = none).
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


def split_bill(
    self_pay_fen: int,
    own: Sequence[Capacity],
    grants: Sequence[Capacity],
    mode: PayerMode,
    shared_per_use_fen: int | None = None,
) -> Split:
    """Covers self_pay_fen from the patient's own sources, then the grants, then cash. In
    PROPORTIONAL mode the grants together pay at most `shared_per_use_fen` (None: no limit)."""
    remaining = self_pay_fen
    legs: list[Leg] = []
    for capacity in own:
        take = min(remaining, max(0, capacity.limit_fen))
        if take:
            legs.append(_leg(capacity, take))
            remaining -= take
    if mode is PayerMode.PROPORTIONAL:
        aid = remaining if shared_per_use_fen is None else min(remaining, max(0, shared_per_use_fen))
        shares = _proportional(aid, grants)
    else:
        shares = _sequential(remaining, grants)
    for capacity, take in zip(grants, shares, strict=True):
        if take:
            legs.append(_leg(capacity, take))
            remaining -= take
    return Split(tuple(legs), remaining)


def per_use_budget(per_use_limits_fen: Iterable[int]) -> int | None:
    """The strictest of these per-use limits (a family's grantors mostly share a region, so mostly
    its one limit); None when none sets one."""
    return min((limit for limit in per_use_limits_fen if limit > 0), default=None)


def per_use_bound(per_use_limits_fen: Collection[int]) -> int | None:
    """The most one bill can take from these grants together, whatever the mode: in order, each
    grantor pays at most what the earlier ones left of its own limit, so together never more
    than the loosest limit; in even shares, the strictest. None when one sets no limit (or there
    are none): then nothing bounds them together."""
    if not per_use_limits_fen or any(limit <= 0 for limit in per_use_limits_fen):
        return None
    return max(per_use_limits_fen)


def _leg(capacity: Capacity, amount: int) -> Leg:
    return Leg(capacity.payer_id_number, capacity.source, amount, capacity.binding_id, capacity.policy_version)


def _sequential(amount: int, grants: Sequence[Capacity]) -> list[int]:
    """In order, each within its limit and what the earlier grants left of its per-use limit."""
    shares: list[int] = []
    paid = 0
    for capacity in grants:
        cap = max(0, capacity.limit_fen)
        if capacity.per_use_limit_fen > 0:
            cap = min(cap, max(0, capacity.per_use_limit_fen - paid))
        take = min(amount, cap)
        shares.append(take)
        amount -= take
        paid += take
    return shares


def _proportional(amount: int, grants: Sequence[Capacity]) -> list[int]:
    """Even shares, each within its limit; what one cannot take goes to the others
    (water-filling). Odd fen go to the earlier payers, so the result is deterministic."""
    return _even_shares(amount, [max(0, g.limit_fen) for g in grants])


def _even_shares(amount: int, caps: Sequence[int]) -> list[int]:
    """`amount` in even shares, each within its cap (water-filling); odd fen to the earlier ones."""
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
    self_pay_fen: int,
    own: Sequence[Capacity],
    grants: Sequence[Capacity],
    mode: PayerMode,
    unknown: Collection[str],
    shared_per_use_fen: int | None = None,
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
        split = split_bill(self_pay_fen, own, alone, mode, shared_per_use_fen)
        part = sum(leg.amount_fen for leg in split.legs if leg.binding_id == binding_id)
        if part > 0:
            parts[binding_id] = part
    return parts


def together_at_most(
    self_pay_fen: int,
    own: Sequence[Capacity],
    grants: Sequence[Capacity],
    mode: PayerMode,
    unknown: Collection[str],
    shared_per_use_fen: int | None = None,
) -> int:
    """The most the bill could take from the grants in `unknown` together: their parts were each
    of them able to give the whole bill. A node that captures their legs at once, in payer order
    and each within its own ceiling, stops there, as the split with the real limits would."""
    unlimited = [replace(c, limit_fen=self_pay_fen) if c.binding_id in unknown else c for c in grants]
    split = split_bill(self_pay_fen, own, unlimited, mode, shared_per_use_fen)
    return sum(leg.amount_fen for leg in split.legs if leg.binding_id in unknown)


def fits_one_round(order: Sequence[str], mode: PayerMode, unknown: Collection[str]) -> bool:
    """Whether a node keeping the grants in `unknown` (binding ids of `order`, the bill's grants
    in payer order) may capture their legs at once, before the bill is split: in payer order,
    each up to its ceiling (`ceilings`) less what the legs before it took (a ceiling counts them
    as paying nothing, and a grantor's per-use limit counts what they paid), together at most
    `together_at_most`. The split with what it captured then takes just that from each. So it is
    in payer order when they come after every other grant (what they give changes nothing
    before them), and in even shares when it is one grant alone (a grantor held to less than its
    even share pays all it can, whatever the others pay)."""
    if mode is PayerMode.PROPORTIONAL:
        return sum(binding_id in unknown for binding_id in order) == 1
    first = next((number for number, binding_id in enumerate(order) if binding_id in unknown), len(order))
    return first < len(order) and all(binding_id in unknown for binding_id in order[first:])


def shrink(
    legs: Sequence[Leg], cash_fen: int, final_fen: int, mode: PayerMode = PayerMode.SEQUENTIAL
) -> tuple[list[int], int]:
    """Amounts each leg captures when the final bill is smaller than the authorised one.

    The cash part shrinks first, then the legs from the last payer back, so the
    patient's own account and the first grantors keep their places. In PROPORTIONAL mode the
    grantors' legs shrink together, to even shares of what they still pay (each within what it
    held), as a bill of the final amount would be split; the patient's own account still last.
    """
    excess = sum(leg.amount_fen for leg in legs) + cash_fen - final_fen
    cash_cut = min(excess, cash_fen)
    excess -= cash_cut
    captured = [leg.amount_fen for leg in legs]
    if mode is PayerMode.PROPORTIONAL:
        aid = [i for i, leg in enumerate(legs) if leg.source is PaymentSource.MUTUAL_AID]
        held = [captured[i] for i in aid]
        kept = max(0, sum(held) - excess)
        excess -= sum(held) - kept
        for i, share in zip(aid, _even_shares(kept, held), strict=True):
            captured[i] = share
    for i in reversed(range(len(captured))):
        cut = min(excess, captured[i])
        captured[i] -= cut
        excess -= cut
    return captured, cash_fen - cash_cut
