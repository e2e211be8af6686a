"""Prometheus metrics of a gongji server, served over plain HTTP when --metrics-address is given.

Every server has its own CollectorRegistry, so several servers in one process (tests, the
demo) keep their numbers apart. RPC metrics carry the names of go-grpc-prometheus and
py-grpc-prometheus, so existing dashboards and alerts fit. Label values are bounded and
never personal: service and method names, status codes, ErrorInfo reasons, states.
Domain numbers are read from the database when Prometheus scrapes, not counted in memory,
so they survive restarts and agree between processes sharing one database.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from services.common.addresses import host_and_port
from services.common.database import READ_ONLY_OPTION
from services.common.deadlines import working_until

log = logging.getLogger(__name__)
# A scrape's database read gets this long; a slow database must not pile up scrapes.
SCRAPE_BUDGET_SECONDS = 5.0
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def split_method(method: str) -> tuple[str, str]:
    """("gongji.payment.v1.PaymentService", "Settle") of "/gongji.payment.v1.PaymentService/Settle"."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def bounded_reason(reason: str) -> str:
    # A peer node's ErrorInfo could say anything; only enum-shaped reasons become label values.
    return reason if _REASON.fullmatch(reason) else "OTHER"


class RpcMetrics:
    """What the call guard records for every call it finishes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self._started = Counter("grpc_server_started_total", "RPCs started on the server.", labels, registry=registry)
        self._handled = Counter(
            "grpc_server_handled_total", "RPCs completed on the server, by status code.",
            [*labels, "grpc_code"], registry=registry,
        )  # fmt: skip
        self._seconds = Histogram(
            "grpc_server_handling_seconds", "Time from the call's arrival to its answer.", labels, registry=registry
        )
        self._refusals = Counter(
            "gongji_refusals_total", "Calls answered with an error, by ErrorInfo reason.",
            ["service", "method", "reason"], registry=registry,
        )  # fmt: skip

    def started(self, grpc_type: str, method: str) -> None:
        self._started.labels(grpc_type, *split_method(method)).inc()

    def handled(self, grpc_type: str, method: str, code: str, reason: str | None, seconds: float) -> None:
        service, name = split_method(method)
        self._handled.labels(grpc_type, service, name, code).inc()
        self._seconds.labels(grpc_type, service, name).observe(seconds)
        if reason is not None:
            self._refusals.labels(service, name, bounded_reason(reason)).inc()


class ClientRpcMetrics:
    """What a peer channel's interceptor records for every call this server makes to another."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self._started = Counter("grpc_client_started_total", "RPCs started by the client.", labels, registry=registry)
        self._handled = Counter(
            "grpc_client_handled_total", "RPCs completed by the client, by status code.",
            [*labels, "grpc_code"], registry=registry,
        )  # fmt: skip
        self._seconds = Histogram(
            "grpc_client_handling_seconds", "Time from the call's start to its status, retries included.",
            labels, registry=registry,
        )  # fmt: skip

    def started(self, grpc_type: str, method: str) -> None:
        self._started.labels(grpc_type, *split_method(method)).inc()

    def handled(self, grpc_type: str, method: str, code: str, seconds: float) -> None:
        service, name = split_method(method)
        self._handled.labels(grpc_type, service, name, code).inc()
        self._seconds.labels(grpc_type, service, name).observe(seconds)


class PoolCollector(Collector):
    """Connections of the engine's pool (QueuePool; SQLite's pool has no fixed size)."""

    def __init__(self, engine: Engine) -> None:
        self._pool = engine.pool

    def collect(self) -> Iterable[GaugeMetricFamily]:
        checkedout = getattr(self._pool, "checkedout", None)
        size = getattr(self._pool, "size", None)
        if callable(checkedout):
            yield GaugeMetricFamily(
                "gongji_database_pool_checked_out_connections", "Pooled connections in use.", value=checkedout()
            )
        if callable(size):
            yield GaugeMetricFamily(
                "gongji_database_pool_size_connections", "Connections the pool keeps open.", value=size()
            )


class DatabaseCollector(Collector):
    """Gauges a service reads from its database at scrape time, in one read-only transaction.

    `read` yields the families; a failed read yields only gongji_database_scrape_success 0,
    so the RPC metrics still reach Prometheus while the database is away."""

    def __init__(self, engine: Engine, read: Callable[[Connection], Iterator[GaugeMetricFamily]]) -> None:
        self._engine = engine
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        success = GaugeMetricFamily(
            "gongji_database_scrape_success", "1 when this scrape could read the service's database."
        )
        try:
            with working_until(time.monotonic() + SCRAPE_BUDGET_SECONDS), self._engine.connect() as connection:
                connection = connection.execution_options(**{READ_ONLY_OPTION: True})
                with connection.begin():
                    families = list(self._read(connection))
        except SQLAlchemyError as error:
            log.warning("metrics: reading the database failed: %s", type(error).__name__)
            success.add_metric([], 0)
            yield success
            return
        success.add_metric([], 1)
        yield success
        yield from families


class Metrics:
    """A server's registry, its RPC metrics, and the HTTP endpoint serving them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpc = RpcMetrics(self.registry)
        self.client = ClientRpcMetrics(self.registry)
        # Readiness as a number, so an alert can page on it (the health service answers probes).
        self.ready = Gauge(
            "gongji_ready",
            "1 while the service's own health name is SERVING (its dependencies answer), 0 while not.",
            registry=self.registry,
        )
        self.ready.set(1)
        self.port = 0
        self._stop: Callable[[], None] | None = None

    @classmethod
    def serving(
        cls, address: str | None, engine: Engine, read: Callable[[Connection], Iterator[GaugeMetricFamily]] | None
    ) -> Metrics | None:
        """Metrics served on `address` with the pool and `read`'s gauges (none without `read`);
        None without an address."""
        if not address:
            return None
        metrics = cls()
        # The pool first: the domain read checks out a connection of its own.
        metrics.registry.register(PoolCollector(engine))
        if read is not None:
            metrics.registry.register(DatabaseCollector(engine, read))
        metrics.serve(address)
        return metrics

    def serve(self, address: str) -> None:
        """Serves the registry on HOST:PORT over plain HTTP, on a thread of its own."""
        host, port = parse_address(address)
        try:
            httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            raise OSError(f"cannot serve metrics on {address}: {error}") from error
        self.port = httpd.server_port
        log.info("serving metrics on http://%s:%d/metrics", host, self.port)

        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()
            thread.join()

        self._stop = stop

    async def stop(self) -> None:
        if self._stop is not None:
            # shutdown() waits for the serving loop's next poll; not on the event loop.
            await asyncio.to_thread(self._stop)
            self._stop = None


def parse_address(address: str) -> tuple[str, int]:
    parsed = host_and_port(address)
    if parsed is None or not parsed[0]:
        raise ValueError(f"metrics address {address!r} is not HOST:PORT with a port from 0 to 65535")
    return parsed


def gauge(name: str, documentation: str, labels: list[str], rows: Iterable[tuple[Any, ...]]) -> GaugeMetricFamily:
    """A gauge family of (label values…, value) rows."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for *values, value in rows:
        family.add_metric([str(v) for v in values], float(value or 0))
    return family
