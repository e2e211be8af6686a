"""Wires the binding service: database, use-case runner, servicer, gRPC server."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from opentelemetry.sdk.trace import TracerProvider

from gongji.binding.v1 import binding_service_pb2_grpc as api_grpc
from services.binding.entrypoints.grpc_servicer import SERVICE, BindingServicer
from services.binding.entrypoints.metrics import read_binding_gauges
from services.binding.entrypoints.payer_watch import PayerChangeHub
from services.binding.service_layer.policy_book import PolicyBook
from services.binding.service_layer.scope_facts import BindingScopeFacts
from services.binding.service_layer.unit_of_work import BindingUnitOfWork
from services.common.clock import Clock, SystemClock
from services.common.database import create_database_engine, migrate
from services.common.limits import ServerLimits
from services.common.metrics import Metrics
from services.common.readiness import DatabaseProbe, watch_readiness
from services.common.runner import UseCaseRunner
from services.common.server import RunningServer, ServerSecurity, ServiceRegistration, start_server
from services.common.tracing import provider_from_environment, trace_engine

ERROR_DOMAIN = "binding.gongji"


@dataclass
class BindingSettings:
    database_url: str
    # Mutual TLS (or loopback plaintext), the access policy, the payment nodes accepted.
    security: ServerSecurity
    address: str = "127.0.0.1:50051"
    migrate_on_start: bool = True
    clock: Clock = field(default_factory=SystemClock)
    # Threads running use cases (and pooled connections). Few: they share one GIL, and
    # measured on 2 cores 4 settled ~20 % more per second than 8 or 16 (README, Benchmark).
    workers: int = 4
    limits: ServerLimits = field(default_factory=ServerLimits)
    policy_cache_seconds: float = 5.0
    # HOST:PORT serving Prometheus metrics over plain HTTP; None serves none.
    metrics_address: str | None = None
    # Seconds between readiness probes of the database (the health status of BindingService).
    readiness_interval: float = 5.0
    # Where spans go; None takes the OTEL_* environment, which leaves traces off unless asked (README, Traces).
    tracer_provider: TracerProvider | None = None
    # Seconds a payment node's keepalive keeps its lease on WatchPayerChanges; None: no watch, so
    # payment nodes ask ResolvePayers for every bill. With a lease, a restarted service answers
    # its first changes only once a lease has passed (a node may still trust its predecessor).
    payer_watch_lease: float | None = None


async def start_binding_server(settings: BindingSettings) -> RunningServer:
    if settings.migrate_on_start:
        migrate("binding", settings.database_url)
    tracer_provider = settings.tracer_provider or provider_from_environment("gongji-binding")
    engine = create_database_engine(settings.database_url, pool_size=settings.workers)
    trace_engine(engine, tracer_provider)
    metrics = Metrics.serving(settings.metrics_address, engine, read_binding_gauges)
    hub = PayerChangeHub(settings.payer_watch_lease) if settings.payer_watch_lease else None
    runner = UseCaseRunner(
        partial(BindingUnitOfWork, engine), settings.clock, ERROR_DOMAIN, settings.workers,
        settings.limits.max_waiting_work, after_mutation=hub.announce if hub else None,
    )  # fmt: skip
    servicer = BindingServicer(runner, settings.clock, PolicyBook(settings.policy_cache_seconds), hub)
    registration = ServiceRegistration(SERVICE, partial(api_grpc.add_BindingServiceServicer_to_server, servicer))
    running = await start_server(
        [registration], settings.address, ERROR_DOMAIN, settings.security, BindingScopeFacts(runner), settings.limits,
        metrics.rpc if metrics else None, tracer_provider,
    )  # fmt: skip
    if settings.tracer_provider is None and tracer_provider is not None:
        running.cleanups.append(tracer_provider.shutdown)  # first added, so run last: flushes every span
    running.cleanups += [engine.dispose, runner.close]
    if hub is not None:
        running.on_stopping.append(hub.close)
    database = DatabaseProbe(settings.database_url)
    running.cleanups.append(database.dispose)
    watch_readiness(
        running, [("database", database)], settings.readiness_interval, on_change=metrics.ready.set if metrics else None
    )
    if metrics is not None:
        running.cleanups.append(metrics.stop)
    return running
