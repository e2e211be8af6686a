"""What one cross-node Settle costs each node's database, counted as units of work begun.

East, the coordinator, plans the remote legs and writes the saga's intent (PREPARING) before
anything is held elsewhere, having found that the request has no answer yet; writes the
settlement with the decision (COMMITTING); and notes the participant's acknowledgement: 3. The
plan's reads are advice and the intent and the acknowledgement are one statement each, so on
PostgreSQL those two run outside a transaction (no BEGIN or COMMIT round trips) and only the
settlement is a transaction. What east decided is known from the settlement it wrote, so it is
not read back before west is told.
West, the participant, is not asked what each grantor can give first: it writes holds of as much
as each grantor can give up to what east asks (asking whether it held them already only when the
binding service or the prepare refuses), and writes the capture: 2 transactions. Which node coordinates the
transaction (the access policy's check of the commit) it remembers from the prepare, so it reads
nothing for it.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from tests.helpers import request_id
from tests.test_cross_province import CrossFamily


def test_a_cross_node_settlement_runs_three_units_of_work_on_the_coordinator_and_two_on_the_participant(
    two_nodes, backend
) -> None:
    family = CrossFamily(two_nodes)
    family.nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000)))
    databases = {
        make_url(two_nodes.east.database_url).database: "east",
        make_url(two_nodes.west.database_url).database: "west",
    }
    begun: Counter[str] = Counter()
    alone: Counter[str] = Counter()  # units of work run statement by statement, outside a transaction

    def began(connection: Connection) -> None:
        node = databases.get(connection.engine.url.database)
        if node is not None:
            outside = connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
            (alone if outside else begun)[node] += 1

    event.listen(Engine, "begin", began)
    try:
        settlement = family.nodes.east.stub.Settle(
            papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))
        ).settlement
    finally:
        event.remove(Engine, "begin", began)

    assert settlement.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert [leg.payer_admdvs for leg in settlement.legs] == ["320100", "620100"]
    if backend == "postgresql":
        assert (begun, alone) == ({"east": 1, "west": 2}, {"east": 2})
    else:  # SQLite runs every unit of work in a transaction
        assert (begun, alone) == ({"east": 3, "west": 2}, {})
    family.assert_books_close()


def test_a_cross_node_settlement_sends_each_nodes_writes_as_one_statement_per_transaction(two_nodes, backend) -> None:
    """East's settlement transaction and west's prepare and commit each end in one statement that
    writes everything they write (PostgreSQL; SQLite runs a statement per write).

    East: the plan's reads (3), the saga's intent, then in the settlement's transaction the
    request's claim, the lock, the usage, the saga's move out of PREPARING (which must be answered,
    so it goes first) and one statement for the journal entry, the settlement, the amounts, the
    usage and the stored answer; after it, the acknowledgement. West's prepare: the lock, the
    usage, and one statement for the holds, the usage and its record; its commit: the record, the
    lock, and one statement for the capture."""
    if backend != "postgresql":
        pytest.skip("SQLite runs a statement per write")
    family = CrossFamily(two_nodes, mother_fen=1)  # so that the father on west pays every bill
    family.nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(3_000)))
    databases = {
        make_url(two_nodes.east.database_url).database: "east",
        make_url(two_nodes.west.database_url).database: "west",
    }
    sent: dict[str, list[str]] = {"east": [], "west": []}

    def seen(connection, cursor, statement, parameters, context, executemany) -> None:
        node = databases.get(connection.engine.url.database)
        if node is not None and not statement.startswith("SET"):  # a statement_timeout, as the deadline asks
            sent[node].append(statement.split()[0])

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        family.nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(3_000)))
    finally:
        event.remove(Engine, "before_cursor_execute", seen)

    assert sent == {
        "east": ["SELECT"] * 3 + ["INSERT", "INSERT", "SELECT", "SELECT", "UPDATE", "WITH", "UPDATE"],
        "west": ["SELECT", "SELECT", "WITH", "SELECT", "SELECT", "WITH"],
    }
    family.assert_books_close()
