"""An aio gRPC server with the standard health and reflection services and a
graceful shutdown: health turns NOT_SERVING, then in-flight calls get `grace`
seconds to finish."""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.interceptors import StatusInterceptor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceRegistration:
    full_name: str  # e.g. "gongji.binding.v1.BindingService"
    add_to_server: Callable[[grpc.aio.Server], None]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: list[str]
    # Run after the server stopped, last added first; may be sync or async.
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for cleanup in reversed(self.cleanups):
            result = cleanup()
            if inspect.isawaitable(result):
                await result


async def start_server(registrations: list[ServiceRegistration], address: str, error_domain: str) -> RunningServer:
    server = grpc.aio.server(
        interceptors=[StatusInterceptor(error_domain)],
        # Fail loudly when the port is taken instead of silently sharing it.
        options=[("grpc.so_reuseport", 0)],
    )
    for registration in registrations:
        registration.add_to_server(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [r.full_name for r in registrations]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot listen on {address}: {error}") from error
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving %s on port %d", ", ".join(names), port)
    return RunningServer(server, port, health_servicer, names)


async def serve_until_signalled(running: RunningServer, grace: float) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down; in-flight calls have %.0fs", grace)
    await running.stop(grace)
