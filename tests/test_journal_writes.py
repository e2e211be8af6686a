"""A journal entry and its postings as written: on PostgreSQL one statement (the entry's INSERT a
data-modifying CTE of the postings' multi-row INSERT) up to 16 postings and two beyond, on SQLite
always two. Whichever way it goes, the rows read back are the same, and a value too long for its
column is refused, never cut short."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import DataError

from services.common.database import create_database_engine, migrate
from services.payment.adapters import orm
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.ledger import JournalEntry, Posting, Purpose

NOW = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)


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
    legs = [Posting(f"PERSONAL:32010219800101{i:04d}", -amount, "320102201501010011", f"b-{i}") for i, amount in
            enumerate(amounts)]  # fmt: skip
    clearing = Posting("CLEARING:320100", sum(amounts))
    return JournalEntry(
        entry_id, NOW, Purpose.SETTLEMENT, (*legs, clearing), settlement_id="s-1", institution_code=institution_code,
        request_id="r-1", memo="门诊",
    )  # fmt: skip


def _write(engine: Engine, entry: JournalEntry) -> list[str]:
    """Writes the entry in its own unit of work; its writes sent, by their first word (SQLite's
    PRAGMA and BEGIN left out)."""
    sent: list[str] = []

    def seen(connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.split()[0] in ("INSERT", "WITH"):
            sent.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with PaymentUnitOfWork(engine) as uow:
            uow.journal.record(entry, {})
            uow.commit()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return sent


def _read_back(engine: Engine, entry_id: str) -> tuple[tuple, list[tuple]]:
    with engine.connect() as connection:
        e = orm.journal_entries
        head = connection.execute(
            select(e.c.time, e.c.purpose, e.c.settlement_id, e.c.institution_code, e.c.request_id, e.c.memo).where(
                e.c.entry_id == entry_id
            )
        ).one()
        p = orm.postings
        rows = connection.execute(
            select(p.c.account_id, p.c.amount_fen, p.c.counterpart_id_number, p.c.binding_id, p.c.time)
            .where(p.c.entry_id == entry_id)
            .order_by(p.c.posting_id)
        ).all()
    return tuple(head), [tuple(row) for row in rows]


@pytest.mark.parametrize("postings", [2, 16, 17])
def test_an_entry_reads_back_as_written_whether_sent_as_one_statement_or_two(engine, backend, postings) -> None:
    entry = _entry(f"e-{postings}", postings)

    sent = _write(engine, entry)

    one_statement = backend == "postgresql" and postings <= 16
    assert sent == (["WITH"] if one_statement else ["INSERT", "INSERT"])
    head, rows = _read_back(engine, entry.entry_id)
    assert head == (NOW, "SETTLEMENT", "s-1", "H32010001", "r-1", "门诊")
    assert rows == [(p.account_id, p.amount_fen, p.counterpart_id_number, p.binding_id, NOW) for p in entry.postings]
    assert sum(amount for _, amount, *_ in rows) == 0


def test_an_institution_code_too_long_for_its_column_is_refused_and_nothing_is_written(engine, backend) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite does not enforce a VARCHAR's length")
    entry = _entry("e-long", 2, institution_code="H" * 40)

    with pytest.raises(DataError):
        _write(engine, entry)

    with engine.connect() as connection:
        assert (
            connection.execute(select(orm.journal_entries).where(orm.journal_entries.c.entry_id == "e-long")).first()
            is None
        )
        assert connection.execute(select(orm.postings).where(orm.postings.c.entry_id == "e-long")).first() is None
