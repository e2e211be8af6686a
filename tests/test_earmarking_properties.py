"""Earmarking as a property: in a region that earmarks set amounts,
any mix of the child's bills and the mother's own bills keeps two promises. The child
never draws more than the mother set aside for the year. The mother's own bills never
spend what is still set aside. Each example settles over real gRPC against a fresh family,
and a simple model predicts every amount to the fen."""

from __future__ import annotations

from datetime import timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from tests.helpers import request_id
from tests.payment_helpers import PaymentFamily

pytestmark = pytest.mark.slow

MOTHER_FEN = 100_000
AID = ppb.PAYMENT_SOURCE_MUTUAL_AID

bills = st.lists(st.tuples(st.sampled_from(["child", "mother"]), st.integers(1, 60_000)), min_size=1, max_size=8)


def earmark_policy(family: PaymentFamily) -> None:
    effective = Timestamp()
    effective.FromDatetime(family.clock.now() - timedelta(days=1))
    family.binding.PutRegionPolicy(
        bapi.PutRegionPolicyRequest(
            request_id=request_id(),
            policy=bpb.RegionPolicy(
                admdvs="320100", effective_from=effective, relationship_scope=bpb.RELATIONSHIP_SCOPE_EXTENDED,
                max_beneficiaries=6, geographic_scope=bpb.GEOGRAPHIC_SCOPE_SAME_PROVINCE,
                allowed_uses=[common.USE_CATEGORY_OUTPATIENT],
                auto_approve_relationships=[common.RELATIONSHIP_CHILD], contact_change_grace_days=15,
                impersonation_suspension_threshold=3, earmark_shared_amount=True,
            ),
        )
    )  # fmt: skip


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(set_aside=st.integers(1, 150_000), sequence=bills)
def test_the_child_never_draws_more_than_was_set_aside_and_the_mother_never_spends_it(
    payment_service, set_aside, sequence
):
    family = PaymentFamily(payment_service, mother_fen=MOTHER_FEN, father_fen=0)
    earmark_policy(family)  # the same version every example: the clock stands still, and a repeat is accepted
    family.binding.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(
            request_id=request_id(), binding_id=family.mother_binding.binding_id, yearly_cap_fen=set_aside
        )
    )
    balance, shared = MOTHER_FEN, 0
    for who, amount in sequence:
        reserved = max(0, set_aside - shared)
        if who == "child":
            settled = family.settle(amount)
            from_mother = sum(leg.amount_fen for leg in settled.legs if leg.source == AID)
            expected = min(amount, balance, reserved)
            assert from_mother == expected
            shared += from_mother
            balance -= from_mother
        else:
            settled = family.settle(amount, patient=family.mother, use_own_account=True)
            expected = min(amount, max(0, balance - reserved))
            assert settled.own_account_pay_fen == expected
            assert settled.cash_pay_fen == amount - expected
            balance -= expected
        assert shared <= set_aside
        assert balance >= min(max(0, set_aside - shared), MOTHER_FEN - shared)
    account = family.account(family.mother)
    assert account.balance_fen == balance
    assert family.ledger().balanced
