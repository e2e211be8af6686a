"""Fault tests on real processes: a cross-province settlement must
end all-or-nothing when a payment node is killed at any step, and the system
converges after restart — nothing lost, nothing paid twice."""

from __future__ import annotations

import grpc
import pytest

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from tests.fault_checks import bill, converged, fund_family
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


# (node killed, step) — the coordinator at each step, and a participant right after it held.
STEPS = [
    ("east", "before_remote_hold"),
    ("east", "after_remote_hold"),
    ("east", "after_local_commit"),
    ("east", "before_remote_commit"),
    ("west", "participant_after_prepare"),
]


@pytest.mark.parametrize(("victim", "step"), STEPS)
def test_a_node_killed_at_each_step_of_a_cross_node_settlement_converges_after_restart(cluster, victim, step):
    cluster.start_all(failpoints={victim: step})
    family = fund_family(cluster)
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
    assert books.clearing_east == [("62", "32", 30_000)]
