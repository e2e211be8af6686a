"""Checks on the deployment files: docker-compose.yml and services/Dockerfile.

No Docker engine is needed: the compose file is parsed with PyYAML, and
`docker-compose config -q` (which validates without an engine) runs when the
binary is on PATH. Under CI (env var CI set) a missing binary is a failure.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "services" / "Dockerfile"

GRPC_PORTS = {"binding": 50051, "payment": 50052}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def _as_argv(value: str | list[str]) -> list[str]:
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _published_container_ports(service: dict) -> dict[int, int]:
    """Map container port -> published host port."""
    published = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published[int(entry["target"])] = int(entry.get("published", entry["target"]))
            continue
        spec = str(entry).split("/", 1)[0]
        parts = spec.split(":")
        if len(parts) == 1:
            continue  # container port only: published on a random host port
        published[int(parts[-1])] = int(parts[-2])
    return published


def _depends_on_conditions(service: dict) -> dict[str, str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return {name: "service_started" for name in depends}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in depends.items()}


def test_compose_file_defines_postgres_migrate_binding_and_payment(
    services: dict,
) -> None:
    assert {"postgres", "migrate", "binding", "payment"} <= set(services)


def test_gongji_services_are_built_from_services_dockerfile_with_repo_root_context(
    services: dict,
) -> None:
    for name in ("migrate", "binding", "payment"):
        build = services[name].get("build")
        assert isinstance(build, dict), f"{name} has no build section"
        assert (COMPOSE_FILE.parent / build.get("context", ".")).resolve() == REPO_ROOT
        assert build.get("dockerfile") == "services/Dockerfile"


def test_binding_and_payment_publish_their_grpc_ports(services: dict) -> None:
    for name, port in GRPC_PORTS.items():
        assert _published_container_ports(services[name]).get(port) == port, f"{name} must publish {port}:{port}"


def test_binding_and_payment_serve_on_their_own_port(services: dict) -> None:
    for name, port in GRPC_PORTS.items():
        argv = _as_argv(services[name]["command"])
        assert argv[:2] == ["serve", name]
        assert _option(argv, "--address") == f"0.0.0.0:{port}"


def test_every_grpc_service_has_a_health_check_using_the_grpc_health_protocol(
    services: dict,
) -> None:
    for name, port in GRPC_PORTS.items():
        test = services[name]["healthcheck"]["test"]
        assert isinstance(test, list) and test[0] == "CMD", f"{name}: use the exec form so no shell is needed"
        argv = test[1:]
        assert argv[:2] == ["gongji", "health"]
        assert _option(argv, "--address") == f"127.0.0.1:{port}"


def test_postgres_has_a_pg_isready_health_check(services: dict) -> None:
    test = services["postgres"]["healthcheck"]["test"]
    command = " ".join(_as_argv(test[1:] if isinstance(test, list) else test))
    assert "pg_isready" in command


def test_each_service_gets_its_own_database(services: dict) -> None:
    binding_db = _option(_as_argv(services["binding"]["command"]), "--database")
    payment_db = _option(_as_argv(services["payment"]["command"]), "--database")
    assert binding_db is not None and binding_db.endswith("@postgres:5432/gongji_binding")
    assert payment_db is not None and payment_db.endswith("@postgres:5432/gongji_payment")
    for url in (binding_db, payment_db):
        assert url.startswith("postgresql+psycopg://")


def test_postgres_init_script_creates_both_databases(services: dict) -> None:
    mounts = [str(v) for v in services["postgres"].get("volumes", [])]
    init_mounts = [m for m in mounts if "/docker-entrypoint-initdb.d/" in m]
    assert init_mounts, "postgres must mount an init script creating the databases"
    for mount in init_mounts:
        host_path, _, rest = mount.partition(":")
        assert rest.endswith(":ro"), f"init script must be mounted read-only: {mount}"
        sql = (COMPOSE_FILE.parent / host_path).read_text(encoding="utf-8")
        for database in ("gongji_binding", "gongji_payment"):
            assert re.search(rf"CREATE DATABASE\s+{database}\b", sql, re.IGNORECASE)


def test_payment_points_at_the_binding_service(services: dict) -> None:
    argv = _as_argv(services["payment"]["command"])
    assert _option(argv, "--binding-address") == f"binding:{GRPC_PORTS['binding']}"


def test_migrate_runs_both_migrations_once_postgres_is_healthy(services: dict) -> None:
    migrate = services["migrate"]
    script = " ".join(_as_argv(migrate.get("entrypoint", [])) + _as_argv(migrate["command"]))
    assert "gongji migrate binding" in script
    assert "gongji migrate payment" in script
    assert _depends_on_conditions(migrate) == {"postgres": "service_healthy"}
    assert str(migrate.get("restart", "no")) == "no"


def test_servers_start_only_after_migrations_completed_successfully(
    services: dict,
) -> None:
    for name in GRPC_PORTS:
        conditions = _depends_on_conditions(services[name])
        assert conditions.get("migrate") == "service_completed_successfully", name


def test_payment_waits_until_binding_is_healthy(services: dict) -> None:
    assert _depends_on_conditions(services["payment"]).get("binding") == "service_healthy"


def test_docker_compose_validates_the_compose_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not on PATH (apt-get install docker-compose)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; it is required when CI is set")
        pytest.skip(message)
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_lives_in_services(dockerfile_instructions: list) -> None:
    assert DOCKERFILE.is_file()
    assert not (REPO_ROOT / "Dockerfile").exists(), "the Dockerfile belongs in services/"
    assert dockerfile_instructions[0][0] == "FROM"
    assert dockerfile_instructions[0][1].startswith("python:3.11-slim")


def test_dockerfile_runs_as_a_non_root_user(dockerfile_instructions: list) -> None:
    users = [args for keyword, args in dockerfile_instructions if keyword == "USER"]
    assert users, "the Dockerfile must switch to a non-root USER"
    user = users[-1].split(":", 1)[0]
    assert user not in {"root", "0"}


def test_dockerfile_entrypoint_is_gongji(dockerfile_instructions: list) -> None:
    entrypoints = [args for keyword, args in dockerfile_instructions if keyword == "ENTRYPOINT"]
    assert entrypoints and entrypoints[-1] == '["gongji"]'


def test_dockerfile_installs_without_dev_extras_and_exposes_both_ports(
    dockerfile_instructions: list,
) -> None:
    runs = " ".join(args for keyword, args in dockerfile_instructions if keyword == "RUN")
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", runs)
    assert "[dev]" not in runs
    exposed = {port for keyword, args in dockerfile_instructions if keyword == "EXPOSE" for port in args.split()}
    assert {"50051", "50052"} <= exposed


def test_a_second_payment_node_serves_the_other_provinces_with_its_own_database(services: dict) -> None:
    """Each province's node holds its own accounts in its own database."""
    east, west = _as_argv(services["payment"]["command"]), _as_argv(services["payment-west"]["command"])
    assert (_option(east, "--node"), _option(west, "--node")) == ("east", "west")
    assert _option(west, "--database").endswith("@postgres:5432/gongji_payment_west")
    assert "50062:50052" in [str(p) for p in services["payment-west"]["ports"]]
    assert services["payment-west"]["healthcheck"]["test"][1:5] == ["gongji", "health", "--address", "127.0.0.1:50052"]


def test_the_routing_table_mounted_into_both_nodes_loads_and_gives_every_province_one_node(services: dict) -> None:
    from services.payment.routing import RoutingTable
    from shared.regions import PROVINCES

    routing_path = REPO_ROOT / "services" / "compose" / "routing.json"
    for name, node in (("binding", ""), ("payment", "east"), ("payment-west", "west")):
        assert (
            f"./services/compose/routing.json:{_option(_as_argv(services[name]['command']), '--routing')}:ro"
            in (services[name]["volumes"])
        )
        if not node:
            continue
        table = RoutingTable.load(routing_path, node)
        assert {p for n in table.nodes.values() for p in n.provinces} == PROVINCES
        assert table.owner_of_province("62").address == "payment-west:50052"


def test_migrate_also_migrates_the_second_nodes_database(services: dict) -> None:
    script = " ".join(_as_argv(services["migrate"]["command"]))
    assert "gongji_payment_west" in script


# Mutual TLS --------------------------------------------------------------------------------

IDENTITIES = {"binding": "service-binding", "payment": "service-payment-east", "payment-west": "service-payment-west"}
CERTS = "/etc/gongji/certs"


def test_a_one_shot_certs_step_writes_a_certificate_for_every_service(services: dict) -> None:
    certs = services["certs"]
    argv = _as_argv(certs["command"])
    assert argv[:3] == ["certs", "init", CERTS]
    principals = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--principal"]
    assert {p.removeprefix("spiffe://gongji/").replace("/", "-") for p in principals} >= set(IDENTITIES.values())
    hosts = {argv[i + 1] for i, arg in enumerate(argv) if arg == "--host"}
    assert hosts >= set(IDENTITIES), "every service's certificate must name the host its peers dial"
    assert f"certs:{CERTS}" in certs["volumes"]
    assert str(certs.get("restart", "no")) == "no"


def test_every_service_serves_mutual_tls_with_its_own_certificate_and_never_plaintext(services: dict) -> None:
    for name, stem in IDENTITIES.items():
        argv = _as_argv(services[name]["command"])
        assert "--insecure" not in argv, name
        assert _option(argv, "--tls-cert") == f"{CERTS}/{stem}.pem", name
        assert _option(argv, "--tls-key") == f"{CERTS}/{stem}.key", name
        assert _option(argv, "--tls-ca") == f"{CERTS}/ca.pem", name
        assert f"certs:{CERTS}:ro" in services[name]["volumes"], name
        assert _depends_on_conditions(services[name]).get("certs") == "service_completed_successfully", name
        health = services[name]["healthcheck"]["test"][1:]
        assert _option(health, "--tls-cert") == f"{CERTS}/{stem}.pem", name
        assert _option(health, "--tls-ca") == f"{CERTS}/ca.pem", name


def test_payment_nodes_name_their_wallet_verifier(services: dict) -> None:
    for name in ("payment", "payment-west"):
        assert _option(_as_argv(services[name]["command"]), "--verifier") == "stand-in"


def test_the_image_lets_the_service_user_write_the_certs_volume(dockerfile_instructions: list) -> None:
    runs = " ".join(args for keyword, args in dockerfile_instructions if keyword == "RUN")
    assert f"chown gongji:gongji {CERTS}" in runs


# Prometheus ------------------------------------------------------------------------------

METRICS_SERVICES = ("binding", "payment", "payment-west")


def test_every_gongji_server_serves_metrics_on_a_port_of_its_own_that_is_not_published(services: dict) -> None:
    ports = []
    for name in METRICS_SERVICES:
        address = _option(_as_argv(services[name]["command"]), "--metrics-address")
        assert address is not None and address.startswith("0.0.0.0:"), name
        port = int(address.rpartition(":")[2])
        assert port not in _published_container_ports(services[name]), f"{name}: metrics are plain HTTP"
        ports.append(port)
    assert len(set(ports)) == len(ports)


def test_a_pinned_prometheus_reads_its_config_and_alert_rules_from_services_compose(services: dict) -> None:
    prometheus = services["prometheus"]
    image, _, tag = prometheus["image"].partition(":")
    assert image == "prom/prometheus" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), prometheus["image"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in _as_argv(prometheus["command"])
    for name in ("prometheus.yml", "alerts.yml"):
        mount = f"./services/compose/prometheus/{name}:/etc/prometheus/{name}:ro"
        assert mount in prometheus["volumes"]
        assert (REPO_ROOT / "services" / "compose" / "prometheus" / name).is_file()
    assert set(_depends_on_conditions(prometheus)) >= set(METRICS_SERVICES)


# The national-interface gateway ----------------------------------------------------------------

GATEWAY_PORT = 8443


def test_the_gateway_serves_https_on_its_published_port_with_its_own_certificate(services: dict) -> None:
    gateway = services["gateway"]
    argv = _as_argv(gateway["command"])
    assert argv[:2] == ["serve", "gateway"]
    assert _option(argv, "--address") == f"0.0.0.0:{GATEWAY_PORT}"
    assert _published_container_ports(gateway).get(GATEWAY_PORT) == GATEWAY_PORT
    assert "--insecure" not in argv
    assert _option(argv, "--tls-cert") == f"{CERTS}/service-gateway.pem"
    assert _option(argv, "--tls-key") == f"{CERTS}/service-gateway.key"
    assert _option(argv, "--tls-ca") == f"{CERTS}/ca.pem"
    assert f"certs:{CERTS}:ro" in gateway["volumes"]
    assert gateway["build"]["dockerfile"] == "services/Dockerfile"


def test_the_certs_step_issues_the_gateways_certificate_for_the_host_name_hospitals_dial(services: dict) -> None:
    argv = _as_argv(services["certs"]["command"])
    principals = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--principal"]
    hosts = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--host"]
    assert "spiffe://gongji/service/gateway" in principals
    assert "gateway" in hosts
    assert any(p.startswith("spiffe://gongji/institution/") for p in principals), "a HIS needs a certificate to call"


def test_the_gateway_calls_binding_and_payment_by_their_compose_names_once_they_are_healthy(services: dict) -> None:
    gateway = services["gateway"]
    argv = _as_argv(gateway["command"])
    assert _option(argv, "--binding-address") == f"binding:{GRPC_PORTS['binding']}"
    assert _option(argv, "--payment-address") == f"payment:{GRPC_PORTS['payment']}"
    conditions = _depends_on_conditions(gateway)
    assert conditions.get("binding") == conditions.get("payment") == "service_healthy"
    assert conditions.get("certs") == conditions.get("migrate") == "service_completed_successfully"


def test_the_gateway_has_its_own_database_created_and_migrated(services: dict) -> None:
    url = _option(_as_argv(services["gateway"]["command"]), "--database")
    assert url == "postgresql+psycopg://postgres@postgres:5432/gongji_gateway"
    sql = (REPO_ROOT / "services" / "compose" / "initdb.sql").read_text(encoding="utf-8")
    assert re.search(r"CREATE DATABASE\s+gongji_gateway\b", sql, re.IGNORECASE)
    script = " ".join(_as_argv(services["migrate"]["command"]))
    assert f"gongji migrate gateway --database {url}" in script


def test_the_gateways_health_check_asks_its_https_listener_without_a_shell(services: dict) -> None:
    test = services["gateway"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    program = test[3]
    compile(program, "healthcheck", "exec")  # the folded YAML string is one valid program
    assert f"'127.0.0.1', {GATEWAY_PORT}" in program and f"{CERTS}/ca.pem" in program


def test_the_image_exposes_the_gateways_port(dockerfile_instructions: list) -> None:
    exposed = {port for keyword, args in dockerfile_instructions if keyword == "EXPOSE" for port in args.split()}
    assert str(GATEWAY_PORT) in exposed


def _gongji_command_lines(services: dict) -> list[tuple[str, list[str]]]:
    """(service, arguments after `gongji`) of every gongji command the compose file runs: the
    services' commands, the migrate step's shell script, and the health checks."""
    lines = []
    for name, service in services.items():
        if service.get("image") != "gongji:local":
            continue
        if service.get("entrypoint") == ["/bin/sh", "-ec"]:
            for step in " ".join(_as_argv(service["command"])).split("&&"):
                argv = shlex.split(step)
                assert argv[0] == "gongji", f"{name}: {step}"
                lines.append((name, argv[1:]))
        else:
            lines.append((name, _as_argv(service["command"])))
        test = service.get("healthcheck", {}).get("test", [])
        if test[1:2] == ["gongji"]:
            lines.append((name, [str(v) for v in test[2:]]))
    return lines


def test_every_gongji_command_in_the_compose_file_parses_with_the_real_command_line(services: dict) -> None:
    from services.cli import build_parser

    lines = _gongji_command_lines(services)
    assert {name for name, _ in lines} >= {"certs", "migrate", "binding", "payment", "payment-west", "gateway"}
    for name, argv in lines:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{name}: `gongji {' '.join(argv)}` does not parse (see the usage above)")
