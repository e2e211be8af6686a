"""A transaction's writes as written: on PostgreSQL every write given together (or kept until the
commit) is one statement, its rows one JSON parameter each; on SQLite each write is a statement of
its own. Whichever way they go they read back as written, a table written twice in a transaction
keeps both changes, a value too long for its column is refused (never cut short) with nothing
written, and writes that were kept are read by a statement that follows them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select
from sqlalchemy.exc import DataError

from services.common.database import create_database_engine, migrate
from services.common.driver_statements import observed
from services.common.idempotency import Outcome
from services.payment.adapters import orm
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.deduction import PaymentSource
from shared.ledger import Account, AccountKind, JournalEntry, Posting, Purpose
from shared.policy import UseCategory
from shared.settlements import Bill, CredentialType, PassedOver, Settlement, SettlementLeg, SettlementState

NOW = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
PATIENT = "320102201501010011"


@pytest.fixture
def engine(databases) -> Iterator[Engine]:
    url = databases.url("payment")
    migrate("payment", url)
    engine = create_database_engine(url, pool_size=2)
    # Every statement through SQLAlchemy, where these tests see what the batch sends (on PostgreSQL
    # it would go to psycopg directly, the same text: tests/test_driver_statements.py).
    observed(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _entry(entry_id: str, postings: int, institution_code: str = "H32010001") -> JournalEntry:
    amounts = [1_000 * (i + 1) for i in range(postings - 1)]
    legs = [Posting(f"PERSONAL:32010219800101{i:04d}", -amount, PATIENT, f"b-{i}") for i, amount in enumerate(amounts)]
    clearing = Posting("CLEARING:320100", sum(amounts))
    return JournalEntry(
        entry_id, NOW, Purpose.SETTLEMENT, (*legs, clearing), settlement_id="s-1", institution_code=institution_code,
        request_id="r-1", memo="门诊",
    )  # fmt: skip


def _settlement(settlement_id: str, legs: int) -> Settlement:
    bill = Bill(
        "H32010001", "320100", PATIENT, CredentialType.CARD, PATIENT, UseCategory.OUTPATIENT, 3_000 * legs + 7,
        institution_settlement_id=f"bill-{settlement_id}",
    )  # fmt: skip
    return Settlement(
        settlement_id, f"r-{settlement_id}", bill, SettlementState.AUTHORIZED,
        [SettlementLeg(i + 1, f"32010219800101{i:04d}", f"PERSONAL:32010219800101{i:04d}", PaymentSource.MUTUAL_AID,
                       3_000, f"b-{i}", "policy-7", "320100", 90_000 - i) for i in range(legs)],
        7, "policy-7", NOW, expire_time=NOW + timedelta(minutes=15),
        passed_over=(PassedOver("b-x", "320102198001019999", "CONTACT_CHANGE_OVERDUE"),),
    )  # fmt: skip


def _writes(engine: Engine, work, defer: bool = False, texts: list[str] | None = None) -> list[str]:
    """Runs work in a unit of work (its writes kept to the commit if `defer`) and commits; the
    statements that write, by their first word (SQLite's PRAGMA and BEGIN left out), and their
    whole texts in `texts`."""
    sent: list[str] = []

    def seen(connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.split()[0] in ("INSERT", "UPDATE", "WITH"):
            sent.append(statement.split()[0])
            if texts is not None:
                texts.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with PaymentUnitOfWork(engine) as uow:
            if defer:
                uow.defer_writes()
            work(uow)
            uow.commit()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return sent


def _one_or_each(backend: str, each: list[str]) -> list[str]:
    """One statement on PostgreSQL (a CTE when it holds more than one write); on SQLite, `each`."""
    return (["WITH"] if len(each) > 1 else each) if backend == "postgresql" else each


@pytest.mark.parametrize("postings", [2, 17])
def test_a_journal_entry_and_its_postings_read_back_as_written_in_their_order(engine, backend, postings) -> None:
    entry = _entry(f"e-{postings}", postings)

    assert _writes(engine, lambda uow: uow.journal.record(entry, {})) == _one_or_each(backend, ["INSERT", "INSERT"])

    e, p = orm.journal_entries, orm.postings
    with engine.connect() as connection:
        head = connection.execute(
            select(e.c.time, e.c.purpose, e.c.settlement_id, e.c.institution_code, e.c.request_id, e.c.memo)
            .where(e.c.entry_id == entry.entry_id)
        ).one()  # fmt: skip
        rows = connection.execute(
            select(p.c.account_id, p.c.amount_fen, p.c.counterpart_id_number, p.c.binding_id, p.c.time)
            .where(p.c.entry_id == entry.entry_id)
            .order_by(p.c.posting_id)
        ).all()
    assert tuple(head) == (NOW, "SETTLEMENT", "s-1", "H32010001", "r-1", "门诊")
    assert [tuple(row) for row in rows] == [
        (p.account_id, p.amount_fen, p.counterpart_id_number, p.binding_id, NOW) for p in entry.postings
    ]


@pytest.mark.parametrize("legs", [1, 2, 17])
def test_a_settlement_and_its_legs_read_back_as_written(engine, backend, legs) -> None:
    settlement = _settlement(f"s-{legs}", legs)

    assert _writes(engine, lambda uow: uow.settlements.add(settlement)) == _one_or_each(backend, ["INSERT", "INSERT"])

    with PaymentUnitOfWork(engine) as uow:
        assert uow.settlements.get(settlement.settlement_id) == settlement


def _open_accounts(engine: Engine, *ids: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(orm.accounts),
            [{"account_id": i, "kind": "PERSONAL_ACCOUNT", "owner": i[-18:], "admdvs": "320100", "balance_fen": 50_000,
              "held_fen": 0, "create_time": NOW} for i in ids],
        )  # fmt: skip


def _amounts(account_id: str, balance_fen: int, held_fen: int) -> Account:
    """A personal account with the amounts to save (only the amounts are written)."""
    return Account(account_id, AccountKind.PERSONAL_ACCOUNT, "x", "320100", balance_fen, held_fen)


def _answer_bytes() -> bytes:
    return bytes(range(256)) * 3  # every byte value, NUL and backslash included


def test_writes_kept_to_the_commit_go_as_one_statement_and_read_back_as_written(engine, backend) -> None:
    grantor, other = "PERSONAL:320102198001010001", "PERSONAL:320102198001010002"
    _open_accounts(engine, grantor, other)
    settlement = _settlement("s-kept", 2)
    with PaymentUnitOfWork(engine) as uow:  # a year's usage exists for one binding, not the other
        uow.usage.add("b-0", 2026, "320102198001010001", PATIENT, 1_000, 0)
        uow.idempotency.claim("spiffe://gongji/h", "r-kept", "Settle", "f", NOW)
        uow.commit()

    def settle(uow: PaymentUnitOfWork) -> None:
        uow.journal.record(_entry("e-kept", 3), {})
        uow.accounts.save_amounts([_amounts(grantor, 47_000, 0), _amounts(other, 49_000, 25)])
        uow.settlements.add(settlement)
        uow.usage.add("b-0", 2026, "320102198001010001", PATIENT, 3_000, 0)
        uow.usage.add("b-1", 2026, "320102198001010002", PATIENT, 1_000, 25)
        uow.idempotency.complete("spiffe://gongji/h", "r-kept", Outcome(True, _answer_bytes()))

    sent = _writes(engine, settle, defer=True)

    assert sent == (
        ["WITH"] if backend == "postgresql" else ["INSERT", "INSERT", "UPDATE", "INSERT", "INSERT", "UPDATE", "INSERT"]
    )
    with PaymentUnitOfWork(engine) as uow:
        assert uow.settlements.get("s-kept") == settlement
        assert (uow.accounts.get(grantor).balance_fen, uow.accounts.get(other).held_fen) == (47_000, 25)
        usage = uow.usage.of_grantors(["320102198001010001", "320102198001010002"], 2026)
        assert usage == {"320102198001010001": {"b-0": (4_000, 0)}, "320102198001010002": {"b-1": (1_000, 25)}}
        stored = uow.idempotency.get("spiffe://gongji/h", "r-kept")
        assert stored is not None and stored.outcome == Outcome(True, _answer_bytes())


def test_a_read_after_kept_writes_sees_them(engine) -> None:
    grantor = "PERSONAL:320102198001010003"
    _open_accounts(engine, grantor)
    with PaymentUnitOfWork(engine) as uow:
        uow.defer_writes()
        uow.accounts.save_amounts([_amounts(grantor, 41_000, 0)])
        assert uow.accounts.lock([grantor])[grantor].balance_fen == 41_000
        uow.commit()


def test_a_table_written_twice_in_one_transaction_keeps_both_changes(engine) -> None:
    """Two changes of one row in one PostgreSQL statement would keep only one of them."""
    grantor = "PERSONAL:320102198001010004"
    _open_accounts(engine, grantor)
    with PaymentUnitOfWork(engine) as uow:
        uow.defer_writes()
        uow.accounts.save_amounts([_amounts(grantor, 41_000, 500)])
        uow.usage.add("b-9", 2026, "320102198001010004", PATIENT, 1_000, 0)
        uow.usage.flush()
        uow.usage.add("b-9", 2026, "320102198001010004", PATIENT, 2_000, 0)
        uow.accounts.save_amounts([_amounts(grantor, 39_000, 0)])
        uow.commit()
    with PaymentUnitOfWork(engine) as uow:
        account = uow.accounts.get(grantor)
        assert (account.balance_fen, account.held_fen) == (39_000, 0)
        assert uow.usage.of_grantors(["320102198001010004"], 2026) == {"320102198001010004": {"b-9": (3_000, 0)}}


def test_writes_kept_and_then_rolled_back_write_nothing(engine) -> None:
    with PaymentUnitOfWork(engine) as uow:
        uow.defer_writes()
        uow.journal.record(_entry("e-dropped", 2), {})
        uow.rollback()
    with engine.connect() as connection:
        assert (
            connection.execute(select(orm.journal_entries).where(orm.journal_entries.c.entry_id == "e-dropped")).first()
            is None
        )


@pytest.mark.parametrize("defer", [False, True], ids=["written at once", "kept to the commit"])
def test_an_institution_code_too_long_for_its_column_is_refused_and_nothing_is_written(engine, backend, defer) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite does not enforce a VARCHAR's length")
    entry = _entry("e-long", 2, institution_code="H" * 40)

    with pytest.raises(DataError):
        _writes(engine, lambda uow: uow.journal.record(entry, {}), defer=defer)

    entries, postings = orm.journal_entries, orm.postings
    with engine.connect() as connection:
        assert connection.execute(select(entries).where(entries.c.entry_id == "e-long")).first() is None
        assert connection.execute(select(postings).where(postings.c.entry_id == "e-long")).first() is None


@pytest.mark.parametrize("defer", [False, True], ids=["written at once", "kept to the commit"])
def test_on_psycopgs_own_cursor_too_a_value_too_long_is_refused_as_sqlalchemys_data_error(
    engine, backend, defer
) -> None:
    """The write batch's statement runs on the driver's cursor where nothing listens to SQL (the
    other tests' engine sends it through SQLAlchemy to see it); from a pipeline, the error comes
    when the pipeline ends, at the commit."""
    if backend != "postgresql":
        pytest.skip("SQLite does not enforce a VARCHAR's length")
    direct = create_database_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        with pytest.raises(DataError), PaymentUnitOfWork(direct) as uow:
            if defer:
                uow.defer_writes()
            uow.journal.record(_entry("e-long", 2, institution_code="H" * 40), {})
            uow.commit()
    finally:
        direct.dispose()

    with engine.connect() as connection:
        assert (
            connection.execute(select(orm.journal_entries).where(orm.journal_entries.c.entry_id == "e-long")).first()
            is None
        )


def test_the_statement_of_a_settlements_writes_is_the_same_text_for_any_number_of_legs(engine, backend) -> None:
    """So psycopg keeps its parse of it: it parses again, on every call, a statement longer than
    4,096 characters or of more than 50 parameters."""
    if backend != "postgresql":
        pytest.skip("SQLite runs a statement per write")
    texts: list[str] = []
    for settlement in (_settlement("s-text-1", 1), _settlement("s-text-17", 17)):
        _writes(engine, lambda uow, settlement=settlement: uow.settlements.add(settlement), texts=texts)

    assert len(texts) == 2 and texts[0] == texts[1]
    assert len(texts[0]) <= 4_096


def test_an_update_finds_its_rows_by_their_keys_however_large_the_table(engine, backend) -> None:
    """PostgreSQL's planner counts a set-returning function as 100 rows; joined to the table that
    way, an update would read the whole table, and the requests' stored answers grow with every
    request. Each statement the updates send is explained, with the values they sent."""
    if backend != "postgresql":
        pytest.skip("the plans are PostgreSQL's")
    keys, answers = orm.idempotency_keys, 5_000
    accounts = [f"PERSONAL:3201021980{i:08d}" for i in range(answers)]
    with engine.begin() as connection:
        connection.execute(
            insert(keys),
            [{"principal": "spiffe://gongji/h", "request_id": f"r-{i}", "method": "Settle", "fingerprint": "f",
              "create_time": NOW} for i in range(answers)],
        )  # fmt: skip
        connection.execute(
            insert(orm.accounts),
            [{"account_id": a, "kind": "PERSONAL_ACCOUNT", "owner": a[-18:], "admdvs": "320100", "balance_fen": 0,
              "held_fen": 0, "create_time": NOW} for a in accounts],
        )  # fmt: skip
        connection.exec_driver_sql("ANALYZE idempotency_keys")
        connection.exec_driver_sql("ANALYZE accounts")
    sent: list[tuple[str, Any]] = []

    def seen(connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("UPDATE"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with PaymentUnitOfWork(engine) as uow:
            uow.idempotency.complete("spiffe://gongji/h", "r-7", Outcome(True, b"answer"))
            uow.accounts.save_amounts([_amounts(a, 100, 0) for a in accounts[10:13]])
            uow.commit()
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    assert len(sent) == 2
    with engine.connect() as connection:
        for (statement, parameters), table in zip(sent, ("idempotency_keys", "accounts"), strict=True):
            plan = "\n".join(connection.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
            assert f"Seq Scan on {table}" not in plan and "Index Scan" in plan, plan
    with PaymentUnitOfWork(engine) as uow:
        assert uow.idempotency.get("spiffe://gongji/h", "r-7").outcome == Outcome(True, b"answer")
        assert [uow.accounts.get(a).balance_fen for a in accounts[9:14]] == [0, 100, 100, 100, 0]
