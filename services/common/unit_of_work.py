"""Unit of work (cosmicpython): one transaction, the repositories that work in it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Table
from sqlalchemy.orm import Session, sessionmaker

from services.common.database import READ_ONLY_OPTION
from services.common.idempotency import IdempotencyStore


class SqlUnitOfWork:
    """Base for a service's unit of work; subclasses add their repositories in `open`."""

    session: Session
    idempotency: IdempotencyStore

    def __init__(self, sessions: sessionmaker[Session], idempotency_table: Table) -> None:
        self._sessions = sessions
        self._idempotency_table = idempotency_table
        self.read_only = False
        self.snapshot = True
        self.each_alone = False

    def reading(self, snapshot: bool = True) -> Self:
        """Marks the next transaction as a read (SQLite then begins it deferred).

        Reads that need no common snapshot (snapshot=False) run without a
        transaction on PostgreSQL: each statement is consistent by itself,
        and BEGIN and ROLLBACK would be two more round trips.
        """
        self.read_only = True
        self.snapshot = snapshot
        return self

    def statement_by_statement(self) -> Self:
        """Marks the next unit of work as one whose statements each stand alone: on PostgreSQL
        they run outside a transaction, each committed as it ends, so BEGIN and COMMIT cost no
        round trips; SQLite runs them in one transaction as usual. For work that needs no
        atomicity: reads whose answer is advice, and a write of one statement."""
        self.each_alone = True
        return self

    def __enter__(self) -> Self:
        self.session = self._sessions()
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        if self.read_only:
            options: dict[str, object] = {READ_ONLY_OPTION: True}
            if not self.snapshot and postgresql:
                options["isolation_level"] = "AUTOCOMMIT"
            self.session.connection(execution_options=options)
        elif self.each_alone and postgresql:
            self.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        self.idempotency = IdempotencyStore(self.session, self._idempotency_table)
        self.open(self.session)
        return self

    def open(self, session: Session) -> None:
        """Creates the repositories bound to this transaction."""

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.session.rollback()  # a no-op after commit; undoes anything left uncommitted
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
