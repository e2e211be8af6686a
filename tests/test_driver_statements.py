"""The settlement's hot reads run on psycopg's own cursor on PostgreSQL (SQLAlchemy's work around a
statement costs as much CPU as the statement). What SQLAlchemy gave them must still hold: the same
rows, the transaction begun and ended through it, errors raised as it raises them, a dead
connection replaced, deferred writes seen, and a span for every statement when SQL is traced."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, event, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from services.common import driver_statements
from services.common.database import create_database_engine, migrate
from services.common.driver_statements import DriverStatement
from services.common.write_batch import updating
from services.payment.adapters import orm
from services.payment.adapters.repository import LOCK_ACCOUNTS, LOCK_ACCOUNTS_WITH_HOLDER
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from tests.conftest import Databases
from tests.test_database_connections import cut_connections

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNERS = ["320102198001010016", "320102198001010024", "320102198001010032"]
ACCOUNTS = [f"PERSONAL_ACCOUNT:{owner}" for owner in OWNERS]


@pytest.fixture
def engine(databases: Databases) -> Iterator[Engine]:
    url = databases.url("payment")
    migrate("payment", url)
    engine = create_database_engine(url)
    with engine.begin() as connection:
        connection.execute(
            insert(orm.accounts),
            [
                {
                    "account_id": account,
                    "kind": "PERSONAL_ACCOUNT",
                    "owner": owner,
                    "admdvs": "320100",
                    "balance_fen": 1_000 * (n + 1),
                    "held_fen": 0,
                    "create_time": NOW,
                }
                for n, (account, owner) in enumerate(zip(ACCOUNTS, OWNERS, strict=True))
            ],
        )
    yield engine
    engine.dispose()


def statements_sqlalchemy_ran(engine: Engine) -> list[str]:
    """The reads and writes SQLAlchemy sends from now on (not the BEGIN and PRAGMAs of SQLite's hook)."""
    seen: list[str] = []

    def ran(connection: object, cursor: object, statement: str, *_: object) -> None:
        if statement.split()[0] in {"SELECT", "INSERT", "UPDATE", "WITH"}:
            seen.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", ran)
    return seen


def test_the_accounts_locked_are_the_rows_sqlalchemy_reads_for_any_number_of_them(engine: Engine) -> None:
    for wanted in (ACCOUNTS[:1], ACCOUNTS, [*ACCOUNTS, "PERSONAL_ACCOUNT:nobody"]):
        parameters = {"ids": sorted(wanted), "holder": OWNERS[0], "now": NOW}
        with engine.connect() as connection:
            direct = LOCK_ACCOUNTS_WITH_HOLDER.rows(connection, parameters)
        with engine.connect() as connection:
            through_sqlalchemy = list(connection.execute(LOCK_ACCOUNTS_WITH_HOLDER.statement, parameters))

        assert [tuple(row) for row in direct] == [tuple(row) for row in through_sqlalchemy]
        assert [row.account_id for row in direct] == sorted(a for a in wanted if a in ACCOUNTS)
        assert all(row.holder_suspended is None and row.hold_lapsed is False for row in direct)


def test_on_postgresql_the_hot_reads_bypass_sqlalchemy_and_elsewhere_they_go_through_it(
    engine: Engine, backend: str
) -> None:
    seen = statements_sqlalchemy_ran(engine)
    with engine.connect() as connection:
        LOCK_ACCOUNTS.rows(connection, {"ids": ACCOUNTS})

    assert seen == ([] if backend == "postgresql" else ["SELECT"])


def test_a_read_on_the_driver_is_in_the_transaction_sqlalchemy_began_so_its_lock_ends_with_it(
    engine: Engine, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    with engine.connect() as holder:
        LOCK_ACCOUNTS.rows(holder, {"ids": ACCOUNTS[:1]})
        assert holder.in_transaction()
        with engine.connect() as other:
            other.execute(text("SET lock_timeout = '200ms'"))
            with pytest.raises(OperationalError):  # the row is locked by the holder's open transaction
                other.execute(select(orm.accounts).where(orm.accounts.c.account_id == ACCOUNTS[0]).with_for_update())
            other.rollback()
            holder.rollback()
            other.execute(text("SET lock_timeout = '200ms'"))
            locked = other.execute(select(orm.accounts.c.account_id).with_for_update()).scalars().all()
            assert sorted(locked) == ACCOUNTS


def test_a_write_on_the_driver_is_undone_by_a_rollback_and_kept_by_a_commit(engine: Engine) -> None:
    claim = DriverStatement(insert(orm.idempotency_keys).returning(orm.idempotency_keys.c.request_id))

    def claimed(request_id: str) -> list[object]:
        values = {"principal": "p", "request_id": request_id, "method": "m", "fingerprint": "f", "create_time": NOW}
        return [row.request_id for row in claim.rows(connection, values)]

    with engine.connect() as connection:
        assert claimed("undone") == ["undone"]
        connection.rollback()
        assert claimed("kept") == ["kept"]
        connection.commit()
    with engine.connect() as connection:
        stored = connection.execute(select(orm.idempotency_keys.c.request_id)).scalars().all()
    assert stored == ["kept"]


def test_a_constraint_refused_on_the_driver_is_sqlalchemys_integrity_error(engine: Engine) -> None:
    claim = DriverStatement(insert(orm.idempotency_keys).returning(orm.idempotency_keys.c.request_id))
    values = {"principal": "p", "request_id": "twice", "method": "m", "fingerprint": "f", "create_time": NOW}
    with engine.connect() as connection:
        claim.rows(connection, values)
        with pytest.raises(IntegrityError):
            claim.rows(connection, values)


def test_a_connection_that_died_is_reported_as_sqlalchemy_reports_it_and_the_next_one_is_fresh(
    engine: Engine, databases: Databases, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("a server to cut connections from is PostgreSQL's")
    with engine.connect() as connection:
        LOCK_ACCOUNTS.rows(connection, {"ids": ACCOUNTS})
        connection.rollback()
        assert cut_connections(str(engine.url)) > 0
        with pytest.raises(OperationalError) as raised:
            LOCK_ACCOUNTS.rows(connection, {"ids": ACCOUNTS})
        assert raised.value.connection_invalidated
    with engine.connect() as connection:
        assert [row.account_id for row in LOCK_ACCOUNTS.rows(connection, {"ids": ACCOUNTS})] == ACCOUNTS


def test_a_read_after_writes_kept_for_the_commit_goes_through_sqlalchemy_and_sees_them(engine: Engine) -> None:
    with PaymentUnitOfWork(engine) as uow:
        uow.defer_writes()
        uow.writes.write(updating(orm.accounts, ("account_id",), [{"account_id": ACCOUNTS[0], "balance_fen": 7}]))

        balances = [row.balance_fen for row in LOCK_ACCOUNTS.rows(uow.connection, {"ids": ACCOUNTS[:1]})]

    assert balances == [7]


def test_with_sql_traced_every_statement_goes_through_sqlalchemy_so_each_has_its_span(engine: Engine) -> None:
    seen = statements_sqlalchemy_ran(engine)
    driver_statements.observed(engine)
    with engine.connect() as connection:
        LOCK_ACCOUNTS.rows(connection, {"ids": ACCOUNTS})

    assert seen == ["SELECT"]
