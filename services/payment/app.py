"""Wires the payment service: database, binding-service channel, the sweeper
that releases expired holds, the periodic ledger audit, and the gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial

from opentelemetry.sdk.trace import TracerProvider

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.node.v1 import node_service_pb2_grpc as node_grpc
from gongji.payment.v1 import payment_service_pb2_grpc as api_grpc
from services.binding.entrypoints.grpc_servicer import SERVICE as BINDING_SERVICE
from services.common.client import peer_channel
from services.common.clock import Clock, OffsetClock, SystemClock
from services.common.database import create_database_engine, migrate
from services.common.limits import ServerLimits
from services.common.metrics import Metrics
from services.common.readiness import DatabaseProbe, health_probe, watch_readiness
from services.common.runner import UseCaseRunner
from services.common.server import RunningServer, ServerSecurity, ServiceRegistration, start_server
from services.common.tracing import provider_from_environment, trace_engine
from services.payment.adapters.binding_client import GrpcBindingDirectory
from services.payment.adapters.node_client import GrpcNodeClient
from services.payment.adapters.payer_cache import CachingBindingDirectory, PayerWatch
from services.payment.entrypoints.grpc_servicer import ERROR_DOMAIN, SERVICE, PaymentServicer
from services.payment.entrypoints.metrics import LedgerAuditGauges, payment_reader
from services.payment.entrypoints.node_servicer import SERVICE as NODE_SERVICE
from services.payment.entrypoints.node_servicer import PaymentNodeServicer
from services.payment.routing import RoutingTable
from services.payment.service_layer.binding_directory import BindingDirectory
from services.payment.service_layer.coordinator import Coordinator, FailPoint, no_failpoint
from services.payment.service_layer.coordinator_memory import CoordinatorMemory
from services.payment.service_layer.inquiries import check_ledger
from services.payment.service_layer.scope_facts import PaymentScopeFacts
from services.payment.service_layer.settlements import expire_if_due, expired_settlements
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from services.payment.verification import Verifier

BINDING_ADDRESS_ENV = "GONGJI_BINDING_ADDRESS"
FAILPOINT_ENV = "GONGJI_FAILPOINT"
CLOCK_OFFSET_ENV = "GONGJI_CLOCK_OFFSET_SECONDS"
log = logging.getLogger(__name__)


def default_binding_address() -> str:
    return os.environ.get(BINDING_ADDRESS_ENV, "127.0.0.1:50051")


@dataclass
class PaymentSettings:
    database_url: str
    # Mutual TLS (or loopback plaintext) and the access policy. The payment nodes accepted
    # are those of `routing`, whatever security.nodes says.
    security: ServerSecurity
    # Confirms wallet transfers by face or QR-code password; no default, so a deployment
    # chooses one (the stand-in only for tests and demos).
    verifier: Verifier
    address: str = "127.0.0.1:50052"
    binding_address: str = field(default_factory=default_binding_address)
    migrate_on_start: bool = True
    clock: Clock = field(default_factory=SystemClock)
    # Threads running use cases (and pooled connections). Few: they share one GIL, and
    # measured on 2 cores 4 settled ~20 % more per second than 8 or 16 (README, Benchmark).
    workers: int = 4
    limits: ServerLimits = field(default_factory=ServerLimits)
    default_hold: timedelta = timedelta(minutes=15)
    # Seconds between sweeps for expired holds and cross-node recovery; 0 turns them off.
    sweep_interval: float = 5.0
    # Seconds between ledger audits exported as gongji_ledger_* gauges; 0 turns them off.
    # Not at every scrape: the audit reads every entry and account.
    ledger_audit_interval: float = 300.0
    routing: RoutingTable = field(default_factory=RoutingTable.single)
    node_deadline: float = 2.0
    # The most one call may move (fen); larger amounts are refused before any work.
    max_amount_fen: int = 10_000_000
    # How long a saga may stay PREPARING before recovery presumes its request dead.
    prepare_lease: timedelta = timedelta(seconds=30)
    # A settlement whose payers on other nodes are all on one and come last in the order is
    # captured there in one round (no hold, no commit call); False: always hold, then commit.
    one_round: bool = True
    # HOST:PORT serving Prometheus metrics over plain HTTP; None serves none.
    metrics_address: str | None = None
    # Seconds between readiness probes of the database and the binding service's health.
    readiness_interval: float = 5.0
    # Where spans go; None takes the OTEL_* environment, which leaves traces off unless asked (README, Traces).
    tracer_provider: TracerProvider | None = None
    # Keep ResolvePayers answers while the binding service's WatchPayerChanges holds a lease
    # (services/payment/adapters/payer_cache.py); without a watch every bill asks anew.
    payer_cache: bool = False
    # Other processes serve the same address (gongji serve payment --processes, SO_REUSEPORT).
    share_port: bool = False
    # The gauges read from the node's database (holds, money, sagas, …): served by one process of
    # a node only, or a sum over its processes' scrapes would count the same holds once each.
    database_gauges: bool = True


def sweep_once(runner: UseCaseRunner[PaymentUnitOfWork], clock: Clock) -> int:
    """Releases every expired hold, one settlement per transaction; returns how many."""
    with runner.unit_of_work() as uow:
        due = expired_settlements(uow, clock.now())
    released = 0
    for settlement_id in due:
        with runner.unit_of_work() as uow:
            if expire_if_due(uow, settlement_id, clock.now()):
                released += 1
            uow.commit()
    return released


async def _every(
    interval: float,
    span: str,
    tracer_provider: TracerProvider | None,
    work: Callable[[], Awaitable[None]],
    failed: Callable[[Exception], None],
) -> None:
    """Runs `work` every `interval` seconds until cancelled. It waits first, so a start (and
    every test server) is not slowed by it; a failed run is reported by `failed` (called inside
    the except block) and the next one comes on time."""
    tracer = tracer_provider.get_tracer(__name__) if tracer_provider is not None else None
    while True:
        await asyncio.sleep(interval)
        # One trace per run, so its SQL and peer calls are not each a trace of their own.
        with tracer.start_as_current_span(span) if tracer is not None else contextlib.nullcontext():
            try:
                await work()
            except Exception as error:
                failed(error)


async def _sweep_forever(
    runner: UseCaseRunner[PaymentUnitOfWork],
    clock: Clock,
    coordinator: Coordinator,
    interval: float,
    tracer_provider: TracerProvider | None = None,
) -> None:
    async def sweep() -> None:
        released = await runner.in_thread(lambda: sweep_once(runner, clock))
        if released:
            log.info("released %d expired holds", released)
        if coordinator.routing.distributed:
            touched = await coordinator.recover_once()
            if touched:
                log.info("recovery drove %d cross-node transactions", touched)

    def failed(_: Exception) -> None:
        log.exception("sweeping expired holds failed; trying again in %.1fs", interval)

    await _every(interval, "sweep", tracer_provider, sweep, failed)


async def _audit_ledger_forever(
    runner: UseCaseRunner[PaymentUnitOfWork],
    clock: Clock,
    gauges: LedgerAuditGauges,
    interval: float,
    tracer_provider: TracerProvider | None = None,
) -> None:
    """Until the first audit the gauges are absent."""

    async def audit() -> None:
        result = await runner.query(lambda uow: check_ledger(uow, clock.now()))
        gauges.record(result)
        if not result.balanced:
            log.warning("ledger audit found %d problems; CheckLedger names them", len(result.problems))

    def failed(error: Exception) -> None:
        # The type only: a message or traceback could carry SQL parameters (ID numbers).
        # The previous result stays, and its age grows until GongjiLedgerAuditStale fires.
        log.warning("ledger audit failed (%s); trying again in %.0fs", type(error).__name__, interval)

    await _every(interval, "ledger audit", tracer_provider, audit, failed)


def failpoint_from_environment() -> FailPoint:
    """GONGJI_FAILPOINT=<step> makes the node kill itself there (fault tests only)."""
    wanted = os.environ.get(FAILPOINT_ENV, "")

    def failpoint(step: str) -> None:
        if step == wanted:
            log.error("failpoint %s reached: killing this node", step)
            os.kill(os.getpid(), signal.SIGKILL)

    return failpoint if wanted else no_failpoint


def clock_from_environment() -> Clock:
    """GONGJI_CLOCK_OFFSET_SECONDS=<s> moves this node's clock by s seconds (fault tests only)."""
    offset = os.environ.get(CLOCK_OFFSET_ENV, "")
    return OffsetClock(timedelta(seconds=float(offset))) if offset else SystemClock()


async def start_payment_server(settings: PaymentSettings) -> RunningServer:
    if settings.migrate_on_start:
        migrate("payment", settings.database_url)
    tracer_provider = settings.tracer_provider or provider_from_environment(f"gongji-payment-{settings.routing.local}")
    engine = create_database_engine(settings.database_url, pool_size=settings.workers)
    trace_engine(engine, tracer_provider)
    database_gauges = payment_reader(settings.clock) if settings.database_gauges else None
    metrics = Metrics.serving(settings.metrics_address, engine, database_gauges)
    ledger_gauges = LedgerAuditGauges()
    if metrics is not None:
        metrics.registry.register(ledger_gauges)
    known_accounts: set[str] = set()  # shared by every unit of work of this process
    coordinators = CoordinatorMemory()  # and the access policy's facts
    runner = UseCaseRunner(
        partial(PaymentUnitOfWork, engine, known_accounts, coordinators), settings.clock, ERROR_DOMAIN,
        settings.workers, settings.limits.max_waiting_work,
    )  # fmt: skip
    transport = settings.security.transport
    client_metrics = metrics.client if metrics is not None else None
    channel = peer_channel(
        settings.binding_address, BINDING_SERVICE, transport, tracer_provider=tracer_provider, metrics=client_metrics
    )
    nodes = GrpcNodeClient(transport, settings.node_deadline, tracer_provider, client_metrics)
    failpoint = failpoint_from_environment()
    coordinator = Coordinator(
        runner,
        settings.routing,
        nodes,
        settings.clock,
        lease=settings.prepare_lease,
        failpoint=failpoint,
        one_round=settings.one_round,
    )
    binding_stub = binding_grpc.BindingServiceStub(channel)
    registry = GrpcBindingDirectory(binding_stub)
    directory: BindingDirectory = registry
    watch = None
    if settings.payer_cache:
        directory = CachingBindingDirectory(directory)
        watch_channel = peer_channel(
            settings.binding_address, BINDING_SERVICE, transport, tracer_provider=tracer_provider, own_connection=True
        )
        watch = PayerWatch(binding_grpc.BindingServiceStub(watch_channel), directory)
        watch.start()
    servicer = PaymentServicer(
        runner, settings.clock, directory, coordinator, settings.verifier, settings.default_hold,
        max_amount_fen=settings.max_amount_fen,
    )  # fmt: skip
    registrations = [
        ServiceRegistration(SERVICE, partial(api_grpc.add_PaymentServiceServicer_to_server, servicer)),
        ServiceRegistration(
            NODE_SERVICE,
            partial(
                node_grpc.add_PaymentNodeServiceServicer_to_server,
                PaymentNodeServicer(
                    runner, settings.clock, directory, settings.routing, nodes, settings.max_amount_fen, failpoint
                ),
            ),
        ),
    ]
    security = replace(settings.security, nodes=settings.routing.directory())
    facts = PaymentScopeFacts(runner, coordinators, registry.person_region)
    running = await start_server(
        registrations, settings.address, ERROR_DOMAIN, security, facts,
        settings.limits, metrics.rpc if metrics else None, tracer_provider, share_port=settings.share_port,
    )  # fmt: skip
    sweeper = None
    if settings.sweep_interval > 0:
        sweeper = asyncio.create_task(
            _sweep_forever(runner, settings.clock, coordinator, settings.sweep_interval, tracer_provider)
        )

    auditor = None
    if settings.ledger_audit_interval > 0:
        auditor = asyncio.create_task(
            _audit_ledger_forever(
                runner, settings.clock, ledger_gauges, settings.ledger_audit_interval, tracer_provider
            )
        )

    async def stop_background_tasks() -> None:
        for task in (sweeper, auditor):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    if settings.tracer_provider is None and tracer_provider is not None:
        running.cleanups.append(tracer_provider.shutdown)  # first added, so run last: flushes every span
    running.cleanups += [engine.dispose, runner.close, channel.close, nodes.close, stop_background_tasks]
    if watch is not None:
        running.cleanups += [watch_channel.close, watch.stop]  # the watch stops first
    database = DatabaseProbe(settings.database_url)
    running.cleanups.append(database.dispose)
    probes = [("database", database), ("binding service", health_probe(channel, BINDING_SERVICE))]
    watch_readiness(running, probes, settings.readiness_interval, on_change=metrics.ready.set if metrics else None)
    if metrics is not None:
        running.cleanups.append(metrics.stop)
    return running
