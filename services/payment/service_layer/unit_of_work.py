"""The payment service's unit of work: one transaction and its repositories."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from services.common.unit_of_work import SqlUnitOfWork
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

    def __init__(self, sessions: sessionmaker[Session], known_accounts: set[str] | None = None) -> None:
        super().__init__(sessions, orm.idempotency_keys)
        self._known_accounts = known_accounts

    def open(self, session: Session) -> None:
        self.accounts = AccountRepository(session, self._known_accounts)
        self.journal = Journal(session)
        self.settlements = SettlementRepository(session)
        self.usage = UsageRepository(session)
        self.violations = ViolationRepository(session)
        self.audit = AuditQueries(session)
        self.node_transactions = NodeTransactionLog(session)
        self.participants = ParticipantLog(session)
        self.transfers = TransferRepository(session)

    def commit(self) -> None:
        self.usage.flush()
        super().commit()
        if self._known_accounts is not None:
            self._known_accounts.update(self.accounts.opened)
        self.accounts.opened.clear()

    def rollback(self) -> None:
        self.usage.discard()
        self.accounts.opened.clear()
        super().rollback()
