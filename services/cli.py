"""The `gongji` command: serve a service, migrate its database, check health, run the demo
or the benchmark."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.database import default_database_url, migrate
from services.common.server import serve_until_signalled

SERVICES = ("binding", "payment")
DEFAULT_ADDRESSES = {"binding": "127.0.0.1:50051", "payment": "127.0.0.1:50052"}


def _serve(args: argparse.Namespace) -> int:
    database = args.database or default_database_url(args.service)
    address = args.address or DEFAULT_ADDRESSES[args.service]

    async def run() -> None:
        if args.service == "binding":
            from services.binding.app import BindingSettings, start_binding_server

            running = await start_binding_server(
                BindingSettings(database_url=database, address=address, workers=args.workers)
            )
        else:
            from services.payment.app import PaymentSettings, start_payment_server

            settings = PaymentSettings(database_url=database, address=address, workers=args.workers)
            if args.binding_address:
                settings.binding_address = args.binding_address
            if args.routing:
                from pathlib import Path

                from services.payment.routing import RoutingTable

                settings.routing = RoutingTable.load(Path(args.routing), args.node)
            settings.sweep_interval = args.sweep_interval
            settings.prepare_lease = timedelta(seconds=args.prepare_lease)
            running = await start_payment_server(settings)
        await serve_until_signalled(running, grace=args.grace)

    try:
        asyncio.run(run())
    except OSError as error:
        logging.getLogger("gongji").error("%s", error)
        return 1
    return 0


def _migrate(args: argparse.Namespace) -> int:
    migrate(args.service, args.database or default_database_url(args.service), args.revision)
    print(f"{args.service} database is at revision {args.revision}")
    return 0


def _health(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.address) as channel:
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
    serve.add_argument(
        "--database", help="SQLAlchemy URL (default $GONGJI_DATABASE_URL or sqlite:///gongji-SERVICE.db)"
    )
    serve.add_argument("--binding-address", help="payment only: the binding service (default $GONGJI_BINDING_ADDRESS)")
    serve.add_argument("--grace", type=float, default=10.0, help="seconds in-flight calls get at shutdown")
    serve.add_argument(
        "--workers", type=int, default=4, help="threads running use cases, and pooled database connections (default 4)"
    )
    serve.add_argument("--routing", help="payment only: JSON routing table of payment nodes (default: one node)")
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
    health.add_argument("--service", default="", help="a service name; empty checks the whole server")
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(run=_health)

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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
