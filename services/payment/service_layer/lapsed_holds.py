"""Holds past their expiry, released when they are read or drawn on.

The sweeper releases every lapsed hold, but only every `--sweep-interval` seconds; until then
an account would read as held, a settlement as authorised, and a new bill would find the money
still taken. So a read of an account or a settlement, and a bill or wallet transfer before it
draws, first release the lapsed holds on what they touch, each settlement in a transaction of
its own exactly as the sweeper does (settlement row first, then the accounts).
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError

from services.common.clock import Clock
from services.common.runner import UseCaseRunner
from services.payment.service_layer import settlements
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason

log = logging.getLogger(__name__)


async def release_lapsed_holds(runner: UseCaseRunner[PaymentUnitOfWork], clock: Clock, account_ids: list[str]) -> int:
    """Releases the lapsed holds on these accounts of this node; returns how many settlements."""
    due = await runner.query(lambda uow: settlements.expired_holding(uow, account_ids, clock.now()), snapshot=False)
    released = 0
    for settlement_id in due:
        released += await release_if_lapsed(runner, clock, settlement_id)
    return released


async def release_if_lapsed(runner: UseCaseRunner[PaymentUnitOfWork], clock: Clock, settlement_id: str) -> bool:
    """Releases one authorised settlement's holds if they lapsed; a concurrent capture, release or
    sweep of the same settlement decides instead."""
    try:
        return await runner.transact(lambda uow: settlements.expire_if_due(uow, settlement_id, clock.now()))
    except DomainError as error:
        if error.reason is Reason.CONCURRENT_CHANGE:
            return False
        raise
    except DBAPIError as error:
        # Left to the sweeper: what follows reads or draws as it would have without this.
        log.warning("releasing a lapsed hold failed (%s); the sweeper will", type(error.orig).__name__)
        return False
