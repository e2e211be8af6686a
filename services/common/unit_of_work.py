"""Unit of work (cosmicpython): one transaction, the repositories that work in it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Table
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from services.common.idempotency import IdempotencyStore


class SqlUnitOfWork:
    """Base for a service's unit of work; subclasses add their repositories in `open`."""

    session: Session
    idempotency: IdempotencyStore

    def __init__(self, sessions: sessionmaker[Session], idempotency_table: Table) -> None:
        self._sessions = sessions
        self._idempotency_table = idempotency_table

    def __enter__(self) -> Self:
        self.session = self._sessions()
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
