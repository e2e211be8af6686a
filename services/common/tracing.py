"""OpenTelemetry traces: a span for every RPC (server and client side, W3C trace context in
the metadata) and for every SQL statement, so one cross-node settlement is one trace.

Off by default. `provider_from_environment` builds a provider only when OTEL_TRACES_EXPORTER
names an exporter other than `none`, or (with that variable unset) OTEL_EXPORTER_OTLP_ENDPOINT
or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; everything else (sampler, endpoint, headers,
service name) is the SDK's standard OTEL_* configuration. With no provider, no interceptor or
engine listener is added, so nothing of OpenTelemetry is on the call path.

The instrumentors are used per server, channel and engine (their interceptors and the
SQLAlchemy EngineTracer), never by global patching, because tests and the demo run several
servers with different providers in one process.

No personal data in spans: the gRPC instrumentation records the method, status and peer
address but no message bodies (no request or response hooks are given), and SQL spans carry
the statement with bound parameters, never their values. Error texts are the exception: a
driver's message may quote a value, so exported spans pass through `ScrubbingExporter`, which
keeps of a failed statement's message only its first line up to the quoted value (PostgreSQL's
DETAIL quotes the refused row, names and addresses included, which no pattern recognises) and
masks ID and mobile numbers everywhere else. A provider given in the settings is used as it
is: wrap its exporters in ScrubbingExporter too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import descriptor_pool
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.instrumentation.sqlalchemy import __version__ as sqlalchemy_instrumentation_version
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Status
from sqlalchemy import Engine

from services.common.driver_statements import observed
from shared.privacy import scrub

TRACES_EXPORTER_ENV = "OTEL_TRACES_EXPORTER"
SQL_SCOPE = "opentelemetry.instrumentation.sqlalchemy"
ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (see the module's docstring)."""
    exporters = environ.get(TRACES_EXPORTER_ENV, "").strip().lower()
    if exporters:
        return exporters != "none"
    return any(environ.get(name, "").strip() for name in ENDPOINT_ENVS)


# The batch span processor's settings: whole numbers. The SDK reads a malformed one with a logged
# traceback and goes on with its default, so a typo would change nothing but the log.
_BSP_NUMBERS = (
    "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
)  # fmt: skip
SAMPLER_ENV = "OTEL_TRACES_SAMPLER"


def _check_settings(environ: Mapping[str, str]) -> None:
    """A ValueError naming the OTEL_* variable the SDK would otherwise ignore with a warning or a
    traceback (it falls back to its default): the start stops with one line instead."""
    for name in _BSP_NUMBERS:
        value = environ.get(name, "").strip()
        if value and not (value.isascii() and value.isdigit()):
            raise ValueError(f"{name}={value!r}: give a whole number (milliseconds or spans)")
    sampler = environ.get(SAMPLER_ENV, "").strip().lower()
    if sampler:
        from opentelemetry.util._importlib_metadata import entry_points

        known = sorted({entry.name for entry in entry_points(group="opentelemetry_traces_sampler")})
        if sampler not in known:
            raise ValueError(f"{SAMPLER_ENV}={sampler!r}: give one of {', '.join(known)}")
    ratio = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if ratio and sampler.endswith("traceidratio"):
        try:
            valid = 0.0 <= float(ratio) <= 1.0
        except ValueError:
            valid = False
        if not valid:
            raise ValueError(f"OTEL_TRACES_SAMPLER_ARG={ratio!r}: give the share of traces kept, from 0 to 1")


def _exporter(name: str) -> SpanExporter:
    if name == "otlp":
        # Imported here: the exporter pulls in its own gRPC channel machinery, needed only when used.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    raise ValueError(f"{TRACES_EXPORTER_ENV}={name!r}: gongji exports traces by 'otlp' (gRPC) or 'console'")


def provider_from_environment(
    default_service_name: str, environ: Mapping[str, str] = os.environ
) -> TracerProvider | None:
    """A provider configured by the OTEL_* variables, or None when traces are off."""
    if not tracing_enabled(environ):
        return None
    _check_settings(environ)
    attributes: dict[str, str] = {}
    # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins over the default.
    if not OTELResourceDetector().detect().attributes.get(SERVICE_NAME):
        attributes[SERVICE_NAME] = default_service_name
    # The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK reads them).
    provider = TracerProvider(resource=Resource.create(attributes))
    names = [n.strip().lower() for n in environ.get(TRACES_EXPORTER_ENV, "otlp").split(",") if n.strip()]
    for name in names or ["otlp"]:
        if name != "none":
            provider.add_span_processor(BatchSpanProcessor(ScrubbingExporter(_exporter(name))))
    return provider


# Health checks (the readiness probes, every few seconds) and reflection would bury the real calls.
_traced_call = filters.negate(
    filters.any_of(filters.service_prefix("grpc.health."), filters.service_prefix("grpc.reflection."))
)


def _declared_method(call_details: Any) -> bool:
    """Whether the call names a method of a service the process's protos declare. Any other path
    is the caller's free text, which may hold an ID number or a name: the call is answered
    UNIMPLEMENTED and, as it is neither logged nor counted, gets no span named after it."""
    service, _, method = str(call_details.method).lstrip("/").rpartition("/")
    try:
        declared = descriptor_pool.Default().FindServiceByName(service)
    except KeyError:
        return False
    return method in declared.methods_by_name


def server_interceptors(provider: TracerProvider | None) -> list[Any]:
    """The server interceptor opening each call's span (from the caller's trace context); none when
    off. Calls of methods no proto declares get none."""
    if provider is None:
        return []
    return [aio_server_interceptor(tracer_provider=provider, filter_=filters.all_of(_traced_call, _declared_method))]


def client_interceptors(provider: TracerProvider | None) -> list[Any]:
    """Channel interceptors opening a client span per call and putting its context in the metadata."""
    if provider is None:
        return []
    return list(aio_client_interceptors(tracer_provider=provider, filter_=_traced_call))


def trace_engine(engine: Engine, provider: TracerProvider | None) -> None:
    """Spans for the engine's statements, children of whatever span is current in the calling thread."""
    if provider is None:
        return
    tracer = provider.get_tracer(SQL_SCOPE, sqlalchemy_instrumentation_version)
    # The instrumentation also counts pooled connections; gongji's metrics do that already.
    connections = NoOpMeterProvider().get_meter(__name__).create_up_down_counter("db.client.connections.usage")
    EngineTracer(tracer, engine, connections)
    observed(engine)  # every statement then runs through SQLAlchemy, so each has its span


class ScrubbingExporter(SpanExporter):
    """Masks ID numbers and mobile numbers in span attributes, event attributes and status
    descriptions before they leave the process: the second line of defence, as in the logs."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([_scrubbed(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, tuple | list):
        return tuple(scrub(v) if isinstance(v, str) else v for v in value)
    return value


def _clean_all(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: _clean(value) for key, value in (attributes or {}).items()}


def _driver_headline(message: str) -> str:
    """A database driver's message without what it quotes of the data: its first line (PostgreSQL's
    DETAIL, `Key (name)=(…)` or `Failing row contains (…)`, follows on the next) up to a colon that
    introduces a value (`invalid input syntax for type integer: "…"`)."""
    lines = message.strip().splitlines()
    return lines[0].split(": ", 1)[0] if lines else ""


def _scrubbed(span: ReadableSpan) -> ReadableSpan:
    status = span.status
    if status.description:
        description = status.description
        if span.instrumentation_scope is not None and span.instrumentation_scope.name == SQL_SCOPE:
            description = _driver_headline(description)
        status = Status(status.status_code, scrub(description))
    events = [Event(e.name, _clean_all(e.attributes), e.timestamp) for e in span.events]
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_clean_all(span.attributes),
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
