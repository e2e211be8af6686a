"""A coordinator does not take a participant's answer to a prepare on trust: what it plans the
settlement with is checked against what it asked each leg to hold."""

from __future__ import annotations

import pytest

from gongji.node.v1 import node_service_pb2 as node
from services.payment.adapters.node_client import held_legs
from services.payment.routing import Node
from services.payment.service_layer.coordination import RemoteCapacity
from shared.errors import DomainError

WEST = Node("west", "127.0.0.1:1", frozenset({"62"}))
ASKED = [
    {"leg_no": 1, "payer_id_number": "father", "binding_id": "b-father", "amount_fen": 20_000},
    {"leg_no": 2, "payer_id_number": "aunt", "binding_id": "b-aunt", "amount_fen": 5_000},
]


def answer(*legs: tuple[int, str, str, int, int, str]) -> node.PrepareLegsResponse:
    return node.PrepareLegsResponse(
        legs=[node.NodeLeg(leg_no=n, payer_id_number=p, binding_id=b, amount_fen=a) for n, p, b, a, _, _ in legs],
        payer_available_after_fen=[after for *_, after, _ in legs],
        payer_admdvs=[admdvs for *_, admdvs in legs],
    )


def test_holds_within_what_was_asked_become_what_the_settlement_may_draw_with_the_balance_before_the_hold():
    found = held_legs(WEST, ASKED, answer((1, "father", "b-father", 12_000, 0, "620100")))
    assert found == [RemoteCapacity("b-father", "father", 12_000, 12_000, "620100")]


@pytest.mark.parametrize(
    "legs",
    [
        [(1, "father", "b-father", 20_001, 0, "620100")],  # above its ceiling
        [(3, "uncle", "b-uncle", 1, 0, "620100")],  # never asked for
        [(1, "aunt", "b-father", 1, 0, "620100")],  # another payer under that leg's number
        [(1, "father", "b-father", 1, 0, "620100"), (1, "father", "b-father", 1, 0, "620100")],  # twice
        [(1, "father", "b-father", 0, 0, "620100")],  # a hold of nothing is left out, not answered
        [(1, "father", "b-father", -5, 0, "620100")],
        [(1, "father", "b-father", 1, -1, "620100")],  # a negative balance after
        [(1, "father", "b-father", 1, 0, "320100")],  # a region that node does not keep
        [(1, "father", "b-father", 1, 0, "62")],
    ],
)
def test_a_participants_answer_that_holds_what_was_not_asked_is_refused(legs):
    with pytest.raises(DomainError) as refused:
        held_legs(WEST, ASKED, answer(*legs))
    assert refused.value.reason.value == "PEER_CLAIM_REJECTED"


def test_an_answer_whose_balances_or_regions_do_not_line_up_with_its_legs_is_refused():
    two_regions = answer((1, "father", "b-father", 1, 0, "620100"))
    two_regions.payer_admdvs.append("620100")
    without_balance = answer((1, "father", "b-father", 1, 0, "620100"))
    del without_balance.payer_available_after_fen[:]
    for broken in (two_regions, without_balance):
        with pytest.raises(DomainError):
            held_legs(WEST, ASKED, broken)


def test_an_answer_without_regions_from_a_node_before_them_leaves_the_regions_to_the_coordinator():
    older = answer((1, "father", "b-father", 20_000, 3_000, "620100"))
    del older.payer_admdvs[:]
    assert held_legs(WEST, ASKED, older) == [RemoteCapacity("b-father", "father", 20_000, 23_000, "")]
