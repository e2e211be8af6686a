"""Wires the payment service: database, binding-service channel, the sweeper
that releases expired holds, and the gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2_grpc as api_grpc
from services.binding.entrypoints.grpc_servicer import SERVICE as BINDING_SERVICE
from services.common.client import peer_channel
from services.common.clock import Clock, SystemClock
from services.common.database import create_database_engine, migrate, session_factory
from services.common.runner import UseCaseRunner
from services.common.server import RunningServer, ServiceRegistration, start_server
from services.payment.entrypoints.grpc_servicer import ERROR_DOMAIN, SERVICE, PaymentServicer
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from services.payment.service_layer.use_cases import sweep_expired

BINDING_ADDRESS_ENV = "GONGJI_BINDING_ADDRESS"
log = logging.getLogger(__name__)


def default_binding_address() -> str:
    return os.environ.get(BINDING_ADDRESS_ENV, "127.0.0.1:50051")


@dataclass
class PaymentSettings:
    database_url: str
    address: str = "127.0.0.1:50052"
    binding_address: str = field(default_factory=default_binding_address)
    migrate_on_start: bool = True
    clock: Clock = field(default_factory=SystemClock)
    workers: int = 16
    default_hold: timedelta = timedelta(minutes=15)
    # Seconds between sweeps for expired holds; 0 turns the sweeper off.
    sweep_interval: float = 5.0


def sweep_once(runner: UseCaseRunner[PaymentUnitOfWork], clock: Clock) -> int:
    def run() -> int:
        with runner.unit_of_work() as uow:
            released = sweep_expired(uow, clock.now())
            uow.commit()
            return released

    return run()


async def _sweep_forever(runner: UseCaseRunner[PaymentUnitOfWork], clock: Clock, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            released = await runner.in_thread(lambda: sweep_once(runner, clock))
            if released:
                log.info("released %d expired holds", released)
        except Exception:
            log.exception("sweeping expired holds failed; trying again in %.0fs", interval)


async def start_payment_server(settings: PaymentSettings) -> RunningServer:
    if settings.migrate_on_start:
        migrate("payment", settings.database_url)
    engine = create_database_engine(settings.database_url, pool_size=settings.workers)
    runner = UseCaseRunner(
        partial(PaymentUnitOfWork, session_factory(engine)), settings.clock, ERROR_DOMAIN, settings.workers
    )
    channel = peer_channel(settings.binding_address, BINDING_SERVICE)
    servicer = PaymentServicer(runner, settings.clock, binding_grpc.BindingServiceStub(channel), settings.default_hold)
    registration = ServiceRegistration(SERVICE, partial(api_grpc.add_PaymentServiceServicer_to_server, servicer))
    running = await start_server([registration], settings.address, ERROR_DOMAIN)
    sweeper = None
    if settings.sweep_interval > 0:
        sweeper = asyncio.create_task(_sweep_forever(runner, settings.clock, settings.sweep_interval))

    async def stop_sweeper() -> None:
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    running.cleanups += [engine.dispose, runner.close, channel.close, stop_sweeper]
    return running
