"""The cost-of-observability phase: the single-node Settle load again on binding and east restarted
with mutual TLS plus Prometheus metrics (scraped every second, as Prometheus would) and OpenTelemetry
traces (every settlement sampled, exported over OTLP gRPC to a receiver on a thread of this process),
so that the report can set observability on beside off."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections import Counter
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from services.benchmark.cpu import CpuMeter
from services.benchmark.desk import Connect
from services.benchmark.errors import BenchmarkError
from services.benchmark.families import Family
from services.benchmark.options import Options
from services.benchmark.processes import free_port, wait_until_listening
from services.benchmark.progress import say
from services.benchmark.servers import ObservabilityPorts, Servers
from services.benchmark.settle_load import rerun
from services.common.siblings import metrics_address_of

SCRAPE_INTERVAL_SECONDS = 1.0  # Prometheus's scrape_interval is commonly 15 s; 1 s is the hard case
SCRAPE_TIMEOUT_SECONDS = 5.0


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP collector's trace endpoint that keeps nothing but counts: enough to show that the
    servers really traced, without the cost of storing spans weighing on this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.spans = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        spans = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with self._lock:
            self.requests += 1
            self.spans += spans
        return trace_service_pb2.ExportTraceServiceResponse()

    def start(self) -> TraceReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(None)


class Scraper(threading.Thread):
    """GETs every /metrics once a second until stopped; counts the scrapes that answered 200."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(name="metrics-scraper", daemon=True)
        self.urls = urls
        self.scrapes = 0
        self.failures: Counter[str] = Counter()
        self.seconds = 0.0  # wall time spent waiting for answers, all scrapes together
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            began = time.monotonic()
            for url in self.urls:
                try:
                    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_SECONDS) as answer:
                        answer.read()
                        ok = answer.status == 200
                except OSError as error:
                    self.failures[f"{url}: {error}"[:160]] += 1
                    continue
                if ok:
                    self.scrapes += 1
                else:
                    self.failures[f"{url}: HTTP {answer.status}"] += 1
            self.seconds += time.monotonic() - began
            self._stopping.wait(max(0.0, SCRAPE_INTERVAL_SECONDS - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stopping.set()
        self.join()


def measure_observed(
    options: Options, servers: Servers, families: list[Family], connect: Connect, database_marker: str
) -> dict[str, Any]:
    """Restarts binding and east with mutual TLS, metrics and traces; runs the single-node phase's
    Settle load on the families already registered while /metrics is scraped; then restarts them
    as they were (mutual TLS, observability off), which also flushes their last spans."""
    if servers.restart is None:
        raise BenchmarkError("the observability phase needs the servers in their own processes")
    receiver = TraceReceiver().start()
    try:
        ports = ObservabilityPorts(
            binding_metrics=f"127.0.0.1:{free_port()}",
            payment_metrics=f"127.0.0.1:{free_port(options.payment_processes)}",
            otlp_endpoint=f"http://127.0.0.1:{receiver.port}",
        )
        servers.restart(plaintext=False, observability=ports)
        payment_metrics = [metrics_address_of(ports.payment_metrics, n) for n in range(options.payment_processes)]
        for address in payment_metrics:  # the siblings' metrics ports may open after the node serves
            wait_until_listening(None, address, 1)
        scraper = Scraper([f"http://{address}/metrics" for address in (ports.binding_metrics, *payment_metrics)])
        scraper.start()
        try:
            meter = CpuMeter(servers.pids, database_marker)
            measured = asyncio.run(rerun("observed", 20260304, options, servers, families, connect, meter))
        finally:
            scraper.stop()
        say("binding and east restarted with mutual TLS and observability off")
        servers.restart(plaintext=False)
    finally:
        receiver.stop()
    return {
        **measured,
        "spans_received": receiver.spans,
        "export_requests": receiver.requests,
        "scrapes": scraper.scrapes,
        "scrape_failures": dict(scraper.failures),
        "scrape_ms_mean": round(scraper.seconds * 1000 / scraper.scrapes, 2) if scraper.scrapes else None,
    }
