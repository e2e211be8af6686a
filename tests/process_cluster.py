"""Real processes for fault tests: a binding service and two payment nodes, each
`gongji serve` in its own process with its own database and its own certificate,
killed and restarted as the tests say. Node "east" keeps Jiangsu (32), node "west"
keeps Gansu (62)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import ActingStub, Roles
from shared.principals import BINDING_SERVICE, Principal, operator, payment_node
from tests.conftest import EAST_PROVINCES, WEST_PROVINCES, _free_port

NODES = ("east", "west")


def wait_until_serving(
    pki: DevelopmentPKI, address: str, alive: Callable[[], bool], log: Callable[[], str], seconds: float = 30
) -> None:
    """Returns once the server at `address` answers its health check SERVING; fails with the tail
    of its log if its process exits or it never serves."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"{address} exited: {log()[-3000:]}")
        try:
            with pki.channel(address, operator("000000", "ops")) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{address} never served: {log()[-3000:]}")


@dataclass
class Process:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    handle: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.handle = subprocess.Popen(self.command, env=self.env, stdout=sink, stderr=subprocess.STDOUT)

    @property
    def alive(self) -> bool:
        return self.handle is not None and self.handle.poll() is None


@dataclass
class ProcessCluster:
    tmp_path: Path
    binding_url: str
    node_urls: dict[str, str]
    # Where each node reaches the others; a test may put a proxy in between.
    peer_address_override: dict[str, str] = field(default_factory=dict)
    # Seconds the payment nodes' clocks run ahead of this machine's (GONGJI_CLOCK_OFFSET_SECONDS).
    clock_offset_seconds: float = 0.0
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    stubs: list[ActingStub] = field(default_factory=list)
    roles: Roles = field(default_factory=Roles)

    def __post_init__(self) -> None:
        self.ports = {name: _free_port() for name in ("binding", *NODES)}
        self.pki = DevelopmentPKI(self.tmp_path / "pki")

    @staticmethod
    def identity(name: str) -> Principal:
        return BINDING_SERVICE if name == "binding" else payment_node(name)

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def routing_file(self, node: str) -> Path:
        nodes = {
            name: {
                "address": self.peer_address_override.get(name, self.address(name))
                if name != node
                else self.address(name),
                "provinces": EAST_PROVINCES if name == "east" else WEST_PROVINCES,
            }
            for name in NODES
        }
        path = self.tmp_path / f"routing-{node}.json"
        path.write_text(json.dumps({"nodes": nodes}))
        return path

    def _serve(self, name: str, failpoint: str = "") -> Process:
        base = [sys.executable, "-m", "services.cli", "serve"]
        tls = self.pki.args(self.identity(name))
        if name == "binding":
            command = [*base, "binding", "--address", self.address(name), "--database", self.binding_url, *tls]
        else:
            command = [
                *base, "payment", "--address", self.address(name), "--database", self.node_urls[name],
                "--binding-address", self.address("binding"), "--routing", str(self.routing_file(name)),
                "--node", name, "--sweep-interval", "0.3", "--prepare-lease", "1", "--grace", "1",
                "--verifier", "stand-in", *tls,
            ]  # fmt: skip
        env = {**os.environ, "GONGJI_FAILPOINT": failpoint}
        if name != "binding" and self.clock_offset_seconds:
            env["GONGJI_CLOCK_OFFSET_SECONDS"] = str(self.clock_offset_seconds)
        return Process(name, command, env, self.tmp_path / f"{name}.log")

    def start(self, name: str, failpoint: str = "") -> None:
        process = self._serve(name, failpoint)
        self.processes[name] = process
        process.start()
        self.wait_serving(name)

    def start_all(self, failpoints: dict[str, str] | None = None) -> None:
        self.start("binding")
        for name in NODES:
            self.start(name, (failpoints or {}).get(name, ""))

    def wait_serving(self, name: str, seconds: float = 30) -> None:
        process = self.processes[name]
        wait_until_serving(self.pki, self.address(name), lambda: process.alive, process.log.read_text, seconds)

    def wait_dead(self, name: str, seconds: float = 20) -> int:
        process = self.processes[name]
        assert process.handle is not None
        return process.handle.wait(timeout=seconds)

    def kill(self, name: str) -> None:
        process = self.processes[name]
        if process.alive and process.handle is not None:
            process.handle.send_signal(signal.SIGKILL)
            process.handle.wait(timeout=10)

    def restart(self, name: str) -> None:
        self.kill(name)
        self.start(name)

    def _stub(self, stub_class: type, name: str) -> ActingStub:
        stub = ActingStub(stub_class, self.address(name), self.pki, self.roles)
        self.stubs.append(stub)
        return stub

    def binding(self) -> ActingStub:
        return self._stub(binding_grpc.BindingServiceStub, "binding")

    def payment(self, name: str) -> ActingStub:
        """The node's PaymentService, each call made as its natural caller, over channels of its own."""
        return self._stub(payment_grpc.PaymentServiceStub, name)

    def stop_all(self) -> None:
        for stub in self.stubs:
            stub.close()
        for process in self.processes.values():
            if process.alive and process.handle is not None:
                process.handle.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            if process.handle is not None:
                try:
                    process.handle.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.handle.kill()
