"""Faults where a payment node is down for a while and comes back: every saga finishes once it
is back, and every retry of a request gets the answer its first call got (or a retryable one)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import grpc
import pytest

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.common.converters import datetime_to_timestamp
from services.payment.verification import stand_in_token
from tests.helpers import binding_request, make_id_number, person, refusal_of, request_id
from tests.restartable_nodes import Restartable, restartable_nodes
from tests.test_cross_province import NANJING, CrossFamily, at_noon, family, with_grandfather_in_chengdu

__all__ = ["family"]  # the fixture


@pytest.fixture
def nodes(databases: Any, binding_service: Any, tmp_path: Any) -> Iterator[Restartable]:
    with restartable_nodes(databases, binding_service, tmp_path, sweep=0.05) as built:
        yield built


def saga_state(nodes: Restartable, transaction_id: str) -> str:
    rows = nodes.sql("east", "SELECT state FROM node_transactions WHERE transaction_id = :i", i=transaction_id)
    return rows[0][0]


def until(condition: Any, clock: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        clock.advance(timedelta(seconds=30))
        time.sleep(0.2)


@pytest.mark.parametrize("undo", ["RefundSettlement", "ReverseRequest"])
def test_an_undo_decided_before_a_down_node_got_the_commit_is_delivered_once_it_is_back(nodes, undo):
    """West holds the father's leg of a deposit; the capture is decided while west is down, then
    undone. Back up, west is sent the commit first, then the refund: nothing stays held."""
    family = CrossFamily(nodes)
    east, west = nodes.east.stub, nodes.west.stub
    authorize = papi.AuthorizeSettlementRequest(request_id=request_id(), bill=family.bill(50_000))
    authorize.expire_time.CopyFrom(datetime_to_timestamp(family.clock.now() + timedelta(days=30)))
    held = east.AuthorizeSettlement(authorize).settlement
    assert family.balance(west, family.father).held_fen == 40_000
    nodes.stop("west")
    capture_key = request_id()
    east.CaptureSettlement(
        papi.CaptureSettlementRequest(request_id=capture_key, settlement_id=held.settlement_id, amount_fen=50_000),
        timeout=30,
    )
    if undo == "RefundSettlement":
        east.RefundSettlement(
            papi.RefundSettlementRequest(request_id=request_id(), settlement_id=held.settlement_id), timeout=30
        )
    else:
        east.ReverseRequest(
            papi.ReverseRequestRequest(request_id=request_id(), original_request_id=capture_key), timeout=30
        )
    nodes.start("west")
    until(lambda: saga_state(nodes, held.settlement_id) == "REFUNDED", family.clock)
    father = family.balance(west, family.father)
    assert (father.balance_fen, father.held_fen) == (100_000, 0)
    assert saga_state(nodes, held.settlement_id) == "REFUNDED"


def test_a_node_keeping_two_provinces_of_a_settlement_captures_both_its_legs_when_it_asks_the_outcome_itself(nodes):
    """West holds an authorisation's legs of the father (Lanzhou, 62) and the grandfather (Chengdu,
    51). East captures it while west is down, and its recovery is off. West, back after its holds
    expired, asks east the outcome of each province's legs and captures both, as east decided."""
    nodes.stop("east")
    nodes.settings["east"] = replace(nodes.settings["east"], sweep_interval=0)
    nodes.start("east")
    family, grandfather = with_grandfather_in_chengdu(nodes, 100_000)
    east, west = nodes.east.stub, nodes.west.stub
    authorize = papi.AuthorizeSettlementRequest(request_id=request_id(), bill=family.bill(30_000))
    authorize.expire_time.CopyFrom(datetime_to_timestamp(family.clock.now() + timedelta(hours=1)))
    held = east.AuthorizeSettlement(authorize).settlement
    assert [family.balance(west, who).held_fen for who in (family.father, grandfather)] == [10_000, 19_999]
    nodes.stop("west")
    east.CaptureSettlement(
        papi.CaptureSettlementRequest(request_id=request_id(), settlement_id=held.settlement_id, amount_fen=30_000),
        timeout=30,
    )
    family.clock.advance(timedelta(days=1))
    nodes.start("west")
    until(lambda: family.balance(west, grandfather).held_fen == 0, family.clock)
    father, grandfather_now = (family.balance(west, who) for who in (family.father, grandfather))
    assert (father.balance_fen, father.held_fen) == (0, 0)
    assert (grandfather_now.balance_fen, grandfather_now.held_fen) == (80_001, 0)
    assert all(stub.CheckLedger(papi.CheckLedgerRequest()).balanced for stub in (east, west))


def pending_transfers_to_unactivated_wallets(nodes: Restartable, family: CrossFamily, count: int) -> None:
    """`count` Nanjing grantors each send 100 yuan to a relative's wallet in Lanzhou that is not
    activated yet: each transfer stays PENDING, its saga unfinished, refused by west every pass."""
    binding, east = family.binding, nodes.east.stub
    for n in range(count):
        birth = f"1970{(n // 28) % 12 + 1:02d}{n % 28 + 1:02d}"
        grantor = person(make_id_number("320102", birth, n), f"祖父{n}", admdvs="320100")
        child = person(make_id_number("620102", "2015" + birth[4:], n), f"孙{n}", admdvs="620100",
                       insurance_type=common.INSURANCE_TYPE_RESIDENT, has_personal_account=False)  # fmt: skip
        for who in (grantor, child):
            binding.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=who))
        binding.CreateBinding(binding_request(grantor, child))
        CrossFamily.credit(east, grantor, "320100", 50_000)
        answer = east.TransferToWallet(
            papi.TransferToWalletRequest(
                request_id=request_id(), grantor_id_number=grantor.id_number, beneficiary_id_number=child.id_number,
                amount_fen=10_000,
                verification=ppb.Verification(method=ppb.VERIFICATION_METHOD_FACE,
                                              token=stand_in_token(grantor.id_number, "FACE")),
            )
        )  # fmt: skip
        assert answer.transfer.state == ppb.TRANSFER_STATE_PENDING


def test_a_hundred_sagas_a_node_keeps_refusing_do_not_keep_recovery_from_the_rest(nodes):
    """Recovery reads the longest untried sagas first, and one tried in vain goes to the back."""
    family = CrossFamily(nodes)
    at_noon(family)
    pending_transfers_to_unactivated_wallets(nodes, family, 100)
    family.clock.advance(timedelta(minutes=5))
    east, west = nodes.east.stub, nodes.west.stub
    paid = east.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))).settlement
    assert family.balance(west, family.father).balance_fen == 80_000
    nodes.stop("west")
    east.RefundSettlement(
        papi.RefundSettlementRequest(request_id=request_id(), settlement_id=paid.settlement_id), timeout=30
    )
    nodes.start("west")
    until(lambda: family.balance(west, family.father).balance_fen == 100_000, family.clock, seconds=20)
    assert family.balance(west, family.father).balance_fen == 100_000
    assert saga_state(nodes, paid.settlement_id) == "REFUNDED"


def test_an_undo_sent_to_another_node_while_the_holder_is_down_is_retryable_and_then_applied_once(nodes):
    family = CrossFamily(nodes)
    paid = nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(5_000))).settlement
    undo = papi.RefundSettlementRequest(request_id=request_id(), settlement_id=paid.settlement_id)
    nodes.stop("east")
    with pytest.raises(grpc.RpcError) as raised:
        nodes.west.stub.RefundSettlement(undo, timeout=30)
    assert refusal_of(raised.value).code is grpc.StatusCode.UNAVAILABLE
    nodes.start("east")
    deadline = time.monotonic() + 15
    while True:  # the hospital retries with the same key until east answers again
        try:
            undone = nodes.west.stub.RefundSettlement(undo, timeout=30).settlement
            break
        except grpc.RpcError as error:
            assert refusal_of(error).code is grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
            time.sleep(0.5)
    assert undone.state == ppb.SETTLEMENT_STATE_REFUNDED
    again = nodes.west.stub.RefundSettlement(undo, timeout=30).settlement
    assert again.state == ppb.SETTLEMENT_STATE_REFUNDED
    assert family.balance(nodes.east.stub, family.mother).balance_fen == 10_000


def test_a_retried_transfer_to_another_nodes_wallet_gets_the_answer_its_first_call_got(family):
    at_noon(family)
    family.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs=NANJING)
    )
    request = papi.TransferToWalletRequest(
        request_id=request_id(), grantor_id_number=family.father.id_number,
        beneficiary_id_number=family.child.id_number, amount_fen=30_000,
        verification=ppb.Verification(method=ppb.VERIFICATION_METHOD_FACE,
                                      token=stand_in_token(family.father.id_number, "FACE")),
    )  # fmt: skip
    first = family.nodes.west.stub.TransferToWallet(request).transfer
    retry = family.nodes.west.stub.TransferToWallet(request).transfer
    assert first.state == ppb.TRANSFER_STATE_COMPLETED
    assert retry == first
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 70_000  # moved once
