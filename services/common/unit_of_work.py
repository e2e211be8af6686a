"""Unit of work (cosmicpython): one transaction, the repositories that work in it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Table
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

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

    def reading(self) -> Self:
        """Marks the next transaction as a read (SQLite then begins it deferred)."""
        self.read_only = True
        return self

    def __enter__(self) -> Self:
        self.session = self._sessions()
        if self.read_only:
            self.session.connection(execution_options={READ_ONLY_OPTION: True})
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

    def savepoint(self) -> SessionTransaction:
        return self.session.begin_nested()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
