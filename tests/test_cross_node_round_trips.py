"""What one cross-node Settle costs each node's database, counted as units of work begun.

One round (the father on west is the bill's last payer): east plans the remote legs and writes
the saga's intent (PREPARING) before anything is taken elsewhere, having found that the request
has no answer yet, then writes the settlement with the saga committed: 2. West captures as much as
the father can give up to what east asks, in one transaction: 1. The plan's reads are advice and
the intent is one statement, so on PostgreSQL it runs outside a transaction (no BEGIN or COMMIT
round trips) and only the settlement is a transaction.

Two rounds (nodes started --no-one-round): east also notes west's acknowledgement of the commit
(3, two of them statement by statement), and west writes holds, then the capture (2). What east
decided is known from the settlement it wrote, so it is not read back before west is told; which
node coordinates the transaction (the access policy's check of the commit) west remembers from
the prepare, so it reads nothing for it.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.common import driver_statements
from tests.conftest import running_two_nodes
from tests.helpers import request_id
from tests.test_cross_province import CrossFamily


@pytest.fixture(params=["one round", "two rounds"])
def nodes(request, databases, binding_service, tmp_path):
    one_round = request.param == "one round"
    with running_two_nodes(databases, binding_service, tmp_path, lambda name: {"one_round": one_round}) as built:
        yield built, request.param


def test_the_units_of_work_a_cross_node_settlement_runs_on_each_node_in_one_round_and_in_two(nodes, backend) -> None:
    two_nodes, rounds = nodes
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
    expected = {
        ("one round", "postgresql"): ({"east": 1, "west": 1}, {"east": 1}),
        ("two rounds", "postgresql"): ({"east": 1, "west": 2}, {"east": 2}),
        # SQLite runs every unit of work in a transaction.
        ("one round", "sqlite"): ({"east": 2, "west": 1}, {}),
        ("two rounds", "sqlite"): ({"east": 3, "west": 2}, {}),
    }
    assert (begun, alone) == expected[rounds, backend]
    family.assert_books_close()


def test_a_cross_node_settlement_sends_each_nodes_writes_as_one_statement_per_transaction(
    nodes, backend, monkeypatch
) -> None:
    """East's settlement transaction and west's transactions each end in one statement that
    writes everything they write (PostgreSQL; SQLite runs a statement per write).

    East: the plan's reads (3), the saga's intent, then in the settlement's transaction the
    request's claim, the lock, the usage, the saga's move out of PREPARING (which must be answered,
    so it goes first) and one statement for the journal entry, the settlement, the amounts, the
    usage and the stored answer; in two rounds, after it, the acknowledgement. West in one round:
    the lock, the usage, and one statement for the capture, the journal entry, the usage and its
    record. In two rounds its prepare: the lock, the usage, and one statement for the holds, the
    usage and its record; its commit: the record, the lock, and one statement for the capture."""
    if backend != "postgresql":
        pytest.skip("SQLite runs a statement per write")
    two_nodes, rounds = nodes
    family = CrossFamily(two_nodes, mother_fen=1)  # so that the father on west pays every bill
    family.nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(3_000)))
    databases = {
        make_url(two_nodes.east.database_url).database: "east",
        make_url(two_nodes.west.database_url).database: "west",
    }
    sent: dict[str, list[str]] = {"east": [], "west": []}
    # Every statement through SQLAlchemy, where this test sees it; on psycopg's cursor the hot ones
    # are the same statements (tests/test_driver_statements.py, and the wire in test_settle_round_trips).
    monkeypatch.setattr(driver_statements, "_direct", lambda connection: False)

    def seen(connection, cursor, statement, parameters, context, executemany) -> None:
        node = databases.get(connection.engine.url.database)
        if node is not None and not statement.startswith("SET"):  # a statement_timeout, as the deadline asks
            sent[node].append(statement.split()[0])

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        family.nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(3_000)))
    finally:
        event.remove(Engine, "before_cursor_execute", seen)

    settlement = ["SELECT"] * 3 + ["INSERT", "INSERT", "SELECT", "SELECT", "UPDATE", "WITH"]
    if rounds == "one round":
        assert sent == {"east": settlement, "west": ["SELECT", "SELECT", "WITH"]}
    else:
        assert sent == {
            "east": [*settlement, "UPDATE"],
            "west": ["SELECT", "SELECT", "WITH", "SELECT", "SELECT", "WITH"],
        }
    family.assert_books_close()
