"""`gongji serve payment --processes 2`: two processes serve one address, both settle, and
they stop together, as real processes with real certificates on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import ActingStub, Roles
from shared.principals import BINDING_SERVICE, operator, payment_node
from tests.conftest import _free_port
from tests.helpers import request_id
from tests.payment_helpers import PaymentFamily


def _serving(pki: DevelopmentPKI, address: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with pki.channel(address, operator("000000", "ops")) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{address} never served:\n{log.read_text()[-3000:]}")


def _settles(metrics: str) -> int:
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "grpc_server_handled_total"
            and sample.labels.get("grpc_method") == "Settle"
            and sample.labels.get("grpc_code") == "OK"
        )
    )


def _siblings_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
        return [int(child) for child in handle.read().split()]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        return handle.read().split(")")[-1].split()[0] == "Z"  # a zombie has ended


@pytest.fixture
def two_process_node(databases, tmp_path: Path) -> Iterator[SimpleNamespace]:
    pki = DevelopmentPKI(tmp_path / "pki")
    binding_address, payment_address = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    metrics_port = _free_port()
    base = [sys.executable, "-m", "services.cli", "serve"]
    commands = {
        "binding": [
            *base, "binding", "--address", binding_address, "--database", databases.url("binding"),
            *pki.args(BINDING_SERVICE),
        ],
        "payment": [
            *base, "payment", "--address", payment_address, "--database", databases.url("payment"),
            "--binding-address", binding_address, "--verifier", "stand-in", "--processes", "2", "--grace", "2",
            "--metrics-address", f"127.0.0.1:{metrics_port}", *pki.args(payment_node("local")),
        ],
    }  # fmt: skip
    processes: dict[str, subprocess.Popen] = {}
    stubs: list[ActingStub] = []
    try:
        for name, command in commands.items():
            log = tmp_path / f"{name}.log"
            with log.open("ab") as sink:
                processes[name] = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
            _serving(pki, binding_address if name == "binding" else payment_address, processes[name], log)
        roles = Roles()

        def payment_stub() -> ActingStub:
            stub = ActingStub(payment_grpc.PaymentServiceStub, payment_address, pki, roles)
            stubs.append(stub)
            return stub

        binding = ActingStub(binding_grpc.BindingServiceStub, binding_address, pki, roles)
        stubs.append(binding)
        yield SimpleNamespace(
            first=processes["payment"], payment_stub=payment_stub, binding=binding, tmp_path=tmp_path,
            metrics=[f"127.0.0.1:{metrics_port}", f"127.0.0.1:{metrics_port + 1}"],
        )  # fmt: skip
    finally:
        for stub in stubs:
            stub.close()
        for process in reversed(processes.values()):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def test_two_processes_share_the_address_and_both_settle_bills(two_process_node) -> None:
    node = two_process_node
    harness = SimpleNamespace(stub=node.payment_stub(), binding=SimpleNamespace(stub=node.binding, clock=None))
    family = PaymentFamily(harness)
    # Each stub opens its own connections; the kernel spreads new connections over the processes.
    settled = 0
    for _ in range(16):
        stub = node.payment_stub()
        stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(100)))
        settled += 1
    counts = [_settles(metrics) for metrics in node.metrics]
    assert sum(counts) == settled
    assert all(count > 0 for count in counts), counts
    assert family.ledger().balanced


def test_the_sibling_stops_with_the_first_process_even_when_it_is_killed(two_process_node) -> None:
    node = two_process_node
    deadline = time.monotonic() + 20
    while not _siblings_of(node.first.pid):
        assert time.monotonic() < deadline, "the sibling never started"
        time.sleep(0.1)
    sibling = _siblings_of(node.first.pid)[0]
    node.first.send_signal(signal.SIGKILL)
    node.first.wait(timeout=10)
    deadline = time.monotonic() + 20
    while not _gone(sibling):
        assert time.monotonic() < deadline, "the sibling outlived its first process"
        time.sleep(0.1)
