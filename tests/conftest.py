"""Fixtures: every database test runs on SQLite and on PostgreSQL, against real
in-process grpc.aio servers reached over real channels.

GONGJI_TEST_DATABASES picks the backends (default "sqlite,postgresql").
GONGJI_TEST_POSTGRES_URL names an administrative connection (default the local
server's `test` database); each run creates its own databases and drops them.
Without a reachable PostgreSQL the Postgres cases skip, unless CI is set.

Every server runs behind mutual TLS with the shipped access policy; the harnesses'
stubs call as each call's natural principal (tests/acting.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.benchmark.processes import free_port as _free_port
from services.binding.adapters import orm as binding_orm
from services.binding.app import BindingSettings, start_binding_server
from services.common.clock import ManualClock
from services.common.database import migrate
from services.common.hosting import BackgroundServer
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import ActingStub, Roles
from services.common.security.scopes import NodeDirectory
from services.common.server import ServerSecurity
from services.gateway.adapters import orm as gateway_orm
from services.payment.adapters import orm as payment_orm
from services.payment.app import PaymentSettings, start_payment_server
from services.payment.verification import StandInVerifier
from shared.principals import BINDING_SERVICE, payment_node
from shared.regions import PROVINCES

POSTGRES_ADMIN_URL = os.environ.get("GONGJI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = [b.strip() for b in os.environ.get("GONGJI_TEST_DATABASES", "sqlite,postgresql").split(",") if b.strip()]
METADATA = {"binding": binding_orm.metadata, "payment": payment_orm.metadata, "gateway": gateway_orm.metadata}
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


class PostgresCluster:
    """Creates one database per service for this test run and empties it between tests."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run_id = uuid.uuid4().hex[:8]
        self.created: dict[str, str] = {}
        self.problem: str | None = None
        try:
            engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as error:
            self.problem = f"PostgreSQL at {admin_url} is not reachable: {error.__class__.__name__}: {error}"

    def _admin(self) -> object:
        return create_engine(self.admin_url, isolation_level="AUTOCOMMIT")

    def database_for(self, service: str, schema: str | None = None) -> str:
        if service not in self.created:
            name = f"gongji_test_{self.run_id}_{service}"
            engine = self._admin()
            with engine.connect() as connection:  # type: ignore[attr-defined]
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            engine.dispose()  # type: ignore[attr-defined]
            url = make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)
            migrate(schema or service, url)
            self.created[service] = url
        return self.created[service]

    def empty(self, service: str, schema: str | None = None) -> None:
        url = self.created[service]
        engine = create_engine(url)
        tables = ", ".join(f'"{t.name}"' for t in METADATA[schema or service].sorted_tables)
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()

    def drop_all(self) -> None:
        engine = self._admin()
        with engine.connect() as connection:  # type: ignore[attr-defined]
            for url in self.created.values():
                name = make_url(url).database
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(POSTGRES_ADMIN_URL)
    yield cluster
    if cluster.problem is None:
        cluster.drop_all()


def require_postgres(cluster: PostgresCluster) -> None:
    if cluster.problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI needs PostgreSQL: {cluster.problem}")
    pytest.skip(f"PostgreSQL tests skipped: {cluster.problem} (set CI to make this a failure)")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Databases:
    backend: str
    tmp_path: object
    cluster: PostgresCluster

    def url(self, service: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp_path}/{service}.db"
        require_postgres(self.cluster)
        url = self.cluster.database_for(service)
        self.cluster.empty(service)
        return url

    def cluster_url(self, name: str) -> str:
        """A further emptied PostgreSQL database, migrated as the payment service (a second node)."""
        url = self.cluster.database_for(name, schema="payment")
        self.cluster.empty(name, schema="payment")
        return url


@pytest.fixture
def databases(backend: str, tmp_path: object, postgres_cluster: PostgresCluster) -> Databases:
    return Databases(backend, tmp_path, postgres_cluster)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevelopmentPKI:
    """The run's certificate authority; certificates are issued as tests ask for them."""
    return DevelopmentPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def roles() -> Roles:
    return Roles()


def payment_security(pki: DevelopmentPKI, node: str = "local") -> ServerSecurity:
    return ServerSecurity(pki.transport(payment_node(node)))


@dataclass
class BindingHarness:
    server: BackgroundServer
    stub: ActingStub
    clock: ManualClock
    database_url: str
    pki: DevelopmentPKI
    roles: Roles

    def fresh_stub(self) -> ActingStub:
        """A stub with channels of its own (for racing callers)."""
        return ActingStub(binding_grpc.BindingServiceStub, self.server.address, self.pki, self.roles)


@contextmanager
def running_binding(
    databases: Databases, clock: ManualClock, pki: DevelopmentPKI, roles: Roles, **settings: Any
) -> Iterator[BindingHarness]:
    """The test binding service, with `settings` added to or replacing its defaults."""
    url = databases.url("binding")
    defaults: dict[str, Any] = {
        "security": ServerSecurity(pki.transport(BINDING_SERVICE), nodes=KNOWN_NODES),
        "address": "127.0.0.1:0",
        "clock": clock,
        "policy_cache_seconds": 0,
    }
    complete = BindingSettings(database_url=url, **{**defaults, **settings})
    with BackgroundServer(lambda: start_binding_server(complete)) as server:
        stub = ActingStub(binding_grpc.BindingServiceStub, server.address, pki, roles)
        try:
            yield BindingHarness(server, stub, clock, url, pki, roles)
        finally:
            stub.close()


@pytest.fixture
def binding_service(
    databases: Databases, clock: ManualClock, pki: DevelopmentPKI, roles: Roles
) -> Iterator[BindingHarness]:
    with running_binding(databases, clock, pki, roles) as harness:
        yield harness


@dataclass
class PaymentHarness:
    server: BackgroundServer
    stub: ActingStub
    binding: BindingHarness
    database_url: str = ""
    node: str = "local"

    def fresh_stub(self) -> ActingStub:
        """A stub with channels of its own (for racing callers)."""
        return ActingStub(payment_grpc.PaymentServiceStub, self.server.address, self.binding.pki, self.binding.roles)

    def node_stub(self, caller: str) -> ActingStub:
        """This node's node-to-node service, called by payment node `caller`."""
        from gongji.node.v1 import node_service_pb2_grpc as node_grpc

        return ActingStub(node_grpc.PaymentNodeServiceStub, self.server.address, self.binding.pki, Roles(caller))


@contextmanager
def running_payment(
    databases: Databases, binding: BindingHarness, binding_address: str | None = None, **settings: Any
) -> Iterator[PaymentHarness]:
    """The test payment node on `binding` (reached at `binding_address` when given), with
    `settings` added to or replacing its defaults."""
    defaults: dict[str, Any] = {
        "security": payment_security(binding.pki),
        "verifier": StandInVerifier(),
        "address": "127.0.0.1:0",
        "binding_address": binding_address or binding.server.address,
        "clock": binding.clock,
    }
    complete = PaymentSettings(database_url=databases.url("payment"), **{**defaults, **settings})
    with BackgroundServer(lambda: start_payment_server(complete)) as server:
        stub = ActingStub(payment_grpc.PaymentServiceStub, server.address, binding.pki, binding.roles)
        try:
            yield PaymentHarness(server, stub, binding, complete.database_url)
        finally:
            stub.close()


@pytest.fixture
def payment_service(databases: Databases, binding_service: BindingHarness) -> Iterator[PaymentHarness]:
    with running_payment(databases, binding_service) as harness:
        yield harness


@dataclass
class TwoNodes:
    """Payment nodes "east" (Jiangsu 32 and the rest of the east) and "west" (Gansu 62, Shandong 37),
    each with its own database, sharing one binding service."""

    east: PaymentHarness
    west: PaymentHarness
    routing: dict


EAST_PROVINCES = ["11", "12", "31", "32", "33", "34", "35", "36", "44"]
WEST_PROVINCES = ["37", "41", "42", "50", "51", "61", "62", "63", "64", "65"]
# The payment nodes the test binding service accepts: the single node and the two of two_nodes.
KNOWN_NODES = NodeDirectory({"local": PROVINCES, "east": frozenset(EAST_PROVINCES), "west": frozenset(WEST_PROVINCES)})


def two_node_layout(databases: Databases, tmp_path: Path) -> tuple[dict[str, int], dict[str, Any], dict[str, str]]:
    """Ports, routing file and database URLs of payment nodes east and west."""
    ports = {"east": _free_port(), "west": _free_port()}
    routing = {
        "nodes": {
            "east": {"address": f"127.0.0.1:{ports['east']}", "provinces": EAST_PROVINCES},
            "west": {"address": f"127.0.0.1:{ports['west']}", "provinces": WEST_PROVINCES},
        }
    }
    if databases.backend == "sqlite":
        urls = {name: f"sqlite:///{tmp_path}/payment-{name}.db" for name in ports}
    else:
        require_postgres(databases.cluster)
        urls = {"east": databases.url("payment"), "west": databases.cluster_url("payment_west")}
    return ports, routing, urls


@contextmanager
def running_two_nodes(
    databases: Databases,
    binding: BindingHarness,
    tmp_path: Path,
    settings_of: Callable[[str], dict[str, Any]] = lambda name: {},
) -> Iterator[TwoNodes]:
    """Payment nodes east and west on `binding`, each with `settings_of(name)` added to its settings."""
    from services.payment.routing import RoutingTable

    ports, routing, urls = two_node_layout(databases, tmp_path)
    harnesses = {}
    servers = []
    pki, roles = binding.pki, binding.roles
    try:
        for name, port in ports.items():
            settings = PaymentSettings(
                database_url=urls[name],
                security=payment_security(pki, name),
                verifier=StandInVerifier(),
                address=f"127.0.0.1:{port}",
                binding_address=binding.server.address,
                clock=binding.clock,
                routing=RoutingTable.from_dict(routing, name),
                sweep_interval=0,
            )
            settings = replace(settings, **settings_of(name))
            server = BackgroundServer(lambda s=settings: start_payment_server(s)).start()
            servers.append(server)
            stub = ActingStub(payment_grpc.PaymentServiceStub, server.address, pki, roles)
            harnesses[name] = PaymentHarness(server, stub, binding, urls[name], name)
        yield TwoNodes(harnesses["east"], harnesses["west"], routing)
    finally:
        for harness in harnesses.values():
            harness.stub.close()
        for server in servers:
            server.stop()


@pytest.fixture
def two_nodes(
    databases: Databases, binding_service: BindingHarness, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[TwoNodes]:
    """With @pytest.mark.sweeping(seconds) the nodes sweep and recover on their own, as in production."""
    sweeping = request.node.get_closest_marker("sweeping")
    sweep = {"sweep_interval": sweeping.args[0]} if sweeping else {}
    with running_two_nodes(databases, binding_service, tmp_path, lambda name: sweep) as nodes:
        yield nodes
