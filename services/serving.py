"""`gongji serve`: from a command line to a running binding or payment server, or the gateway.

The `gongji` CLI adds this command to its parser; the benchmark's profiled server processes
call `main` directly, so they run exactly what `gongji serve` runs without importing the CLI
(which imports the benchmark)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from services.common.addresses import check_dial_address, check_listen_address
from services.common.database import default_database_url
from services.common.limits import ServerLimits
from services.common.logs import FORMATS, LOG_LEVELS, configure_logging, set_log_identity
from services.common.security.access_policy import AccessPolicy, AccessPolicyError
from services.common.security.transport import TlsFiles, Transport, TransportError
from services.common.server import ServerSecurity, serve_until_signalled
from services.common.siblings import SIBLING_FLAG, Siblings, die_with_first_process
from shared.principals import BINDING_SERVICE, GATEWAY, NotAPrincipal, Principal, payment_node

SERVICES = ("binding", "payment", "gateway")
WORKERS_PER_NODE = 4
DEFAULT_ADDRESSES = {"binding": "127.0.0.1:50051", "payment": "127.0.0.1:50052", "gateway": "127.0.0.1:8443"}


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


async def _start_gateway(args: argparse.Namespace, database: str, address: str) -> Any:
    from services.gateway.app import GatewaySettings, start_gateway
    from services.gateway.service_layer.account_pay import AccountPayRules
    from services.gateway.wire.signatures import load_access_keys
    from services.payment.app import default_binding_address

    if not args.payment_address:
        raise UsageError("--payment-address missing: the gateway settles through the payment node of its province")
    return await start_gateway(
        GatewaySettings(
            database_url=database, transport=_transport(args, GATEWAY), address=address,
            binding_address=args.binding_address or default_binding_address(), payment_address=args.payment_address,
            access_keys=load_access_keys(Path(args.access_keys)) if args.access_keys else None,
            account_pay=AccountPayRules.parse(args.acct_pay, args.acct_pay_region or []),
            metrics_address=args.metrics_address, inpatient_hold_days=args.inpatient_hold_days,
        )
    )  # fmt: skip


def _check_addresses(args: argparse.Namespace, address: str) -> None:
    """The addresses the command line and environment give, checked before anything starts."""
    check_listen_address(address, "--address")
    if args.metrics_address:
        _, port = check_listen_address(args.metrics_address, "--metrics-address")
        if port and port + args.processes - 1 > 65535:  # the n-th process serves on the port + n
            raise ValueError(f"--metrics-address {args.metrics_address!r}: {args.processes} processes need the "
                             f"ports from {port} to {port + args.processes - 1}; give a port up to "
                             f"{65536 - args.processes}")  # fmt: skip
    if args.service != "binding":
        from services.payment.app import BINDING_ADDRESS_ENV

        if args.binding_address:
            check_dial_address(args.binding_address, "--binding-address")
        elif os.environ.get(BINDING_ADDRESS_ENV):
            check_dial_address(os.environ[BINDING_ADDRESS_ENV], BINDING_ADDRESS_ENV)
    if args.service == "gateway" and args.payment_address:
        check_dial_address(args.payment_address, "--payment-address")


def _this_node(name: str) -> Principal:
    """The payment node `--node` names (spiffe://gongji/service/payment/NAME)."""
    try:
        return payment_node(name)
    except NotAPrincipal:
        raise UsageError(
            f"--node {name!r} is not a node name: 1 to 32 letters, digits, '-' or '_', beginning with a letter or digit"
        ) from None


def workers_per_process(processes: int) -> int:
    """Use-case threads per process when --workers is not given: the node's four shared out over
    its processes. Threads of one process take turns on one GIL, and the time a call waits for
    its turn grows with their number. On 2 cores (3 December 2026, three runs each) two processes
    of two threads settled 309-329 a second at 32 callers against 263-290 for two of four, and
    at 250 arrivals a second answered with a p99 of 96-220 ms against 238-1,739 ms."""
    return max(1, WORKERS_PER_NODE // max(1, processes))


def serve(args: argparse.Namespace) -> int:
    """Runs the parsed `serve` command until SIGTERM; its exit status."""
    database = args.database or default_database_url(args.service)
    address = args.address or DEFAULT_ADDRESSES[args.service]
    if args.processes != 1 and (args.service != "payment" or args.processes < 1 or address.endswith(":0")):
        print("gongji serve: --processes is for payment, at least 1, on a fixed port", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print("gongji serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers is None:
        args.workers = workers_per_process(args.processes)
        args.command_line = [*args.command_line, "--workers", str(args.workers)]  # siblings take the same
    set_log_identity(args.service, args.node if args.service == "payment" else "", process_wide=True)

    async def run() -> None:
        _check_addresses(args, address)
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
                    metrics_address=args.metrics_address,
                    readiness_interval=args.readiness_interval,
                    payer_watch_lease=args.payer_watch_lease or None,
                )
            )
        elif args.service == "gateway":
            running = await _start_gateway(args, database, address)
        else:
            from services.payment.app import PaymentSettings, clock_from_environment, start_payment_server
            from services.payment.routing import RoutingTable
            from services.payment.verification import load_verifier

            if not args.verifier:
                raise UsageError(
                    "--verifier missing: wallet transfers need face or QR-code password verification. Give "
                    "--verifier package.module:factory (see services/payment/verification.py), or "
                    "--verifier stand-in for tests and demos only"
                )
            settings = PaymentSettings(
                database_url=database, security=_security(args, _this_node(args.node)),
                verifier=load_verifier(args.verifier), address=address, workers=args.workers,
                max_amount_fen=args.max_amount_fen, limits=_limits(args), clock=clock_from_environment(),
            )  # fmt: skip
            if args.binding_address:
                settings.binding_address = args.binding_address
            if args.routing:
                settings.routing = RoutingTable.load(Path(args.routing), args.node)
            settings.sweep_interval = args.sweep_interval
            settings.prepare_lease = timedelta(seconds=args.prepare_lease)
            settings.metrics_address = args.metrics_address
            settings.readiness_interval = args.readiness_interval
            settings.ledger_audit_interval = args.ledger_audit_interval
            settings.payer_cache = not args.no_payer_cache
            settings.one_round = not args.no_one_round
            settings.share_port = args.processes > 1 or args.sibling
            if args.sibling:
                die_with_first_process()
                # The first process migrates and runs the background work; a sibling only serves.
                settings.migrate_on_start = False
                settings.sweep_interval = 0
                settings.ledger_audit_interval = 0
                settings.database_gauges = False
            running = await start_payment_server(settings)
            if args.processes > 1 and not args.sibling:
                siblings = Siblings(args.command_line, args.processes, args.metrics_address)
                running.on_stopping.append(siblings.stop)
                running.cleanups.insert(0, lambda: siblings.wait(args.grace))  # runs last
        await serve_until_signalled(running, grace=args.grace, drain_delay=args.drain_delay)

    try:
        asyncio.run(run())
    except (UsageError, TransportError, AccessPolicyError, ValueError) as error:
        print(f"gongji serve {args.service}: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        logging.getLogger("gongji").error("%s", error)
        return 1
    return 0


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", help="DEBUG, INFO, WARNING or ERROR"
    )
    parser.add_argument(
        "--log-format", choices=FORMATS, default="text", help="text for a terminal, json: one object per line"
    )


def add_tls_arguments(parser: argparse.ArgumentParser, insecure_help: str) -> None:
    parser.add_argument("--tls-cert", help="this process's certificate (PEM), naming its SPIFFE ID")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--tls-ca", help="the CA certificate (PEM) that signs every peer")
    parser.add_argument("--insecure", action="store_true", help=insecure_help)


def _at_least(lowest: float, kind: type = float, above: bool = False) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` no lower than `lowest` (`above`: higher than it), so a
    flag that would make a server refuse everything, or probe without pause, stops the start."""
    wanted = f"{'more than' if above else 'at least'} {lowest:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            number = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {number}") from None
        if not math.isfinite(value) or value < lowest or (above and value == lowest):
            raise argparse.ArgumentTypeError(f"{text} is not {wanted}")
        return value

    return parse


# argparse keeps the class add_subparsers returns private; the CLI passes its own.
def add_serve_command(commands: argparse._SubParsersAction[Any]) -> None:
    """The `serve` subcommand and its flags, run by `serve`."""
    parser = commands.add_parser("serve", help="run a service until SIGTERM")
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument(
        "--address", help="HOST:PORT to listen on (binding 127.0.0.1:50051, payment :50052, gateway :8443)"
    )
    add_tls_arguments(parser, "serve plaintext without client certificates: development on a loopback address only")
    parser.add_argument("--access-policy", help="JSON access policy replacing the shipped one (default deny)")
    defaults = ServerLimits()
    parser.add_argument(
        "--max-concurrent-rpcs", type=_at_least(1, int), default=defaults.max_concurrent_rpcs,
        help=f"calls in the server at once; more get RESOURCE_EXHAUSTED (default {defaults.max_concurrent_rpcs})",
    )  # fmt: skip
    parser.add_argument(
        "--calls-per-principal", type=_at_least(1, int), default=defaults.calls_per_principal,
        help=f"calls one caller may have running (default {defaults.calls_per_principal})",
    )  # fmt: skip
    parser.add_argument(
        "--max-waiting-work", type=_at_least(0, int), default=defaults.max_waiting_work,
        help=f"use cases that may wait for a worker thread; more are shed (default {defaults.max_waiting_work})",
    )  # fmt: skip
    parser.add_argument(
        "--verifier", help="payment only: wallet-transfer verifier, package.module:factory or stand-in (tests, demos)"
    )
    parser.add_argument(
        "--max-amount-fen", type=_at_least(1, int), default=10_000_000,
        help="payment only: the most one call may move, in fen (default 10,000,000 = 100,000 yuan)",
    )  # fmt: skip
    parser.add_argument(
        "--database", help="SQLAlchemy URL (default $GONGJI_DATABASE_URL or sqlite:///gongji-SERVICE.db)"
    )
    parser.add_argument(
        "--binding-address",
        help="payment, gateway: the binding service (default $GONGJI_BINDING_ADDRESS, else 127.0.0.1:50051)",
    )
    parser.add_argument("--payment-address", help="gateway only: the payment node it settles through")
    parser.add_argument(
        "--access-keys", help="gateway only: JSON file of access keys for signed-header callers (default: none)"
    )
    parser.add_argument(
        "--acct-pay", default="includes-mutual-aid",
        help="gateway only: what acct_pay reports, includes-mutual-aid (default) or own-account-only",
    )  # fmt: skip
    parser.add_argument(
        "--acct-pay-region", action="append", metavar="ADMDVS=RULE",
        help="gateway only: the acct_pay rule of one region (6 digits, PP0000 a province); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--inpatient-hold-days", type=int, default=30,
        help="gateway only: days a 2303 deposit hold lasts unless renewed or captured (1-59, default 30)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-address", help="HOST:PORT serving Prometheus metrics over plain HTTP at /metrics (default: none)"
    )
    parser.add_argument(
        "--readiness-interval", type=_at_least(0, above=True), default=5.0,
        help="seconds between readiness probes of the database (payment: and the binding service; default 5)",
    )  # fmt: skip
    parser.add_argument(
        "--ledger-audit-interval", type=_at_least(0), default=300.0,
        help="payment only: seconds between background ledger audits for the gongji_ledger_* metrics (0: none; "
        "default 300)",
    )  # fmt: skip
    parser.add_argument(
        "--payer-watch-lease", type=_at_least(0), default=3.0,
        help="binding only: seconds a payment node's keepalive keeps its lease on the payer watch; "
        "every change waits for the nodes' acknowledgement, at most this long after a restart (0: no watch; default 3)",
    )  # fmt: skip
    parser.add_argument(
        "--no-payer-cache", action="store_true",
        help="payment only: ask the binding service who may pay for every bill, even when it announces changes",
    )  # fmt: skip
    parser.add_argument(
        "--no-one-round", action="store_true",
        help="payment only: hold on the other node, then commit, even where one round would do (for comparison)",
    )  # fmt: skip
    parser.add_argument(
        "--processes", type=int, default=1,
        help="payment only: processes serving the address (SO_REUSEPORT), each with its own pool and payer "
        "cache; the first migrates, runs the background work and serves the database gauges; with "
        "--metrics-address the n-th serves its metrics on the port + n (default 1)",
    )  # fmt: skip
    parser.add_argument(SIBLING_FLAG, dest="sibling", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--grace", type=_at_least(0), default=10.0, help="seconds in-flight calls get at shutdown (default 10)"
    )
    parser.add_argument(
        "--drain-delay", type=_at_least(0), default=0.0,
        help="seconds the server still takes new calls after SIGTERM (binding and payment report readiness "
        "NOT_SERVING meanwhile), so load balancers and Kubernetes endpoints take the process out before it "
        "refuses them (default 0: at once)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=None,
        help=f"threads running use cases in each process, and its pooled database connections (default "
        f"{WORKERS_PER_NODE}, shared out over --processes: {WORKERS_PER_NODE // 2} each for 2, 1 each for 4 or more)",
    )  # fmt: skip
    parser.add_argument(
        "--routing",
        help="JSON routing table of payment nodes (payment: default one node; binding: accept only these nodes)",
    )
    parser.add_argument(
        "--node", default="local", help="payment only: this node's name in the routing table (default local)"
    )
    parser.add_argument(
        "--sweep-interval", type=_at_least(0), default=5.0,
        help="payment only: seconds between expiry sweeps and recovery (default 5)",
    )  # fmt: skip
    parser.add_argument(
        "--prepare-lease",
        type=_at_least(0, above=True),
        default=30.0,
        help="payment only: seconds a cross-node saga may stay PREPARING before recovery aborts it (default 30)",
    )
    parser.set_defaults(run=serve)


def main(argv: Sequence[str] | None = None) -> int:
    """`gongji [--log-level LEVEL] serve SERVICE …`, parsed and run as the `gongji` CLI would."""
    parser = argparse.ArgumentParser(prog="gongji")
    add_log_level_argument(parser)
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)  # what --processes starts again
    configure_logging(str(args.log_level), str(args.log_format))
    return int(args.run(args))
