"""The payment service's unit of work: one transaction and its repositories."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from services.common.database import WRITES_ONLY_OPTION, listen_once
from services.common.driver_statements import hooked_while
from services.common.unit_of_work import SqlUnitOfWork
from services.common.write_batch import WriteBatch
from services.payment.adapters import orm
from services.payment.adapters.node_repository import NodeTransactionLog, ParticipantLog, TransferRepository
from services.payment.adapters.repository import (
    AccountRepository,
    AuditQueries,
    Journal,
    SettlementRepository,
    UsageRepository,
    ViolationRepository,
)
from services.payment.service_layer.coordinator_memory import CoordinatorMemory

# Where an open psycopg pipeline is kept: the pooled connection's info.
PIPELINE = hooked_while("gongji.pipeline")


def _end_pipeline(info: dict[Any, Any], failed: bool = False) -> None:
    """Leaves pipeline mode, waiting (one round trip) for the answers of every statement sent in it.

    An error of one of those statements is raised here, unless the transaction
    failed already and is rolled back anyway.
    """
    pipeline = info.pop(PIPELINE, None)
    if pipeline is None:
        return
    try:
        pipeline.__exit__(None, None, None)
    except Exception:
        if not failed:
            raise


def _before_statement(
    connection: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    """A statement whose rows are wanted ends the pipeline first: in pipeline mode its rows
    would not be there when SQLAlchemy looks for them, and it must see the writes sent before it."""
    if PIPELINE not in connection.info:
        return
    compiled = context.compiled
    writes_only = context.execution_options.get(WRITES_ONLY_OPTION, False) or (
        compiled is not None
        and (context.isinsert or context.isupdate or context.isdelete)
        and not compiled.effective_returning
    )
    if not writes_only:
        _end_pipeline(connection.info)


class PaymentUnitOfWork(SqlUnitOfWork):
    accounts: AccountRepository
    journal: Journal
    settlements: SettlementRepository
    usage: UsageRepository
    violations: ViolationRepository
    audit: AuditQueries
    node_transactions: NodeTransactionLog
    participants: ParticipantLog
    transfers: TransferRepository

    def __init__(
        self,
        engine: Engine,
        known_accounts: set[str] | None = None,
        coordinators: CoordinatorMemory | None = None,
    ) -> None:
        super().__init__(engine, orm.idempotency_keys)
        self._known_accounts = known_accounts
        self._coordinators = coordinators
        self._pipelined: tuple[dict[Any, Any], type[Exception]] | None = None

    def open(self, connection: Connection, writes: WriteBatch) -> None:
        self.accounts = AccountRepository(connection, writes, self._known_accounts)
        self.journal = Journal(connection, writes)
        self.settlements = SettlementRepository(connection, writes)
        self.usage = UsageRepository(connection, writes)
        self.violations = ViolationRepository(connection)
        self.audit = AuditQueries(connection)
        self.node_transactions = NodeTransactionLog(connection)
        self.participants = ParticipantLog(connection, writes)
        self.transfers = TransferRepository(connection)

    def defer_writes(self) -> None:
        """From here to the commit the transaction only writes. On PostgreSQL the writes are kept
        and sent at the commit as one statement (see WriteBatch), in pipeline mode: sent without
        waiting, its answer read in the same round trip as any other statement's sent so, before
        COMMIT. A statement that returns rows (a read, a RETURNING) still works: it sends the writes
        kept and ends the pipeline first, so it sees them. On SQLite nothing changes."""
        super().defer_writes()
        connection = self.connection
        if connection.dialect.name != "postgresql" or PIPELINE in connection.info:
            return
        listen_once(connection.engine, "before_cursor_execute", _before_statement)
        pipeline = connection.connection.driver_connection.pipeline()  # type: ignore[union-attr]
        pipeline.__enter__()
        connection.info[PIPELINE] = pipeline
        self._pipelined = connection.info, connection.dialect.loaded_dbapi.Error

    def _leave_pipeline(self, failed: bool) -> None:
        if self._pipelined is None:
            return
        (info, driver_error), self._pipelined = self._pipelined, None
        try:
            _end_pipeline(info, failed)
        except driver_error as error:  # a write sent in the pipeline failed: raised as SQLAlchemy raises it
            raise DBAPIError.instance(None, None, error, driver_error) from error

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._leave_pipeline(failed=True)
        super().__exit__(exc_type, exc, tb)

    def commit(self) -> None:
        self.usage.flush()
        self.writes.end(send=True)
        self._leave_pipeline(failed=False)
        super().commit()
        if self._known_accounts is not None:
            self._known_accounts.update(self.accounts.opened)
        self.accounts.opened.clear()
        if self._coordinators is not None:
            self._coordinators.remember(self.participants.added)
        self.participants.added.clear()

    def rollback(self) -> None:
        self._leave_pipeline(failed=True)
        self.usage.discard()
        self.accounts.opened.clear()
        self.participants.added.clear()
        super().rollback()
