"""Ordered deduction as arithmetic: properties that hold for every
bill, every set of limits and both modes."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.deduction import (
    Capacity,
    Leg,
    PaymentSource,
    ceilings,
    fits_one_round,
    least,
    per_use_bound,
    per_use_budget,
    shrink,
    split_bill,
    together_at_most,
)
from shared.payers import PayerMode

amounts = st.integers(min_value=0, max_value=10_000_000)
limits = st.integers(min_value=-1_000, max_value=5_000_000)


def grants_from(limit_values: list[int], per_use_limits: list[int] | None = None) -> list[Capacity]:
    per_use = per_use_limits or []
    return [
        Capacity(f"grantor-{i}", PaymentSource.MUTUAL_AID, limit, binding_id=f"b{i}", policy_version="v",
                 per_use_limit_fen=per_use[i] if i < len(per_use) else 0)
        for i, limit in enumerate(limit_values)
    ]  # fmt: skip


# A grant's region's per-use limit: mostly none (0), else a few hundred yuan.
per_use_limits = st.lists(st.one_of(st.just(0), st.integers(min_value=1, max_value=2_000_000)), max_size=6)


own_sources = st.lists(limits, max_size=2).map(
    lambda values: [
        Capacity("patient", source, value)
        for source, value in zip((PaymentSource.OWN_ACCOUNT, PaymentSource.WALLET), values, strict=False)
    ]
)


@given(amounts, own_sources, st.lists(limits, max_size=6), st.sampled_from(list(PayerMode)))
def test_every_fen_of_a_bill_is_paid_by_exactly_one_leg_or_cash(bill, own, grant_limits, mode):
    split = split_bill(bill, own, grants_from(grant_limits), mode)
    assert sum(leg.amount_fen for leg in split.legs) + split.cash_fen == bill
    assert split.cash_fen >= 0
    assert all(leg.amount_fen > 0 for leg in split.legs)


@given(amounts, own_sources, st.lists(limits, max_size=6), st.sampled_from(list(PayerMode)))
def test_no_payer_pays_more_than_its_limit(bill, own, grant_limits, mode):
    grants = grants_from(grant_limits)
    split = split_bill(bill, own, grants, mode)
    limit_of = {(c.payer_id_number, c.source): c.limit_fen for c in [*own, *grants]}
    for leg in split.legs:
        assert leg.amount_fen <= limit_of[(leg.payer_id_number, leg.source)]


@given(amounts, own_sources, st.lists(limits, max_size=6), st.sampled_from(list(PayerMode)))
def test_cash_is_left_only_when_every_payer_is_exhausted(bill, own, grant_limits, mode):
    grants = grants_from(grant_limits)
    split = split_bill(bill, own, grants, mode)
    if split.cash_fen:
        paid = {(leg.payer_id_number, leg.source): leg.amount_fen for leg in split.legs}
        for capacity in [*own, *grants]:
            assert paid.get((capacity.payer_id_number, capacity.source), 0) == max(0, capacity.limit_fen)


@given(amounts, own_sources, st.lists(limits, max_size=6), per_use_limits)
def test_in_order_no_grantor_takes_the_bills_mutual_aid_past_its_regions_per_use_limit(
    bill, own, grant_limits, per_use
):
    """Each up to the per-use limit left: what the earlier grantors paid counts against it."""
    grants = grants_from(grant_limits, per_use)
    split = split_bill(bill, own, grants, PayerMode.SEQUENTIAL)
    paid = {leg.binding_id: leg.amount_fen for leg in split.legs if leg.source is PaymentSource.MUTUAL_AID}
    so_far = 0
    for grant in grants:
        take = paid.get(grant.binding_id, 0)
        if grant.per_use_limit_fen > 0:
            assert so_far + take <= grant.per_use_limit_fen or take == 0
        # Cash is left only when this grantor gave all it could, or all its limit left.
        if split.cash_fen and take < max(0, grant.limit_fen):
            assert grant.per_use_limit_fen > 0 and so_far + take >= grant.per_use_limit_fen
        so_far += take


@given(amounts, own_sources, st.lists(limits, max_size=6), st.one_of(st.none(), st.integers(0, 2_000_000)))
def test_in_even_shares_the_grantors_together_pay_at_most_the_shared_per_use_limit(bill, own, grant_limits, shared):
    grants = grants_from(grant_limits)
    split = split_bill(bill, own, grants, PayerMode.PROPORTIONAL, shared)
    aid = split.total(PaymentSource.MUTUAL_AID)
    if shared is not None:
        assert aid <= shared
    if split.cash_fen and not (shared is not None and aid == shared):
        assert aid == sum(max(0, g.limit_fen) for g in grants)


@given(amounts, own_sources, st.lists(limits, max_size=6), per_use_limits, st.sampled_from(list(PayerMode)), st.data())
def test_the_grantors_one_node_holds_pay_together_at_most_the_per_use_bound_it_checks(
    bill, own, grant_limits, per_use, mode, data
):
    """A node that holds some of a bill's grantors checks their legs together against the
    loosest of their per-use limits: no split of either mode ever takes more from them."""
    grants = grants_from(grant_limits, per_use)
    shared = per_use_budget(g.per_use_limit_fen for g in grants)
    split = split_bill(bill, own, grants, mode, shared)
    on_one_node = data.draw(st.sets(st.sampled_from([g.binding_id for g in grants]))) if grants else set()
    bound = per_use_bound([g.per_use_limit_fen for g in grants if g.binding_id in on_one_node])
    taken = sum(leg.amount_fen for leg in split.legs if leg.binding_id in on_one_node)
    assert bound is None or taken <= bound


@given(amounts, own_sources, st.lists(limits, min_size=1, max_size=6))
def test_own_sources_pay_first_and_grantors_follow_in_the_beneficiarys_order(bill, own, grant_limits):
    split = split_bill(bill, own, grants_from(grant_limits), PayerMode.SEQUENTIAL)
    paid_by = [leg.payer_id_number for leg in split.legs]
    grantors = [p for p in paid_by if p.startswith("grantor-")]
    assert paid_by[: len(paid_by) - len(grantors)] == ["patient"] * (len(paid_by) - len(grantors))
    assert grantors == sorted(grantors, key=lambda name: int(name.split("-")[1]))
    # A grantor pays only once every grantor before it gave all it could.
    for leg in split.legs[:-1]:
        if leg.source is PaymentSource.MUTUAL_AID:
            index = int(leg.payer_id_number.split("-")[1])
            assert leg.amount_fen == grant_limits[index]


@given(amounts, st.lists(st.integers(min_value=1, max_value=5_000_000), min_size=2, max_size=5))
def test_proportional_mode_splits_evenly_within_a_fen_unless_a_limit_binds(bill, grant_limits):
    split = split_bill(bill, [], grants_from(grant_limits), PayerMode.PROPORTIONAL)
    paid = [0] * len(grant_limits)
    for leg in split.legs:
        paid[int(leg.payer_id_number.split("-")[1])] = leg.amount_fen
    unconstrained = [p for p, limit in zip(paid, grant_limits, strict=True) if p < limit]
    if unconstrained:
        assert max(unconstrained) - min(unconstrained) <= 1
        # A payer held back by its limit gave all it could, which is no more than the even level.
        assert all(p <= max(unconstrained) + 1 for p, limit in zip(paid, grant_limits, strict=True) if p == limit)


def test_a_childs_bill_is_paid_by_mother_then_father_then_cash():
    """Mother first, father next, the rest in cash."""
    mother = Capacity("mother", PaymentSource.MUTUAL_AID, 30_000, "b-mother", "320100@2025")
    father = Capacity("father", PaymentSource.MUTUAL_AID, 50_000, "b-father", "320100@2025")
    split = split_bill(100_000, [], [mother, father], PayerMode.SEQUENTIAL)
    assert split.legs == (
        Leg("mother", PaymentSource.MUTUAL_AID, 30_000, "b-mother", "320100@2025"),
        Leg("father", PaymentSource.MUTUAL_AID, 50_000, "b-father", "320100@2025"),
    )
    assert split.cash_fen == 20_000
    assert split.total(PaymentSource.MUTUAL_AID) == 80_000


def test_the_least_of_the_limits_that_apply_wins_and_none_means_no_limit():
    assert least(50_000, None, 20_000, None) == 20_000
    assert least(-5, 100) == 0


legs_strategy = st.lists(st.integers(min_value=1, max_value=1_000_000), max_size=5).map(
    lambda values: [Leg(f"p{i}", PaymentSource.MUTUAL_AID, v) for i, v in enumerate(values)]
)


@given(legs_strategy, st.integers(min_value=0, max_value=1_000_000), st.data())
def test_a_smaller_capture_never_takes_more_than_was_held_and_cuts_cash_then_the_last_payer(legs, cash, data):
    authorised = sum(leg.amount_fen for leg in legs) + cash
    final = data.draw(st.integers(min_value=0, max_value=authorised))
    captured, new_cash = shrink(legs, cash, final)
    assert sum(captured) + new_cash == final
    assert all(0 <= c <= leg.amount_fen for c, leg in zip(captured, legs, strict=True))
    assert new_cash <= cash
    if new_cash < cash:
        assert sum(captured) == sum(leg.amount_fen for leg in legs) or new_cash == 0
    # Only a suffix of the legs is cut: once a leg is cut, every later one is too.
    cut = [c < leg.amount_fen for c, leg in zip(captured, legs, strict=True)]
    if any(cut):
        first = cut.index(True)
        assert all(cut[first + 1 :]) or all(c == 0 for c in captured[first + 1 :])


@given(
    amounts, own_sources, st.lists(limits, min_size=1, max_size=6), per_use_limits, st.sampled_from(list(PayerMode)),
    st.data(),
)  # fmt: skip
def test_grantors_on_other_nodes_held_up_to_their_ceilings_split_the_bill_as_knowing_their_limits_would(
    bill, own, grant_limits, per_use, mode, data
):
    """A coordinator does not know what a grantor on another node can give; it asks that node to
    hold up to the grantor's ceiling, and the node holds the lesser of ceiling and limit. Split
    with those holds, the bill is split exactly as with the real limits, in payer order and in
    even shares: no fen goes to cash or to another payer for want of asking."""
    grants = grants_from(grant_limits, per_use)
    shared = min((limit for limit in per_use if limit > 0), default=None)  # of all the patient's grantors
    unknown = set(data.draw(st.sets(st.sampled_from([g.binding_id for g in grants]), min_size=1)))
    asked = ceilings(bill, own, grants, mode, unknown, shared)
    held = [
        replace(g, limit_fen=min(max(0, g.limit_fen), asked.get(g.binding_id, 0))) if g.binding_id in unknown else g
        for g in grants
    ]
    # A grantor another node was not asked to hold for, or held nothing for, is left out of the split.
    held = [g for g in held if g.binding_id not in unknown or g.limit_fen > 0]
    knowing = split_bill(bill, own, grants, mode, shared)
    holding = split_bill(bill, own, held, mode, shared)
    assert holding == knowing
    assert all(0 < part <= bill for part in asked.values())


def test_a_smaller_capture_in_proportional_mode_cuts_cash_then_evens_the_grantors_shares_then_the_own_account():
    own = Leg("patient", PaymentSource.OWN_ACCOUNT, 10_000)
    mother = Leg("mother", PaymentSource.MUTUAL_AID, 30_000, "b1")
    father = Leg("father", PaymentSource.MUTUAL_AID, 10_000, "b2")
    assert shrink([own, mother, father], 5_000, 40_000, PayerMode.PROPORTIONAL) == ([10_000, 20_000, 10_000], 0)
    assert shrink([own, mother, father], 5_000, 30_001, PayerMode.PROPORTIONAL) == ([10_000, 10_001, 10_000], 0)
    assert shrink([own, mother, father], 5_000, 8_000, PayerMode.PROPORTIONAL) == ([8_000, 0, 0], 0)


@settings(max_examples=400)
@given(
    amounts, own_sources, st.lists(limits, min_size=1, max_size=6), per_use_limits, st.sampled_from(list(PayerMode)),
    st.data(),
)  # fmt: skip
def test_grantors_on_another_node_captured_at_once_are_paid_just_what_they_captured_when_one_round_fits(
    bill, own, grant_limits, per_use, mode, data
):
    """One round: where `fits_one_round` says so, the other node captures each leg in payer order,
    the lesser of its ceiling less what the legs before it took and what the grantor can give,
    and all of them together at most `together_at_most`. Split with what was captured, the bill
    takes exactly that from each of them and splits as with the real limits: nothing captured
    goes unused, no fen goes to cash."""
    grants = grants_from(grant_limits, per_use)
    shared = min((limit for limit in per_use if limit > 0), default=None)
    unknown = set(data.draw(st.sets(st.sampled_from([g.binding_id for g in grants]), min_size=1)))
    assume(fits_one_round([g.binding_id for g in grants], mode, unknown))
    asked = ceilings(bill, own, grants, mode, unknown, shared)
    left = together_at_most(bill, own, grants, mode, unknown, shared)
    captured: dict[str, int] = {}
    taken = 0
    for g in grants:
        if g.binding_id in unknown and g.binding_id in asked:
            # Each ceiling counts the legs before it as paying nothing, so it is less what they took.
            captured[g.binding_id] = max(0, min(asked[g.binding_id] - taken, g.limit_fen, left - taken))
            taken += captured[g.binding_id]
    held = [
        replace(g, limit_fen=captured.get(g.binding_id, 0)) if g.binding_id in unknown else g
        for g in grants
        if g.binding_id not in unknown or captured.get(g.binding_id, 0) > 0
    ]
    knowing = split_bill(bill, own, grants, mode, shared)
    taking = split_bill(bill, own, held, mode, shared)
    assert taking == knowing
    assert {leg.binding_id: leg.amount_fen for leg in taking.legs if leg.binding_id in unknown} == {
        b: fen for b, fen in captured.items() if fen
    }


def test_one_round_fits_payers_at_the_end_of_a_sequential_order_or_one_grant_alone_in_even_shares():
    grants = ["b0", "b1", "b2"]
    assert fits_one_round(grants, PayerMode.SEQUENTIAL, {"b2"})
    assert fits_one_round(grants, PayerMode.SEQUENTIAL, {"b1", "b2"})
    assert not fits_one_round(grants, PayerMode.SEQUENTIAL, {"b0"})
    assert not fits_one_round(grants, PayerMode.SEQUENTIAL, {"b0", "b2"})
    assert fits_one_round(grants, PayerMode.PROPORTIONAL, {"b0"})
    assert not fits_one_round(grants, PayerMode.PROPORTIONAL, {"b1", "b2"})
    assert not fits_one_round(grants, PayerMode.SEQUENTIAL, set())
