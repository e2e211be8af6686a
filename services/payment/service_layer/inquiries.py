"""Reads of the payment service's books as a whole: reconciliation (对账) of an
institution's day and the ledger audit."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.deduction import PaymentSource
from shared.ledger import day_bounds
from shared.money import MAX_BALANCE_FEN


@dataclass(frozen=True)
class SourceTotals:
    count: int
    amount_fen: int


@dataclass
class Reconciliation:
    """One institution's day as its own books see it: what was settled (结算), undone (撤销)
    and reversed (冲正), each counted by settlement and summed per source; cash as the
    institution took it."""

    institution_code: str
    date: str
    settlement_count: int = 0
    refund_count: int = 0
    reversal_count: int = 0
    settled: dict[PaymentSource, SourceTotals] = field(default_factory=dict)
    refunded: dict[PaymentSource, SourceTotals] = field(default_factory=dict)
    reversed: dict[PaymentSource, SourceTotals] = field(default_factory=dict)
    settled_cash_fen: int = 0

    @property
    def net_fen(self) -> int:
        """Settled less undone and reversed, over every source but cash."""
        return sum(t.amount_fen for t in self.settled.values()) - sum(
            t.amount_fen for t in (*self.refunded.values(), *self.reversed.values())
        )


def _in(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= moment < end


def reconcile(uow: PaymentUnitOfWork, institution_code: str, date: str) -> Reconciliation:
    """One institution's day in China Standard Time. A settlement counts as settled on the day
    it was captured (all-cash ones too), as undone or reversed on the day that closed it."""
    start, end = day_bounds(date)
    kinds: dict[str, dict[PaymentSource, list[int]]] = {
        kind: defaultdict(lambda: [0, 0]) for kind in ("settled", "refunded", "reversed")
    }
    counted: dict[str, set[str]] = {kind: set() for kind in kinds}
    cash: dict[str, int] = {}
    for row in uow.settlements.institution_day(institution_code, start, end):
        if _in(row.capture_time, start, end):
            counted["settled"].add(row.settlement_id)
            cash[row.settlement_id] = row.cash_pay_fen
            if row.source is not None and row.leg_captured_fen:
                kinds["settled"][PaymentSource(row.source)][0] += 1
                kinds["settled"][PaymentSource(row.source)][1] += row.leg_captured_fen
        back = "reversed" if row.state == "REVERSED" else "refunded" if row.state == "REFUNDED" else None
        if back and _in(row.close_time, start, end) and row.capture_time is not None:
            counted[back].add(row.settlement_id)
            if row.source is not None and row.leg_refunded_fen:
                kinds[back][PaymentSource(row.source)][0] += 1
                kinds[back][PaymentSource(row.source)][1] += row.leg_refunded_fen
    totals = {kind: {s: SourceTotals(c, a) for s, (c, a) in table.items()} for kind, table in kinds.items()}
    return Reconciliation(
        institution_code, date,
        settlement_count=len(counted["settled"]), refund_count=len(counted["refunded"]),
        reversal_count=len(counted["reversed"]),
        settled=totals["settled"], refunded=totals["refunded"], reversed=totals["reversed"],
        settled_cash_fen=sum(cash.values()),
    )  # fmt: skip


@dataclass(frozen=True)
class LedgerAudit:
    balanced: bool
    entry_count: int
    account_count: int
    problems: tuple[str, ...]


def check_ledger(uow: PaymentUnitOfWork, now: datetime, grace: timedelta = timedelta(minutes=5)) -> LedgerAudit:
    """Every entry balances, every balance equals its postings, every hold is accounted
    for, no account is overdrawn or below zero, no hold outlives its expiry by more than the
    grace, every amount between provinces belongs to a settlement or transfer, no leg captured
    more than it held, and no amount is beyond what a real account could hold."""
    problems: list[str] = []
    problems += [f"entry {e} sums to {total} fen, not 0" for e, total in uow.audit.unbalanced_entries()]
    problems += [
        f"account {a} has balance {bal} fen but its postings sum to {total} fen"
        for a, bal, total in uow.audit.balance_mismatches()
    ]
    problems += [
        f"account {a} holds {held} fen but its open holds sum to {total} fen"
        for a, held, total in uow.audit.held_mismatches()
    ]
    problems += [f"account {a} holds more than its balance" for a in uow.audit.negative_available()]
    problems += [f"settlement {s} holds money past its expiry" for s in uow.audit.stale_holds(now - grace)]
    problems += [
        f"cross-node transaction {t} holds money here past its expiry" for t in uow.audit.stale_prepared(now - grace)
    ]
    problems += [f"account {a} is below zero" for a in uow.audit.negative_balances()]
    problems += [
        f"clearing posting of entry {entry} on {account} has no settlement, cross-node transaction or transfer"
        for entry, account in uow.audit.clearing_without_counterpart()
    ]
    problems += [f"{what} is beyond {MAX_BALANCE_FEN} fen" for what in uow.audit.beyond(MAX_BALANCE_FEN)]
    problems += [f"{leg} captured outside what it held" for leg in uow.audit.captures_outside_holds()]
    total = uow.audit.total_of_all_accounts()
    if total != 0:
        problems.append(f"the sum over all accounts is {total} fen, not 0")
    entries, accounts = uow.audit.counts()
    return LedgerAudit(not problems, entries, accounts, tuple(problems))
