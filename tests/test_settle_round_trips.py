"""What one Settle costs PostgreSQL in round trips, counted on the wire (libpq's trace of the
payment service's connection: one ReadyForQuery answers each wait for the server).

A two-payer Settle runs 4 statements. The reads wait one by one (BEGIN, the idempotency
claim, the accounts locked with whether the card holder is suspended, their year's usage);
every write after them (the journal entry and its postings, the settlement and its legs, the
accounts' new amounts, the bindings' usage and the request's stored answer) is one statement,
sent in pipeline mode and answered when the commit waits: 6 round trips.

A call with a deadline (most clients set one) bounds its statements by the time it has left: the
connection's `statement_timeout` serves while it lies between three quarters of that time and all
of it, so calls with like deadlines cost nothing more. A call with much less time left than the
one before costs one more round trip: `SET statement_timeout` after BEGIN.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from gongji.payment.v1 import payment_service_pb2 as papi
from tests.helpers import request_id
from tests.payment_helpers import PaymentFamily


@pytest.mark.parametrize(
    ("before", "deadline", "sets_timeout"),
    [(None, None, False), (30.0, 30.0, False), (60.0, 30.0, True)],
    ids=["without a deadline", "with a deadline like the last call's", "with much less time left than the last call"],
)
def test_a_two_payer_settle_waits_for_postgresql_six_times_and_once_more_for_a_new_statement_timeout(
    payment_service, backend, tmp_path: Path, before: float | None, deadline: float | None, sets_timeout: bool
) -> None:
    if backend != "postgresql":
        pytest.skip("round trips are PostgreSQL's")
    family = PaymentFamily(payment_service)
    # The institution's receivable exists after the first; the pool lends its last connection again.
    family.payment.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000)), timeout=before)
    traced: list[object] = []
    trace_path = tmp_path / "libpq.trace"

    with trace_path.open("w") as trace:

        def checked_out(dbapi_connection, record, proxy) -> None:
            # From checkout on, so that what is sent when the transaction begins is seen too.
            if "payment" in dbapi_connection.info.dbname and dbapi_connection not in traced:
                dbapi_connection.pgconn.trace(trace.fileno())
                traced.append(dbapi_connection)

        event.listen(Pool, "checkout", checked_out)
        try:
            settlement = family.payment.Settle(
                papi.SettleRequest(request_id=request_id(), bill=family.bill(150_000)), timeout=deadline
            ).settlement
        finally:
            event.remove(Pool, "checkout", checked_out)
            for raw in traced:
                raw.pgconn.untrace()  # type: ignore[attr-defined]

    assert len(settlement.legs) == 2
    wire = trace_path.read_text()
    # The claim, the lock, the usage read, and every write as one: four statements executed.
    assert len(re.findall(r"\tF\t\d+\tExecute\t", wire)) == 4, wire
    assert ("SET statement_timeout" in wire) == sets_timeout
    assert wire.count("ReadyForQuery") == (7 if sets_timeout else 6), wire
