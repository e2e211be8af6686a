"""A row and the rows that belong to it, as written: on PostgreSQL one statement (the row's
INSERT a data-modifying CTE of its children's multi-row INSERT) up to 16 children and two beyond,
on SQLite always two. Whichever way they go, they read back as written, and a value too long for
its column is refused, never cut short."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import DataError

from services.common.database import create_database_engine, migrate
from services.payment.adapters import orm
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.deduction import PaymentSource
from shared.ledger import JournalEntry, Posting, Purpose
from shared.policy import UseCategory
from shared.settlements import Bill, CredentialType, PassedOver, Settlement, SettlementLeg, SettlementState

NOW = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
PATIENT = "320102201501010011"


@pytest.fixture
def engine(databases) -> Iterator[Engine]:
    url = databases.url("payment")
    migrate("payment", url)
    engine = create_database_engine(url, pool_size=2)
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


def _writes(engine: Engine, work) -> list[str]:
    """Runs work in a unit of work and commits; its writes sent, by their first word (SQLite's
    PRAGMA and BEGIN left out)."""
    sent: list[str] = []

    def seen(connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.split()[0] in ("INSERT", "WITH"):
            sent.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with PaymentUnitOfWork(engine) as uow:
            work(uow)
            uow.commit()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return sent


def _expected(backend: str, children: int) -> list[str]:
    return ["WITH"] if backend == "postgresql" and children <= 16 else ["INSERT", "INSERT"]


@pytest.mark.parametrize("postings", [2, 16, 17])
def test_a_journal_entry_reads_back_as_written_whether_sent_as_one_statement_or_two(engine, backend, postings) -> None:
    entry = _entry(f"e-{postings}", postings)

    assert _writes(engine, lambda uow: uow.journal.record(entry, {})) == _expected(backend, postings)

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

    assert _writes(engine, lambda uow: uow.settlements.add(settlement)) == _expected(backend, legs)

    with PaymentUnitOfWork(engine) as uow:
        assert uow.settlements.get(settlement.settlement_id) == settlement


def test_an_institution_code_too_long_for_its_column_is_refused_and_nothing_is_written(engine, backend) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite does not enforce a VARCHAR's length")
    entry = _entry("e-long", 2, institution_code="H" * 40)

    with pytest.raises(DataError):
        _writes(engine, lambda uow: uow.journal.record(entry, {}))

    entries, postings = orm.journal_entries, orm.postings
    with engine.connect() as connection:
        assert connection.execute(select(entries).where(entries.c.entry_id == "e-long")).first() is None
        assert connection.execute(select(postings).where(postings.c.entry_id == "e-long")).first() is None
