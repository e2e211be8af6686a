"""Both services start behind mutual TLS, answer health checks, list their contracts by
reflection, refuse unknown work clearly and stop gracefully."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families

from services.common.security.development_pki import DevelopmentPKI
from shared.principals import BINDING_SERVICE, operator, payment_node
from tests.conftest import _free_port

OPERATOR = operator("000000", "ops")

BINDING_RPCS = {
    "UpsertInsuredPerson", "GetInsuredPerson", "UpdateContactInfo", "ReportLifeEvent", "CreateBinding",
    "ReviewBinding", "EndBinding", "GetBinding", "ListBindings", "UpdateSharingLimit", "SetPayerOrder",
    "ResolvePayers", "PutRegionPolicy", "GetRegionPolicy", "ListRegionPolicies",
}  # fmt: skip
PAYMENT_RPCS = {
    "CreditAccount", "GetAccount", "ListStatement", "QuoteSettlement", "AuthorizeSettlement", "CaptureSettlement",
    "ReleaseSettlement", "Settle", "RefundSettlement", "ReverseRequest", "GetSettlement", "TransferToWallet",
    "GetTransfer", "SuspendSettlement", "LiftSuspension", "ListViolations", "ReconcileInstitution",
    "GetClearingReport", "CheckLedger",
}  # fmt: skip


def health_of(pki: DevelopmentPKI, address: str, service: str = "") -> int:
    with pki.channel(address, OPERATOR) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return answer.status


def test_both_services_answer_health_checks_serving(payment_service, pki):
    for address, name in (
        (payment_service.binding.server.address, "gongji.binding.v1.BindingService"),
        (payment_service.server.address, "gongji.payment.v1.PaymentService"),
    ):
        assert health_of(pki, address) == health_pb2.HealthCheckResponse.SERVING
        assert health_of(pki, address, name) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_both_services_and_every_rpc_of_the_api(payment_service, pki):
    for address, name, rpcs in (
        (payment_service.binding.server.address, "gongji.binding.v1.BindingService", BINDING_RPCS),
        (payment_service.server.address, "gongji.payment.v1.PaymentService", PAYMENT_RPCS),
    ):
        with pki.channel(address, OPERATOR) as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            assert name in database.get_services()
            assert "grpc.health.v1.Health" in database.get_services()
            from google.protobuf.descriptor_pool import DescriptorPool

            pool = DescriptorPool(database)
            declared = {m.name for m in pool.FindServiceByName(name).methods}
        assert rpcs <= declared


def test_a_payment_node_also_serves_the_node_to_node_contract(payment_service, pki):
    with pki.channel(payment_service.server.address, OPERATOR) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "gongji.node.v1.PaymentNodeService" in services


def _wait_serving(pki: DevelopmentPKI, address: str, process: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if health_of(pki, address) == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            time.sleep(0.1)
    raise AssertionError(f"{address} never answered SERVING")


@pytest.mark.parametrize("service", ["binding", "payment"])
def test_gongji_serve_answers_health_checks_and_exits_cleanly_on_sigterm(service, tmp_path, pki):
    address = f"127.0.0.1:{_free_port()}"
    identity = BINDING_SERVICE if service == "binding" else payment_node("local")
    command = [sys.executable, "-m", "services.cli", "serve", service, "--address", address, *pki.args(identity)]
    command += ["--database", f"sqlite:///{tmp_path}/{service}.db", "--grace", "2"]
    if service == "payment":
        command += ["--binding-address", "127.0.0.1:1", "--verifier", "stand-in"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_serving(pki, address, process)
        health = subprocess.run(
            [sys.executable, "-m", "services.cli", "health", "--address", address, *pki.args(identity)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert health.returncode == 0, health.stderr
        assert "SERVING" in health.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        said = process.stderr.read()
        # An operator tells a finished drain from a killed process by its last line.
        assert "shutting down" in said and re.search(r"stopped after \d+\.\d+s", said), said[-2000:]
    finally:
        if process.poll() is None:
            process.kill()


def test_a_log_level_gongji_does_not_know_stops_serve_with_the_levels_it_knows(tmp_path, pki):
    command = [sys.executable, "-m", "services.cli", "--log-level", "bogus", "serve", "binding", "--insecure"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2
    assert "invalid choice: 'BOGUS'" in finished.stderr and "'DEBUG', 'INFO', 'WARNING', 'ERROR'" in finished.stderr


def test_gongji_health_exits_non_zero_when_nothing_listens():
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "health", "--address", f"127.0.0.1:{_free_port()}", "--timeout", "1",
         "--insecure"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode != 0


def test_gongji_health_says_when_the_server_serves_no_service_of_the_name_asked(binding_service, pki):
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "health", "--address", binding_service.server.address,
         "--service", "gongji.binding.v1.BindingServce", *pki.args(OPERATOR)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "serves no service named 'gongji.binding.v1.BindingServce'" in result.stderr


def test_a_health_check_of_a_name_not_served_is_not_found_with_error_info_naming_the_reason(binding_service, pki):
    with pki.channel(binding_service.server.address, OPERATOR) as channel:
        for name in ("gongji.binding.v1.BindingServce", "x" * 5000):
            with pytest.raises(grpc.RpcError) as raised:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            status = rpc_status.from_call(raised.value)
            assert status is not None, "no google.rpc.Status in the trailers"
            infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
            assert len(infos) == 1
            info = error_details_pb2.ErrorInfo()
            infos[0].Unpack(info)
            assert (info.reason, info.domain) == ("SERVICE_NOT_FOUND", "binding.gongji")
            assert "Health/List" in status.message and len(status.message) < 200
        assert health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
            health_pb2.HealthCheckResponse.SERVING
        )


def test_serving_on_a_taken_port_fails_loudly(tmp_path, pki):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "services.cli", "serve", "binding", "--address", f"127.0.0.1:{port}",
             "--database", f"sqlite:///{tmp_path}/b.db", *pki.args(BINDING_SERVICE)],
            capture_output=True, text=True, timeout=30,
            env={**os.environ},
        )  # fmt: skip
    assert result.returncode != 0
    assert "cannot listen" in result.stderr


def test_a_served_process_logs_who_called_and_never_a_persons_data(tmp_path, pki):
    """The access log names the principal and request_id; ID numbers, names and phones stay out."""
    from gongji.binding.v1 import binding_service_pb2 as bapi
    from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
    from tests.helpers import make_id_number, person

    address = f"127.0.0.1:{_free_port()}"
    command = [*[sys.executable, "-m", "services.cli", "serve", "binding", "--address", address],
               "--database", f"sqlite:///{tmp_path}/b.db", *pki.args(BINDING_SERVICE)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    someone = person(make_id_number("320102"), "王秀兰", admdvs="320100")
    try:
        _wait_serving(pki, address, process)
        with pki.channel(address, OPERATOR) as channel:
            stub = binding_grpc.BindingServiceStub(channel)
            stub.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id="sync-1", insured_person=someone))
            with pytest.raises(grpc.RpcError):
                stub.GetInsuredPerson(bapi.GetInsuredPersonRequest(id_number=make_id_number("110101")))
            with pytest.raises(grpc.RpcError):
                stub.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id="sync-1"))
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        log = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert "UpsertInsuredPerson OK principal=spiffe://gongji/operator/000000/ops request_id=sync-1" in log
    assert "GetInsuredPerson PERSON_NOT_FOUND principal=" in log
    assert log.count("request_id=sync-1") == 2
    assert not re.search(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])", log)
    assert someone.name not in log and someone.phone not in log


def _scrape(address: str) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    return {sample.name: sample.value for family in text_string_to_metric_families(text) for sample in family.samples}


def test_gongji_serve_takes_the_readiness_and_ledger_audit_intervals_from_its_flags(tmp_path, pki):
    """With both at 0.2 s, a payment node whose binding service is unreachable reports itself
    not ready and has audited its ledger within seconds (defaults: 5 s and 5 minutes)."""
    address, metrics = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    command = [sys.executable, "-m", "services.cli", "serve", "payment", "--address", address,
               *pki.args(payment_node("local")), "--database", f"sqlite:///{tmp_path}/payment.db",
               "--binding-address", "127.0.0.1:1", "--verifier", "stand-in", "--metrics-address", metrics,
               "--readiness-interval", "0.2", "--ledger-audit-interval", "0.2", "--grace", "1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_serving(pki, address, process)
        deadline, seen = time.monotonic() + 20, {}
        while time.monotonic() < deadline:
            seen = _scrape(metrics)
            if seen.get("gongji_ready") == 0 and seen.get("gongji_ledger_balanced") == 1:
                break
            time.sleep(0.1)
        assert (seen.get("gongji_ready"), seen.get("gongji_ledger_balanced")) == (0, 1), seen
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
