"""Two payment nodes (east, west) in this process whose servers stop and start again on the same
address and database, with the recovery loop running as in production: for faults where a node
is down for a while and comes back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import create_engine, text

from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.hosting import BackgroundServer
from services.common.security.natural_callers import ActingStub
from services.payment.app import PaymentSettings, start_payment_server
from services.payment.routing import RoutingTable
from services.payment.verification import StandInVerifier
from tests.conftest import PaymentHarness, payment_security, two_node_layout


@dataclass
class Restartable:
    east: PaymentHarness
    west: PaymentHarness
    settings: dict[str, PaymentSettings]
    servers: dict[str, BackgroundServer]
    urls: dict[str, str]

    def stop(self, name: str) -> None:
        self.servers[name].stop()

    def start(self, name: str) -> None:
        settings = self.settings[name]
        server = BackgroundServer(lambda s=settings: start_payment_server(s)).start()
        self.servers[name] = server
        getattr(self, name).server = server

    def sql(self, name: str, query: str, **params: Any) -> list[Any]:
        engine = create_engine(self.urls[name])
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(query), params))
        finally:
            engine.dispose()


@contextmanager
def restartable_nodes(
    databases: Any, binding: Any, tmp_path: Any, sweep: float = 0.05, **extra: Any
) -> Iterator[Restartable]:
    ports, routing, urls = two_node_layout(databases, tmp_path)
    pki, roles = binding.pki, binding.roles
    settings, servers, harnesses = {}, {}, {}
    try:
        for name, port in ports.items():
            s = PaymentSettings(
                database_url=urls[name], security=payment_security(pki, name), verifier=StandInVerifier(),
                address=f"127.0.0.1:{port}", binding_address=binding.server.address, clock=binding.clock,
                routing=RoutingTable.from_dict(routing, name), sweep_interval=sweep, ledger_audit_interval=0,
            )  # fmt: skip
            s = replace(s, **extra)
            settings[name] = s
            server = BackgroundServer(lambda s=s: start_payment_server(s)).start()
            servers[name] = server
            stub = ActingStub(payment_grpc.PaymentServiceStub, server.address, pki, roles)
            harnesses[name] = PaymentHarness(server, stub, binding, urls[name], name)
        yield Restartable(harnesses["east"], harnesses["west"], settings, servers, urls)
    finally:
        for harness in harnesses.values():
            harness.stub.close()
        for server in servers.values():
            with suppress(Exception):  # stopped by the test already
                server.stop()
