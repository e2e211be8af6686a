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

import pytest

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.benchmark.processes import free_port
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import ActingStub, Roles
from shared.principals import BINDING_SERVICE, payment_node
from tests.conftest import _free_port
from tests.helpers import metric_total, request_id
from tests.payment_helpers import PaymentFamily
from tests.process_cluster import wait_until_serving


def _settles(metrics: str) -> int:
    return int(metric_total(metrics, "grpc_server_handled_total", grpc_method="Settle", grpc_code="OK"))


def _metric_when_served(address: str, name: str) -> float:
    """metric_total, once the process serves its metrics (a sibling starts after the first serves)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return metric_total(address, name)
        except OSError:
            assert time.monotonic() < deadline, f"nothing served metrics on {address}"
            time.sleep(0.2)


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
    metrics_port = free_port(2)  # the sibling serves its metrics on the next port
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
            address = binding_address if name == "binding" else payment_address
            wait_until_serving(
                pki, address, lambda p=processes[name]: p.poll() is None, lambda log=log: log.read_text()
            )
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


def test_a_statement_pages_through_whichever_of_two_processes_each_page_reaches(two_process_node) -> None:
    """A page token one process issued is taken by its sibling: a client that opens a new
    connection per page (grpcurl does) reaches either process, with no GONGJI_PAGE_TOKEN_KEY set."""
    node = two_process_node
    assert "GONGJI_PAGE_TOKEN_KEY" not in os.environ
    harness = SimpleNamespace(stub=node.payment_stub(), binding=SimpleNamespace(stub=node.binding, clock=None))
    family = PaymentFamily(harness)
    for amount in (1, 2, 3, 4, 5):
        family.credit(family.father, amount)
    _metric_when_served(node.metrics[1], "gongji_database_pool_size_connections")  # the sibling serves
    request = papi.ListStatementRequest(id_number=family.father.id_number, page_size=1)
    for _ in range(3):
        amounts, request.page_token = [], ""
        while True:
            page = node.payment_stub().ListStatement(request, timeout=10)  # a new connection each page
            amounts += [line.amount_fen for line in page.lines]
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
        assert amounts == [5, 4, 3, 2, 1, 100_000]


def test_without_workers_each_of_two_processes_pools_two_connections_the_node_four(two_process_node, backend) -> None:
    """Threads of one process take turns on one GIL, so a node's four use-case threads (and their
    pooled connections) are shared out over its processes rather than given to each."""
    if backend != "postgresql":
        pytest.skip("the SQLite engine's pool follows SQLite's one writer, not --workers")
    node = two_process_node
    pools = [_metric_when_served(address, "gongji_database_pool_size_connections") for address in node.metrics]
    assert pools == [2, 2]


def test_only_the_first_process_serves_the_gauges_read_from_the_database(two_process_node) -> None:
    """A dashboard sums a node's holds over its processes' scrapes: were every process to read
    them from the shared database, each hold would count once per process."""
    node = two_process_node
    first, sibling = node.metrics
    assert _metric_when_served(first, "gongji_database_scrape_success") == 1
    assert _metric_when_served(sibling, "gongji_database_pool_size_connections") > 0  # it serves its own
    with urllib.request.urlopen(f"http://{sibling}/metrics", timeout=10) as answer:
        served = answer.read().decode()
    assert "gongji_database_scrape_success" not in served
    assert "gongji_holds_outstanding_fen" not in served


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
