"""Setting up the trust boundaries: `gongji certs init`, what `gongji serve` refuses to
start with, plaintext only on loopback, and an access policy that is checked as data."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2 as papi
from services.binding.app import BindingSettings, start_binding_server
from services.common import reflection as reflection_v1
from services.common.hosting import BackgroundServer
from services.common.security.access_policy import AccessPolicy, AccessPolicyError
from services.common.security.policy_table import section
from services.common.security.transport import (
    FORWARDED_CLIENT_CERT,
    Transport,
    forwarded_client_cert,
    is_loopback,
    spiffe_id_of_forwarded,
)
from services.common.server import ServerSecurity
from shared.principals import (
    BINDING_SERVICE,
    GATEWAY,
    NotAPrincipal,
    PrincipalKind,
    institution,
    operator,
    parse_spiffe_id,
    payment_node,
)
from tests.helpers import refusal_of

GONGJI = [sys.executable, "-m", "services.cli"]
README = Path(__file__).resolve().parent.parent / "README.md"


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GONGJI, *args], capture_output=True, text=True, timeout=timeout)


# Principals ------------------------------------------------------------------------------


# One ID of every kind, and of each operator level and channel spelling.
SPIFFE_IDS = [
    ("spiffe://gongji/institution/H37010001", PrincipalKind.INSTITUTION),
    ("spiffe://gongji/channel/WECHAT", PrincipalKind.CHANNEL),
    ("spiffe://gongji/channel/PROVINCIAL_WEB", PrincipalKind.CHANNEL),
    ("spiffe://gongji/operator/000000/op-1", PrincipalKind.OPERATOR),
    ("spiffe://gongji/operator/320000/op-1", PrincipalKind.OPERATOR),
    ("spiffe://gongji/service/binding", PrincipalKind.BINDING_SERVICE),
    ("spiffe://gongji/service/payment/east", PrincipalKind.PAYMENT_NODE),
    ("spiffe://gongji/service/gateway", PrincipalKind.GATEWAY),
]


@pytest.mark.parametrize(("uri", "kind"), SPIFFE_IDS)
def test_every_kind_of_spiffe_id_names_its_principal_and_back(uri, kind):
    principal = parse_spiffe_id(uri)
    assert principal.kind is kind
    assert parse_spiffe_id(principal.spiffe_id) == principal


def test_the_table_above_names_every_kind_of_principal():
    assert {kind for _, kind in SPIFFE_IDS} == set(PrincipalKind)


def test_the_gateway_is_one_principal_named_service_gateway():
    assert parse_spiffe_id("spiffe://gongji/service/gateway") is GATEWAY
    assert (GATEWAY.path, GATEWAY.file_stem) == ("service/gateway", "service-gateway")
    assert not GATEWAY.covers("320100")


@pytest.mark.parametrize(
    "uri",
    [
        "spiffe://other/institution/H1",
        "spiffe://gongji/institution/",
        "spiffe://gongji/institution/H1/extra",
        "spiffe://gongji/channel/TELEGRAM",
        "spiffe://gongji/channel/WEB",  # the provincial web site's ID says PROVINCIAL_WEB, and only that
        "spiffe://gongji/operator/990000/op",
        "spiffe://gongji/operator/32010/op",
        "spiffe://gongji/service/gateway-x",
        "spiffe://gongji/service/gateway/east",
        "https://gongji/institution/H1",
    ],
)
def test_anything_else_names_no_principal(uri):
    with pytest.raises(NotAPrincipal):
        parse_spiffe_id(uri)


def test_an_operator_acts_in_its_pooling_region_its_province_or_everywhere():
    assert operator("320100", "a").covers("320100") and not operator("320100", "a").covers("320200")
    assert operator("320000", "a").covers("320200") and not operator("320000", "a").covers("620100")
    assert operator("000000", "a").covers("620100")
    assert not institution("H1").covers("320100")


# gongji certs init --------------------------------------------------------------------------


def test_certs_init_writes_a_ca_and_a_certificate_and_key_per_principal(tmp_path):
    result = run(
        "certs", "init", str(tmp_path), "--principal", "spiffe://gongji/institution/H37010001",
        "--principal", "spiffe://gongji/service/payment/east", "--host", "payment-east",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("ca.pem", "ca.key", "institution-H37010001.pem", "institution-H37010001.key",
                 "service-payment-east.pem", "service-payment-east.key"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    assert stat.S_IMODE(os.stat(tmp_path / "service-payment-east.key").st_mode) == 0o600
    service = x509.load_pem_x509_certificate((tmp_path / "service-payment-east.pem").read_bytes())
    names = service.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://gongji/service/payment/east"]
    assert set(names.get_values_for_type(x509.DNSName)) == {"localhost", "payment-east"}
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    hospital = x509.load_pem_x509_certificate((tmp_path / "institution-H37010001.pem").read_bytes())
    assert (
        hospital.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        == []
    )
    ca = (tmp_path / "ca.pem").read_bytes()
    again = run("certs", "init", str(tmp_path), "--principal", "spiffe://gongji/institution/H37010001")
    assert again.returncode == 0 and "kept" in again.stdout
    assert (tmp_path / "ca.pem").read_bytes() == ca


def test_certs_init_never_replaces_a_ca_certificate_brought_without_its_key(tmp_path):
    (tmp_path / "ca.pem").write_bytes(b"the province's CA certificate")
    result = run("certs", "init", str(tmp_path), "--principal", "spiffe://gongji/service/binding")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path}/ca.pem exists without {tmp_path}/ca.key" in result.stderr
    assert (tmp_path / "ca.pem").read_bytes() == b"the province's CA certificate"
    assert not (tmp_path / "ca.key").exists() and not (tmp_path / "service-binding.pem").exists()


def test_certs_init_into_a_directory_it_cannot_write_says_so_in_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    result = run("certs", "init", str(tmp_path / "a-file" / "certs"), "--principal", "spiffe://gongji/service/binding")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "gongji certs init: cannot write" in result.stderr


def test_the_gateway_gets_a_certificate_it_can_also_serve_https_with(tmp_path):
    from services.common.security.development_pki import DevelopmentPKI

    files = DevelopmentPKI(tmp_path).files(GATEWAY)
    assert files.cert.name == "service-gateway.pem"
    certificate = x509.load_pem_x509_certificate(files.cert.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://gongji/service/gateway"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH, x509.oid.ExtendedKeyUsageOID.SERVER_AUTH}


def test_certs_init_refuses_an_id_that_names_no_principal(tmp_path):
    result = run("certs", "init", str(tmp_path), "--principal", "spiffe://gongji/hospital/H1")
    assert result.returncode == 2
    assert "names no institution" in result.stderr
    assert "--principal 'spiffe://gongji/hospital/H1'" in result.stderr  # which of the values it was


# What gongji serve refuses to start with ------------------------------------------------------


def test_serve_without_certificates_is_refused_with_what_to_give(tmp_path):
    result = run("serve", "binding", "--address", "127.0.0.1:0", "--database", f"sqlite:///{tmp_path}/b.db")
    assert result.returncode == 2
    assert "--tls-cert" in result.stderr and "--tls-ca" in result.stderr and "--insecure" in result.stderr


def test_plaintext_is_refused_on_any_address_but_loopback(tmp_path):
    result = run("serve", "binding", "--insecure", "--address", "0.0.0.0:0", "--database", f"sqlite:///{tmp_path}/b.db")
    assert result.returncode == 2
    assert "only on a loopback address" in result.stderr
    assert is_loopback("127.0.0.1:50051") and is_loopback("[::1]:50051") and is_loopback("localhost:1")
    assert not is_loopback("0.0.0.0:50051") and not is_loopback("10.0.0.5:50051") and not is_loopback("binding:1")


def test_a_service_refuses_a_certificate_of_another_principal(tmp_path, pki):
    result = run(
        "serve", "binding", "--address", "127.0.0.1:0", "--database", f"sqlite:///{tmp_path}/b.db",
        *pki.args(payment_node("east")),
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        "spiffe://gongji/service/payment/east" in result.stderr and "spiffe://gongji/service/binding" in result.stderr
    )


def _expired_binding_certificate(pki, directory: Path) -> tuple[Path, Path]:
    """A certificate of the binding service that the run's CA signed and that expired yesterday."""
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    authority = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    signer = serialization.load_pem_private_key((pki.directory / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "binding")]))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now - timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(BINDING_SERVICE.spiffe_id)]), False)
        .sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert, key_file = directory / "expired.pem", directory / "expired.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key_file


@pytest.mark.parametrize("mistake", ["expired", "key of another certificate", "CA of another authority"])
def test_serve_and_health_refuse_tls_files_no_peer_would_accept_with_one_line_saying_what_to_fix(
    mistake, tmp_path, pki
):
    own = pki.files(BINDING_SERVICE)
    cert, key, ca = own.cert, own.key, own.ca
    if mistake == "expired":
        cert, key = _expired_binding_certificate(pki, tmp_path)
        said = "the certificate expired on"
    elif mistake == "key of another certificate":
        key = pki.files(operator("000000", "ops")).key
        said = "the key file holds the key of another certificate"
    else:
        from services.common.security.development_pki import DevelopmentPKI

        ca = DevelopmentPKI(tmp_path / "other", "another CA").ca_file
        said = "no CA of the CA file signed the certificate"
    files = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca)]
    for result in (
        run("serve", "binding", "--address", "127.0.0.1:0", "--database", f"sqlite:///{tmp_path}/b.db", *files),
        run("health", "--address", "127.0.0.1:1", "--timeout", "1", *files),
    ):
        assert result.returncode == 2
        assert said in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "No such file or directory"),
        ('{"nodes": ', "not JSON"),
        ('{"nodes": []}', '"provinces": ["32", ...]'),
        ('{"nodes": {"east": {"address": "10.0.0.5:50052"}}}', "node 'east' needs an \"address\" and a list of"),
        ('{"nodes": {"east": {"address": "a:1", "provinces": ["32"]}, "west": {"address": "b:1", "provinces": '
         '["32"]}}}', "province 32 is owned by both east and west"),
    ],
)  # fmt: skip
def test_a_routing_file_that_cannot_serve_stops_both_services_with_one_line_naming_it(content, said, tmp_path, pki):
    routing = tmp_path / "routing.json"
    if content is not None:
        routing.write_text(content)
    database = ["--address", "127.0.0.1:0", "--database", f"sqlite:///{tmp_path}/s.db", "--routing", str(routing)]
    for result in (
        run("serve", "binding", *database, *pki.args(BINDING_SERVICE)),
        run("serve", "payment", *database, "--node", "east", "--verifier", "stand-in", *pki.args(payment_node("east"))),
    ):
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert f"routing file {routing}: " in result.stderr and said in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--max-amount-fen", "0", "is not at least 1"),
        ("--calls-per-principal", "0", "is not at least 1"),
        ("--readiness-interval", "0", "is not more than 0"),
        ("--grace", "-5", "is not at least 0"),
        ("--sweep-interval", "nan", "is not at least 0"),
        ("--max-waiting-work", "1e3", "is not a whole number"),
    ],
)
def test_a_limit_or_interval_that_would_refuse_everything_or_never_pause_stops_the_start(flag, value, said, tmp_path):
    result = run("serve", "payment", "--address", "127.0.0.1:0", "--database", f"sqlite:///{tmp_path}/p.db",
                 "--verifier", "stand-in", "--insecure", flag, value)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"argument {flag}: {value} {said}" in result.stderr or f"argument {flag}: '{value}' {said}" in result.stderr


def _serve_args(service: str, tmp_path: Path, pki) -> list[str]:
    """A `gongji serve SERVICE` command line that starts, with its own certificate."""
    args = ["serve", service, "--database", f"sqlite:///{tmp_path}/{service}.db"]
    if service == "payment":
        return [*args, "--verifier", "stand-in", "--binding-address", "127.0.0.1:1", *pki.args(payment_node("local"))]
    if service == "gateway":
        return [*args, "--binding-address", "127.0.0.1:1", "--payment-address", "127.0.0.1:2", *pki.args(GATEWAY)]
    return [*args, *pki.args(BINDING_SERVICE)]


@pytest.mark.parametrize("service", ["binding", "payment", "gateway"])
@pytest.mark.parametrize(
    ("flags", "said"),
    [
        # gRPC took a port above 65535 modulo 65536: 127.0.0.1:70000 served on 4464.
        (["--address", "127.0.0.1:70000"], "--address '127.0.0.1:70000' is not HOST:PORT with a port from 0 to 65535"),
        (["--address", "localhost"], "--address 'localhost' is not HOST:PORT"),
        (["--address", "127.0.0.1:0", "--metrics-address", "127.0.0.1:99999"], "--metrics-address '127.0.0.1:99999'"),
    ],
)  # fmt: skip
def test_a_listen_address_with_no_port_or_one_above_65535_stops_the_start_with_one_line(
    service, flags, said, tmp_path, pki
):
    result = run(*_serve_args(service, tmp_path, pki), *flags)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"gongji serve {service}: {said}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("service", "flags", "environment", "said"),
    [
        ("payment", ["--binding-address", "binding"], {}, "--binding-address 'binding' is not HOST:PORT"),
        ("payment", [], {"GONGJI_BINDING_ADDRESS": "binding:0"}, "GONGJI_BINDING_ADDRESS 'binding:0' is not HOST:PORT"),
        ("gateway", ["--payment-address", "payment"], {}, "--payment-address 'payment' is not HOST:PORT"),
    ],
)  # fmt: skip
def test_an_address_to_call_without_a_port_stops_the_start_instead_of_dialling_443(
    service, flags, environment, said, tmp_path, pki
):
    args = _serve_args(service, tmp_path, pki)
    if "--binding-address" in flags or environment:  # this test's own, not the default one
        where = args.index("--binding-address")
        del args[where : where + 2]
    if "--payment-address" in flags:
        where = args.index("--payment-address")
        del args[where : where + 2]
    result = subprocess.run(
        [*GONGJI, *args, "--address", "127.0.0.1:0", *flags],
        capture_output=True, text=True, timeout=60, env={**os.environ, **environment},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and said in result.stderr
    assert "would dial 443" in result.stderr


def test_gongji_health_refuses_an_address_whose_port_is_above_65535_instead_of_asking_another_port(pki):
    result = run("health", "--address", "127.0.0.1:99999", "--timeout", "1", *pki.args(operator("000000", "ops")))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "gongji health: --address '127.0.0.1:99999' is not HOST:PORT" in result.stderr
    assert "34463" not in result.stderr  # gRPC dialled 99999 modulo 65536


def test_a_routing_file_naming_a_node_address_without_a_port_stops_the_start(tmp_path, pki):
    routing = tmp_path / "routing.json"
    routing.write_text(json.dumps({"nodes": {"east": {"address": "east-node", "provinces": ["32"]}}}))
    result = run(*_serve_args("binding", tmp_path, pki), "--address", "127.0.0.1:0", "--routing", str(routing))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"routing file {routing}: node 'east': address 'east-node' is not HOST:PORT" in result.stderr


@pytest.mark.parametrize("service", ["binding", "gateway"])
def test_a_port_in_use_stops_the_start_with_a_line_saying_it_is_in_use(service, tmp_path, pki):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run(*_serve_args(service, tmp_path, pki), "--address", address)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "gongji:" in line]
    assert f"cannot listen on {address}: " in line and "in use" in line.lower()


@pytest.mark.parametrize(
    ("module", "said"),
    [
        ("def make():\n    raise RuntimeError('no verification service configured')\n",
         "make() failed: RuntimeError: no verification service configured"),
        ("make = 'not a factory'\n", "make is not a factory to call"),
        ("def make(:\n", "importing broken_verifier failed: SyntaxError"),
    ],
)  # fmt: skip
def test_a_verifier_that_fails_to_load_or_build_stops_the_start_with_one_line(module, said, tmp_path, pki):
    (tmp_path / "broken_verifier.py").write_text(module)
    args = _serve_args("payment", tmp_path, pki)
    args[args.index("stand-in")] = "broken_verifier:make"
    result = subprocess.run(
        [*GONGJI, *args, "--address", "127.0.0.1:0"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"gongji serve payment: --verifier 'broken_verifier:make': {said}" in result.stderr


@pytest.mark.parametrize(
    ("service", "flags", "said"),
    [
        ("payment", ["--node", "east node"], "--node 'east node' is not a node name"),
        ("gateway", ["--acct-pay-region", "440000"], "--acct-pay-region '440000': give ADMDVS=RULE"),
    ],
)
def test_a_node_name_or_region_rule_written_wrong_is_named_in_the_one_line_that_stops_the_start(
    service, flags, said, tmp_path, pki
):
    result = run(*_serve_args(service, tmp_path, pki), "--address", "127.0.0.1:0", *flags)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"gongji serve {service}: {said}" in result.stderr


def test_a_payment_node_needs_a_verifier_chosen_on_purpose(tmp_path, pki):
    result = run(
        "serve", "payment", "--address", "127.0.0.1:0", "--database", f"sqlite:///{tmp_path}/p.db",
        *pki.args(payment_node("local")),
    )  # fmt: skip
    assert result.returncode == 2
    assert "--verifier" in result.stderr and "stand-in" in result.stderr


def test_a_malformed_access_policy_file_stops_the_start(tmp_path, pki):
    policy = json.loads(
        (Path(__file__).resolve().parent.parent / "services/common/security/access_policy.json").read_text()
    )
    policy["services"]["gongji.binding.v1.BindingService"]["GetBinding"] = [
        {"principal": "operator", "scopes": ["region_of_person(no_such_field)"]}
    ]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    result = run(
        "serve", "binding", "--address", "127.0.0.1:0", "--database", f"sqlite:///{tmp_path}/b.db",
        "--access-policy", str(path), *pki.args(BINDING_SERVICE),
    )  # fmt: skip
    assert result.returncode == 2
    assert "no_such_field" in result.stderr


# The access policy as data --------------------------------------------------------------------


def _services() -> list:
    from gongji.node.v1 import node_service_pb2

    return [
        bapi.DESCRIPTOR.services_by_name["BindingService"],
        papi.DESCRIPTOR.services_by_name["PaymentService"],
        node_service_pb2.DESCRIPTOR.services_by_name["PaymentNodeService"],
        health_pb2.DESCRIPTOR.services_by_name["Health"],
        reflection._reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
        reflection_v1.V1_DESCRIPTOR.services_by_name["ServerReflection"],
    ]


def test_the_shipped_policy_has_a_rule_for_every_rpc_and_fits_every_server():
    policy = AccessPolicy.shipped()
    assert policy.check_against(_services(), frozenset({"person_regions", "binding_regions", "settlement_owner",
                                                      "participant_coordinator"})) == []  # fmt: skip
    assert len(policy.rules) == sum(len(s.methods) for s in _services())


def test_a_method_without_a_rule_is_refused_to_everyone():
    policy = AccessPolicy.parse({"services": {"gongji.payment.v1.PaymentService": {"Settle": []}}})
    assert policy.rule_for("/gongji.payment.v1.PaymentService/Settle", institution("H1")) is None
    assert policy.rule_for("/gongji.payment.v1.PaymentService/CheckLedger", operator("000000", "a")) is None
    problems = policy.check_against(_services()[1:2], frozenset())
    assert "/gongji.payment.v1.PaymentService/CheckLedger: no rule, so nobody may call it" in problems


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"principal": "hospital"}, "unknown principal kind"),
        ({"principal": "institution", "scopes": ["own_hospital(x)"]}, "unknown scope"),
        ({"principal": "channel", "scopes": ["own_institution(bill.institution_code)"]}, "does not apply"),
        ({"principal": "operator", "scopes": ["region"]}, "needs field"),
        ({"scopes": []}, 'a rule is an object with "principal"'),
    ],
)
def test_a_malformed_rule_is_an_error_naming_the_place(rule, message):
    with pytest.raises(AccessPolicyError, match=message) as raised:
        AccessPolicy.parse({"services": {"gongji.payment.v1.PaymentService": {"Settle": [rule]}}})
    assert "PaymentService/Settle" in str(raised.value)


def test_the_shipped_policy_lets_the_gateway_act_for_institutions_only_and_nodes_as_before():
    policy = AccessPolicy.shipped()
    settle, resolve = "/gongji.payment.v1.PaymentService/Settle", "/gongji.binding.v1.BindingService/ResolvePayers"
    prepare = "/gongji.node.v1.PaymentNodeService/PrepareLegs"
    assert policy.may_act_for_others(settle, GATEWAY) and policy.may_act_for_others(resolve, GATEWAY)
    assert not policy.may_act_for_others(prepare, GATEWAY)
    assert policy.may_represent(GATEWAY, institution("H1"))
    for other in (operator("000000", "a"), payment_node("east"), BINDING_SERVICE, GATEWAY):
        assert not policy.may_represent(GATEWAY, other), other
    assert policy.may_act_for_others(settle, payment_node("east")) and not policy.may_act_for_others(
        resolve, payment_node("east")
    )
    for anyone in (institution("H1"), operator("000000", "a"), payment_node("west"), GATEWAY):
        assert policy.may_represent(payment_node("east"), anyone), anyone
    assert all(policy.rule_for(method, GATEWAY) is None for method in policy.rules if not method.startswith("/grpc."))


def test_a_payment_node_may_forward_only_what_another_node_keeps():
    """Bills, their follow-ups and account reads travel between nodes in the caller's name;
    crediting an account or suspending a person never does, so a node cannot act as an operator."""
    policy = AccessPolicy.shipped()
    node = payment_node("east")
    forwarded = ("Settle", "CaptureSettlement", "ReverseRequest", "GetSettlement", "GetAccount", "ListStatement")
    for method in forwarded:
        assert policy.may_act_for_others(f"/gongji.payment.v1.PaymentService/{method}", node), method
    for method in ("CreditAccount", "SuspendSettlement", "LiftSuspension", "ActivateWallet", "CheckLedger"):
        assert not policy.may_act_for_others(f"/gongji.payment.v1.PaymentService/{method}", node), method


def test_a_forwarded_method_the_service_does_not_have_is_a_problem_of_the_policy():
    policy = AccessPolicy.parse(
        {
            "services": {},
            "acting_for_others": {"gongji.payment.v1.PaymentService": {"service/payment": ["Setle"]}},
            "may_represent": {"service/payment": ["*"]},
        }
    )
    problems = policy.check_against([papi.DESCRIPTOR.services_by_name["PaymentService"]], frozenset())
    assert "acting_for_others.gongji.payment.v1.PaymentService.service/payment: Setle is no method of the service" in (
        problems
    )


@pytest.mark.parametrize(
    ("forwarding", "message"),
    [
        ({"acting_for_others": {"gongji.payment.v1.PaymentService": ["service/gateway"]}}, "no entry says for whom"),
        ({"may_represent": {"service/gateway": ["institution"]}}, "lets it act for others nowhere"),
        (
            {"acting_for_others": {"gongji.payment.v1.PaymentService": ["service/gateway"]},
             "may_represent": {"service/gateway": ["hospital"]}},
            "may_represent.service/gateway: unknown principal kind",
        ),
        (
            {"acting_for_others": {"gongji.payment.v1.PaymentService": ["service/gateway"]},
             "may_represent": {"service/gateway": "institution"}},
            "expected a list",
        ),
        (
            {"acting_for_others": {"gongji.payment.v1.PaymentService": {"service/gateway": []}},
             "may_represent": {"service/gateway": ["institution"]}},
            "expected a list of method names",
        ),
    ],
)  # fmt: skip
def test_every_forwarder_says_whom_it_may_act_for(forwarding, message):
    with pytest.raises(AccessPolicyError, match=message):
        AccessPolicy.parse({"services": {}, **forwarding})


def test_the_readme_table_is_the_shipped_policy():
    """python -m services.common.security.policy_table README.md writes it."""
    assert section(AccessPolicy.shipped()) in README.read_text(encoding="utf-8")


# Plaintext on loopback: the identity a local sidecar forwards ---------------------------------


def test_the_forwarded_client_cert_header_names_the_nearest_hops_uri():
    assert spiffe_id_of_forwarded(forwarded_client_cert(institution("H1"))) == "spiffe://gongji/institution/H1"
    envoy = "By=spiffe://gongji/service/binding;Hash=abc;URI=spiffe://gongji/channel/WECHAT,URI=spiffe://gongji/institution/H2"
    assert spiffe_id_of_forwarded(envoy) == "spiffe://gongji/institution/H2"
    assert spiffe_id_of_forwarded("Hash=abc") is None
    # A hop whose certificate carried a second URI SAN names nobody: an X.509 SVID carries one.
    assert spiffe_id_of_forwarded("Hash=abc;URI=spiffe://gongji/institution/H1;URI=https://example.com") is None


@pytest.mark.parametrize("separator", [";", ","])
def test_a_uri_written_inside_a_quoted_subject_of_the_forwarded_header_names_nobody(separator):
    """Envoy double-quotes a Subject holding ',', ';' or '=': its holder's own text, never a URI SAN."""
    forged = f'Hash=abc;Subject="CN=x{separator}URI=spiffe://gongji/operator/000000/ops";DNS=example.com'
    assert spiffe_id_of_forwarded(forged) is None
    quoted = 'Hash=abc;Subject="CN=a \\"b\\", O=c;d";URI=spiffe://gongji/institution/H1'
    assert spiffe_id_of_forwarded(quoted) == "spiffe://gongji/institution/H1"
    assert spiffe_id_of_forwarded('Hash=abc;Subject="CN=open;URI=spiffe://gongji/institution/H1') is None


@pytest.fixture
def plaintext_binding(tmp_path):
    settings = BindingSettings(
        database_url=f"sqlite:///{tmp_path}/binding.db",
        security=ServerSecurity(Transport.insecure(BINDING_SERVICE)),
        address="127.0.0.1:0",
    )
    with BackgroundServer(lambda: start_binding_server(settings)) as server:
        yield server.address


def test_on_plaintext_loopback_a_caller_is_who_the_forwarded_header_says_and_nobody_without_it(plaintext_binding):
    with grpc.insecure_channel(plaintext_binding) as channel:
        stub = binding_grpc.BindingServiceStub(channel)
        request = bapi.GetRegionPolicyRequest(admdvs="320100")
        header = ((FORWARDED_CLIENT_CERT, forwarded_client_cert(institution("H1"))),)
        assert stub.GetRegionPolicy(request, metadata=header).policy.version
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetRegionPolicy(request)
        assert (refusal_of(raised.value).code, refusal_of(raised.value).reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "UNAUTHENTICATED_CALLER",
        )
        with pytest.raises(grpc.RpcError) as raised:
            stub.PutRegionPolicy(bapi.PutRegionPolicyRequest(request_id="x"), metadata=header)
        assert refusal_of(raised.value).reason == "CALLER_NOT_ALLOWED"
        checked = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert checked.status == health_pb2.HealthCheckResponse.SERVING  # health answers anyone who reaches it


def test_the_log_filter_masks_id_numbers_and_mobile_numbers_wherever_they_come_from():
    import logging

    from services.common.logs import PersonalDataFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "holder %s called from %s", ("320102198001010118",
                               "13812345678"), None)  # fmt: skip
    assert PersonalDataFilter().filter(record)
    assert record.getMessage() == "holder 320102********0118 called from 138****5678"
    try:
        raise ValueError("no insured person 11010119800101001X")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    PersonalDataFilter().filter(failed)
    assert "110101********001X" in (failed.exc_text or "") and "11010119800101001X" not in (failed.exc_text or "")
