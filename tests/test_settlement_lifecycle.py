"""What may happen to a settlement in each state, as a table: capture needs live holds,
release needs holds not yet captured, refund needs a capture not yet refunded. Every other
case is refused with the reason a hospital can act on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import DomainError, Reason
from shared.money import INT64_MAX, require_positive
from shared.settlements import (
    SettlementState,
    check_capturable,
    check_own_card,
    check_refundable,
    check_releasable,
)

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
LATER = NOW + timedelta(minutes=15)
S = SettlementState

# state: (capture, release, refund); None where the step is allowed.
LIFECYCLE = {
    S.AUTHORIZED: (None, None, Reason.NOT_CAPTURED),
    S.CAPTURED: (Reason.ALREADY_CAPTURED, Reason.ALREADY_CAPTURED, None),
    S.RELEASED: (Reason.ALREADY_RELEASED, Reason.ALREADY_RELEASED, Reason.NOT_CAPTURED),
    S.EXPIRED: (Reason.HOLD_EXPIRED, Reason.ALREADY_RELEASED, Reason.NOT_CAPTURED),
    S.REFUNDED: (Reason.ALREADY_REFUNDED, Reason.ALREADY_CAPTURED, Reason.ALREADY_REFUNDED),
    S.REVERSED: (Reason.ALREADY_RELEASED, Reason.ALREADY_RELEASED, Reason.NOT_CAPTURED),
}


def refusal(step) -> Reason | None:
    try:
        step()
    except DomainError as error:
        return error.reason
    return None


def test_the_table_names_every_state():
    assert set(LIFECYCLE) == set(SettlementState)


@pytest.mark.parametrize("state", list(SettlementState))
def test_each_state_allows_or_refuses_capture_release_and_refund_as_the_table_says(state):
    capture, release, refund = LIFECYCLE[state]
    assert refusal(lambda: check_capturable(state, LATER, NOW)) is capture
    assert refusal(lambda: check_releasable(state)) is release
    assert refusal(lambda: check_refundable(state)) is refund


def test_an_authorised_settlement_whose_holds_have_lapsed_cannot_be_captured():
    assert refusal(lambda: check_capturable(S.AUTHORIZED, NOW, NOW)) is Reason.HOLD_EXPIRED
    assert refusal(lambda: check_capturable(S.AUTHORIZED, None, NOW)) is None


def test_a_card_used_by_someone_else_is_refused_as_impersonation_naming_its_holder():
    with pytest.raises(DomainError) as refused:
        check_own_card("patient", "holder")
    assert (refused.value.reason, refused.value.metadata) == (Reason.IMPERSONATION, {"holder_id_number": "holder"})
    assert refused.value.keep_effects, "the violation is recorded although the settlement is refused"
    check_own_card("patient", "patient")


@pytest.mark.parametrize(("amount", "allowed"), [(1, True), (INT64_MAX, True), (0, False), (-1, False)])
def test_a_positive_amount_is_any_fen_from_one_to_the_largest_int64(amount, allowed):
    assert refusal(lambda: require_positive(amount, "amount_fen")) is (None if allowed else Reason.INVALID_AMOUNT)
