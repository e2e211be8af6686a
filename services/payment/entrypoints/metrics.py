"""The payment service's domain gauges, read from its tables when Prometheus scrapes.

Aggregates only (COUNT/SUM/MIN grouped by a state or source), so a scrape costs a few
index or table scans and no row leaves the database; no label value is personal."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import NamedTuple

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, and_, case, func, select

from services.common.clock import Clock
from services.common.metrics import gauge
from services.common.types import UtcDateTime
from services.payment.adapters import orm
from services.payment.service_layer import coordination
from services.payment.service_layer.inquiries import LedgerAudit
from shared.deduction import PaymentSource
from shared.settlements import SettlementState

CASH = "CASH"
SOURCES = [*(source.value for source in PaymentSource), CASH]
# How money left a settlement's sources: taken by a Settle (held and captured in one call) or
# by the CaptureSettlement of an authorization, then maybe given back by a refund (撤销) or by a
# reversal (冲正) of the settle or capture.
KINDS = ("settle", "capture", "refund", "reversal")
GIVEN_BACK = {SettlementState.REFUNDED.value: "refund", SettlementState.REVERSED.value: "reversal"}


def _taken_by(one_step: bool) -> str:
    return "settle" if one_step else "capture"


FINAL_SAGA_STATES = frozenset({coordination.COMMITTED, coordination.ABORTED, coordination.REFUNDED})


def payment_reader(clock: Clock) -> Callable[[Connection], Iterator[GaugeMetricFamily]]:
    def read(connection: Connection) -> Iterator[GaugeMetricFamily]:
        now = clock.now()
        yield from _settlements(connection, now)
        yield from _sagas(connection, now)
        t = orm.transfers
        pending = connection.execute(
            select(func.count(), func.coalesce(func.sum(t.c.amount_fen), 0)).where(t.c.state == "PENDING")
        ).one()
        yield gauge("gongji_wallet_transfers_pending", "Wallet transfers not yet credited.", [], [(pending[0],)])
        yield gauge(
            "gongji_wallet_transfers_pending_fen", "Fen of wallet transfers not yet credited.", [], [(pending[1],)]
        )
        keys = connection.execute(select(func.count()).select_from(orm.idempotency_keys)).scalar_one()
        yield gauge("gongji_idempotency_keys", "Rows of the idempotency store (request ids kept).", [], [(keys,)])

    return read


def _settlements(connection: Connection, now: datetime) -> Iterator[GaugeMetricFamily]:
    s, legs = orm.settlements, orm.settlement_legs
    authorized = s.c.state == SettlementState.AUTHORIZED.value
    was_captured = s.c.capture_time.is_not(None)
    by_state = connection.execute(
        select(
            s.c.state,
            s.c.one_step,
            func.count(),
            func.sum(case((and_(authorized, s.c.expire_time < now), 1), else_=0)),
            func.sum(case((was_captured, 1), else_=0)),
            func.sum(case((was_captured, s.c.cash_pay_fen), else_=0)),
        ).group_by(s.c.state, s.c.one_step)
    ).all()
    by_leg = connection.execute(
        select(
            legs.c.source, s.c.state, s.c.one_step, func.sum(legs.c.amount_fen), func.sum(legs.c.captured_fen),
            func.sum(legs.c.refunded_fen),
        )
        .join(s, s.c.settlement_id == legs.c.settlement_id)
        .group_by(legs.c.source, s.c.state, s.c.one_step)
    ).all()  # fmt: skip

    counts = dict.fromkeys((state.value for state in SettlementState), 0)
    operations = dict.fromkeys(KINDS, 0)
    money = {(source, kind): 0 for source in SOURCES for kind in KINDS}
    expired = 0
    for state, one_step, count, expired_here, captured, cash in by_state:
        counts[state] += count
        expired += expired_here or 0
        operations[_taken_by(one_step)] += captured or 0
        money[CASH, _taken_by(one_step)] += cash or 0
        if state in GIVEN_BACK:
            operations[GIVEN_BACK[state]] += count
            money[CASH, GIVEN_BACK[state]] += cash or 0
    held = 0
    for source, state, one_step, amount, captured, refunded in by_leg:
        money[source, _taken_by(one_step)] += captured or 0
        if state in GIVEN_BACK:
            money[source, GIVEN_BACK[state]] += refunded or 0
        if state == SettlementState.AUTHORIZED.value:
            held += amount or 0

    yield gauge("gongji_settlements", "Settlements by state.", ["state"], counts.items())
    yield gauge(
        "gongji_settlement_operations",
        "Settlements settled in one step (settle), captured after an authorization (capture), refunded, or "
        "reversed (a hold or a capture).",
        ["kind"],
        operations.items(),
    )
    yield gauge(
        "gongji_settlement_money_fen",
        "Fen taken from each source (CASH: paid at the institution) by Settle (settle) or CaptureSettlement "
        "(capture), and of that what refunds and reversals gave back.",
        ["source", "kind"],
        ((source, kind, fen) for (source, kind), fen in money.items()),
    )
    yield gauge(
        "gongji_holds_outstanding", "Authorized settlements whose holds await capture or release.", [],
        [(counts[SettlementState.AUTHORIZED.value],)],
    )  # fmt: skip
    yield gauge("gongji_holds_outstanding_fen", "Fen held by authorized settlements.", [], [(held,)])
    yield gauge(
        "gongji_holds_expired", "Authorized settlements past their expiry, awaiting the sweeper.", [], [(expired,)]
    )


def _sagas(connection: Connection, now: datetime) -> Iterator[GaugeMetricFamily]:
    t = orm.node_transactions
    rows = connection.execute(
        select(t.c.state, func.count(), func.min(t.c.create_time, type_=UtcDateTime())).group_by(t.c.state)
    ).all()
    yield gauge("gongji_cross_node_sagas", "Cross-node transactions this node coordinates, by state.", ["state"],
                ((state, count) for state, count, _ in rows))  # fmt: skip
    oldest = min((created for state, _, created in rows if state not in FINAL_SAGA_STATES), default=None)
    age = (now - oldest).total_seconds() if oldest is not None else 0
    yield gauge(
        "gongji_cross_node_saga_oldest_unfinished_age_seconds",
        "Age of the oldest cross-node transaction not yet committed, aborted or refunded (0: none).",
        [], [(max(age, 0),)],
    )  # fmt: skip


class _AuditOutcome(NamedTuple):
    balanced: bool
    problems: int
    completed: float  # time.monotonic()


class LedgerAuditGauges(Collector):
    """The last periodic ledger audit (check_ledger is too heavy to run at every scrape).

    Ages are by time.monotonic, not the service clock: a test or operator moving the clock
    must not make a fresh audit look stale. Only the count of problems is exported; their
    text names accounts, which are personal, so operators read it through CheckLedger."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        # Replaced whole, never mutated: the scrape thread reads it without a lock.
        self._last: _AuditOutcome | None = None

    def record(self, audit: LedgerAudit) -> None:
        self._last = _AuditOutcome(audit.balanced, len(audit.problems), self._monotonic())

    def collect(self) -> Iterable[GaugeMetricFamily]:
        last = self._last
        if last is None:
            # Absent rather than 0 or 1: no audit has finished yet, so nothing is known.
            return
        yield gauge(
            "gongji_ledger_balanced", "1 when the last ledger audit found no problem, 0 when it found some.", [],
            [(int(last.balanced),)],
        )  # fmt: skip
        yield gauge("gongji_ledger_problems", "Problems the last ledger audit found (CheckLedger names them).", [],
                    [(last.problems,)])  # fmt: skip
        yield gauge(
            "gongji_ledger_audit_age_seconds", "Seconds since the last ledger audit finished (monotonic clock).", [],
            [(max(self._monotonic() - last.completed, 0.0),)],
        )  # fmt: skip
