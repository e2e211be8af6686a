"""The binding service's unit of work: one transaction and its repositories."""

from __future__ import annotations

from sqlalchemy import Connection, Engine

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
from services.common.write_batch import WriteBatch


class BindingUnitOfWork(SqlUnitOfWork):
    persons: PersonRepository
    bindings: BindingRepository
    events: EventLog
    payer_orders: PayerOrderRepository
    payer_queries: PayerQueries
    policies: PolicyRepository

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, orm.idempotency_keys)

    def open(self, connection: Connection, writes: WriteBatch) -> None:
        self.persons = PersonRepository(connection)
        self.bindings = BindingRepository(connection)
        self.events = EventLog(connection)
        self.payer_orders = PayerOrderRepository(connection)
        self.payer_queries = PayerQueries(connection)
        self.policies = PolicyRepository(connection)
