"""OpenTelemetry traces, on SQLite and PostgreSQL: one cross-province settlement is one
trace through payment east, the binding service and payment west, with the SQL of each
under its RPC, and no personal data in any span."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.payment.v1 import payment_service_pb2 as papi
from services.common.logs import JsonFormatter
from services.common.tracing import (
    ScrubbingExporter,
    client_interceptors,
    provider_from_environment,
    server_interceptors,
    trace_engine,
    tracing_enabled,
)
from shared.principals import institution, payment_node
from tests.conftest import Databases, TwoNodes, running_binding, running_two_nodes
from tests.helpers import make_id_number, person, request_id
from tests.test_cross_province import HOSPITAL, CrossFamily

SQL_SCOPE = "opentelemetry.instrumentation.sqlalchemy"


def provider(service: str, exporter: InMemorySpanExporter) -> TracerProvider:
    traced = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    traced.add_span_processor(SimpleSpanProcessor(exporter))
    return traced


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced_nodes(databases, clock, pki, roles, tmp_path, spans) -> Iterator[TwoNodes]:
    """two_nodes, each server with a tracer provider of its own, all exporting to `spans`."""
    with (
        running_binding(databases, clock, pki, roles, tracer_provider=provider("gongji-binding", spans)) as binding,
        running_two_nodes(
            databases, binding, tmp_path,
            lambda name: {"tracer_provider": provider(f"gongji-payment-{name}", spans)},
        ) as nodes,
    ):  # fmt: skip
        yield nodes


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes[SERVICE_NAME])


def finished_server_span(spans: InMemorySpanExporter, service: str, method: str) -> ReadableSpan:
    """The server span of `method` once it has ended (it may end just after the client got its answer)."""
    for _ in range(100):
        for span in spans.get_finished_spans():
            if span.kind is SpanKind.SERVER and service_of(span) == service and span.name.endswith("/" + method):
                return span
        time.sleep(0.02)
    raise AssertionError(f"no server span of {method} in {service}")


def texts_of(span: ReadableSpan) -> Iterator[str]:
    """Every text a span carries out of the process."""
    yield span.name
    yield span.status.description or ""
    for attributes in [span.attributes, span.resource.attributes, *(event.attributes for event in span.events)]:
        for value in (attributes or {}).values():
            yield from (str(v) for v in value) if isinstance(value, tuple | list) else [str(value)]


def test_a_cross_province_settlement_is_one_trace_through_both_nodes_and_the_binding_service(traced_nodes, spans):
    family = CrossFamily(traced_nodes)
    traced_nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000)))
    settle = finished_server_span(spans, "gongji-payment-east", "Settle")
    trace_id = settle.context.trace_id
    in_trace = [span for span in spans.get_finished_spans() if span.context.trace_id == trace_id]
    servers = {service_of(span) for span in in_trace if span.kind is SpanKind.SERVER}
    assert {"gongji-payment-east", "gongji-binding", "gongji-payment-west"} <= servers
    assert settle.parent is None  # the test's own stub is not traced, so the settlement starts the trace
    sql = {service_of(span) for span in in_trace if span.instrumentation_scope.name == SQL_SCOPE}
    assert {"gongji-payment-east", "gongji-binding", "gongji-payment-west"} <= sql


def test_every_sql_span_has_an_rpc_span_as_ancestor(traced_nodes, spans):
    family = CrossFamily(traced_nodes)
    traced_nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000)))
    finished_server_span(spans, "gongji-payment-east", "Settle")
    finished = spans.get_finished_spans()
    by_id = {span.context.span_id: span for span in finished}
    sql = [span for span in finished if span.instrumentation_scope.name == SQL_SCOPE]
    assert sql
    for span in sql:
        ancestor = by_id.get(span.parent.span_id) if span.parent else None
        while ancestor is not None and ancestor.kind is not SpanKind.SERVER:
            ancestor = by_id.get(ancestor.parent.span_id) if ancestor.parent else None
        assert ancestor is not None, f"{span.name} in {service_of(span)} has no RPC span above it"
        assert service_of(ancestor) == service_of(span)


def test_no_span_carries_an_id_number_or_a_name_of_the_family(traced_nodes, spans):
    family = CrossFamily(traced_nodes)
    traced_nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000)))
    finished_server_span(spans, "gongji-payment-east", "Settle")
    people = [family.child, family.mother, family.father]
    secrets = [p.id_number for p in people] + [p.name for p in people]
    finished = spans.get_finished_spans()
    assert len(finished) > 20
    leaks = [(span.name, text) for span in finished for text in texts_of(span) if any(s in text for s in secrets)]
    assert leaks == []


def test_a_call_of_a_method_the_server_lacks_leaves_no_span_with_the_callers_path(traced_nodes, spans):
    """The method path of a call the server has no method for is the caller's free text (it is
    neither logged nor counted): it may hold an ID number or a name, and the scrubbing of exported
    spans leaves names and span names alone. Such a call is answered UNIMPLEMENTED and traced not
    at all, while the calls of the server's own methods still are."""
    family = CrossFamily(traced_nodes)
    secrets = [family.child.id_number, family.child.name]
    east = traced_nodes.east
    channel = east.binding.pki.channel(east.server.address, institution(HOSPITAL))
    try:
        for path in (
            f"/gongji.payment.v1.PaymentService/{family.child.id_number}",
            f"/{family.child.name}.v1.Lookup/Find",
        ):
            with pytest.raises(grpc.RpcError) as raised:
                channel.unary_unary(path)(b"", timeout=10)
            assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        channel.close()
    traced_nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000)))
    finished_server_span(spans, "gongji-payment-east", "Settle")
    exported = InMemorySpanExporter()
    ScrubbingExporter(exported).export(spans.get_finished_spans())
    leaks = [(span.name, text) for span in exported.get_finished_spans()
             for text in texts_of(span) if any(secret in text for secret in secrets)]  # fmt: skip
    assert leaks == []


def test_traces_are_off_unless_the_environment_names_an_exporter_or_an_endpoint():
    assert not tracing_enabled({})
    assert not tracing_enabled({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"})
    assert tracing_enabled({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"})
    assert provider_from_environment("gongji-binding", {}) is None


def test_the_service_is_named_by_default_unless_otel_service_name_names_it(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    named = provider_from_environment("gongji-payment-east")
    assert named is not None
    assert named.resource.attributes[SERVICE_NAME] == "gongji-payment-east"
    named.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "payment-east-2")
    renamed = provider_from_environment("gongji-payment-east")
    assert renamed is not None
    assert renamed.resource.attributes[SERVICE_NAME] == "payment-east-2"
    renamed.shutdown()


def test_an_otlp_endpoint_alone_turns_traces_on(monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    traced = provider_from_environment("gongji-binding")
    assert traced is not None
    traced.shutdown()


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("OTEL_BSP_MAX_QUEUE_SIZE", "2k", "OTEL_BSP_MAX_QUEUE_SIZE='2k': give a whole number"),
        ("OTEL_BSP_SCHEDULE_DELAY", "5s", "OTEL_BSP_SCHEDULE_DELAY='5s': give a whole number"),
        ("OTEL_TRACES_SAMPLER", "sometimes", "OTEL_TRACES_SAMPLER='sometimes': give one of always_off, always_on"),
    ],
)
def test_a_trace_setting_the_sdk_would_ignore_with_a_traceback_stops_the_start_naming_it(variable, value, said):
    with pytest.raises(ValueError, match=said):
        provider_from_environment("gongji-binding", {"OTEL_TRACES_EXPORTER": "console", variable: value})


def test_a_sampling_ratio_outside_0_to_1_stops_the_start():
    environ = {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER_ARG='10': give the share of traces kept, from 0 to 1"):
        provider_from_environment("gongji-binding", {**environ, "OTEL_TRACES_SAMPLER_ARG": "10"})


def test_an_unknown_exporter_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="zipkin"):
        provider_from_environment("gongji-binding")


def test_without_a_provider_no_tracing_interceptor_is_added():
    assert server_interceptors(None) == []
    assert client_interceptors(None) == []


def test_the_exporter_masks_an_id_number_a_driver_message_quoted():
    id_number = "11010519491231002X"
    inner = InMemorySpanExporter()
    traced = TracerProvider()
    traced.add_span_processor(SimpleSpanProcessor(ScrubbingExporter(inner)))
    with traced.get_tracer(__name__).start_as_current_span("INSERT") as span:
        span.set_attribute("db.statement", "INSERT INTO accounts (id_number) VALUES (?)")
        span.set_status(Status(StatusCode.ERROR, f"Key (id_number)=({id_number}) already exists."))
        span.add_event("exception", {"exception.message": f"duplicate {id_number}"})
    [exported] = inner.get_finished_spans()
    assert not any(id_number in text for text in texts_of(exported))
    assert exported.attributes["db.statement"] == "INSERT INTO accounts (id_number) VALUES (?)"


def test_the_exporter_keeps_no_row_a_database_driver_quoted_when_a_statement_failed(databases: Databases) -> None:
    """PostgreSQL's DETAIL quotes the refused row (`Key (name)=(…)`): a name there has no shape
    the scrubbing knows, so a failed statement's span keeps only the driver's first line."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError

    name = "".join(["欧阳", "秀英"])  # built, so no source line quotes it whole
    inner = InMemorySpanExporter()
    traced = TracerProvider()
    traced.add_span_processor(SimpleSpanProcessor(ScrubbingExporter(inner)))
    engine = create_engine(databases.url("binding"))
    trace_engine(engine, traced)
    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE TEMPORARY TABLE named (name VARCHAR(20) UNIQUE)"))
            connection.execute(text("INSERT INTO named VALUES (:name)"), {"name": name})
            with pytest.raises(IntegrityError):
                connection.execute(text("INSERT INTO named VALUES (:name)"), {"name": name})
    finally:
        engine.dispose()
    failed = [span for span in inner.get_finished_spans() if span.status.status_code is StatusCode.ERROR]
    assert len(failed) == 1
    assert "unique" in (failed[0].status.description or "").lower()
    assert not any(name in text for span in inner.get_finished_spans() for text in texts_of(span))


class FormattingHandler(logging.Handler):
    """Formats at emit time, in the logging call's context, as a stream handler does."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_the_access_line_of_a_traced_call_carries_its_trace_id_and_principal_and_no_personal_data(traced_nodes, spans):
    handler = FormattingHandler()
    access = logging.getLogger("gongji.rpc")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        # Registering the family (names, ID numbers) is logged too, and must not leak them either.
        family = CrossFamily(traced_nodes)
        traced_nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000)))
        settle = finished_server_span(spans, "gongji-payment-east", "Settle")
    finally:
        access.setLevel(level)
        access.removeHandler(handler)
    [line] = [line for line in handler.lines if line.get("method", "").endswith("/Settle")]
    assert line["trace_id"] == f"{settle.context.trace_id:032x}"
    assert line["principal"] == str(institution(HOSPITAL))  # the hospital that sent the bill
    assert (line["service"], line["node"], line["status"]) == ("payment", "east", "OK")
    # The settlement's calls in the binding service and node west: the same trace, each its caller
    # (west captures in one round: the father is the bill's last payer, so no CommitLegs follows).
    east, west = str(payment_node("east")), str(payment_node("west"))
    calls = {(entry["method"].rsplit("/", 1)[-1], entry["principal"]) for entry in handler.lines
             if entry.get("trace_id") == line["trace_id"]}  # fmt: skip
    assert {("ResolvePayers", east), ("PrepareLegs", east), ("ResolvePayers", west)} <= calls
    # No line, of any service, names the family: neither an ID number nor a name.
    people = [family.child, family.mother, family.father]
    written = "\n".join(json.dumps(entry, ensure_ascii=False) for entry in handler.lines)
    assert {"UpsertInsuredPerson", "CreateBinding", "CreditAccount"} <= {
        entry["method"].rsplit("/", 1)[-1] for entry in handler.lines
    }
    for secret in [p.id_number for p in people] + [p.name for p in people]:
        assert secret not in written


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP collector's trace endpoint, keeping what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request, context):
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_a_server_configured_only_by_the_environment_sends_its_spans_to_the_otlp_endpoint(
    databases, clock, pki, roles, monkeypatch
):
    receiver = Receiver()
    collector = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, collector)
    port = collector.add_insecure_port("127.0.0.1:0")
    collector.start()
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    id_number = make_id_number("320102")
    try:
        with running_binding(databases, clock, pki, roles) as binding:
            binding.stub.UpsertInsuredPerson(
                bapi.UpsertInsuredPersonRequest(
                    request_id=request_id(), insured_person=person(id_number, "王小宝", admdvs="320100")
                )
            )
        # Stopping the server shut its provider down, which flushed every span.
        sent = [
            (resource.resource, span)
            for request in receiver.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        names = {span.name for _, span in sent}
        assert "/gongji.binding.v1.BindingService/UpsertInsuredPerson" in names
        assert any(span.name.startswith("INSERT") for _, span in sent)
        services = {a.value.string_value for resource, _ in sent for a in resource.attributes if a.key == SERVICE_NAME}
        assert services == {"gongji-binding"}
        assert id_number.encode() not in b"".join(request.SerializeToString() for request in receiver.requests)
    finally:
        collector.stop(None)
