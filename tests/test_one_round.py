"""A cross-node settlement whose payers on another node come last in the order (or are the one
grant on another node, in even shares) is captured there in one round: what those grantors give
changes nothing the others give, so it needs no hold and no second call. Elsewhere the other
node holds, then commits."""

from __future__ import annotations

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from tests.helpers import request_id
from tests.test_cross_province import CrossFamily
from tests.test_metrics import NODE, metered_nodes, scrape, value  # noqa: F401 - metered_nodes is a fixture
from tests.test_payment_rpcs import set_payer_order

CALLS = ("PrepareLegs", "CommitLegs", "BatchCommitLegs", "AbortLegs", "RefundLegs")


def served(port: int) -> dict[str, float]:
    samples = scrape(port)
    return {
        method: value(samples, "grpc_server_handled_total", grpc_type="unary", grpc_service=NODE,
                      grpc_method=method, grpc_code="OK")
        for method in CALLS
    }  # fmt: skip


def settle(nodes, family: CrossFamily, fen: int) -> ppb.Settlement:
    return nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(fen))).settlement


def test_a_bill_whose_last_payer_is_on_another_node_is_captured_there_in_one_call(metered_nodes):  # noqa: F811
    nodes, ports = metered_nodes
    family = CrossFamily(nodes)  # mother (10,000 fen) on east first, father (100,000 fen) on west last
    settlement = nodes.east.stub.Settle(
        papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))
    ).settlement

    assert settlement.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert [leg.amount_fen for leg in settlement.legs] == [10_000, 20_000]
    assert served(ports["west"]) == {**dict.fromkeys(CALLS, 0.0), "PrepareLegs": 1.0}
    father = family.balance(nodes.west.stub, family.father)
    assert (father.balance_fen, father.held_fen) == (80_000, 0)
    east = scrape(ports["east"])
    assert value(east, "gongji_cross_node_sagas", state="COMMITTED") == 1
    family.assert_books_close()


def test_a_bill_split_in_even_shares_with_one_grantor_on_another_node_is_captured_there_in_one_call(
    metered_nodes,  # noqa: F811
):
    """Even shares: what the father on west can give changes his share only, so west captures his
    share at once; the mother here, who cannot give hers in full, leaves the rest to him."""
    nodes, ports = metered_nodes
    family = CrossFamily(nodes)  # mother 10,000 fen, father 100,000
    set_payer_order(family, [family.mother_binding, family.father_binding], bpb.PAYER_MODE_PROPORTIONAL)
    settlement = settle(nodes, family, 30_000)

    assert sorted(leg.amount_fen for leg in settlement.legs) == [10_000, 20_000]
    assert served(ports["west"]) == {**dict.fromkeys(CALLS, 0.0), "PrepareLegs": 1.0}
    family.assert_books_close()


def test_a_one_round_settlement_refunded_later_gives_the_other_nodes_grantor_back_what_it_took(metered_nodes):  # noqa: F811
    nodes, _ = metered_nodes
    family = CrossFamily(nodes)
    settlement = nodes.east.stub.Settle(
        papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))
    ).settlement
    refunded = nodes.east.stub.RefundSettlement(
        papi.RefundSettlementRequest(request_id=request_id(), settlement_id=settlement.settlement_id)
    ).settlement

    assert refunded.state == ppb.SETTLEMENT_STATE_REFUNDED
    assert family.balance(nodes.west.stub, family.father).balance_fen == 100_000
    assert family.balance(nodes.east.stub, family.mother).balance_fen == 10_000
    family.assert_books_close()


def test_a_bill_whose_first_payer_is_on_another_node_is_held_there_then_committed(metered_nodes):  # noqa: F811
    """The father on west first: what he gives decides what the mother here gives after him, so
    west holds up to a ceiling and the settlement, planned with what it holds, commits its part."""
    nodes, ports = metered_nodes
    family = CrossFamily(nodes)
    set_payer_order(family, [family.father_binding, family.mother_binding], bpb.PAYER_MODE_SEQUENTIAL)
    settlement = nodes.east.stub.Settle(
        papi.SettleRequest(request_id=request_id(), bill=family.bill(105_000))
    ).settlement

    assert [leg.amount_fen for leg in settlement.legs] == [100_000, 5_000]
    calls = served(ports["west"])
    assert calls["PrepareLegs"] == 1 and calls["CommitLegs"] + calls["BatchCommitLegs"] == 1, calls
    assert family.balance(nodes.east.stub, family.mother).balance_fen == 5_000
    family.assert_books_close()
