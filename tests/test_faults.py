"""Fault tests on real processes: a cross-province settlement must
end all-or-nothing when a payment node is killed at any step, and the system
converges after restart — nothing lost, nothing paid twice."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.payment.verification import stand_in_token
from shared.ledger import CHINA_STANDARD_TIME
from tests.fault_checks import NANJING, PERSONAL, bill, converged, fund_family
from tests.helpers import request_id
from tests.process_cluster import ProcessCluster


@pytest.fixture
def cluster(databases, tmp_path):
    urls = {name: databases.url(name) if name != "west" else None for name in ("binding", "payment")}
    west = (
        f"sqlite:///{tmp_path}/payment-west.db"
        if databases.backend == "sqlite"
        else databases.cluster_url("payment_west")
    )
    built = ProcessCluster(tmp_path, urls["binding"], {"east": urls["payment"], "west": west})
    yield built
    built.stop_all()


# (node killed, step, rounds): the coordinator at each step, and a participant right after it
# answered. With the mother first in the order, west's father comes last and is captured in one
# round (no remote commit step); with the father first, west holds, then commits.
STEPS = [
    *((victim, step, "one round") for victim, step in [
        ("east", "before_remote_hold"), ("east", "after_remote_hold"), ("east", "after_local_commit"),
        ("west", "participant_after_prepare"),
    ]),
    *((victim, step, "two rounds") for victim, step in [
        ("east", "before_remote_hold"), ("east", "after_remote_hold"), ("east", "after_local_commit"),
        ("east", "before_remote_commit"), ("west", "participant_after_prepare"),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("victim", "step", "rounds"), STEPS)
def test_a_node_killed_at_each_step_of_a_cross_node_settlement_converges_after_restart(cluster, victim, step, rounds):
    cluster.start_all(failpoints={victim: step})
    family = fund_family(cluster, father_first=rounds == "two rounds")
    # One round: the mother's 20,000 here, then 30,000 from the father; two: all 50,000 from him.
    from_west = 30_000 if rounds == "one round" else 50_000
    key = request_id()
    settle = papi.SettleRequest(request_id=key, bill=bill(family, 50_000))
    with pytest.raises(grpc.RpcError):
        cluster.payment("east").Settle(settle, timeout=20)
    assert cluster.wait_dead(victim) == -9, f"{victim} should have been SIGKILLed at {step}"
    cluster.start(victim)

    books = converged(cluster, family)
    moved = 20_000 + 200_000 - books.mother.balance_fen - books.father.balance_fen
    assert moved in (0, 50_000), f"a settlement moved {moved} fen: neither all nor nothing"

    # The hospital retries with the same key: it gets one consistent answer and money moves once.
    answer = cluster.payment("east").Settle(settle, timeout=20).settlement
    assert answer.state == ppb.SETTLEMENT_STATE_CAPTURED
    books = converged(cluster, family)
    assert 20_000 + 200_000 - books.mother.balance_fen - books.father.balance_fen == 50_000
    assert books.institution_net_fen == 50_000
    assert books.clearing_east == [("62", "32", from_west)]


def _seconds_to_next_noon_in_china() -> float:
    """How far ahead the nodes' clocks must run to stand at noon China time: wallet transfers are
    made between 06:00 and 22:00 there, whenever the test runs."""
    now = datetime.now(UTC).astimezone(CHINA_STANDARD_TIME)
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
    return ((noon if noon >= now else noon + timedelta(days=1)) - now).total_seconds()


# (node killed, step) of a wallet transfer from the father's account on west to the child's
# wallet on east: the sender with the debit recorded and the credit not yet sent, the receiver
# with the credit recorded and not yet answered, the sender with the credit answered and its
# acknowledgement not yet recorded.
WALLET_STEPS = [
    ("west", "before_wallet_credit"),
    ("east", "participant_after_credit"),
    ("west", "after_wallet_credit"),
]


@pytest.mark.parametrize(("victim", "step"), WALLET_STEPS)
def test_a_node_killed_at_each_step_of_a_transfer_to_another_nodes_wallet_credits_it_once_after_restart(
    cluster, victim, step
):
    cluster.clock_offset_seconds = _seconds_to_next_noon_in_china()
    cluster.start_all(failpoints={victim: step})
    family = fund_family(cluster)
    east, west = cluster.payment("east"), cluster.payment("west")
    east.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs=NANJING),
        timeout=10,
    )
    send = papi.TransferToWalletRequest(
        request_id=request_id(), grantor_id_number=family.father.id_number,
        beneficiary_id_number=family.child.id_number, amount_fen=30_000,
        verification=ppb.Verification(method=ppb.VERIFICATION_METHOD_FACE,
                                      token=stand_in_token(family.father.id_number, "FACE")),
    )  # fmt: skip
    with contextlib.suppress(grpc.RpcError):  # the sender died, or answered PENDING with the receiver down
        west.TransferToWallet(send, timeout=20)
    assert cluster.wait_dead(victim) == -9, f"{victim} should have been SIGKILLed at {step}"
    cluster.start(victim)

    # The hospital's app retries with the same key until the transfer is complete: it is one
    # transfer, the grantor is debited once and the wallet credited once.
    deadline = time.monotonic() + 30
    answer = west.TransferToWallet(send, timeout=20).transfer
    while answer.state == ppb.TRANSFER_STATE_PENDING and time.monotonic() < deadline:
        time.sleep(0.3)
        answer = west.GetTransfer(papi.GetTransferRequest(transfer_id=answer.transfer_id), timeout=10).transfer
    assert answer.state == ppb.TRANSFER_STATE_COMPLETED
    assert west.TransferToWallet(send, timeout=20).transfer.transfer_id == answer.transfer_id

    def balance(stub, who, kind) -> int:
        request = papi.GetAccountRequest(id_number=who.id_number, account_kind=kind)
        return stub.GetAccount(request, timeout=10).account.balance_fen

    assert balance(west, family.father, PERSONAL) == 200_000 - 30_000
    assert balance(east, family.child, ppb.ACCOUNT_KIND_WALLET) == 30_000
    for stub in (east, west):
        assert list(stub.CheckLedger(papi.CheckLedgerRequest(), timeout=10).problems) == []
