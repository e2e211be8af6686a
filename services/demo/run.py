"""`gongji demo` itself: starts a binding service, two payment nodes and the national-interface
gateway in one process on temporary SQLite databases, then walks the chapters in order over
real gRPC with mutual TLS (and, in the HIS chapter, HTTPS with a client certificate).

Every call is made as the principal a real deployment would make it as (the national
operator syncs the registry, WeChat carries the family's binding, the hospital settles its
bills), each with a certificate from a development CA made for the run, and each step
shows who made it. ID numbers are printed masked."""

from __future__ import annotations

import logging
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.binding.app import BindingSettings, start_binding_server
from services.common.clock import ManualClock
from services.common.hosting import BackgroundServer
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import ActingStub, Roles
from services.common.server import ServerSecurity
from services.demo.bindings import walk_bindings
from services.demo.cross_province import walk_cross_province
from services.demo.endings import walk_endings
from services.demo.his_view import walk_his_view
from services.demo.payments import walk_payments
from services.demo.report import Report
from services.demo.trust import walk_trust_boundaries
from services.gateway.app import GatewaySettings, start_gateway
from services.payment.app import PaymentSettings, start_payment_server
from services.payment.routing import Node, RoutingTable
from services.payment.verification import StandInVerifier
from shared.ledger import CHINA_STANDARD_TIME
from shared.principals import BINDING_SERVICE, GATEWAY, payment_node
from shared.regions import PROVINCES


def _demo_day() -> datetime:
    """10:00 China Standard Time today: the demo's clock, so wallet transfers (closed at night) work."""
    today = datetime.now(UTC).astimezone(CHINA_STANDARD_TIME)
    return today.replace(hour=10, minute=0, second=0, microsecond=0)


def run_demo(verbose: bool = False) -> int:
    if not verbose:
        for name in ("gongji.rpc", "gongji.gateway", "alembic", "services"):
            logging.getLogger(name).setLevel(logging.WARNING)
    clock = ManualClock(_demo_day())
    with tempfile.TemporaryDirectory(prefix="gongji-demo-") as scratch:
        pki = DevelopmentPKI(Path(scratch) / "pki", "gongji demo CA")
        print(f"gongji demo: a binding service, two payment nodes and the gateway on SQLite in {scratch}")
        print(f"every port serves mutual TLS; certificates from a development CA in {pki.directory}")
        routing = two_node_routing()
        binding_settings = BindingSettings(
            database_url=f"sqlite:///{scratch}/binding.db",
            security=ServerSecurity(pki.transport(BINDING_SERVICE), nodes=routing.directory()),
            address="127.0.0.1:0",
            clock=clock,
        )
        with BackgroundServer(lambda: start_binding_server(binding_settings)) as binding_server:
            nodes = {}
            for name in ("east", "west"):
                settings = PaymentSettings(
                    database_url=f"sqlite:///{scratch}/payment-{name}.db",
                    security=ServerSecurity(pki.transport(payment_node(name))),
                    verifier=StandInVerifier(),
                    address=routing.nodes[name].address,
                    binding_address=binding_server.address,
                    clock=clock,
                    routing=RoutingTable(routing.nodes, name),
                )
                nodes[name] = BackgroundServer(lambda s=settings: start_payment_server(s)).start()
            # The national interface in front of binding and east, as its own principal; HIS
            # systems authenticate to it by client certificate.
            gateway_settings = GatewaySettings(
                database_url=f"sqlite:///{scratch}/gateway.db", transport=pki.transport(GATEWAY),
                binding_address=binding_server.address, payment_address=nodes["east"].address,
                address="127.0.0.1:0", clock=clock,
            )  # fmt: skip
            nodes["gateway"] = BackgroundServer(lambda: start_gateway(gateway_settings)).start()  # type: ignore[arg-type,return-value]
            roles = Roles(node_caller="east")
            stubs = [
                ActingStub(binding_grpc.BindingServiceStub, binding_server.address, pki, roles),
                ActingStub(payment_grpc.PaymentServiceStub, nodes["east"].address, pki, roles),
                ActingStub(payment_grpc.PaymentServiceStub, nodes["west"].address, pki, roles),
            ]
            try:
                print(
                    f"binding service on {binding_server.address}; payment node east (Jiangsu and others) on "
                    f"{nodes['east'].address}, west (Gansu and others) on {nodes['west'].address}; "
                    f"the national-interface gateway on https://{nodes['gateway'].address}"
                )
                binding, east, west = stubs
                report = Report(roles)
                persons, bindings = walk_bindings(binding, report)  # type: ignore[arg-type]
                walk_payments(binding, east, report, persons, clock)  # type: ignore[arg-type]
                walk_cross_province(binding, east, west, report, persons, clock)  # type: ignore[arg-type]
                walk_trust_boundaries(pki, east, report, persons, clock)
                walk_his_view(pki, nodes["gateway"].port, east, report, persons, clock)  # type: ignore[arg-type]
                walk_endings(binding, report, persons, bindings)  # type: ignore[arg-type]
            finally:
                for stub in stubs:
                    stub.close()
                for server in reversed(nodes.values()):  # the gateway first: it calls the others
                    server.stop()
    print(
        "\ndemo finished: every step above went over gRPC with mutual TLS to the running services "
        "(the HIS's over HTTPS with its client certificate to the gateway, and gRPC behind it)."
    )
    return 0


def two_node_routing() -> RoutingTable:
    """Two payment nodes on free local ports: west keeps Gansu and its neighbours, east the rest."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    west = frozenset({"37", "41", "42", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"})
    return RoutingTable(
        {
            "east": Node("east", f"127.0.0.1:{ports[0]}", PROVINCES - west),
            "west": Node("west", f"127.0.0.1:{ports[1]}", west),
        },
        "east",
    )
