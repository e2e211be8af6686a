"""What operators see: JSON log lines carrying each call's fields and no personal data, and
readiness (each service's own health name) apart from liveness (the empty name), following
the database and, for payment, the binding service."""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from services.binding.app import BindingSettings, start_binding_server
from services.common.database import migrate
from services.common.hosting import BackgroundServer
from services.common.logs import JsonFormatter, configure_logging
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import ActingStub, Roles
from services.common.server import ServerSecurity
from services.payment.app import PaymentSettings, start_payment_server
from services.payment.verification import StandInVerifier
from shared.principals import BINDING_SERVICE, institution, operator
from tests.conftest import KNOWN_NODES, _free_port, payment_security
from tests.helpers import binding_request, make_id_number, metric_total, person, refusal_of
from tests.private_postgres import private_postgres
from tests.tcp_proxy import TcpProxy

OPERATOR = operator("000000", "ops")
BINDING_NAME = "gongji.binding.v1.BindingService"
PAYMENT_NAME = "gongji.payment.v1.PaymentService"
PAYMENT_NAMES = (PAYMENT_NAME, "gongji.node.v1.PaymentNodeService")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
INTERVAL = 0.2


def health_of(pki: DevelopmentPKI, address: str, service: str = "") -> int | None:
    """The health status, or None when the server cannot be reached."""
    with pki.channel(address, OPERATOR) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            )
        except grpc.RpcError:
            return None
    return answer.status


def wait_for_health(pki: DevelopmentPKI, address: str, service: str, wanted: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    seen = None
    while time.monotonic() < deadline:
        seen = health_of(pki, address, service)
        if seen == wanted:
            return
        time.sleep(0.05)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name
    raise AssertionError(f"{service or '(server)'} stayed {seen if seen is None else name(seen)}, not {name(wanted)}")


def ready_gauge(metrics_address: str) -> float:
    """gongji_ready as Prometheus would scrape it."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    (family,) = (f for f in text_string_to_metric_families(text) if f.name == "gongji_ready")
    return family.samples[0].value


def binding_settings(pki: DevelopmentPKI, url: str, address: str = "127.0.0.1:0") -> BindingSettings:
    return BindingSettings(
        database_url=url,
        security=ServerSecurity(pki.transport(BINDING_SERVICE), nodes=KNOWN_NODES),
        address=address,
        readiness_interval=INTERVAL,
    )


# Logs ------------------------------------------------------------------------------------------


@pytest.fixture
def json_access_log(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    caplog.set_level(logging.INFO, logger="gongji.rpc")
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gongji.rpc")
    logger.addHandler(handler)
    try:
        yield written
    finally:
        logger.removeHandler(handler)


def test_a_call_writes_one_json_line_with_its_principal_method_request_id_status_and_reason_but_no_id_number(
    binding_service, json_access_log
):
    grantor, beneficiary = person(make_id_number(), "王建国"), person(make_id_number(), "王小明")
    request = binding_request(grantor, beneficiary)
    with pytest.raises(grpc.RpcError):
        binding_service.stub.CreateBinding(request)  # neither person is insured here

    lines = [json.loads(line) for line in json_access_log.getvalue().splitlines()]
    (entry,) = [line for line in lines if line["method"].endswith("/CreateBinding")]
    assert entry["method"] == "/gongji.binding.v1.BindingService/CreateBinding"
    assert entry["principal"].startswith("spiffe://gongji/")
    assert entry["request_id"] == request.request_id
    assert entry["status"] not in ("", "OK") and entry["reason"]
    assert entry["service"] == "binding" and entry["logger"] == "gongji.rpc" and entry["level"] == "INFO"
    assert entry["time"].endswith("+00:00") and isinstance(entry["latency_ms"], float)
    assert entry["trace_id"] == "" and entry["span_id"] == ""
    for id_number in (grantor.id_number, beneficiary.id_number):
        assert id_number not in json_access_log.getvalue()


def test_a_call_refused_before_it_is_admitted_is_logged_with_the_principal_its_certificate_names(
    binding_service, json_access_log
):
    hospital = institution("H32010001")
    stub = binding_service.stub.stub_as(hospital)
    with pytest.raises(grpc.RpcError):  # institutions may not put policies
        stub.PutRegionPolicy(bapi.PutRegionPolicyRequest(request_id="policy-1"))
    credentials = binding_service.pki.credentials(hospital)
    with grpc.secure_channel(binding_service.server.address, credentials) as channel, pytest.raises(grpc.RpcError):
        channel.unary_unary("/gongji.binding.v1.BindingService/GetRegionPolicy")(b"\x0a\x05\xff\xfe", timeout=10)

    lines = [json.loads(line) for line in json_access_log.getvalue().splitlines()]
    refusals = {line["reason"]: line for line in lines}
    for reason in ("CALLER_NOT_ALLOWED", "MALFORMED_REQUEST"):
        assert refusals[reason]["principal"] == hospital.spiffe_id
        assert f"principal={hospital.spiffe_id}" in refusals[reason]["message"]


def test_json_log_messages_and_fields_have_id_numbers_and_phones_scrubbed():
    id_number = make_id_number()
    record = logging.LogRecord("gongji.test", logging.WARNING, __file__, 1, "person %s phone %s", None, None)
    record.args = (id_number, "13812345678")
    record.request_id = id_number
    entry = json.loads(JsonFormatter().format(record))
    assert id_number not in json.dumps(entry) and "13812345678" not in entry["message"]
    assert entry["message"] == f"person {id_number[:6]}********{id_number[-4:]} phone 138****5678"


def test_configure_logging_json_makes_the_root_handlers_write_json():
    root = logging.getLogger()
    saved = [(handler, handler.formatter) for handler in root.handlers]
    added = logging.StreamHandler(io.StringIO())
    root.addHandler(added)
    try:
        configure_logging("INFO", "json")
        assert isinstance(added.formatter, JsonFormatter)
    finally:
        root.removeHandler(added)
        for handler, formatter in saved:
            handler.setFormatter(formatter)


# Health ----------------------------------------------------------------------------------------


def test_health_list_names_liveness_and_each_service_with_the_status_check_answers(binding_service, payment_service):
    """grpc.health.v1's List, which the access policy lets anyone call, answered UNIMPLEMENTED."""
    for address, names in (
        (binding_service.server.address, (BINDING_NAME,)),
        (payment_service.server.address, PAYMENT_NAMES),
    ):
        with binding_service.pki.channel(address, OPERATOR) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            listed = health.List(health_pb2.HealthListRequest(), timeout=5).statuses
            assert set(listed) == {"", *names}
            for name in listed:
                assert listed[name].status == SERVING
                assert health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status == SERVING


def test_binding_readiness_follows_its_postgresql_database_while_liveness_stays_serving(pki):
    with private_postgres() as database:
        url = database.create_database("gongji_binding")
        with BackgroundServer(lambda: start_binding_server(binding_settings(pki, url))) as server:
            wait_for_health(pki, server.address, BINDING_NAME, SERVING)
            database.crash()
            wait_for_health(pki, server.address, BINDING_NAME, NOT_SERVING)
            assert health_of(pki, server.address) == SERVING
            database.start()
            wait_for_health(pki, server.address, BINDING_NAME, SERVING)
            assert health_of(pki, server.address) == SERVING


def test_a_call_while_the_database_is_away_is_unavailable_to_retry_with_one_warning_and_no_traceback(
    pki, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    with private_postgres() as database:
        url = database.create_database("gongji_binding")
        with BackgroundServer(lambda: start_binding_server(binding_settings(pki, url))) as server:
            with pki.channel(server.address, operator("000000", "ops")) as channel:
                stub = binding_grpc.BindingServiceStub(channel)
                request = bapi.GetInsuredPersonRequest(id_number=make_id_number("320102"))
                with pytest.raises(grpc.RpcError) as unknown:
                    stub.GetInsuredPerson(request, timeout=10)
                database.crash()
                with pytest.raises(grpc.RpcError) as refused:
                    stub.GetInsuredPerson(request, timeout=10)
                database.start()
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert refusal_of(refused.value).reason == "DATABASE_UNAVAILABLE"
    logged = [record for record in caplog.records if "GetInsuredPerson" in record.getMessage()]
    assert [record.levelname for record in logged] == ["INFO", "WARNING", "INFO"], [r.getMessage() for r in logged]
    assert "the database does not answer" in logged[1].getMessage()
    assert "DATABASE_UNAVAILABLE" in logged[2].getMessage()
    assert not any(record.levelno >= logging.ERROR for record in caplog.records)


@contextlib.contextmanager
def binding_behind_a_proxy(databases: Any, pki: DevelopmentPKI, metrics: str) -> Iterator[tuple[TcpProxy, Any]]:
    """The binding service on PostgreSQL through a TCP proxy the test can cut; a SQLite run skips
    (a stalled network link is a PostgreSQL server's)."""
    url = make_url(databases.url("binding"))
    if url.get_backend_name() != "postgresql":
        pytest.skip("a stalled network link is a PostgreSQL server's")
    migrate("binding", url.render_as_string(hide_password=False))
    with TcpProxy(f"{url.host}:{url.port or 5432}", lifetime=60) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = replace(binding_settings(pki, proxied), metrics_address=metrics, migrate_on_start=False)
        with BackgroundServer(lambda: start_binding_server(settings)) as server:
            yield proxy, server


def test_a_call_whose_deadline_passes_while_the_database_stalls_is_logged_and_counted_as_deadline_exceeded(
    databases, pki, caplog: pytest.LogCaptureFixture
):
    """A silent network cut to PostgreSQL: the caller gives up at its deadline, and the access line
    and grpc_server_handled_total say DEADLINE_EXCEEDED (the error-ratio alert counts it), not OK."""
    caplog.set_level(logging.INFO, logger="gongji.rpc")
    metrics = f"127.0.0.1:{_free_port()}"
    with binding_behind_a_proxy(databases, pki, metrics) as (proxy, server):
        proxy.cut("drop")
        with pki.channel(server.address, OPERATOR) as channel:
            stub = binding_grpc.BindingServiceStub(channel)
            with pytest.raises(grpc.RpcError) as given_up:
                stub.GetInsuredPerson(bapi.GetInsuredPersonRequest(id_number=make_id_number("320102")), timeout=1)
        assert given_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 10
        while not [r for r in caplog.records if "GetInsuredPerson" in r.getMessage()] and time.monotonic() < deadline:
            time.sleep(0.05)
        proxy.restore()  # the scrape reads the database too
        counted = metric_total(metrics, "grpc_server_handled_total", grpc_method="GetInsuredPerson")
        timed_out = metric_total(
            metrics, "grpc_server_handled_total", grpc_method="GetInsuredPerson", grpc_code="DEADLINE_EXCEEDED"
        )
    [line] = [record for record in caplog.records if "GetInsuredPerson" in record.getMessage()]
    assert " DEADLINE_EXCEEDED principal=spiffe://gongji/operator/000000/ops " in line.getMessage()
    assert line.status == "DEADLINE_EXCEEDED"  # type: ignore[attr-defined]
    assert (counted, timed_out) == (1, 1)


def test_a_database_that_accepts_the_connection_and_then_says_nothing_is_database_unavailable_in_seconds(
    databases, pki
):
    """A silent network cut to PostgreSQL: a call that needs a new connection is refused UNAVAILABLE
    DATABASE_UNAVAILABLE after the connect timeout, and the metrics still answer the scrape."""
    metrics = f"127.0.0.1:{_free_port()}"
    with binding_behind_a_proxy(databases, pki, metrics) as (proxy, server):
        proxy.cut("drop")
        started = time.monotonic()
        with pki.channel(server.address, OPERATOR) as channel:
            stub = binding_grpc.BindingServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetInsuredPerson(bapi.GetInsuredPersonRequest(id_number=make_id_number("320102")), timeout=20)
        took = time.monotonic() - started
        scraped = metric_total(metrics, "gongji_database_scrape_success")
        proxy.restore()
    assert (refused.value.code(), refusal_of(refused.value).reason) == (
        grpc.StatusCode.UNAVAILABLE,
        "DATABASE_UNAVAILABLE",
    )
    assert took < 10
    assert scraped == 0


@contextlib.contextmanager
def silently_cut(port: int) -> Iterator[None]:
    """Every packet to or from local TCP port `port` dropped by the kernel: a link cut silently,
    nothing acknowledged and no RST, as a pulled cable or a firewall does. Needs root and iptables."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        pytest.skip("cutting a link silently needs root and iptables")
    rules = [["INPUT", "-p", "tcp", flag, str(port), "-j", "DROP"] for flag in ("--dport", "--sport")]
    for rule in rules:
        subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
    try:
        yield
    finally:
        for rule in rules:
            subprocess.run(["iptables", "-D", *rule], check=False, capture_output=True)


def test_a_pooled_connection_whose_link_is_cut_silently_fails_in_seconds_and_the_service_recovers(databases, pki):
    """The link under a pooled PostgreSQL connection cut silently: the call is refused UNAVAILABLE
    DATABASE_UNAVAILABLE once libpq's tcp_user_timeout (15 s) and a new connection's connect_timeout
    have passed, not when TCP gives up hours later; once the link is back, the service answers."""
    metrics = f"127.0.0.1:{_free_port()}"
    unknown = bapi.GetInsuredPersonRequest(id_number=make_id_number("320102"))
    with (
        binding_behind_a_proxy(databases, pki, metrics) as (proxy, server),
        pki.channel(server.address, OPERATOR) as channel,
    ):
        stub = binding_grpc.BindingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as before:
            stub.GetInsuredPerson(unknown, timeout=10)  # the pool now holds a live connection
        with silently_cut(proxy.port):
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetInsuredPerson(unknown, timeout=60)
            took = time.monotonic() - started
        with pytest.raises(grpc.RpcError) as after:
            stub.GetInsuredPerson(unknown, timeout=10)
    assert refusal_of(before.value).reason == "PERSON_NOT_FOUND"
    assert (refused.value.code(), refusal_of(refused.value).reason) == (
        grpc.StatusCode.UNAVAILABLE,
        "DATABASE_UNAVAILABLE",
    )
    assert took < 30
    assert refusal_of(after.value).reason == "PERSON_NOT_FOUND"


def test_binding_readiness_follows_its_sqlite_file_becoming_unreachable_and_back(pki, tmp_path: Path):
    directory = tmp_path / "data"
    directory.mkdir()
    url = f"sqlite:///{directory / 'binding.db'}"
    with BackgroundServer(lambda: start_binding_server(binding_settings(pki, url))) as server:
        wait_for_health(pki, server.address, BINDING_NAME, SERVING)
        directory.rename(tmp_path / "away")
        wait_for_health(pki, server.address, BINDING_NAME, NOT_SERVING)
        assert health_of(pki, server.address) == SERVING
        (tmp_path / "away").rename(directory)
        wait_for_health(pki, server.address, BINDING_NAME, SERVING)
        assert health_of(pki, server.address) == SERVING


def test_payment_readiness_follows_the_binding_service_stopping_and_returning_while_liveness_stays_serving(
    pki, tmp_path: Path
):
    binding_address = f"127.0.0.1:{_free_port()}"
    binding = binding_settings(pki, f"sqlite:///{tmp_path / 'binding.db'}", binding_address)
    payment = PaymentSettings(
        database_url=f"sqlite:///{tmp_path / 'payment.db'}",
        security=payment_security(pki),
        verifier=StandInVerifier(),
        address="127.0.0.1:0",
        binding_address=binding_address,
        sweep_interval=0,
        readiness_interval=INTERVAL,
        metrics_address=f"127.0.0.1:{_free_port()}",
    )
    first = BackgroundServer(lambda: start_binding_server(binding)).start()
    try:
        with BackgroundServer(lambda: start_payment_server(payment)) as server:
            wait_for_health(pki, server.address, PAYMENT_NAME, SERVING)
            first.stop()
            wait_for_health(pki, server.address, PAYMENT_NAME, NOT_SERVING)
            assert health_of(pki, server.address) == SERVING
            assert ready_gauge(payment.metrics_address) == 0, "operators are paged on readiness too"
            with BackgroundServer(lambda: start_binding_server(binding)):
                wait_for_health(pki, server.address, PAYMENT_NAME, SERVING)
                assert health_of(pki, server.address) == SERVING
                assert ready_gauge(payment.metrics_address) == 1
    finally:
        first.stop()


def test_a_payment_node_whose_binding_service_is_away_retries_its_watch_without_asyncio_errors_in_the_log(
    pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)
    payment = PaymentSettings(
        database_url=f"sqlite:///{tmp_path / 'payment.db'}",
        security=payment_security(pki),
        verifier=StandInVerifier(),
        address="127.0.0.1:0",
        binding_address=f"127.0.0.1:{_free_port()}",  # nothing listens there
        sweep_interval=0,
        readiness_interval=INTERVAL,
        payer_cache=True,  # as gongji serve payment runs
    )
    with BackgroundServer(lambda: start_payment_server(payment)) as server:
        wait_for_health(pki, server.address, PAYMENT_NAME, NOT_SERVING)
        time.sleep(2.5)  # the watch tries again after 0.2, 0.5 and 1 s
        gc.collect()
        assert health_of(pki, server.address) == SERVING
    assert any("payer watch lost (UNAVAILABLE)" in record.getMessage() for record in caplog.records)
    assert [record.getMessage() for record in caplog.records if record.name == "asyncio"] == []


def test_a_database_probe_that_outlives_its_timeout_and_then_fails_writes_no_asyncio_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """A database that stalls (a silent network cut) answers no probe within its 2 s; the driver's
    own connect timeout fails the probe's thread later. That late failure is no ERROR of its own."""
    import asyncio

    from services.common.readiness import DatabaseProbe

    class Stalling(DatabaseProbe):
        def _select_one(self) -> None:
            time.sleep(0.3)
            raise OSError("connection timeout expired")

    async def probe_twice() -> list[str]:
        probe, failures = Stalling(f"sqlite:///{tmp_path / 'b.db'}"), []
        for _ in range(2):
            try:
                await probe(0.05)
            except TimeoutError as error:
                failures.append(str(error))
            await asyncio.sleep(0.5)
        probe.dispose()
        return failures

    caplog.set_level(logging.WARNING)
    failures = asyncio.run(probe_twice())
    gc.collect()
    assert len(failures) == 2 and "did not answer SELECT 1" in failures[0]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


def test_payment_readiness_follows_its_postgresql_database_while_liveness_stays_serving(pki, tmp_path: Path):
    binding = binding_settings(pki, f"sqlite:///{tmp_path / 'binding.db'}")
    with private_postgres() as database, BackgroundServer(lambda: start_binding_server(binding)) as binding_server:
        payment = PaymentSettings(
            database_url=database.create_database("gongji_payment"),
            security=payment_security(pki),
            verifier=StandInVerifier(),
            address="127.0.0.1:0",
            binding_address=binding_server.address,
            sweep_interval=0,
            readiness_interval=INTERVAL,
            metrics_address=f"127.0.0.1:{_free_port()}",
        )
        with BackgroundServer(lambda: start_payment_server(payment)) as server:
            for name in PAYMENT_NAMES:
                wait_for_health(pki, server.address, name, SERVING)
            database.crash()
            for name in PAYMENT_NAMES:
                wait_for_health(pki, server.address, name, NOT_SERVING)
            assert health_of(pki, server.address) == SERVING
            assert ready_gauge(payment.metrics_address) == 0
            database.start()
            for name in PAYMENT_NAMES:
                wait_for_health(pki, server.address, name, SERVING)
            assert health_of(pki, server.address) == SERVING
            assert ready_gauge(payment.metrics_address) == 1


# Graceful shutdown -----------------------------------------------------------------------------


def started_calls(metrics_address: str, method: str) -> float:
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "grpc_server_started_total" and sample.labels.get("grpc_method") == method
    )


def test_a_graceful_shutdown_turns_readiness_not_serving_first_then_lets_the_call_in_flight_finish(pki, tmp_path: Path):
    """A call held up in the database (another writer holds SQLite's lock) is in flight when the
    server is told to stop: the service's name turns NOT_SERVING at once, the call still
    completes, and only then does the server close."""
    path = tmp_path / "binding.db"
    settings = replace(
        binding_settings(pki, f"sqlite:///{path}"), metrics_address=f"127.0.0.1:{_free_port()}", workers=2
    )
    server = BackgroundServer(lambda: start_binding_server(settings), grace=30).start()
    stopping: threading.Thread | None = None
    blocker: sqlite3.Connection | None = None
    try:
        address = server.address
        wait_for_health(pki, address, BINDING_NAME, SERVING)
        with pki.channel(address, OPERATOR) as health_channel, futures.ThreadPoolExecutor(1) as pool:
            watch = health_pb2_grpc.HealthStub(health_channel).Watch(
                health_pb2.HealthCheckRequest(service=BINDING_NAME), timeout=60
            )
            assert next(watch).status == SERVING

            blocker = sqlite3.connect(path, timeout=30)
            blocker.execute("BEGIN IMMEDIATE")  # the call's write waits on this lock
            insured = person(make_id_number(), "王建国")
            upsert = bapi.UpsertInsuredPersonRequest(request_id=str(uuid.uuid4()), insured_person=insured)
            stub = ActingStub(binding_grpc.BindingServiceStub, address, pki, Roles())  # as a national operator
            try:
                call = pool.submit(stub.UpsertInsuredPerson, upsert)
                deadline = time.monotonic() + 20
                while started_calls(settings.metrics_address, "UpsertInsuredPerson") < 1:
                    assert time.monotonic() < deadline, "the call never reached the server"
                    time.sleep(0.05)
                time.sleep(3 * INTERVAL)
                # Held up in the database, not done, and the service is still ready (its probe reads).
                assert not call.done()
                assert health_of(pki, address, BINDING_NAME) == SERVING

                stopping = threading.Thread(target=server.stop, name="stopping")
                stopping.start()
                assert next(watch).status == NOT_SERVING
                assert not call.done(), "readiness must turn before the drain, not after it"
                assert stopping.is_alive()

                blocker.rollback()
                answer = call.result(timeout=30)
                assert answer.insured_person.admdvs == insured.admdvs
            finally:
                stub.close()
            watch.cancel()
        stopping.join(60)
        assert not stopping.is_alive()
        assert health_of(pki, address) is None  # closed: nothing answers on the port
    finally:
        if blocker is not None:
            blocker.close()
        if stopping is None:
            server.stop()
        else:
            stopping.join(60)


def test_a_drain_delay_keeps_answering_new_calls_with_readiness_not_serving_then_closes_the_port(
    pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """With `--drain-delay`, a stop turns readiness NOT_SERVING at once while the server still
    takes new calls for that long (Kubernetes removes a terminating pod's endpoint while SIGTERM
    arrives, and load balancers poll readiness), so nothing is refused before they take the
    process out; then the port closes."""
    caplog.set_level(logging.INFO, logger="services.common.server")
    settings = binding_settings(pki, f"sqlite:///{tmp_path / 'binding.db'}")
    server = BackgroundServer(lambda: start_binding_server(settings), grace=5, drain_delay=3.0).start()
    address = server.address
    wait_for_health(pki, address, BINDING_NAME, SERVING)
    stopping = threading.Thread(target=server.stop, name="stopping")
    began = time.monotonic()
    stopping.start()
    try:
        wait_for_health(pki, address, BINDING_NAME, NOT_SERVING)
        stub = ActingStub(binding_grpc.BindingServiceStub, address, pki, Roles())  # as a national operator
        try:
            insured = person(make_id_number(), "王建国")
            answer = stub.UpsertInsuredPerson(
                bapi.UpsertInsuredPersonRequest(request_id=str(uuid.uuid4()), insured_person=insured), timeout=10
            )
        finally:
            stub.close()
        assert answer.insured_person.admdvs == insured.admdvs, "a new call was answered during the delay"
        assert stopping.is_alive()
    finally:
        stopping.join(60)
    assert time.monotonic() - began >= 3.0
    assert health_of(pki, address) is None  # closed: nothing answers on the port
    assert any("still taking calls for 3.0s" in record.getMessage() for record in caplog.records)


def test_gongji_serve_help_states_the_default_of_every_flag_that_has_one():
    import argparse

    from services.cli import build_parser

    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    silent = []
    for action in commands.choices["serve"]._actions:
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            continue
        default = action.default
        forms = {str(default)}
        if isinstance(default, float):
            forms.add(f"{default:g}")
        elif isinstance(default, int):
            forms.add(f"{default:,}")
        if not any(form in (action.help or "") for form in forms):
            silent.append((action.option_strings[0], default))
    assert silent == [], "say the default in the help of these flags"
