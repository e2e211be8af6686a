"""Contract tests of the node-to-node service (gongji.node.v1): what
it declares, and that every step is idempotent by its transaction id."""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta

import grpc
import pytest

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.node.v1 import node_service_pb2 as node
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.common.converters import datetime_to_timestamp
from services.payment.adapters.node_repository import ParticipantLog
from services.payment.service_layer import participant
from tests.helpers import refusal_of, request_id
from tests.test_cross_province import CrossFamily, at_noon, transfer

SERVICE = node.DESCRIPTOR.services_by_name["PaymentNodeService"]
RPCS = {
    "GetPayerCapacity", "PrepareLegs", "CommitLegs", "BatchCommitLegs", "AbortLegs", "RefundLegs",
    "GetTransactionOutcome", "CreditWallet", "DeclineWalletCredit",
}  # fmt: skip
STEPS = {"PrepareLegs", "CommitLegs", "AbortLegs", "RefundLegs"}


def test_the_node_service_declares_every_step_with_its_own_request_and_response():
    assert {m.name for m in SERVICE.methods} == RPCS
    for method in SERVICE.methods:
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"


def test_every_step_is_keyed_by_a_transaction_id_and_a_wallet_credit_by_its_transfer_id():
    for method in SERVICE.methods:
        fields = method.input_type.fields_by_name
        if method.name in STEPS or method.name == "GetTransactionOutcome":
            assert fields["transaction_id"].number == 1
        if method.name in ("CreditWallet", "DeclineWalletCredit"):
            assert fields["transfer_id"].number == 1


def test_every_enum_of_the_node_package_has_an_unspecified_zero():
    for enum in node.DESCRIPTOR.enum_types_by_name.values():
        assert enum.values_by_number[0].name.endswith("_UNSPECIFIED")


@pytest.fixture
def west(two_nodes):
    """Node west's node-to-node service, as node east calls it."""
    stub = two_nodes.west.node_stub("east")
    yield stub
    stub.close()


@pytest.fixture
def east(two_nodes):
    """Node east's node-to-node service, as node west calls it."""
    stub = two_nodes.east.node_stub("west")
    yield stub
    stub.close()


def prepare_request(family: CrossFamily, transaction_id: str, amount: int) -> node.PrepareLegsRequest:
    grants = family.binding.ResolvePayers(
        bapi.ResolvePayersRequest(beneficiary_id_number=family.child.id_number, use_category=1)
    ).grants
    father_grant = next(g for g in grants if g.grantor_id_number == family.father.id_number)
    return node.PrepareLegsRequest(
        transaction_id=transaction_id, coordinator_province="32", beneficiary_id_number=family.child.id_number,
        institution_code="H320100-001",
        legs=[node.NodeLeg(leg_no=1, payer_id_number=family.father.id_number, binding_id=father_grant.binding_id,
                           amount_fen=amount)],
        expire_time=datetime_to_timestamp(family.clock.now() + timedelta(minutes=20)),
        grants=[father_grant],
        use_category=common.USE_CATEGORY_OUTPATIENT, institution_admdvs="320100",
    )  # fmt: skip


def held(family: CrossFamily) -> tuple[int, int]:
    account = family.balance(family.nodes.west.stub, family.father)
    return account.balance_fen, account.held_fen


def test_a_repeated_prepare_holds_once_and_a_repeated_commit_captures_once(two_nodes, west):
    family = CrossFamily(two_nodes)
    request = prepare_request(family, "txn-0001", 30_000)
    west.PrepareLegs(request)
    west.PrepareLegs(request)
    assert held(family) == (100_000, 30_000)
    commit = node.CommitLegsRequest(transaction_id="txn-0001", captures=[node.NodeLeg(leg_no=1, amount_fen=20_000)])
    assert west.CommitLegs(commit).applied
    assert not west.CommitLegs(commit).applied
    assert held(family) == (80_000, 0)
    assert family.nodes.west.stub.CheckLedger(papi.CheckLedgerRequest()).balanced


def test_a_repeated_prepare_answers_what_it_held_though_its_own_hold_leaves_too_little_for_a_second(two_nodes, west):
    """A first prepare does not read whether it came before; a retry that its own hold now refuses
    (60,000 of 100,000 held, 40,000 left) is asked again with that read, and answers as the first."""
    family = CrossFamily(two_nodes)
    request = prepare_request(family, "txn-twice", 60_000)
    first = west.PrepareLegs(request)
    assert west.PrepareLegs(request) == first
    assert held(family) == (100_000, 60_000)
    assert west.AbortLegs(node.AbortLegsRequest(transaction_id="txn-twice", coordinator_province="32")).applied
    assert held(family) == (100_000, 0)


def test_an_abort_that_arrives_before_its_prepare_makes_the_late_prepare_fail(two_nodes, west):
    family = CrossFamily(two_nodes)
    assert west.AbortLegs(node.AbortLegsRequest(transaction_id="txn-late", coordinator_province="32")).applied
    with pytest.raises(grpc.RpcError) as raised:
        west.PrepareLegs(prepare_request(family, "txn-late", 30_000))
    assert refusal_of(raised.value).code == grpc.StatusCode.FAILED_PRECONDITION
    assert held(family) == (100_000, 0)


def test_an_abort_that_crosses_its_prepare_releases_the_hold_and_answers_ok(two_nodes, west, monkeypatch):
    """The coordinator gave up waiting for a slow prepare and aborts: the abort finds no record
    and marks the transaction aborted, but the prepare's record is committed first. The abort is
    applied all the same (the hold released), not answered INTERNAL. (Where the database lets no
    prepare commit meanwhile, the prepare is refused instead.)"""
    family = CrossFamily(two_nodes)
    read, prepared, add = threading.Event(), threading.Event(), ParticipantLog.add

    def add_once_the_prepare_committed(self, txn, now):
        if txn.state == participant.ABORTED and not read.is_set():
            read.set()
            prepared.wait(3)
        return add(self, txn, now)

    monkeypatch.setattr(ParticipantLog, "add", add_once_the_prepare_committed)
    answers: list[object] = []
    request = node.AbortLegsRequest(transaction_id="txn-crossed", coordinator_province="32")
    other_channel = two_nodes.west.node_stub("east")
    aborting = threading.Thread(target=lambda: answers.append(other_channel.AbortLegs(request, timeout=20)))
    aborting.start()
    try:
        assert read.wait(10)
        with contextlib.suppress(grpc.RpcError):  # refused only where it could not commit first
            west.PrepareLegs(prepare_request(family, "txn-crossed", 30_000), timeout=20)
    finally:
        prepared.set()
        aborting.join(20)
        other_channel.close()
    assert [answer.applied for answer in answers] == [True]
    assert held(family) == (100_000, 0)


def test_a_prepare_beyond_what_the_grantor_can_give_holds_nothing(two_nodes, west):
    family = CrossFamily(two_nodes)
    with pytest.raises(grpc.RpcError) as raised:
        west.PrepareLegs(prepare_request(family, "txn-big", 100_001))
    assert refusal_of(raised.value).reason == "INSUFFICIENT_FUNDS"
    assert held(family) == (100_000, 0)


def test_a_prepare_with_a_ceiling_holds_as_much_as_the_grantor_can_give_and_says_how_much(two_nodes, west):
    family = CrossFamily(two_nodes)
    request = prepare_request(family, "txn-ceiling", 100_001)
    request.hold_up_to_amount = True
    answer = west.PrepareLegs(request)
    assert [(leg.leg_no, leg.amount_fen) for leg in answer.legs] == [(1, 100_000)]
    assert list(answer.payer_available_after_fen) == [0]
    assert list(answer.payer_admdvs) == ["620100"]
    assert held(family) == (100_000, 100_000)
    assert west.PrepareLegs(request) == answer, "a repeated prepare answers what it held"
    commit = node.CommitLegsRequest(transaction_id="txn-ceiling", captures=[node.NodeLeg(leg_no=1, amount_fen=60_000)])
    assert west.CommitLegs(commit).applied
    assert held(family) == (40_000, 0)
    assert family.nodes.west.stub.CheckLedger(papi.CheckLedgerRequest()).balanced


def test_a_prepare_with_a_ceiling_leaves_out_a_leg_its_node_finds_no_grant_for_and_holds_nothing(two_nodes, west):
    family = CrossFamily(two_nodes)
    request = prepare_request(family, "txn-no-grant", 30_000)
    request.hold_up_to_amount = True
    request.legs[0].binding_id = "a-binding-west-never-resolved"
    answer = west.PrepareLegs(request)
    assert list(answer.legs) == [] and list(answer.payer_available_after_fen) == [] and list(answer.payer_admdvs) == []
    assert held(family) == (100_000, 0)
    with pytest.raises(grpc.RpcError) as raised:
        west.CommitLegs(
            node.CommitLegsRequest(transaction_id="txn-no-grant", captures=[node.NodeLeg(leg_no=1, amount_fen=1)])
        )
    assert refusal_of(raised.value).reason == "PEER_CLAIM_REJECTED"
    # The coordinator's saga still lists the leg: taking nothing from it is no claim.
    nothing = [node.NodeLeg(leg_no=1, amount_fen=0)]
    assert west.CommitLegs(node.CommitLegsRequest(transaction_id="txn-no-grant", captures=nothing)).applied
    assert held(family) == (100_000, 0)
    assert family.nodes.west.stub.CheckLedger(papi.CheckLedgerRequest()).balanced


def test_a_prepare_that_captures_at_once_takes_at_most_what_was_asked_together_and_only_a_refund_undoes_it(
    two_nodes, west
):
    """One round: the leg's ceiling is 60,000 but the legs together may take 25,000. The node takes
    that from the father's balance at once (no hold), answers the same to a retry, refuses an abort
    (ALREADY_CAPTURED: the coordinator refunds instead), and a refund gives it all back."""
    family = CrossFamily(two_nodes)
    request = prepare_request(family, "txn-at-once", 60_000)
    request.hold_up_to_amount, request.capture_now, request.capture_at_most_fen = True, True, 25_000
    first = west.PrepareLegs(request)
    assert first.captured and [leg.amount_fen for leg in first.legs] == [25_000]
    assert west.PrepareLegs(request) == first
    assert held(family) == (75_000, 0)
    abort = node.AbortLegsRequest(transaction_id="txn-at-once", coordinator_province="32")
    with pytest.raises(grpc.RpcError) as raised:
        west.AbortLegs(abort)
    assert refusal_of(raised.value).reason == "ALREADY_CAPTURED"
    assert west.RefundLegs(node.RefundLegsRequest(transaction_id="txn-at-once")).applied
    assert held(family) == (100_000, 0)
    assert family.nodes.west.stub.CheckLedger(papi.CheckLedgerRequest()).balanced


def test_capture_now_without_ceilings_holds_as_a_node_that_does_not_know_it_would(two_nodes, west):
    family = CrossFamily(two_nodes)
    request = prepare_request(family, "txn-held", 30_000)
    request.capture_now, request.capture_at_most_fen = True, 30_000
    answer = west.PrepareLegs(request)
    assert not answer.captured
    assert held(family) == (100_000, 30_000)


def test_an_unknown_transaction_is_presumed_aborted_by_its_coordinator(two_nodes, east):
    answer = east.GetTransactionOutcome(
        node.GetTransactionOutcomeRequest(transaction_id="never-heard-of", participant_province="62")
    )
    assert answer.outcome == node.TRANSACTION_OUTCOME_ABORTED


def credit_of(family: CrossFamily, sent: ppb.Transfer) -> node.CreditWalletRequest:
    """The CreditWallet request node west sends node east for a transfer it made."""
    return node.CreditWalletRequest(
        transfer_id=sent.transfer_id, beneficiary_id_number=family.child.id_number, amount_fen=sent.amount_fen,
        source_province="62", grantor_id_number=family.father.id_number, binding_id=family.father_binding.binding_id,
    )  # fmt: skip


def decline_of(family: CrossFamily, sent: ppb.Transfer) -> node.DeclineWalletCreditRequest:
    return node.DeclineWalletCreditRequest(
        transfer_id=sent.transfer_id, beneficiary_id_number=family.child.id_number, amount_fen=sent.amount_fen,
        source_province="62",
    )  # fmt: skip


def activate_wallet(family: CrossFamily) -> None:
    family.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs="320100")
    )


def test_a_wallet_credit_is_applied_once_per_transfer(two_nodes, east):
    family = CrossFamily(two_nodes)
    at_noon(family)
    activate_wallet(family)
    sent = transfer(family, 5_000).transfer
    assert sent.state == ppb.TRANSFER_STATE_COMPLETED  # west credited east's wallet itself
    again = east.CreditWallet(credit_of(family, sent))
    assert not again.applied
    wallet = family.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=family.child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
    ).account
    assert wallet.balance_fen == 5_000


def test_a_declined_transfer_is_never_credited(two_nodes, east):
    """A wallet transfer not accepted by 06:00 the next day goes back to its sender: once the
    receiving node promised the sender not to credit it, it never does, so money is never both
    refunded and credited."""
    family = CrossFamily(two_nodes)
    at_noon(family)
    pending = transfer(family, 5_000).transfer  # the wallet is not activated yet
    assert pending.state == ppb.TRANSFER_STATE_PENDING
    assert not east.DeclineWalletCredit(decline_of(family, pending)).credited
    assert not east.DeclineWalletCredit(decline_of(family, pending)).credited
    activate_wallet(family)
    with pytest.raises(grpc.RpcError) as raised:
        east.CreditWallet(credit_of(family, pending))
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TRANSFER_REFUNDED")
    wallet = family.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=family.child.id_number, account_kind=2)
    ).account
    assert wallet.balance_fen == 0


def test_a_decline_of_more_than_one_call_may_move_is_refused_and_marks_nothing(two_nodes, east):
    """A peer's numbers are checked even where they move no money: a decline of an amount no
    transfer could have is refused, and the transfer can still be credited."""
    family = CrossFamily(two_nodes)
    at_noon(family)
    pending = transfer(family, 5_000).transfer
    absurd = decline_of(family, pending)
    absurd.amount_fen = 2**63 - 1
    with pytest.raises(grpc.RpcError) as raised:
        east.DeclineWalletCredit(absurd)
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "AMOUNT_LIMIT_EXCEEDED",
        ("amount_fen",),
    )
    activate_wallet(family)
    assert east.CreditWallet(credit_of(family, pending)).applied


def test_a_credited_transfer_is_reported_credited_when_its_sender_would_decline_it(two_nodes, east):
    family = CrossFamily(two_nodes)
    at_noon(family)
    activate_wallet(family)
    credited = transfer(family, 7_000).transfer
    assert credited.state == ppb.TRANSFER_STATE_COMPLETED
    assert east.DeclineWalletCredit(decline_of(family, credited)).credited
