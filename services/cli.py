"""The `gongji` command: serve a service, migrate its database, check health, make
development certificates, run the demo or the benchmark, populate a large database."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.addresses import check_dial_address
from services.common.database import DatabaseSettingError, default_database_url, migrate
from services.common.logs import configure_logging, set_log_identity
from services.common.security.transport import TlsFiles, TransportError
from services.serving import SERVICES, UsageError, add_log_level_argument, add_serve_command, add_tls_arguments
from shared.principals import NotAPrincipal, parse_spiffe_id


def _certs_init(args: argparse.Namespace) -> int:
    from services.common.security.certificates import DevelopmentCA

    principals = []
    for value in args.principal:
        try:
            principals.append(parse_spiffe_id(value))
        except NotAPrincipal as problem:
            print(f"gongji certs init: --principal {value!r}: {problem}", file=sys.stderr)
            return 2
    directory = Path(args.directory)
    try:
        authority = DevelopmentCA.open(directory)
        print(f"CA {authority.ca_file}")
        for principal in principals:
            issued = authority.issue(principal, args.host)
            state = "wrote" if issued.created else "kept"
            print(f"{state} {issued.cert} and {issued.key.name} for {principal.spiffe_id}")
    except ValueError as problem:
        print(f"gongji certs init: {problem}", file=sys.stderr)
        return 2
    except OSError as problem:
        print(f"gongji certs init: cannot write {problem.filename}: {problem.strerror}", file=sys.stderr)
        return 2
    return 0


def _migrate(args: argparse.Namespace) -> int:
    set_log_identity(args.service, process_wide=True)
    try:
        reached = migrate(args.service, args.database or default_database_url(args.service), args.revision)
    except DatabaseSettingError as error:
        print(f"gongji migrate {args.service}: {error}", file=sys.stderr)
        return 2
    print(
        f"{args.service} database is at revision {args.revision}"
        + (f" ({reached})" if reached != args.revision else "")
    )
    return 0


def _client_channel(args: argparse.Namespace) -> grpc.Channel:
    if args.insecure:
        return grpc.insecure_channel(args.address)
    if not (args.tls_cert and args.tls_key and args.tls_ca):
        raise UsageError(
            "give --tls-cert, --tls-key and --tls-ca (a certificate the server's CA signed), or --insecure"
        )
    files = TlsFiles(Path(args.tls_cert), Path(args.tls_key), Path(args.tls_ca))
    cert, key, ca = files.check()
    return grpc.secure_channel(args.address, grpc.ssl_channel_credentials(ca, key, cert))


def _health(args: argparse.Namespace) -> int:
    try:
        check_dial_address(args.address, "--address")
        channel = _client_channel(args)
    except (UsageError, TransportError, ValueError) as error:
        print(f"gongji health: {error}", file=sys.stderr)
        return 2
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                print(f"{args.address}: NOT_FOUND: it serves no service named {args.service!r}", file=sys.stderr)
            else:
                print(f"{args.address}: {error.code().name} {error.details()}", file=sys.stderr)
            return 2
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{args.address} {args.service or '(server)'}: {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


def _demo(args: argparse.Namespace) -> int:
    from services.demo.run import run_demo

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
        observability_baseline=args.observability_baseline,
        gateway=args.gateway,
        open_loop=args.open_loop,
        rates=args.rate,
        population=args.population,
        scale_concurrency=args.scale_concurrency,
        scale_rate=args.scale_rate,
        payer_cache=args.payer_cache,
        payment_processes=args.payment_processes,
        one_round=args.one_round,
    )


def _population(value: str) -> tuple[int, ...]:
    from services.benchmark import parse_population

    try:
        return parse_population(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _rates(value: str) -> tuple[float, ...]:
    from services.benchmark import parse_rates

    try:
        return parse_rates(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _populate(args: argparse.Namespace) -> int:
    from services.population import run_populate

    return run_populate(
        args.binding_database, args.payment_database, args.persons, args.seed, args.active_share, args.history_days
    )


def _levels(value: str) -> tuple[int, ...]:
    from services.benchmark import parse_concurrency

    try:
        return parse_concurrency(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gongji", description=__doc__)
    add_log_level_argument(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    add_serve_command(commands)

    migrate_ = commands.add_parser("migrate", help="bring a service's database to the latest schema")
    migrate_.add_argument("service", choices=SERVICES)
    migrate_.add_argument("--database", help="SQLAlchemy URL (default as for serve)")
    migrate_.add_argument("--revision", default="head")
    migrate_.set_defaults(run=_migrate)

    health = commands.add_parser("health", help="grpc.health.v1 check; exit 0 when SERVING")
    health.add_argument("--address", required=True)
    add_tls_arguments(health, "connect in plaintext (to a server started with --insecure)")
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
    benchmark.add_argument(
        "--no-observability-baseline", dest="observability_baseline", action="store_false",
        help="skip the cost-of-observability phase (the single-node load again with metrics scraped and traces on)",
    )  # fmt: skip
    benchmark.add_argument(
        "--payment-processes", type=int, default=None,
        help="processes per payment node (gongji serve payment --processes; default one per core, at most "
        "4, or 1 with --in-process or --profile)",
    )  # fmt: skip
    benchmark.add_argument(
        "--no-payer-cache", dest="payer_cache", action="store_false",
        help="payment nodes ask the binding service who may pay for every bill (no watch, nothing kept)",
    )  # fmt: skip
    benchmark.add_argument(
        "--no-one-round", dest="one_round", action="store_false",
        help="payment nodes hold on the other node, then commit, even where one call would do (for comparison)",
    )  # fmt: skip
    benchmark.add_argument(
        "--no-gateway", dest="gateway", action="store_false",
        help="skip the gateway phase (2207 settlements over HTTPS through the national-interface gateway)",
    )  # fmt: skip
    benchmark.add_argument(
        "--no-open-loop", dest="open_loop", action="store_false",
        help="skip the open-loop phase (Poisson arrivals timed from their intended send, after the closed loop)",
    )  # fmt: skip
    benchmark.add_argument(
        "--rate", type=_rates, default=(), metavar="R[,R…]",
        help="open-loop rates in settlements/s (default: 50,70,90 %% of the run's best closed-loop rate)",
    )  # fmt: skip
    benchmark.add_argument(
        "--population", type=_population, default=(), metavar="N[,N…]",
        help="the scale table: per size (persons, e.g. 10000,1M), fresh databases loaded with COPY and a sample "
        "of their families settled (closed loop, then open loop at one rate for all sizes)",
    )  # fmt: skip
    benchmark.add_argument(
        "--scale-concurrency", type=int, default=8, help="closed-loop callers of the scale table (default 8)"
    )
    benchmark.add_argument(
        "--scale-rate", type=float, default=None, metavar="R",
        help="open-loop rate of the scale table (default: 70 %% of the smallest population's closed-loop rate)",
    )  # fmt: skip
    benchmark.add_argument(
        "--families", type=int, default=200, help="families registered (default 200); with --population, sampled"
    )
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

    populate = commands.add_parser(
        "populate", help="load N insured persons, families, accounts and a year of history with COPY (PostgreSQL)"
    )
    populate.add_argument("--binding-database", required=True, help="the binding service's migrated, empty database")
    populate.add_argument("--payment-database", required=True, help="the payment service's migrated, empty database")
    populate.add_argument("--persons", type=int, required=True, help="insured persons (families of 3, 2 bindings each)")
    populate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    populate.add_argument(
        "--active-share", type=float, default=0.01, help="share of families with a year of journal history (0.01)"
    )
    populate.add_argument("--history-days", type=int, default=365, help="days of history of the active (default 365)")
    populate.set_defaults(run=_populate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)  # what serve --processes starts again
    configure_logging(str(args.log_level), str(args.log_format))
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
