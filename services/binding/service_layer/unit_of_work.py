"""The binding service's unit of work: one transaction and its repositories."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from services.binding.adapters import orm
from services.binding.adapters.repository import (
    BindingRepository,
    EventLog,
    PayerOrderRepository,
    PayerQueries,
    PersonRepository,
    PolicyRepository,
)
from services.common.unit_of_work import SqlUnitOfWork


class BindingUnitOfWork(SqlUnitOfWork):
    persons: PersonRepository
    bindings: BindingRepository
    events: EventLog
    payer_orders: PayerOrderRepository
    payer_queries: PayerQueries
    policies: PolicyRepository

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        super().__init__(sessions, orm.idempotency_keys)

    def open(self, session: Session) -> None:
        self.persons = PersonRepository(session)
        self.bindings = BindingRepository(session)
        self.events = EventLog(session)
        self.payer_orders = PayerOrderRepository(session)
        self.payer_queries = PayerQueries(session)
        self.policies = PolicyRepository(session)
