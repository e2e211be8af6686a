"""The `gongji` command: serve a service, migrate its database, check health, make
development certificates, run the demo or the benchmark."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.database import default_database_url, migrate
from services.common.limits import ServerLimits
from services.common.logs import configure_logging
from services.common.security.access_policy import AccessPolicy, AccessPolicyError
from services.common.security.transport import TlsFiles, Transport, TransportError
from services.common.server import ServerSecurity, serve_until_signalled
from shared.principals import BINDING_SERVICE, NotAPrincipal, Principal, parse_spiffe_id, payment_node

SERVICES = ("binding", "payment")
DEFAULT_ADDRESSES = {"binding": "127.0.0.1:50051", "payment": "127.0.0.1:50052"}


class UsageError(Exception):
    """A command line that cannot work; the message says what to give instead."""


def _transport(args: argparse.Namespace, identity: Principal) -> Transport:
    given = {"--tls-cert": args.tls_cert, "--tls-key": args.tls_key, "--tls-ca": args.tls_ca}
    if args.insecure:
        if any(given.values()):
            raise UsageError("give either --insecure or the TLS files, not both")
        return Transport.insecure(identity)
    missing = [flag for flag, value in given.items() if not value]
    if missing:
        raise UsageError(
            f"{' and '.join(missing)} missing: every gongji port serves mutual TLS. Give --tls-cert and "
            f"--tls-key (the certificate naming {identity.spiffe_id}, and its key) and --tls-ca (the CA that "
            "signs every caller); `gongji certs init` makes development ones. For development on a loopback "
            "address only, --insecure serves plaintext."
        )
    return Transport.mutual_tls(TlsFiles(Path(args.tls_cert), Path(args.tls_key), Path(args.tls_ca)), identity)


def _security(args: argparse.Namespace, identity: Principal) -> ServerSecurity:
    policy = AccessPolicy.load(Path(args.access_policy)) if args.access_policy else AccessPolicy.shipped()
    return ServerSecurity(_transport(args, identity), policy)


def _limits(args: argparse.Namespace) -> ServerLimits:
    return ServerLimits(
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        calls_per_principal=args.calls_per_principal,
        max_waiting_work=args.max_waiting_work,
    )


def _serve(args: argparse.Namespace) -> int:
    database = args.database or default_database_url(args.service)
    address = args.address or DEFAULT_ADDRESSES[args.service]

    async def run() -> None:
        if args.service == "binding":
            from services.binding.app import BindingSettings, start_binding_server
            from services.payment.routing import RoutingTable

            security = _security(args, BINDING_SERVICE)
            if args.routing:
                security = replace(security, nodes=RoutingTable.directory_of_file(Path(args.routing)))
            running = await start_binding_server(
                BindingSettings(
                    database_url=database,
                    security=security,
                    address=address,
                    workers=args.workers,
                    limits=_limits(args),
                )
            )
        else:
            from services.payment.app import PaymentSettings, start_payment_server
            from services.payment.routing import RoutingTable
            from services.payment.verification import load_verifier

            if not args.verifier:
                raise UsageError(
                    "--verifier missing: wallet transfers need face or QR-code password verification. Give "
                    "--verifier package.module:factory (see services/payment/verification.py), or "
                    "--verifier stand-in for tests and demos only"
                )
            settings = PaymentSettings(
                database_url=database, security=_security(args, payment_node(args.node)),
                verifier=load_verifier(args.verifier), address=address, workers=args.workers,
                max_amount_fen=args.max_amount_fen, limits=_limits(args),
            )  # fmt: skip
            if args.binding_address:
                settings.binding_address = args.binding_address
            if args.routing:
                settings.routing = RoutingTable.load(Path(args.routing), args.node)
            settings.sweep_interval = args.sweep_interval
            settings.prepare_lease = timedelta(seconds=args.prepare_lease)
            running = await start_payment_server(settings)
        await serve_until_signalled(running, grace=args.grace)

    try:
        asyncio.run(run())
    except (UsageError, TransportError, AccessPolicyError, ValueError) as error:
        print(f"gongji serve {args.service}: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        logging.getLogger("gongji").error("%s", error)
        return 1
    return 0


def _certs_init(args: argparse.Namespace) -> int:
    from services.common.security.certificates import DevelopmentCA

    try:
        principals = [parse_spiffe_id(value) for value in args.principal]
    except NotAPrincipal as problem:
        print(f"gongji certs init: {problem}", file=sys.stderr)
        return 2
    directory = Path(args.directory)
    authority = DevelopmentCA.open(directory)
    print(f"CA {authority.ca_file}")
    for principal in principals:
        issued = authority.issue(principal, args.host)
        state = "wrote" if issued.created else "kept"
        print(f"{state} {issued.cert} and {issued.key.name} for {principal.spiffe_id}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    migrate(args.service, args.database or default_database_url(args.service), args.revision)
    print(f"{args.service} database is at revision {args.revision}")
    return 0


def _client_channel(args: argparse.Namespace) -> grpc.Channel:
    if args.insecure:
        return grpc.insecure_channel(args.address)
    if not (args.tls_cert and args.tls_key and args.tls_ca):
        raise UsageError(
            "give --tls-cert, --tls-key and --tls-ca (a certificate the server's CA signed), or --insecure"
        )
    files = TlsFiles(Path(args.tls_cert), Path(args.tls_key), Path(args.tls_ca))
    cert, key, ca = files.read()
    return grpc.secure_channel(args.address, grpc.ssl_channel_credentials(ca, key, cert))


def _health(args: argparse.Namespace) -> int:
    try:
        channel = _client_channel(args)
    except (UsageError, TransportError) as error:
        print(f"gongji health: {error}", file=sys.stderr)
        return 2
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as error:
            print(f"{args.address}: {error.code().name} {error.details()}", file=sys.stderr)
            return 2
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{args.address} {args.service or '(server)'}: {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


def _demo(args: argparse.Namespace) -> int:
    from services.demo import run_demo

    return run_demo(verbose=args.verbose)


def _benchmark(args: argparse.Namespace) -> int:
    from services.benchmark import run_benchmark

    return run_benchmark(
        postgres_url=args.postgres_url,
        families=args.families,
        concurrency=args.concurrency,
        seconds=args.seconds,
        warmup=args.warmup,
        in_process=args.in_process,
        profile=args.profile,
        profile_clock=args.profile_clock,
        server_log_level=args.server_log_level,
        json_output=args.json,
        cross_node=args.cross_node,
        plaintext_baseline=args.plaintext_baseline,
    )


def _levels(value: str) -> tuple[int, ...]:
    from services.benchmark import parse_concurrency

    try:
        return parse_concurrency(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gongji", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a service until SIGTERM")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--address", help="HOST:PORT to listen on (binding 127.0.0.1:50051, payment :50052)")
    _tls_arguments(serve, "serve plaintext without client certificates: development on a loopback address only")
    serve.add_argument("--access-policy", help="JSON access policy replacing the shipped one (default deny)")
    defaults = ServerLimits()
    serve.add_argument(
        "--max-concurrent-rpcs", type=int, default=defaults.max_concurrent_rpcs,
        help=f"calls in the server at once; more get RESOURCE_EXHAUSTED (default {defaults.max_concurrent_rpcs})",
    )  # fmt: skip
    serve.add_argument(
        "--calls-per-principal", type=int, default=defaults.calls_per_principal,
        help=f"calls one caller may have running (default {defaults.calls_per_principal})",
    )  # fmt: skip
    serve.add_argument(
        "--max-waiting-work", type=int, default=defaults.max_waiting_work,
        help=f"use cases that may wait for a worker thread; more are shed (default {defaults.max_waiting_work})",
    )  # fmt: skip
    serve.add_argument(
        "--verifier", help="payment only: wallet-transfer verifier, package.module:factory or stand-in (tests, demos)"
    )
    serve.add_argument(
        "--max-amount-fen", type=int, default=10_000_000,
        help="payment only: the most one call may move, in fen (default 10,000,000 = 100,000 yuan)",
    )  # fmt: skip
    serve.add_argument(
        "--database", help="SQLAlchemy URL (default $GONGJI_DATABASE_URL or sqlite:///gongji-SERVICE.db)"
    )
    serve.add_argument("--binding-address", help="payment only: the binding service (default $GONGJI_BINDING_ADDRESS)")
    serve.add_argument("--grace", type=float, default=10.0, help="seconds in-flight calls get at shutdown")
    serve.add_argument(
        "--workers", type=int, default=4, help="threads running use cases, and pooled database connections (default 4)"
    )
    serve.add_argument(
        "--routing",
        help="JSON routing table of payment nodes (payment: default one node; binding: accept only these nodes)",
    )
    serve.add_argument("--node", default="local", help="payment only: this node's name in the routing table")
    serve.add_argument(
        "--sweep-interval", type=float, default=5.0, help="payment only: seconds between expiry sweeps and recovery"
    )
    serve.add_argument(
        "--prepare-lease",
        type=float,
        default=30.0,
        help="payment only: seconds a cross-node saga may stay PREPARING before recovery aborts it",
    )
    serve.set_defaults(run=_serve)

    migrate_ = commands.add_parser("migrate", help="bring a service's database to the latest schema")
    migrate_.add_argument("service", choices=SERVICES)
    migrate_.add_argument("--database", help="SQLAlchemy URL (default as for serve)")
    migrate_.add_argument("--revision", default="head")
    migrate_.set_defaults(run=_migrate)

    health = commands.add_parser("health", help="grpc.health.v1 check; exit 0 when SERVING")
    health.add_argument("--address", required=True)
    _tls_arguments(health, "connect in plaintext (to a server started with --insecure)")
    health.add_argument("--service", default="", help="a service name; empty checks the whole server")
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(run=_health)

    certs = commands.add_parser("certs", help="development certificates for mutual TLS")
    certs_commands = certs.add_subparsers(dest="certs_command", required=True)
    init = certs_commands.add_parser(
        "init", help="write a development CA (once) and a certificate and key per principal into DIRECTORY"
    )
    init.add_argument("directory")
    init.add_argument(
        "--principal", action="append", default=[], metavar="SPIFFE_ID",
        help="e.g. spiffe://gongji/institution/H37010001, spiffe://gongji/service/payment/east (repeatable)",
    )  # fmt: skip
    init.add_argument(
        "--host", action="append", default=[], help="a further DNS name or IP for service certificates (repeatable)"
    )
    init.set_defaults(run=_certs_init)

    demo = commands.add_parser("demo", help="walk a family through gongji on a temporary SQLite database")
    demo.add_argument("--verbose", action="store_true", help="also print every RPC the servers log")
    demo.set_defaults(run=_demo)

    benchmark = commands.add_parser(
        "benchmark", help="settlements/s and latency on PostgreSQL, beside pgbench and a bare gRPC echo"
    )
    benchmark.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="an administrative connection; scratch databases are created and dropped through it",
    )
    benchmark.add_argument(
        "--no-cross-node", dest="cross_node", action="store_false", help="skip the two-node (cross-province) phase"
    )
    benchmark.add_argument(
        "--no-plaintext-baseline", dest="plaintext_baseline", action="store_false",
        help="skip the cost-of-security phase (the single-node load again on servers restarted --insecure)",
    )  # fmt: skip
    benchmark.add_argument("--families", type=int, default=200, help="families registered (default 200)")
    benchmark.add_argument("--concurrency", type=_levels, default=(1, 8, 32), help="callers per level (default 1,8,32)")
    benchmark.add_argument("--seconds", type=float, default=10.0, help="measured seconds per level (default 10)")
    benchmark.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each level")
    benchmark.add_argument(
        "--in-process", action="store_true", help="run the servers on threads of this process, not their own"
    )
    benchmark.add_argument("--profile", metavar="PATH", help="cProfile the services; payment stats to PATH")
    benchmark.add_argument("--profile-clock", choices=("cpu", "wall"), default="cpu", help="what the profile counts")
    benchmark.add_argument("--server-log-level", default="INFO", help="the servers' log level (default INFO)")
    benchmark.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    benchmark.set_defaults(run=_benchmark)
    return parser


def _tls_arguments(parser: argparse.ArgumentParser, insecure_help: str) -> None:
    parser.add_argument("--tls-cert", help="this process's certificate (PEM), naming its SPIFFE ID")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--tls-ca", help="the CA certificate (PEM) that signs every peer")
    parser.add_argument("--insecure", action="store_true", help=insecure_help)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(str(args.log_level))
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
