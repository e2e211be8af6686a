"""What one Settle costs PostgreSQL in round trips, counted on the wire (libpq's trace of the
payment service's connection: one ReadyForQuery answers each wait for the server).

A two-payer Settle runs 11 statements. The reads wait one by one (BEGIN, the idempotency
claim, the suspension check, the accounts locked, their year's usage); every write after
them, 7 statements, goes out in one pipeline (psycopg's pipeline mode) and is answered at
once; then COMMIT: 7 round trips, where one per statement made 13.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.payment_helpers import PaymentFamily


def test_a_two_payer_settle_waits_for_postgresql_seven_times(payment_service, backend, tmp_path: Path) -> None:
    if backend != "postgresql":
        pytest.skip("round trips are PostgreSQL's")
    family = PaymentFamily(payment_service)
    family.settle(1_000)  # the institution's receivable exists after the first
    statements: list[str] = []
    traced: list[object] = []
    trace_path = tmp_path / "libpq.trace"

    with trace_path.open("w") as trace:

        def seen(connection, cursor, statement, parameters, context, executemany) -> None:
            if "payment" not in str(connection.engine.url.database):
                return
            statements.append(statement.split()[0])
            raw = connection.connection.driver_connection
            if raw not in traced:
                raw.pgconn.trace(trace.fileno())
                traced.append(raw)

        event.listen(Engine, "before_cursor_execute", seen)
        try:
            settlement = family.settle(150_000)
        finally:
            event.remove(Engine, "before_cursor_execute", seen)
            for raw in traced:
                raw.pgconn.untrace()  # type: ignore[attr-defined]

    assert len(settlement.legs) == 2
    assert len(statements) == 11, statements
    waits = trace_path.read_text().count("ReadyForQuery")
    assert waits == 7, trace_path.read_text()
