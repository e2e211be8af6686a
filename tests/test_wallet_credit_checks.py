"""What a receiving node re-checks before it credits a wallet transfer from another province,
over real gRPC on SQLite and PostgreSQL: a refused credit is refused by reason, changes nothing
on the receiving node, and the sender gives the money back at 06:00 the next day, so both
ledgers stay balanced and agree."""

from __future__ import annotations

import time
from datetime import timedelta

import grpc
import pytest

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.node.v1 import node_service_pb2 as node
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from shared.ledger import CHINA_STANDARD_TIME
from tests.helpers import refusal_of, request_id
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
    """Moves the clock to 06:00 the next day and waits for the sweeping sender to give it back;
    the two days (YYYY-MM-DD) the transfer's clearing spans."""
    now = family.clock.now().astimezone(CHINA_STANDARD_TIME)
    family.clock.set(now.replace(hour=6, minute=0) + timedelta(days=1))
    wait_for_transfer(family, transfer_id, ppb.TRANSFER_STATE_REFUNDED)
    return [now.strftime("%Y-%m-%d"), (now + timedelta(days=1)).strftime("%Y-%m-%d")]


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
