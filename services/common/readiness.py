"""Readiness apart from liveness, through the standard health service.

The empty service name answers whether the process runs (liveness). Each service's own
name answers whether it can do its work now (readiness): a background task probes what the
service depends on (its database; for payment also the binding service) every few seconds
and turns those names NOT_SERVING while a probe fails and SERVING again once all pass, so an
orchestrator or load balancer stops sending calls that could only fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import NullPool, create_engine, text
from sqlalchemy.engine import make_url

from services.common.database import normalise_url
from services.common.server import RunningServer

log = logging.getLogger(__name__)

# A probe returns when the dependency answers and raises when it does not.
Probe = Callable[[float], Awaitable[None]]


class DatabaseProbe:
    """`SELECT 1` on a fresh connection each time. Not through the service's pool: a pooled
    SQLite connection keeps working on a file that can no longer be opened, and a PostgreSQL
    server that refuses new connections cannot serve the next worker either."""

    def __init__(self, url: str) -> None:
        url = normalise_url(url)
        connect_args: dict[str, Any] = {}
        if make_url(url).get_backend_name() == "postgresql":
            connect_args["connect_timeout"] = 2
        self._engine = create_engine(url, poolclass=NullPool, connect_args=connect_args, hide_parameters=True)
        self._running: asyncio.Future[None] | None = None

    def _select_one(self) -> None:
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def __call__(self, timeout: float) -> None:
        # A probe thread stuck past its timeout is not doubled: the next probe waits on it.
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(asyncio.to_thread(self._select_one))
            # A probe that timed out leaves its thread's failure unread; unread, asyncio logs it as
            # an ERROR with a traceback ("Task exception was never retrieved") at every probe of
            # a database that stalls. The probe that timed out has said what went wrong already.
            self._running.add_done_callback(_read_failure)
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancel that meets the
        # probe finishing, and the readiness task then never stops (the server hung on stop).
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._running)
        except TimeoutError:
            raise TimeoutError(f"the database did not answer SELECT 1 within {timeout:.1f}s") from None

    def dispose(self) -> None:
        self._engine.dispose()


def _read_failure(probe: asyncio.Future[None]) -> None:
    if not probe.cancelled():
        probe.exception()


def health_probe(channel: grpc.aio.Channel, service: str) -> Probe:
    """The peer's standard health Check of `service`, which must answer SERVING."""
    stub = health_pb2_grpc.HealthStub(channel)

    async def probe(timeout: float) -> None:
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            raise RuntimeError(f"{service} answers {status}")

    return probe


async def _problem(probes: Sequence[tuple[str, Probe]], timeout: float) -> str | None:
    for name, probe in probes:
        try:
            await probe(timeout)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as error:
            return f"{name}: {error.code().name}"
        except Exception as error:
            # Only the exception's class and its first line: a driver's text may quote values.
            return f"{name}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


async def _watch(
    running: RunningServer,
    probes: Sequence[tuple[str, Probe]],
    interval: float,
    timeout: float,
    on_change: Callable[[bool], None] | None,
) -> None:
    ready = True  # start_server turned every name SERVING
    while True:
        problem = await _problem(probes, timeout)
        if (problem is None) != ready:
            ready = problem is None
            status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
            # After enter_graceful_shutdown these sets are ignored, so a probe never undoes a drain.
            if on_change is not None:  # first, so whoever sees the health flip sees the gauge flipped
                on_change(ready)
            for name in running.service_names:
                await running.health.set(name, status)
            if ready:
                log.info("ready again: %s SERVING", ", ".join(running.service_names))
            else:
                log.warning("not ready (%s): %s NOT_SERVING", problem, ", ".join(running.service_names))
        await asyncio.sleep(interval)


def watch_readiness(
    running: RunningServer,
    probes: Sequence[tuple[str, Probe]],
    interval: float,
    timeout: float = 2.0,
    on_change: Callable[[bool], None] | None = None,
) -> None:
    """Probes every `interval` seconds from now on until the server stops; `probes` are
    named for the log line that says which dependency failed; `on_change` hears each flip
    (the metrics' gongji_ready)."""
    task = asyncio.create_task(_watch(running, probes, interval, timeout, on_change), name="readiness")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    running.cleanups.append(stop)
