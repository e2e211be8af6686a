"""What a receiving node re-checks before it credits a wallet transfer from another province,
over real gRPC on SQLite and PostgreSQL: a refused credit is refused by reason, changes nothing
on the receiving node, and the sender gives the money back at 06:00 the next day, so both
ledgers stay balanced and agree."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import grpc
import pytest

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.node.v1 import node_service_pb2 as node
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.payment.adapters.node_client import GrpcNodeClient
from services.payment.adapters.node_repository import TransferRepository
from services.payment.service_layer import participant, wallets
from services.payment.verification import stand_in_token
from shared.errors import DomainError, Reason
from shared.ledger import CHINA_STANDARD_TIME
from tests.helpers import binding_request, make_id_number, person, refusal_of, request_id
from tests.test_cross_province import (
    NANJING,
    CrossFamily,
    at_noon,
    owed_by_gansu_to_jiangsu,
    transfer,
    transfer_state,
    wait_for_transfer,
)


@pytest.fixture
def family(two_nodes) -> CrossFamily:
    return CrossFamily(two_nodes)


def activate_wallet(family: CrossFamily) -> None:
    family.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs=NANJING)
    )


def wallet_balance(family: CrossFamily) -> int:
    return family.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=family.child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
    ).account.balance_fen


def credit_as_sent(family: CrossFamily, transfer_id: str, amount_fen: int) -> node.CreditWalletRequest:
    """The CreditWallet node west sends for the father's transfer to the child's wallet."""
    return node.CreditWalletRequest(
        transfer_id=transfer_id, beneficiary_id_number=family.child.id_number, amount_fen=amount_fen,
        source_province="62", grantor_id_number=family.father.id_number,
        binding_id=family.father_binding.binding_id,
    )  # fmt: skip


def refused_credit(family: CrossFamily, request: node.CreditWalletRequest):
    with pytest.raises(grpc.RpcError) as raised:
        family.nodes.east.node_stub("west").CreditWallet(request, timeout=20)
    return refusal_of(raised.value)


def refunded_at_six_next_morning(family: CrossFamily, transfer_id: str) -> list[str]:
    """Moves the clock on to the next 06:00 and waits for the sweeping sender to give it back;
    the two days (YYYY-MM-DD) the transfer's clearing spans."""
    now = family.clock.now().astimezone(CHINA_STANDARD_TIME)
    six = now.replace(hour=6, minute=0, second=0, microsecond=0)
    six = six if now < six else six + timedelta(days=1)
    family.clock.set(six)
    wait_for_transfer(family, transfer_id, ppb.TRANSFER_STATE_REFUNDED)
    return [(six - timedelta(days=1)).strftime("%Y-%m-%d"), six.strftime("%Y-%m-%d")]


def money_is_conserved(family: CrossFamily, days: list[str], credited_fen: int) -> None:
    """Both ledgers balance, and over `days` each node books Gansu owing Jiangsu exactly what
    east credited."""
    for harness in (family.nodes.east, family.nodes.west):
        audit = harness.stub.CheckLedger(papi.CheckLedgerRequest())
        assert audit.balanced, list(audit.problems)
    assert owed_by_gansu_to_jiangsu(family.nodes.west.stub, days) == credited_fen
    assert owed_by_gansu_to_jiangsu(family.nodes.east.stub, days) == credited_fen


@pytest.mark.sweeping(0.05)
def test_a_transfer_under_a_binding_ended_before_its_credit_arrives_is_refused_and_refunded(family):
    """Only an active binding carries a wallet transfer. The father's transfer waits for the
    child's wallet; meanwhile he ends the binding. Node west still confirms its debit, but node
    east refuses the credit (PEER_CLAIM_REJECTED, never INTERNAL), credits nothing, and at 06:00
    the next day west gives the father his money back."""
    at_noon(family)
    pending = transfer(family, 30_000).transfer
    assert pending.state == ppb.TRANSFER_STATE_PENDING
    family.binding.EndBinding(
        bapi.EndBindingRequest(
            request_id=request_id(), binding_id=family.father_binding.binding_id, actor=bpb.ACTOR_GRANTOR,
            actor_id=family.father.id_number,
        )
    )  # fmt: skip
    time.sleep(0.3)  # a credit west sent while the binding was active has met the unactivated wallet
    activate_wallet(family)
    time.sleep(0.5)  # several sweeps: west keeps sending the credit, east keeps refusing it

    refusal = refused_credit(family, credit_as_sent(family, pending.transfer_id, 30_000))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PEER_CLAIM_REJECTED")
    assert "not active" in refusal.message
    assert transfer_state(family, pending.transfer_id) == ppb.TRANSFER_STATE_PENDING
    assert wallet_balance(family) == 0

    days = refunded_at_six_next_morning(family, pending.transfer_id)
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 100_000
    assert wallet_balance(family) == 0
    money_is_conserved(family, days, 0)


@pytest.mark.sweeping(0.05)
def test_a_sender_that_ignores_the_daily_limit_gets_no_fourth_credit_that_day_even_sent_again_after_midnight(
    family, monkeypatch
):
    """At most 3 transfers a day. Node west here forgets the transfers the father made today, so
    it debits him a fourth time; node east counts the credits it received from him since 06:00
    and refuses the fourth (PEER_CLAIM_REJECTED, never INTERNAL) every time west sends it again,
    after midnight too, since that transfer still belongs to the day it was made. A credited
    transfer sent again is answered as credited, not refused. At 06:00 the next day west gives
    the fourth back and both ledgers agree on what moved."""
    monkeypatch.setattr(TransferRepository, "of_grantor_since", lambda self, grantor, since: [])
    at_noon(family)
    activate_wallet(family)
    sent = [transfer(family, 10_000).transfer for _ in range(4)]
    assert [t.state for t in sent] == [ppb.TRANSFER_STATE_COMPLETED] * 3 + [ppb.TRANSFER_STATE_PENDING]
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 60_000
    assert wallet_balance(family) == 30_000

    fourth = credit_as_sent(family, sent[3].transfer_id, 10_000)
    refusal = refused_credit(family, fourth)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PEER_CLAIM_REJECTED")
    assert refusal.metadata["transfer_id"] == sent[3].transfer_id
    first_again = family.nodes.east.node_stub("west").CreditWallet(credit_as_sent(family, sent[0].transfer_id, 10_000))
    assert not first_again.applied, "a retry of a credited transfer is answered as before, not counted again"
    assert wallet_balance(family) == 30_000

    noon = family.clock.now().astimezone(CHINA_STANDARD_TIME)
    family.clock.set(noon.replace(hour=5, minute=59) + timedelta(days=1))
    time.sleep(0.5)  # several sweeps: west sends the fourth again, east refuses it again
    assert refused_credit(family, fourth).reason == "PEER_CLAIM_REJECTED"
    assert transfer_state(family, sent[3].transfer_id) == ppb.TRANSFER_STATE_PENDING
    assert wallet_balance(family) == 30_000

    # East is out of west's reach for credits from now on, so no credit sent just before 06:00
    # lands just after it; west's promise-then-refund still gets through.
    monkeypatch.setattr(GrpcNodeClient, "credit_wallet", out_of_reach)
    time.sleep(0.3)
    days = refunded_at_six_next_morning(family, sent[3].transfer_id)
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 70_000
    assert wallet_balance(family) == 30_000
    money_is_conserved(family, days, 30_000)


def test_credits_from_one_grantor_racing_into_different_wallets_never_pass_the_daily_limit_together(
    family, monkeypatch
):
    """At most 3 transfers a day from one grantor, however many wallets they go to. Node west
    here forgets what the father sent and cannot reach east, so six of his transfers wait, three
    for each of his two children; then all six credits arrive at east at once. Each wallet's
    lock keeps its own three in a row, but the two children's credits count the father's day
    side by side: east lets exactly three through, refuses the others (PEER_CLAIM_REJECTED), and
    its books balance."""
    monkeypatch.setattr(TransferRepository, "of_grantor_since", lambda self, grantor, since: [])
    monkeypatch.setattr(TransferRepository, "pending_of_grantor", lambda self, grantor: [])
    monkeypatch.setattr(GrpcNodeClient, "credit_wallet", out_of_reach)
    at_noon(family)
    second_child = family.register("王小妹", NANJING, resident=True)
    second_binding = family.binding.CreateBinding(binding_request(family.father, second_child)).binding
    children = ((family.child, family.father_binding), (second_child, second_binding))
    for child, _ in children:
        family.nodes.east.stub.ActivateWallet(
            papi.ActivateWalletRequest(request_id=request_id(), id_number=child.id_number, admdvs=NANJING)
        )
    credits = []
    for child, binding in children * 3:
        sent = family.nodes.west.stub.TransferToWallet(
            papi.TransferToWalletRequest(
                request_id=request_id(), grantor_id_number=family.father.id_number,
                beneficiary_id_number=child.id_number, amount_fen=10_000,
                verification=ppb.Verification(
                    method=ppb.VERIFICATION_METHOD_FACE, token=stand_in_token(family.father.id_number, "FACE")
                ),
            )
        ).transfer  # fmt: skip
        assert sent.state == ppb.TRANSFER_STATE_PENDING
        credits.append(
            node.CreditWalletRequest(
                transfer_id=sent.transfer_id, beneficiary_id_number=child.id_number, amount_fen=10_000,
                source_province="62", grantor_id_number=family.father.id_number, binding_id=binding.binding_id,
            )
        )  # fmt: skip

    east_as_west = family.nodes.east.node_stub("west")
    barrier = threading.Barrier(len(credits))

    def credit(request: node.CreditWalletRequest) -> str:
        barrier.wait(timeout=20)
        try:
            return "applied" if east_as_west.CreditWallet(request, timeout=20).applied else "repeated"
        except grpc.RpcError as error:
            return refusal_of(error).reason

    with ThreadPoolExecutor(max_workers=len(credits)) as pool:
        outcomes = list(pool.map(credit, credits))
    assert sorted(outcomes) == ["PEER_CLAIM_REJECTED"] * 3 + ["applied"] * 3
    wallets = [
        family.nodes.east.stub.GetAccount(
            papi.GetAccountRequest(id_number=child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
        ).account.balance_fen
        for child, _ in children
    ]
    assert sum(wallets) == 30_000
    assert family.nodes.east.stub.CheckLedger(papi.CheckLedgerRequest()).balanced


async def out_of_reach(self, *args, **kwargs):
    raise DomainError(Reason.PROVINCE_UNREACHABLE, "node east does not answer")


@pytest.mark.sweeping(0.05)
def test_a_transfer_made_yesterday_and_accepted_after_midnight_leaves_the_days_three_transfers_whole(family):
    """The daily limit counts transfers by the day they are made, and a receiving node counts a
    day from 06:00: the father's transfer made at noon waits for the child's wallet, activated at
    01:00 the next day, and his three transfers of that next day are all credited."""
    at_noon(family)
    pending = transfer(family, 10_000).transfer
    assert pending.state == ppb.TRANSFER_STATE_PENDING
    noon = family.clock.now().astimezone(CHINA_STANDARD_TIME)
    family.clock.set(noon.replace(hour=1) + timedelta(days=1))
    activate_wallet(family)
    wait_for_transfer(family, pending.transfer_id, ppb.TRANSFER_STATE_COMPLETED)

    family.clock.set(noon + timedelta(days=1))
    sent = [transfer(family, 10_000).transfer for _ in range(3)]
    assert [t.state for t in sent] == [ppb.TRANSFER_STATE_COMPLETED] * 3
    assert wallet_balance(family) == 40_000
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 60_000
    money_is_conserved(family, [noon.strftime("%Y-%m-%d"), (noon + timedelta(days=1)).strftime("%Y-%m-%d")], 40_000)


def test_a_credit_checked_before_the_wallet_was_activated_is_not_applied_unconfirmed(family, monkeypatch):
    """A wallet must be activated before a transfer reaches it, and a credit is applied only
    once its sender confirmed it. Here the child's wallet is activated between node east's look
    at it and the credit (as a concurrent ActivateWallet would): a credit node west never sent
    must not slip in unconfirmed."""
    real_credit = participant.credit_wallet

    def activated_meanwhile(uow, transfer_id, beneficiary, *rest):
        wallets.activate_wallet(uow, beneficiary, NANJING, family.clock.now())
        return real_credit(uow, transfer_id, beneficiary, *rest)

    monkeypatch.setattr(participant, "credit_wallet", activated_meanwhile)
    at_noon(family)
    minted = credit_as_sent(family, str(uuid.uuid4()), 10_000)
    refusal = refused_credit(family, minted)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "WALLET_NOT_ACTIVATED")
    monkeypatch.undo()
    activate_wallet(family)
    assert refused_credit(family, minted).reason == "PEER_CLAIM_REJECTED"
    assert wallet_balance(family) == 0
    family.assert_books_close()


def test_a_transfer_retried_after_six_the_next_morning_is_not_credited_late_but_goes_back_to_its_sender(family):
    """A transfer not yet accepted is refunded to the sender at 06:00 the next day. The father's
    transfer waits for the child's wallet, which is activated only at 06:00 the next day; his app
    then retries the transfer under its key. The retry must not carry the credit past the
    deadline: the money goes back to him, the wallet stays empty and the day's three transfers
    are all still his."""
    at_noon(family)
    asked = papi.TransferToWalletRequest(
        request_id=request_id(), grantor_id_number=family.father.id_number,
        beneficiary_id_number=family.child.id_number, amount_fen=30_000,
        verification=ppb.Verification(
            method=ppb.VERIFICATION_METHOD_FACE, token=stand_in_token(family.father.id_number, "FACE")
        ),
    )  # fmt: skip
    west = family.nodes.west.stub
    pending = west.TransferToWallet(asked).transfer
    assert pending.state == ppb.TRANSFER_STATE_PENDING
    noon = family.clock.now().astimezone(CHINA_STANDARD_TIME)
    family.clock.set(noon.replace(hour=6) + timedelta(days=1))
    activate_wallet(family)

    retried = west.TransferToWallet(asked).transfer
    assert (retried.transfer_id, retried.state) == (pending.transfer_id, ppb.TRANSFER_STATE_REFUNDED)
    assert wallet_balance(family) == 0
    assert family.balance(west, family.father).balance_fen == 100_000
    assert [transfer(family, 10_000).transfer.state for _ in range(3)] == [ppb.TRANSFER_STATE_COMPLETED] * 3
    days = [noon.strftime("%Y-%m-%d"), (noon + timedelta(days=1)).strftime("%Y-%m-%d")]
    money_is_conserved(family, days, 30_000)


def test_a_transfer_due_back_at_six_does_not_keep_the_grantors_next_transfer_waiting_for_the_sweeper(family):
    """No new transfer may start while one is unaccepted, and one not accepted is refunded at 06:00
    the next day. At 06:00 the father's transfer of yesterday noon, never accepted, is due back:
    his new transfer is not refused TRANSFER_PENDING until a sweep comes by; yesterday's goes back
    to him first and the new one is credited."""
    at_noon(family)
    pending = transfer(family, 30_000).transfer
    assert pending.state == ppb.TRANSFER_STATE_PENDING
    noon = family.clock.now().astimezone(CHINA_STANDARD_TIME)
    family.clock.set(noon.replace(hour=6) + timedelta(days=1))
    activate_wallet(family)

    assert transfer(family, 10_000).transfer.state == ppb.TRANSFER_STATE_COMPLETED
    assert transfer_state(family, pending.transfer_id) == ppb.TRANSFER_STATE_REFUNDED
    assert wallet_balance(family) == 10_000
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 90_000
    days = [noon.strftime("%Y-%m-%d"), (noon + timedelta(days=1)).strftime("%Y-%m-%d")]
    money_is_conserved(family, days, 10_000)


def test_a_transfer_to_a_wallet_in_a_province_no_node_keeps_is_refused_unreachable_and_moves_nothing(two_nodes):
    """A wallet is kept by its holder's province's node. The father in Lanzhou is bound to a
    relative insured in Hebei, a province neither node keeps: no node could credit the transfer or
    promise never to, so it would stay pending and the father's money with it. It is refused
    PROVINCE_UNREACHABLE, debits nothing, and is not stored under its key, so a retry runs once a
    node keeps the province."""
    family = CrossFamily(two_nodes, pilots=["32", "62", "13"])
    relative = person(
        make_id_number("130102"), "赵河北", admdvs="130100", insurance_type=common.INSURANCE_TYPE_RESIDENT,
        has_personal_account=False,
    )  # fmt: skip
    family.binding.UpsertInsuredPerson(
        bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=relative)
    )
    family.binding.CreateBinding(binding_request(family.father, relative))
    at_noon(family)
    asked = papi.TransferToWalletRequest(
        request_id=request_id(), grantor_id_number=family.father.id_number,
        beneficiary_id_number=relative.id_number, amount_fen=10_000,
        verification=ppb.Verification(
            method=ppb.VERIFICATION_METHOD_FACE, token=stand_in_token(family.father.id_number, "FACE")
        ),
    )  # fmt: skip
    west = family.nodes.west.stub
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as raised:
            west.TransferToWallet(asked, timeout=20)
        refusal = refusal_of(raised.value)
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAVAILABLE, "PROVINCE_UNREACHABLE")
        assert refusal.metadata["province"] == "13"
    assert family.balance(west, family.father).balance_fen == 100_000
    assert transfer(family, 10_000).transfer.state == ppb.TRANSFER_STATE_PENDING  # no earlier one in the way
    for harness in (family.nodes.east, family.nodes.west):
        audit = harness.stub.CheckLedger(papi.CheckLedgerRequest())
        assert audit.balanced, list(audit.problems)
