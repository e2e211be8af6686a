"""Holds and settlements under real concurrency.

Every race here fires real gRPC calls at the payment service, each caller on a
channel of its own, released together by a barrier, on SQLite and PostgreSQL:

- many settlements drawing on one grantor never overdraw him or her, and the
  money that leaves the account is exactly what the settlements say they took;
- the Jepsen "bank" check: a seeded random mix of authorizations, partial
  captures, releases, refunds, settlements and clock-driven expiry over several
  families conserves money, leaves no account negative and no hold open past
  its expiry, and keeps the journal balanced;
- regression tests for the classic hold bugs, each named by what must hold;
- concurrent retries of one Settle with one request_id settle it once;
- the expiry sweeper racing callers that capture or release the expired holds.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial

import grpc
import pytest
from google.protobuf.message import Message

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.database import create_database_engine
from services.common.runner import UseCaseRunner
from services.payment.app import sweep_once
from services.payment.entrypoints.grpc_servicer import ERROR_DOMAIN
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import Reason
from shared.privacy import mask_id_number
from tests.conftest import Databases, PaymentHarness
from tests.helpers import Refusal, refusal_of, request_id
from tests.payment_helpers import PaymentFamily

TIMEOUT = 60
AUTHORIZED = ppb.SETTLEMENT_STATE_AUTHORIZED
Call = Callable[[payment_grpc.PaymentServiceStub], Message | None]

pytestmark = pytest.mark.slow


# Racing ------------------------------------------------------------------------------------


def race(harness: PaymentHarness, calls: list[Call]) -> list[Message | Refusal | None]:
    """Runs every call at once, each from its own thread over its own channel; returns
    each answer or refusal in the order of the calls."""
    barrier = threading.Barrier(len(calls))

    def run(call: Call) -> Message | Refusal | None:
        stub = harness.fresh_stub()
        try:
            barrier.wait(timeout=TIMEOUT)
            try:
                return call(stub)
            except grpc.RpcError as error:
                return refusal_of(error)
        finally:
            stub.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def with_retries(method: Callable[..., Message], request: Message) -> Message:
    """Sends the request; when the payment service could not ask the binding service who may
    pay in time (it allows 2 s, a loaded test machine can take longer), sends the same request,
    with the same request_id, again, as the refusal says to."""
    for _ in range(4):
        try:
            return method(request, timeout=TIMEOUT)
        except grpc.RpcError as error:
            if refusal_of(error).reason != Reason.BINDING_SERVICE_UNAVAILABLE.value:
                raise
    return method(request, timeout=TIMEOUT)


def settle_call(family: PaymentFamily, amount: int, key: str | None = None, refuse_cash_part: bool = False) -> Call:
    request = papi.SettleRequest(
        request_id=key or request_id(), bill=family.bill(amount, refuse_cash_part=refuse_cash_part)
    )
    return lambda stub: with_retries(stub.Settle, request).settlement


def authorize_call(
    family: PaymentFamily, amount: int, refuse_cash_part: bool = False, expire_time: datetime | None = None
) -> Call:
    request = papi.AuthorizeSettlementRequest(
        request_id=request_id(), bill=family.bill(amount, refuse_cash_part=refuse_cash_part)
    )
    if expire_time is not None:
        request.expire_time.FromDatetime(expire_time)
    return lambda stub: with_retries(stub.AuthorizeSettlement, request).settlement


def authorize(harness: PaymentHarness, family: PaymentFamily, amount: int, **options: object) -> ppb.Settlement:
    return authorize_call(family, amount, **options)(harness.stub)


def settle(harness: PaymentHarness, family: PaymentFamily, amount: int, **options: object) -> ppb.Settlement:
    return settle_call(family, amount, **options)(harness.stub)


def capture_call(settlement_id: str, amount: int = 0) -> Call:
    request = papi.CaptureSettlementRequest(request_id=request_id(), settlement_id=settlement_id, amount_fen=amount)
    return lambda stub: stub.CaptureSettlement(request, timeout=TIMEOUT).settlement


def release_call(settlement_id: str) -> Call:
    request = papi.ReleaseSettlementRequest(request_id=request_id(), settlement_id=settlement_id)
    return lambda stub: stub.ReleaseSettlement(request, timeout=TIMEOUT).settlement


def refund_call(settlement_id: str) -> Call:
    request = papi.RefundSettlementRequest(request_id=request_id(), settlement_id=settlement_id)
    return lambda stub: stub.RefundSettlement(request, timeout=TIMEOUT).settlement


def successes(answers: list[Message | Refusal | None]) -> list[ppb.Settlement]:
    return [a for a in answers if isinstance(a, ppb.Settlement)]


def refusals(answers: list[Message | Refusal | None]) -> list[Refusal]:
    return [a for a in answers if isinstance(a, Refusal)]


# Checks --------------------------------------------------------------------------------------


def one_grantor_family(harness: PaymentHarness, balance_fen: int) -> PaymentFamily:
    """Mother and father are both bound to the child, but only the mother has an account."""
    family = PaymentFamily(harness, mother_fen=balance_fen, father_fen=0)
    with pytest.raises(grpc.RpcError) as raised:
        family.account(family.father)
    assert refusal_of(raised.value).reason == Reason.ACCOUNT_NOT_FOUND.value
    return family


def settlement(harness: PaymentHarness, settlement_id: str) -> ppb.Settlement:
    return harness.stub.GetSettlement(
        papi.GetSettlementRequest(settlement_id=settlement_id), timeout=TIMEOUT
    ).settlement


def settlements(harness: PaymentHarness, settlement_ids: list[str]) -> list[ppb.Settlement]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(partial(settlement, harness), settlement_ids))


def assert_sound(account: ppb.Account) -> None:
    assert account.balance_fen >= 0, account
    assert account.held_fen >= 0, account
    assert account.available_fen >= 0, account
    assert account.available_fen == account.balance_fen - account.held_fen, account


def assert_adds_up(answer: ppb.Settlement) -> None:
    """Held legs and cash pay the bill; captured legs and cash pay at most the bill."""
    if answer.state == AUTHORIZED:
        assert sum(leg.amount_fen for leg in answer.legs) + answer.cash_pay_fen == answer.bill.self_pay_fen, answer
    if answer.state == ppb.SETTLEMENT_STATE_CAPTURED:
        assert answer.captured_fen == sum(leg.captured_fen for leg in answer.legs), answer
        assert all(0 <= leg.captured_fen <= leg.amount_fen for leg in answer.legs), answer
        assert 0 < answer.captured_fen + answer.cash_pay_fen <= answer.bill.self_pay_fen, answer


def assert_history_never_overdrawn(harness: PaymentHarness, who: object) -> None:
    """The account's statement is one serial history in which the balance never went below zero."""
    lines = harness.stub.ListStatement(
        papi.ListStatementRequest(
            id_number=who.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT, page_size=500
        ),
        timeout=TIMEOUT,
    ).lines  # newest first
    assert all(line.balance_after_fen >= 0 for line in lines)
    for newer, older in itertools.pairwise(lines):
        assert newer.balance_after_fen == older.balance_after_fen + newer.amount_fen
    assert lines[-1].balance_after_fen == lines[-1].amount_fen


def assert_ledger_balanced(harness: PaymentHarness) -> None:
    ledger = harness.stub.CheckLedger(papi.CheckLedgerRequest(), timeout=TIMEOUT)
    assert ledger.balanced, list(ledger.problems)
    assert not ledger.problems


def net_paid_by(answers: list[ppb.Settlement], payer_id_number: str) -> int:
    """What the payer's legs of these settlements took and did not give back (legs name a
    relative masked, as the hospital sees them)."""
    seen = mask_id_number(payer_id_number)
    return sum(leg.captured_fen - leg.refunded_fen for s in answers for leg in s.legs if leg.payer_id_number == seen)


# Many settlements, one grantor -------------------------------------------------------------


def test_fifty_concurrent_settlements_never_overdraw_the_one_grantor_and_take_exactly_what_left(
    payment_service: PaymentHarness,
) -> None:
    initial = 100_000
    family = one_grantor_family(payment_service, initial)
    rng = random.Random(20260302)
    bills = [rng.randrange(1_000, 6_000) for _ in range(50)]
    assert sum(bills) > initial  # the balance covers only some of them

    answers = race(payment_service, [settle_call(family, amount) for amount in bills])

    assert not refusals(answers), refusals(answers)
    settled = successes(answers)
    for bill, answer in zip(bills, settled, strict=True):
        assert answer.state == ppb.SETTLEMENT_STATE_CAPTURED
        assert answer.bill.self_pay_fen == bill
        assert sum(leg.amount_fen for leg in answer.legs) + answer.cash_pay_fen == bill
        assert sum(leg.captured_fen for leg in answer.legs) + answer.cash_pay_fen == bill
        assert all(leg.payer_id_number == mask_id_number(family.mother.id_number) for leg in answer.legs)
        assert all(leg.source == ppb.PAYMENT_SOURCE_MUTUAL_AID for leg in answer.legs)
        assert answer.mutual_aid_pay_fen == answer.captured_fen
    mother = family.account(family.mother)
    assert_sound(mother)
    assert mother.held_fen == 0
    taken = sum(s.mutual_aid_pay_fen for s in settled)
    assert taken == initial - mother.balance_fen
    # Each settlement takes what is available up to its bill, and the bills exceed the balance.
    assert mother.balance_fen == 0
    assert sum(s.cash_pay_fen for s in settled) == sum(bills) - initial
    assert_history_never_overdrawn(payment_service, family.mother)
    assert_ledger_balanced(payment_service)


def test_fifty_concurrent_settlements_refusing_a_cash_part_succeed_only_as_far_as_the_balance_goes(
    payment_service: PaymentHarness,
) -> None:
    initial, amount = 100_000, 3_000
    family = one_grantor_family(payment_service, initial)

    answers = race(payment_service, [settle_call(family, amount, refuse_cash_part=True) for _ in range(50)])

    settled, refused = successes(answers), refusals(answers)
    assert len(settled) * amount <= initial
    assert len(settled) == initial // amount  # the writes serialize: every one that fits succeeds
    assert {r.reason for r in refused} == {Reason.INSUFFICIENT_FUNDS.value}
    assert {r.code for r in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    for answer in settled:
        assert answer.cash_pay_fen == 0
        assert answer.captured_fen == amount
    mother = family.account(family.mother)
    assert_sound(mother)
    assert mother.held_fen == 0
    assert mother.balance_fen == initial - len(settled) * amount
    assert_history_never_overdrawn(payment_service, family.mother)
    assert_ledger_balanced(payment_service)


# The bank ------------------------------------------------------------------------------------


class Bank:
    """Several families and what was credited to them; every settlement ever created."""

    def __init__(self, harness: PaymentHarness, families: int, rng: random.Random) -> None:
        self.harness = harness
        self.families: list[PaymentFamily] = []
        self.credited_to: dict[str, int] = {}
        for number in range(families):
            mother, father = rng.randrange(20_000, 80_000), 0 if number == 0 else rng.randrange(0, 40_000)
            family = PaymentFamily(harness, mother_fen=mother, father_fen=father)
            self.families.append(family)
            self.credited_to[family.mother.id_number] = mother
            self.credited_to[family.father.id_number] = father
        self.credited = sum(self.credited_to.values())
        self.settlement_ids: set[str] = set()

    def grantors(self) -> list[tuple[PaymentFamily, object]]:
        return [(f, who) for f in self.families for who in (f.mother, f.father)]

    def accounts(self) -> list[ppb.Account]:
        found = []
        for family, who in self.grantors():
            try:
                found.append(family.account(who))
            except grpc.RpcError as error:
                assert refusal_of(error).reason == Reason.ACCOUNT_NOT_FOUND.value
        return found


def test_bank_concurrent_holds_captures_releases_refunds_and_expiry_conserve_money(
    payment_service: PaymentHarness,
) -> None:
    rng = random.Random(3_4_2026)
    clock = payment_service.binding.clock
    bank = Bank(payment_service, families=4, rng=rng)
    allowed = {
        Reason.ALREADY_CAPTURED.value,
        Reason.ALREADY_RELEASED.value,
        Reason.ALREADY_REFUNDED.value,
        Reason.NOT_CAPTURED.value,
        Reason.HOLD_EXPIRED.value,
        Reason.AMOUNT_EXCEEDS_HOLD.value,
    }
    seen: set[str] = set()

    def remember(answers: list[Message | Refusal | None]) -> list[ppb.Settlement]:
        for answer in answers:
            if isinstance(answer, ppb.Settlement):
                assert answer.settlement_id
                assert_adds_up(answer)
                bank.settlement_ids.add(answer.settlement_id)
            elif isinstance(answer, Refusal):
                assert answer.reason in allowed, answer
                assert answer.code == grpc.StatusCode.FAILED_PRECONDITION, answer
                seen.add(answer.reason)
        return successes(answers)

    for round_no in range(3):
        # Targets for this round, placed concurrently too: holds (some short-lived) and settlements.
        setup: list[Call] = []
        for family in bank.families:
            for minutes in rng.sample([3, 4, 8, 30], 3):
                expiry = clock.now() + timedelta(minutes=minutes)
                setup.append(authorize_call(family, rng.randrange(500, 30_000), expire_time=expiry))
            setup.append(settle_call(family, rng.randrange(500, 20_000)))
        placed = remember(race(payment_service, setup))
        open_holds = [s for s in placed if s.state == ppb.SETTLEMENT_STATE_AUTHORIZED]
        captured = [s for s in placed if s.state == ppb.SETTLEMENT_STATE_CAPTURED]

        calls: list[Call] = []
        for _ in range(36):
            family = rng.choice(bank.families)
            kind = rng.choice(["authorize", "settle", "capture", "capture", "release", "refund"])
            if kind == "authorize":
                calls.append(authorize_call(family, rng.randrange(500, 30_000)))
            elif kind == "settle":
                calls.append(settle_call(family, rng.randrange(500, 20_000)))
            elif kind == "capture":
                hold = rng.choice(open_holds)
                amount = rng.choice([0, rng.randrange(1, hold.bill.self_pay_fen + 1), hold.bill.self_pay_fen + 1])
                calls.append(capture_call(hold.settlement_id, amount))
            elif kind == "release":
                calls.append(release_call(rng.choice(open_holds).settlement_id))
            else:
                calls.append(refund_call(rng.choice(captured + open_holds).settlement_id))

        def advance(_stub: payment_grpc.PaymentServiceStub, minutes: int = 5 + round_no) -> None:
            clock.advance(timedelta(minutes=minutes))  # expires the shortest holds mid-race

        calls.insert(rng.randrange(len(calls)), advance)
        remember(race(payment_service, calls))
        for account in bank.accounts():
            assert_sound(account)

    # Past every expiry every hold still open is given back, by the server's sweeper (every 5 s) or
    # at once when it is read; a capture then is refused. (Capturing them while the sweeper runs
    # can deadlock: see the sweeper test.)
    ids = sorted(bank.settlement_ids)
    still_open = [s.settlement_id for s in settlements(payment_service, ids) if s.state == AUTHORIZED]
    assert still_open  # holds are left to lapse
    clock.advance(timedelta(hours=2))
    deadline = time.monotonic() + 15
    while any(s.state == AUTHORIZED for s in settlements(payment_service, still_open)):
        assert time.monotonic() < deadline, "the sweeper did not release the expired holds within 15 s"
        time.sleep(0.25)
    late = race(payment_service, [capture_call(settlement_id) for settlement_id in still_open])
    assert {r.reason for r in refusals(late)} == {Reason.HOLD_EXPIRED.value}
    assert not successes(late)

    final = settlements(payment_service, ids)
    states = {s.state for s in final}
    assert AUTHORIZED not in states
    # The mix really happened: holds expired, were captured, released and refunded, and callers collided.
    assert {
        ppb.SETTLEMENT_STATE_EXPIRED,
        ppb.SETTLEMENT_STATE_CAPTURED,
        ppb.SETTLEMENT_STATE_RELEASED,
        ppb.SETTLEMENT_STATE_REFUNDED,
    } <= states
    assert seen & {Reason.ALREADY_CAPTURED.value, Reason.ALREADY_RELEASED.value, Reason.HOLD_EXPIRED.value}
    accounts = bank.accounts()
    for account in accounts:
        assert_sound(account)
        assert account.held_fen == 0  # no hold outlives its expiry
    receivable = sum(leg.captured_fen - leg.refunded_fen for s in final for leg in s.legs)
    assert sum(a.balance_fen for a in accounts) + receivable == bank.credited
    # Per grantor: what left the account is what that grantor's legs took.
    balances = {a.id_number: a.balance_fen for a in accounts}
    for who, credited in bank.credited_to.items():
        assert balances.get(who, 0) == credited - net_paid_by(final, who), who
    for _family, who in bank.grantors():
        if who.id_number in balances:
            assert_history_never_overdrawn(payment_service, who)
    assert_ledger_balanced(payment_service)


# Regressions: the classic hold bugs -----------------------------------------------------------


def test_a_held_amount_counts_against_a_later_hold_at_once(payment_service: PaymentHarness) -> None:
    family = one_grantor_family(payment_service, 100_000)
    first = authorize(payment_service, family, 60_000)
    assert first.legs[0].amount_fen == 60_000
    assert family.account(family.mother).available_fen == 40_000
    second = authorize(payment_service, family, 60_000)
    assert [leg.amount_fen for leg in second.legs] == [40_000]
    assert second.cash_pay_fen == 20_000
    third = authorize(payment_service, family, 10_000)
    assert not third.legs and third.cash_pay_fen == 10_000
    mother = family.account(family.mother)
    assert (mother.balance_fen, mother.held_fen, mother.available_fen) == (100_000, 100_000, 0)
    assert_ledger_balanced(payment_service)


def test_two_concurrent_authorizations_against_one_grantor_never_hold_more_than_the_balance(
    payment_service: PaymentHarness,
) -> None:
    family = one_grantor_family(payment_service, 100_000)
    strict = race(payment_service, [authorize_call(family, 60_000, refuse_cash_part=True) for _ in range(2)])
    assert len(successes(strict)) == 1
    assert [r.reason for r in refusals(strict)] == [Reason.INSUFFICIENT_FUNDS.value]
    assert family.account(family.mother).held_fen == 60_000

    loose = race(payment_service, [authorize_call(family, 30_000) for _ in range(2)])
    held = sorted(sum(leg.amount_fen for leg in s.legs) for s in successes(loose))
    assert held == [10_000, 30_000]
    mother = family.account(family.mother)
    assert_sound(mother)
    assert (mother.balance_fen, mother.held_fen) == (100_000, 100_000)
    assert_ledger_balanced(payment_service)


def test_releasing_a_hold_twice_concurrently_releases_it_once(payment_service: PaymentHarness) -> None:
    family = one_grantor_family(payment_service, 100_000)
    other = authorize(payment_service, family, 20_000)
    hold = authorize(payment_service, family, 30_000)
    answers = race(payment_service, [release_call(hold.settlement_id) for _ in range(2)])
    assert [s.state for s in successes(answers)] == [ppb.SETTLEMENT_STATE_RELEASED]
    assert [r.reason for r in refusals(answers)] == [Reason.ALREADY_RELEASED.value]
    mother = family.account(family.mother)
    assert (mother.balance_fen, mother.held_fen, mother.available_fen) == (100_000, 20_000, 80_000)
    assert settlement(payment_service, other.settlement_id).state == ppb.SETTLEMENT_STATE_AUTHORIZED
    assert_ledger_balanced(payment_service)


def test_capturing_a_refused_released_or_reversed_hold_is_refused_and_moves_nothing(
    payment_service: PaymentHarness,
) -> None:
    family = one_grantor_family(payment_service, 100_000)
    with pytest.raises(grpc.RpcError) as raised:
        authorize(payment_service, family, 150_000, refuse_cash_part=True)
    assert refusal_of(raised.value).reason == Reason.INSUFFICIENT_FUNDS.value
    assert family.account(family.mother).held_fen == 0  # the refused authorization held nothing

    released = authorize(payment_service, family, 30_000)
    family.release(released.settlement_id)
    key = request_id()
    reversed_ = with_retries(
        payment_service.stub.AuthorizeSettlement,
        papi.AuthorizeSettlementRequest(request_id=key, bill=family.bill(20_000)),
    ).settlement
    payment_service.stub.ReverseRequest(
        papi.ReverseRequestRequest(request_id=request_id(), original_request_id=key), timeout=TIMEOUT
    )
    for settlement_id, reason in [
        (released.settlement_id, Reason.ALREADY_RELEASED),
        (reversed_.settlement_id, Reason.ALREADY_RELEASED),
        ("no-such-settlement", Reason.SETTLEMENT_NOT_FOUND),
    ]:
        for amount in (0, 10_000):
            with pytest.raises(grpc.RpcError) as raised:
                family.capture(settlement_id, amount)
            assert refusal_of(raised.value).reason == reason.value, settlement_id
    mother = family.account(family.mother)
    assert (mother.balance_fen, mother.held_fen) == (100_000, 0)
    assert settlement(payment_service, released.settlement_id).captured_fen == 0
    assert_ledger_balanced(payment_service)


def test_two_concurrent_partial_captures_of_one_settlement_capture_once_and_move_money_once(
    payment_service: PaymentHarness,
) -> None:
    family = one_grantor_family(payment_service, 100_000)
    hold = authorize(payment_service, family, 50_000)
    answers = race(
        payment_service, [capture_call(hold.settlement_id, 30_000), capture_call(hold.settlement_id, 20_000)]
    )
    won = successes(answers)
    assert len(won) == 1
    assert [r.reason for r in refusals(answers)] == [Reason.ALREADY_CAPTURED.value]
    amount = won[0].captured_fen
    assert amount in (30_000, 20_000)
    mother = family.account(family.mother)
    assert (mother.balance_fen, mother.held_fen) == (100_000 - amount, 0)
    assert settlement(payment_service, hold.settlement_id).captured_fen == amount
    assert_ledger_balanced(payment_service)


def test_a_capture_after_expiry_is_refused_hold_expired_and_the_hold_is_gone(payment_service: PaymentHarness) -> None:
    family = one_grantor_family(payment_service, 100_000)
    clock = payment_service.binding.clock
    hold = authorize(payment_service, family, 40_000, expire_time=clock.now() + timedelta(minutes=10))
    assert family.account(family.mother).held_fen == 40_000
    clock.advance(timedelta(minutes=10))  # at the expiry instant the hold is gone
    for amount in (0, 40_000, 1):
        with pytest.raises(grpc.RpcError) as raised:
            family.capture(hold.settlement_id, amount)
        assert refusal_of(raised.value).reason == Reason.HOLD_EXPIRED.value
    assert settlement(payment_service, hold.settlement_id).state == ppb.SETTLEMENT_STATE_EXPIRED
    mother = family.account(family.mother)
    assert (mother.balance_fen, mother.held_fen, mother.available_fen) == (100_000, 0, 100_000)
    with pytest.raises(grpc.RpcError) as raised:
        family.release(hold.settlement_id)
    assert refusal_of(raised.value).reason == Reason.ALREADY_RELEASED.value
    assert_ledger_balanced(payment_service)


def test_concurrent_capture_and_release_of_one_settlement_have_exactly_one_winner(
    payment_service: PaymentHarness,
) -> None:
    family = one_grantor_family(payment_service, 100_000)
    expected_balance = 100_000
    for round_no in range(6):
        hold = authorize(payment_service, family, 10_000)
        calls = [capture_call(hold.settlement_id, 7_000), release_call(hold.settlement_id)]
        if round_no % 2:
            calls.reverse()
        answers = race(payment_service, calls)
        won, lost = successes(answers), refusals(answers)
        assert len(won) == 1 and len(lost) == 1, answers
        final = settlement(payment_service, hold.settlement_id)
        assert final.state == won[0].state
        if won[0].state == ppb.SETTLEMENT_STATE_CAPTURED:
            assert lost[0].reason == Reason.ALREADY_CAPTURED.value
            expected_balance -= 7_000
        else:
            assert won[0].state == ppb.SETTLEMENT_STATE_RELEASED
            assert lost[0].reason == Reason.ALREADY_RELEASED.value
        mother = family.account(family.mother)
        assert (mother.balance_fen, mother.held_fen) == (expected_balance, 0)
    assert_ledger_balanced(payment_service)


def test_refunding_a_settlement_twice_concurrently_refunds_it_once(payment_service: PaymentHarness) -> None:
    family = one_grantor_family(payment_service, 100_000)
    settled = settle(payment_service, family, 25_000)
    assert family.account(family.mother).balance_fen == 75_000
    answers = race(payment_service, [refund_call(settled.settlement_id) for _ in range(3)])
    assert [s.state for s in successes(answers)] == [ppb.SETTLEMENT_STATE_REFUNDED]
    assert [r.reason for r in refusals(answers)] == [Reason.ALREADY_REFUNDED.value] * 2
    mother = family.account(family.mother)
    assert (mother.balance_fen, mother.held_fen) == (100_000, 0)
    assert_ledger_balanced(payment_service)


# Idempotent retries -------------------------------------------------------------------------


def test_ten_concurrent_retries_of_one_settle_settle_it_once(payment_service: PaymentHarness) -> None:
    family = one_grantor_family(payment_service, 100_000)
    key = request_id()
    answers = race(payment_service, [settle_call(family, 12_345, key=key) for _ in range(10)])
    assert not refusals(answers), refusals(answers)
    ids = {s.settlement_id for s in successes(answers)}
    assert len(ids) == 1
    assert all(s == successes(answers)[0] for s in successes(answers))
    mother = family.account(family.mother)
    assert (mother.balance_fen, mother.held_fen) == (100_000 - 12_345, 0)
    statement = payment_service.stub.ListStatement(
        papi.ListStatementRequest(id_number=family.mother.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT),
        timeout=TIMEOUT,
    )
    assert [line.purpose for line in statement.lines].count(ppb.MOVEMENT_PURPOSE_SETTLEMENT) == 1
    assert_ledger_balanced(payment_service)


# The sweeper against the callers ------------------------------------------------------------


def payment_database_url(databases: Databases) -> str:
    """The URL the fixture's payment server uses (asking `databases.url` again would empty it)."""
    if databases.backend == "sqlite":
        return f"sqlite:///{databases.tmp_path}/payment.db"
    return databases.cluster.created["payment"]


def test_the_sweeper_racing_captures_and_releases_of_expired_holds_never_fails_a_caller(
    payment_service: PaymentHarness, databases: Databases, request: pytest.FixtureRequest
) -> None:
    """The server's sweeper runs every 5 s; here the same sweep_once runs at a moment of our
    choosing, against the same database, while callers capture and release the expired holds.
    (It once released every hold in one transaction and deadlocked with them on PostgreSQL.)"""
    clock = payment_service.binding.clock
    engine = create_database_engine(payment_database_url(databases), pool_size=2)
    runner = UseCaseRunner(partial(PaymentUnitOfWork, engine), clock, ERROR_DOMAIN, 1)
    sweeper_failures: list[str] = []

    def sweep(_stub: payment_grpc.PaymentServiceStub) -> None:
        try:
            sweep_once(runner, clock)
        except Exception as error:  # the server's sweeper logs this and tries again later
            sweeper_failures.append(f"{type(error).__name__}: {error}")

    try:
        family = one_grantor_family(payment_service, 100_000)
        for _ in range(8 if databases.backend == "postgresql" else 3):  # SQLite serializes: no cycle to find
            expiry = clock.now() + timedelta(minutes=10)
            holds = successes(
                race(payment_service, [authorize_call(family, 2_000, expire_time=expiry) for _ in range(12)])
            )
            assert family.account(family.mother).held_fen == 24_000
            clock.advance(timedelta(minutes=11))
            calls: list[Call] = [sweep]
            for number, hold in enumerate(holds):
                calls.append(capture_call(hold.settlement_id) if number % 2 else release_call(hold.settlement_id))
            answers = race(payment_service, calls)[1:]
            failed = [a for a in answers if isinstance(a, Refusal) and a.reason == "INTERNAL"]
            assert not failed, f"{len(failed)} callers got INTERNAL; the sweeper: {sweeper_failures}"
            for hold, answer in zip(holds, answers, strict=True):
                if isinstance(answer, Refusal):
                    assert answer.reason in (Reason.HOLD_EXPIRED.value, Reason.ALREADY_RELEASED.value), answer
                else:  # a release that came before the sweeper
                    assert answer.state == ppb.SETTLEMENT_STATE_RELEASED, answer
                assert settlement(payment_service, hold.settlement_id).state in (
                    ppb.SETTLEMENT_STATE_EXPIRED,
                    ppb.SETTLEMENT_STATE_RELEASED,
                )
            mother = family.account(family.mother)
            assert (mother.balance_fen, mother.held_fen) == (100_000, 0)  # released once, not twice
        assert_ledger_balanced(payment_service)
    finally:
        runner.close()
        engine.dispose()
