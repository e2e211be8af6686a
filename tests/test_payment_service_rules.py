"""The payment service layer's rules that hold before any unit of work opens, and its one way of
running a call on the node that holds the settlement: plain unit tests, no database, no gRPC."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from services.payment.service_layer import accounts, settlements
from services.payment.service_layer.node_routing import NodeRouting
from shared.errors import DomainError, Reason
from shared.ledger import Purpose


@pytest.mark.parametrize(
    ("amount", "purpose", "allowed"),
    [
        (100, Purpose.MONTHLY_CONTRIBUTION, True),
        (100, Purpose.ADJUSTMENT, True),
        (-100, Purpose.ADJUSTMENT, True),
        (-100, Purpose.MONTHLY_CONTRIBUTION, False),
        (0, Purpose.ADJUSTMENT, False),
        (0, Purpose.MONTHLY_CONTRIBUTION, False),
    ],
)
def test_only_an_adjustment_may_credit_a_negative_amount_and_none_credits_zero(amount, purpose, allowed):
    if allowed:
        assert accounts.check_credit_amount(amount, purpose) == amount
        return
    with pytest.raises(DomainError) as refused:
        accounts.check_credit_amount(amount, purpose)
    assert refused.value.reason is Reason.INVALID_AMOUNT
    assert refused.value.field == "amount_fen"
    assert refused.value.message == "amount_fen must be positive (negative only for an ADJUSTMENT)"


def test_a_credit_without_a_memo_is_recorded_as_the_contribution_of_its_period():
    assert accounts.credit_memo("", "2026-03") == "contribution 2026-03"
    assert accounts.credit_memo("back pay", "2026-03") == "back pay"
    assert accounts.credit_memo("", "") == ""


def test_a_reversal_cannot_reverse_itself():
    settlements.check_reversal("original", "reversal")
    with pytest.raises(DomainError) as refused:
        settlements.check_reversal("same", "same")
    assert (refused.value.reason, refused.value.field) == (Reason.FIELD_INVALID, "original_request_id")
    assert refused.value.message == "a reversal cannot reverse itself"


def test_a_reversed_request_is_refused_naming_the_reversal():
    refusal = settlements.reversed_refusal("pay-1", "undo-1")
    assert refusal.reason is Reason.REQUEST_REVERSED
    assert refusal.message == "request pay-1 was reversed (冲正) by undo-1"


@dataclass
class FakeCoordinator:
    """Two nodes; this one holds the settlements in `held`."""

    held: set[str]
    routing: Any = field(default_factory=lambda: SimpleNamespace(distributed=True))
    forwarded: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)

    async def forward_to_holder(self, method: str, request: Any, settlement_id: str, caller: str) -> str:
        self.forwarded.append(settlement_id)
        return f"answer of the holder of {settlement_id}"

    async def finish(self, settlement_id: str) -> None:
        self.finished.append(settlement_id)


class FakeRunner:
    def __init__(self, coordinator: FakeCoordinator) -> None:
        self._uow = SimpleNamespace(
            settlements=SimpleNamespace(get=lambda sid: sid if sid in coordinator.held else None)
        )

    async def query(self, fn: Any) -> Any:
        return fn(self._uow)


def test_a_settlement_held_elsewhere_is_forwarded_and_one_held_here_is_run_here_then_followed_up():
    coordinator = FakeCoordinator(held={"here-1"})
    routing = NodeRouting(FakeRunner(coordinator), coordinator)  # type: ignore[arg-type]
    ran: list[str] = []

    def here(settlement_id: str) -> Any:
        async def run() -> dict[str, str]:
            ran.append(settlement_id)
            return {"settlement": settlement_id}

        return run

    def settled(answer: dict[str, str]) -> str:
        return answer["settlement"]

    async def calls() -> list[Any]:
        return [
            await routing.on_settlement_holder("M", None, "here-1", "caller", False, here("here-1"), settled),
            await routing.on_settlement_holder("M", None, "there-1", "caller", False, here("there-1"), settled),
            await routing.on_settlement_holder("M", None, "there-2", "caller", True, here("there-2"), settled),
            await routing.on_settlement_holder("M", None, "here-1", "caller", False, here("here-1")),
        ]

    answers = asyncio.run(calls())
    assert answers == [
        {"settlement": "here-1"},
        "answer of the holder of there-1",
        {"settlement": "there-2"},  # a forwarded call is answered here, never forwarded on
        {"settlement": "here-1"},
    ]
    assert coordinator.forwarded == ["there-1"]
    assert ran == ["here-1", "there-2", "here-1"]
    assert coordinator.finished == ["here-1", "there-2"]  # a read (no `settled`) follows nothing up


class _ClearingJournal:
    """A day's clearing movements, in the order the database happened to return them."""

    def __init__(self, movements: dict[str, int]) -> None:
        self.movements = movements

    def clearing_movements(self, start: Any, end: Any) -> dict[str, int]:
        return dict(self.movements)


def _clearing_report(movements: dict[str, int], local: set[str]) -> list[tuple[str, str, int]]:
    uow = SimpleNamespace(journal=_ClearingJournal(movements))
    return accounts.clearing_report(uow, "2026-03-02", frozenset(local))  # type: ignore[arg-type]


def test_a_pair_of_provinces_on_one_node_is_reported_once_whatever_order_the_accounts_come_in():
    # Nanjing's hospital was paid 300 fen from Lanzhou and Lanzhou's 500 from Jiangsu's Suzhou:
    # each crossing is booked on both provinces' clearing accounts of the one node.
    movements = {
        "CLEARING:62:32": 300 - 500,  # the larger code's side first: it is the side not read
        "CLEARING:32:62": -300 + 500,
        "CLEARING:62:11": 700,
        "CLEARING:11:62": -700,
    }
    expected = [("62", "11", 700), ("32", "62", 200)]  # by pair
    assert _clearing_report(movements, {"11", "32", "62"}) == expected
    assert _clearing_report(dict(reversed(movements.items())), {"11", "32", "62"}) == expected


def test_a_clearing_report_reads_each_pair_from_its_local_side_only():
    # East holds 32 and 33; west holds 62. East's own books of the 62 pairs are read, and
    # a stray account of a province east does not hold is left out wherever it comes.
    movements = {"CLEARING:62:32": 999, "CLEARING:32:62": -400, "CLEARING:33:62": 250, "CLEARING:62:33": 999}
    assert _clearing_report(movements, {"32", "33"}) == [("62", "32", 400), ("33", "62", 250)]
    assert _clearing_report(movements, {"62"}) == [("62", "32", 999), ("62", "33", 999)]


def test_a_debt_of_one_fen_between_provinces_is_reported_and_a_settled_pair_is_not():
    movements = {"CLEARING:32:62": 1, "CLEARING:62:32": -1, "CLEARING:32:44": -1, "CLEARING:32:11": 0}
    assert _clearing_report(movements, {"32"}) == [("44", "32", 1), ("32", "62", 1)]
    assert _clearing_report(movements, {"32", "62", "44", "11"}) == [("44", "32", 1), ("32", "62", 1)]
