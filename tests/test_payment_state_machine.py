"""The settlement lifecycle follows a simple model through any sequence of operations
.

A hypothesis state machine drives the real payment service over gRPC: it
authorizes, settles, captures (all, part, or more than authorized), releases,
refunds, credits the grantor and moves the clock past expiries, while a model
of one grantor bound to one beneficiary predicts every answer: the state, the
leg and cash amounts, and which refusal. After every step:

- the grantor's balance and held amount are the model's;
- money is conserved: what was credited less what the grantor's legs took and
  did not get back is the balance;
- CheckLedger is balanced (every entry, balance and hold accounted for, no hold
  open past its expiry, nothing overdrawn).

Each example uses a fresh family (fresh ID numbers) in the one database the test
shares; only the mother has an account, so the father's binding never pays and
the deduction is deterministic: the mother pays min(her available balance, the
bill) and the rest is cash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import grpc
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from shared.errors import Reason
from shared.privacy import mask_id_number
from tests.conftest import PaymentHarness
from tests.helpers import Refusal, refusal_of, request_id
from tests.payment_helpers import PaymentFamily

TIMEOUT = 30
AUTHORIZED = ppb.SETTLEMENT_STATE_AUTHORIZED
CAPTURED = ppb.SETTLEMENT_STATE_CAPTURED
RELEASED = ppb.SETTLEMENT_STATE_RELEASED
EXPIRED = ppb.SETTLEMENT_STATE_EXPIRED
REFUNDED = ppb.SETTLEMENT_STATE_REFUNDED
DEFAULT_HOLD = timedelta(minutes=15)  # PaymentSettings.default_hold; Settle's expire_time too

pytestmark = pytest.mark.slow


@dataclass
class Modelled:
    """What the model knows of one settlement."""

    settlement_id: str
    bill_fen: int
    leg_fen: int  # held, or taken on capture, from the mother
    expire_time: datetime
    state: int
    captured_fen: int = 0

    @property
    def net_taken_fen(self) -> int:
        return self.captured_fen if self.state == CAPTURED else 0


def call(method, message) -> object:
    """The answer, or the refusal (never INTERNAL or UNKNOWN).

    When the payment service could not ask the binding service who may pay in time (it allows
    2 s; a loaded test machine can take longer), the same request, with the same request_id,
    is sent again, as the refusal says to."""
    for attempt in range(5):
        try:
            return method(message, timeout=TIMEOUT)
        except grpc.RpcError as error:
            refusal = refusal_of(error)
            assert refusal.domain == "payment.gongji", refusal
            if refusal.reason == Reason.BINDING_SERVICE_UNAVAILABLE.value and attempt < 4:
                event("retried after BINDING_SERVICE_UNAVAILABLE")
                continue
            assert refusal.code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), refusal
            return refusal
    raise AssertionError("unreachable")


def expect_refusal(answer: object, *reasons: Reason) -> None:
    assert isinstance(answer, Refusal), f"expected a refusal {[r.value for r in reasons]}, got {answer}"
    assert answer.reason in {r.value for r in reasons}, answer


def expect_settlement(answer: object) -> ppb.Settlement:
    assert not isinstance(answer, Refusal), answer
    return answer.settlement


class SettlementLifecycle(RuleBasedStateMachine):
    def __init__(self, harness: PaymentHarness) -> None:
        super().__init__()
        self.harness = harness
        self.stub = harness.stub
        self.clock = harness.binding.clock
        self.family: PaymentFamily | None = None
        self.balance = 0
        self.held = 0
        self.credited = 0
        self.settlements: list[Modelled] = []

    # Setup -----------------------------------------------------------------------------

    @initialize(initial=st.integers(1_000, 60_000))
    def a_fresh_family(self, initial: int) -> None:
        self.family = PaymentFamily(self.harness, mother_fen=initial, father_fen=0)
        self.balance = self.credited = initial

    @property
    def available(self) -> int:
        return self.balance - self.held

    def check_legs(self, answer: ppb.Settlement, bill: int, leg: int) -> None:
        assert answer.bill.self_pay_fen == bill
        assert [(x.payer_id_number, x.source, x.amount_fen) for x in answer.legs] == (
            [(mask_id_number(self.family.mother.id_number), ppb.PAYMENT_SOURCE_MUTUAL_AID, leg)] if leg else []
        )
        assert answer.cash_pay_fen == bill - leg

    # Holds and settlements --------------------------------------------------------------

    @rule(
        amount=st.integers(1, 40_000),
        hold=st.sampled_from([timedelta(minutes=5), DEFAULT_HOLD, timedelta(hours=1), None]),
        refuse_cash_part=st.booleans(),
    )
    def authorize(self, amount: int, hold: timedelta | None, refuse_cash_part: bool) -> None:
        request = papi.AuthorizeSettlementRequest(
            request_id=request_id(), bill=self.family.bill(amount, refuse_cash_part=refuse_cash_part)
        )
        now = self.clock.now()
        if hold is not None:
            request.expire_time.FromDatetime(now + hold)
        answer = call(self.stub.AuthorizeSettlement, request)
        leg = min(self.available, amount)
        if refuse_cash_part and leg < amount:
            expect_refusal(answer, Reason.INSUFFICIENT_FUNDS)
            return
        settlement = expect_settlement(answer)
        assert settlement.state == AUTHORIZED
        self.check_legs(settlement, amount, leg)
        assert settlement.expire_time.ToDatetime(tzinfo=now.tzinfo) == now + (hold or DEFAULT_HOLD)
        self.held += leg
        self.settlements.append(
            Modelled(settlement.settlement_id, amount, leg, now + (hold or DEFAULT_HOLD), AUTHORIZED)
        )

    @rule(amount=st.integers(1, 40_000), refuse_cash_part=st.booleans())
    def settle(self, amount: int, refuse_cash_part: bool) -> None:
        now = self.clock.now()
        request = papi.SettleRequest(
            request_id=request_id(), bill=self.family.bill(amount, refuse_cash_part=refuse_cash_part)
        )
        answer = call(self.stub.Settle, request)
        leg = min(self.available, amount)
        if refuse_cash_part and leg < amount:
            expect_refusal(answer, Reason.INSUFFICIENT_FUNDS)
            return
        settlement = expect_settlement(answer)
        assert settlement.state == CAPTURED
        self.check_legs(settlement, amount, leg)
        assert settlement.captured_fen == leg == sum(x.captured_fen for x in settlement.legs)
        self.balance -= leg
        self.settlements.append(Modelled(settlement.settlement_id, amount, leg, now + DEFAULT_HOLD, CAPTURED, leg))

    def open_holds(self) -> list[Modelled]:
        return [s for s in self.settlements if s.state == AUTHORIZED]

    def settled(self) -> list[Modelled]:
        return [s for s in self.settlements if s.state == CAPTURED]

    @precondition(lambda self: self.open_holds())
    @rule(data=st.data())
    def capture_an_open_hold(self, data: st.DataObject) -> None:
        self.capture(data, data.draw(st.sampled_from(self.open_holds()), label="open hold"))

    @precondition(lambda self: self.settlements)
    @rule(data=st.data())
    def capture_any_settlement(self, data: st.DataObject) -> None:
        self.capture(data, data.draw(st.sampled_from(self.settlements), label="settlement"))

    def capture(self, data: st.DataObject, target: Modelled) -> None:
        """All (0), part, or more than the authorized bill."""
        bill = target.bill_fen
        amount = data.draw(
            st.one_of(st.just(0), st.integers(1, bill), st.integers(bill + 1, 2 * bill)), label="amount_fen"
        )
        answer = call(
            self.stub.CaptureSettlement,
            papi.CaptureSettlementRequest(
                request_id=request_id(), settlement_id=target.settlement_id, amount_fen=amount
            ),
        )
        if target.state == AUTHORIZED:  # never past its expiry here: pass_time expires those at once
            if amount > bill:
                expect_refusal(answer, Reason.AMOUNT_EXCEEDS_HOLD)
                return
            final = amount or bill
            settlement = expect_settlement(answer)
            assert settlement.state == CAPTURED
            # The cash part shrinks first, then the leg: the leg pays min(held, final).
            captured = min(target.leg_fen, final)
            assert settlement.captured_fen == captured == sum(x.captured_fen for x in settlement.legs)
            assert settlement.cash_pay_fen == final - captured
            self.held -= target.leg_fen
            self.balance -= captured
            target.state, target.captured_fen = CAPTURED, captured
        elif target.state == CAPTURED:
            expect_refusal(answer, Reason.ALREADY_CAPTURED)
        elif target.state == RELEASED:
            expect_refusal(answer, Reason.ALREADY_RELEASED)
        elif target.state == EXPIRED:
            expect_refusal(answer, Reason.HOLD_EXPIRED)
        else:  # REFUNDED
            expect_refusal(answer, Reason.ALREADY_REFUNDED)

    @precondition(lambda self: self.open_holds())
    @rule(data=st.data())
    def release_an_open_hold(self, data: st.DataObject) -> None:
        self.release(data.draw(st.sampled_from(self.open_holds()), label="open hold"))

    @precondition(lambda self: self.settlements)
    @rule(data=st.data())
    def release_any_settlement(self, data: st.DataObject) -> None:
        self.release(data.draw(st.sampled_from(self.settlements), label="settlement"))

    def release(self, target: Modelled) -> None:
        answer = call(
            self.stub.ReleaseSettlement,
            papi.ReleaseSettlementRequest(request_id=request_id(), settlement_id=target.settlement_id),
        )
        if target.state == AUTHORIZED:
            assert expect_settlement(answer).state == RELEASED
            self.held -= target.leg_fen
            target.state = RELEASED
        elif target.state in (CAPTURED, REFUNDED):
            expect_refusal(answer, Reason.ALREADY_CAPTURED)
        else:
            expect_refusal(answer, Reason.ALREADY_RELEASED)

    @precondition(lambda self: self.settled())
    @rule(data=st.data())
    def refund_a_captured_settlement(self, data: st.DataObject) -> None:
        self.refund(data.draw(st.sampled_from(self.settled()), label="captured settlement"))

    @precondition(lambda self: self.settlements)
    @rule(data=st.data())
    def refund_any_settlement(self, data: st.DataObject) -> None:
        self.refund(data.draw(st.sampled_from(self.settlements), label="settlement"))

    def refund(self, target: Modelled) -> None:
        answer = call(
            self.stub.RefundSettlement,
            papi.RefundSettlementRequest(request_id=request_id(), settlement_id=target.settlement_id),
        )
        if target.state == CAPTURED:
            settlement = expect_settlement(answer)
            assert settlement.state == REFUNDED
            assert settlement.refunded_fen == target.captured_fen
            self.balance += target.captured_fen
            target.state = REFUNDED
        elif target.state == REFUNDED:
            expect_refusal(answer, Reason.ALREADY_REFUNDED)
        else:
            expect_refusal(answer, Reason.NOT_CAPTURED)

    # Money in, time passing -------------------------------------------------------------

    @rule(amount=st.integers(1, 30_000))
    def credit(self, amount: int) -> None:
        account = self.family.credit(self.family.mother, amount)
        self.balance += amount
        self.credited += amount
        assert account.balance_fen == self.balance

    @rule(step=st.sampled_from([timedelta(minutes=1), timedelta(minutes=5), DEFAULT_HOLD, timedelta(minutes=61)]))
    def pass_time(self, step: timedelta) -> None:
        """Moves the clock; every hold now past its expiry is gone. The sweeper may already have
        released it (state EXPIRED); otherwise a capture finds it expired, releases it and says so."""
        now = self.clock.advance(step)
        for target in self.settlements:
            if target.state != AUTHORIZED or now < target.expire_time:
                continue
            answer = call(
                self.stub.CaptureSettlement,
                papi.CaptureSettlementRequest(request_id=request_id(), settlement_id=target.settlement_id),
            )
            expect_refusal(answer, Reason.HOLD_EXPIRED)
            self.held -= target.leg_fen
            target.state = EXPIRED

    # Invariants -------------------------------------------------------------------------

    @invariant()
    def the_account_is_the_models(self) -> None:
        if self.family is None:
            return
        account = self.family.account(self.family.mother)
        assert (account.balance_fen, account.held_fen) == (self.balance, self.held)
        assert account.available_fen == self.balance - self.held >= 0

    @invariant()
    def money_is_conserved(self) -> None:
        if self.family is None:
            return
        taken = sum(s.net_taken_fen for s in self.settlements)
        assert self.credited - taken == self.balance
        statement = self.stub.ListStatement(
            papi.ListStatementRequest(
                id_number=self.family.mother.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT, page_size=500
            ),
            timeout=TIMEOUT,
        )
        assert not statement.next_page_token
        lines = statement.lines
        credited = sum(x.amount_fen for x in lines if x.purpose == ppb.MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION)
        assert credited == self.credited
        assert sum(x.amount_fen for x in lines) == self.balance
        if lines:
            assert lines[0].balance_after_fen == self.balance  # newest first

    @invariant()
    def the_ledger_is_balanced(self) -> None:
        ledger = self.stub.CheckLedger(papi.CheckLedgerRequest(), timeout=TIMEOUT)
        assert ledger.balanced, list(ledger.problems)

    def teardown(self) -> None:
        """Releases every hold still open, so that a later example's clock never finds it stale
        (even when this example failed half-way), then checks every settlement is the model's."""
        real = {}
        for target in self.settlements:
            real[target.settlement_id] = self.stub.GetSettlement(
                papi.GetSettlementRequest(settlement_id=target.settlement_id), timeout=TIMEOUT
            ).settlement
            if real[target.settlement_id].state == AUTHORIZED:
                call(
                    self.stub.ReleaseSettlement,
                    papi.ReleaseSettlementRequest(request_id=request_id(), settlement_id=target.settlement_id),
                )
        for target in self.settlements:
            assert real[target.settlement_id].state == target.state, target
            if target.state in (CAPTURED, REFUNDED):
                assert real[target.settlement_id].captured_fen == target.captured_fen, target


def test_the_settlement_lifecycle_follows_the_model(payment_service: PaymentHarness) -> None:
    run_state_machine_as_test(
        lambda: SettlementLifecycle(payment_service),
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            database=None,
        ),
    )
