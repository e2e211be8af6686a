"""Unit of work (cosmicpython): one transaction, the repositories that work in it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine, Table

from services.common.database import READ_ONLY_OPTION
from services.common.idempotency import IdempotencyStore
from services.common.write_batch import WriteBatch


class SqlUnitOfWork:
    """Base for a service's unit of work; subclasses add their repositories in `open`."""

    connection: Connection
    idempotency: IdempotencyStore
    writes: WriteBatch

    def __init__(self, engine: Engine, idempotency_table: Table) -> None:
        # A Core connection, not an ORM Session: the repositories run Core statements only, and
        # a Session costs about 100 µs of CPU more per transaction without doing anything for them.
        self._engine = engine
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
        self.connection = self._engine.connect()
        postgresql = self.connection.dialect.name == "postgresql"
        # Given before the first statement, so the transaction begins with them.
        if self.read_only:
            options: dict[str, object] = {READ_ONLY_OPTION: True}
            if not self.snapshot and postgresql:
                options["isolation_level"] = "AUTOCOMMIT"
            self.connection.execution_options(**options)
        elif self.each_alone and postgresql:
            self.connection.execution_options(isolation_level="AUTOCOMMIT")
        self.writes = WriteBatch(self.connection)
        self.idempotency = IdempotencyStore(self.connection, self._idempotency_table, self.writes)
        self.open(self.connection, self.writes)
        return self

    def open(self, connection: Connection, writes: WriteBatch) -> None:
        """Creates the repositories bound to this transaction."""

    def defer_writes(self) -> None:
        """From here to the commit the transaction only writes: on PostgreSQL the writes are kept
        and sent as one statement at the commit (or before a statement that might read them)."""
        self.writes.defer()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.writes.end(send=False)
        self.connection.rollback()  # a no-op after commit; undoes anything left uncommitted
        self.connection.close()

    def commit(self) -> None:
        self.writes.end(send=True)
        self.connection.commit()

    def rollback(self) -> None:
        self.writes.end(send=False)
        self.connection.rollback()
