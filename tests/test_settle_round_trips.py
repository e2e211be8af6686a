"""What one Settle costs PostgreSQL in round trips, counted on the wire (libpq's trace of the
payment service's connection: one ReadyForQuery answers each wait for the server).

A two-payer Settle runs 11 statements. The reads wait one by one (BEGIN, the idempotency
claim, the suspension check, the accounts locked, their year's usage); every write after
them, 7 statements, goes out in one pipeline (psycopg's pipeline mode) and is answered at
once; then COMMIT: 7 round trips, where one per statement made 13. A call with a deadline
(most clients set one) costs one more: `SET LOCAL statement_timeout` after BEGIN, waited for on
its own, since psycopg waits for its implicit BEGIN even in pipeline mode.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from gongji.payment.v1 import payment_service_pb2 as papi
from tests.helpers import request_id
from tests.payment_helpers import PaymentFamily


@pytest.mark.parametrize("deadline", [None, 30.0], ids=["without a deadline", "with a deadline"])
def test_a_two_payer_settle_waits_for_postgresql_seven_times_and_once_more_for_a_deadline(
    payment_service, backend, tmp_path: Path, deadline: float | None
) -> None:
    if backend != "postgresql":
        pytest.skip("round trips are PostgreSQL's")
    family = PaymentFamily(payment_service)
    family.settle(1_000)  # the institution's receivable exists after the first
    statements: list[str] = []
    traced: list[object] = []
    trace_path = tmp_path / "libpq.trace"

    with trace_path.open("w") as trace:

        def checked_out(dbapi_connection, record, proxy) -> None:
            # From checkout on, so that what is sent when the transaction begins is seen too.
            if "payment" in dbapi_connection.info.dbname and dbapi_connection not in traced:
                dbapi_connection.pgconn.trace(trace.fileno())
                traced.append(dbapi_connection)

        def seen(connection, cursor, statement, parameters, context, executemany) -> None:
            if "payment" in str(connection.engine.url.database):
                statements.append(statement.split()[0])

        event.listen(Pool, "checkout", checked_out)
        event.listen(Engine, "before_cursor_execute", seen)
        try:
            settlement = family.payment.Settle(
                papi.SettleRequest(request_id=request_id(), bill=family.bill(150_000)), timeout=deadline
            ).settlement
        finally:
            event.remove(Engine, "before_cursor_execute", seen)
            event.remove(Pool, "checkout", checked_out)
            for raw in traced:
                raw.pgconn.untrace()  # type: ignore[attr-defined]

    assert len(settlement.legs) == 2
    assert len(statements) == (12 if deadline else 11), statements  # with SET LOCAL statement_timeout
    wire = trace_path.read_text()
    assert ("SET LOCAL statement_timeout" in wire) == (deadline is not None)
    assert wire.count("ReadyForQuery") == (8 if deadline else 7), wire
