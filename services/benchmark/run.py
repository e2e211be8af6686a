"""One benchmark run from start to end: check the options, make the scratch databases and
certificates, start the servers, run the phases in order (single-node, cost of security,
cost of
observability, cross-node, echo, pgbench), clean up, and print the report or the JSON summary."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import grpc

from services.benchmark.cost_of_observability import measure_observed
from services.benchmark.cost_of_security import measure_plaintext
from services.benchmark.cpu import CpuMeter
from services.benchmark.cross_node import measure_cross_node
from services.benchmark.deployment import EAST
from services.benchmark.desk import mutual_tls
from services.benchmark.echo import echo_payload, measure_echo
from services.benchmark.errors import BenchmarkError
from services.benchmark.interrupts import Interrupts
from services.benchmark.options import DEFAULT_CONCURRENCY, DEFAULT_POSTGRES_URL, Options
from services.benchmark.pgbench import measure_pgbench
from services.benchmark.processes import Scratch, free_port
from services.benchmark.profile_stats import collect_profile
from services.benchmark.progress import say
from services.benchmark.report import print_report
from services.benchmark.servers import start_in_process_servers, start_subprocess_servers
from services.benchmark.single_node import measure_settlements
from services.benchmark.summary import summarise
from services.common.database import migrate
from services.common.security.development_pki import DevelopmentPKI


def _run(options: Options, scratch: Scratch) -> dict[str, Any]:
    scratch.check_postgres()
    databases = ("binding", "payment", "payment_west") if options.cross_node else ("binding", "payment")
    urls = {name: scratch.create_database(name) for name in databases}
    for name, url in urls.items():
        migrate("payment" if name == "payment_west" else name, url)
    pki = DevelopmentPKI(Path(scratch.directory) / "pki", "gongji benchmark CA")
    connect = mutual_tls(pki)
    say(f"scratch databases {', '.join(scratch.databases)} migrated; servers run {_mode(options)}")
    start = start_in_process_servers if options.in_process else start_subprocess_servers
    servers = start(scratch, options, urls, pki)
    try:
        gongji = asyncio.run(measure_settlements(options, servers, connect, CpuMeter(servers.pids, scratch.marker)))
        plain = None
        if options.plaintext_baseline and servers.restart is not None:
            say("cost of security: binding and east restarted with --insecure (plaintext) on the same databases")
            servers.restart(plaintext=True)
            meter = CpuMeter(servers.pids, scratch.marker)
            plain = asyncio.run(measure_plaintext(options, servers, gongji["families"], meter))
            if servers.west_address is not None and not options.observability_baseline:
                say("binding and east restarted with mutual TLS for the cross-node phase")
                servers.restart(plaintext=False)
        observed = None
        if options.observability_baseline and servers.restart is not None:
            say("cost of observability: binding and east restarted with mutual TLS, /metrics scraped every second "
                "and every settlement traced (OTLP to a receiver in this process)")  # fmt: skip
            observed = measure_observed(options, servers, gongji["families"], connect, scratch.marker)
        cross = None
        if servers.west_address is not None and servers.west_pid is not None:
            meter = CpuMeter({**servers.pids, "west": servers.west_pid}, scratch.marker)
            cross = asyncio.run(measure_cross_node(options, servers, connect, meter))
    finally:
        servers.stop()  # a profiled payment server writes its stats as it stops
    profile = collect_profile(options, gongji["settle_calls_sent"])

    say("baseline: bare gRPC echo in its own process, over the same mutual TLS")
    echo_address = f"127.0.0.1:{free_port()}"
    served = pki.files(EAST)  # the echo server stands where the payment service does
    # The package's __main__ serves the echo (services/benchmark/__main__.py).
    echo_argv = ["-m", "services.benchmark", "echo", echo_address, str(served.cert), str(served.key), str(served.ca)]
    echo_process = scratch.spawn("echo", echo_argv, echo_address)
    try:
        meter = CpuMeter({"echo": echo_process.popen.pid}, scratch.marker)
        echo = asyncio.run(measure_echo(options, echo_address, connect, echo_payload(), meter))
    finally:
        scratch.stop(echo_process)

    say("baseline: pgbench TPC-B, scale 1")
    pgbench = measure_pgbench(options, scratch, CpuMeter(database_marker=scratch.marker))
    return summarise(options, gongji, echo, pgbench, profile, cross, plain, observed)


def _mode(options: Options) -> str:
    if options.in_process:
        return "in this process (threads; they share the GIL with the load generator), mutual TLS"
    return "in their own processes (python -m services.cli serve), mutual TLS"


def _baseline_runs(wanted: bool, name: str, in_process: bool, profile: str | None) -> bool:
    """A baseline restarts the server processes, so it cannot run --in-process; under --profile
    the servers of one side of the comparison would run in cProfile and it would measure that."""
    if wanted and in_process:
        say(f"benchmark: the {name} baseline restarts the server processes; skipped with --in-process")
        return False
    if wanted and profile:
        say(f"benchmark: under --profile the comparison would measure cProfile too; {name} baseline skipped")
        return False
    return wanted


def run_benchmark(
    postgres_url: str = DEFAULT_POSTGRES_URL,
    families: int = 200,
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY,
    seconds: float = 10.0,
    warmup: float = 2.0,
    in_process: bool = False,
    profile: str | None = None,
    profile_clock: str = "cpu",
    server_log_level: str = "INFO",
    json_output: bool = False,
    cross_node: bool = True,
    plaintext_baseline: bool = True,
    observability_baseline: bool = True,
) -> int:
    """Runs the benchmark and prints the report (or, with json_output, one JSON object
    on stdout). 0 when it ran and the ledgers balanced (and, cross-node, both nodes'
    clearing reports agreed), 1 when not, 2 when it could not run, 130 on Ctrl-C.
    The cross-node phase and the plaintext and observability baselines (the costs of security and
    of metrics and traces) restart or add server processes; --in-process skips them. --profile skips
    both baselines too: the profiler would weigh on one side of each comparison only."""
    if cross_node and in_process:
        say("benchmark: the cross-node phase needs the servers in their own processes; skipped with --in-process")
        cross_node = False
    plaintext_baseline = _baseline_runs(plaintext_baseline, "plaintext", in_process, profile)
    observability_baseline = _baseline_runs(observability_baseline, "observability", in_process, profile)
    options = Options(
        postgres_url, families, tuple(concurrency), seconds, warmup, in_process,
        os.path.abspath(profile) if profile else None, profile_clock, server_log_level, json_output, cross_node,
        plaintext_baseline, observability_baseline,
    )  # fmt: skip
    if families < 1 or seconds <= 0 or warmup < 0 or not options.concurrency or min(options.concurrency) < 1:
        say("benchmark: --families, --seconds and every --concurrency level must be positive")
        return 2
    if profile and in_process:
        say("benchmark: --profile needs the servers in their own processes (drop --in-process)")
        return 2
    for name in ("alembic", "services", "gongji.rpc"):
        if not in_process or name != "gongji.rpc":
            logging.getLogger(name).setLevel(logging.WARNING)
    interrupts = Interrupts()
    try:
        with interrupts, Scratch(postgres_url) as scratch:
            summary = _run(options, scratch)
    except (KeyboardInterrupt, BenchmarkError, grpc.RpcError) as error:
        if interrupts.received is not None or isinstance(error, KeyboardInterrupt):
            say("benchmark interrupted; servers stopped and scratch databases dropped")
            return 130
        if isinstance(error, grpc.RpcError):
            say(f"benchmark: a call failed: {error.code().name}: {error.details()}")  # type: ignore[attr-defined]
        else:
            say(f"benchmark: {error}")
        return 2
    if json_output:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print_report(summary)
    cross_ok = summary["cross_node"] is None or summary["cross_node"]["ok"]
    plaintext_ok = summary["security"] is None or summary["security"]["ok"]
    observed_ok = summary["observability"] is None or summary["observability"]["ok"]
    return 0 if summary["ledger"]["balanced"] and cross_ok and plaintext_ok and observed_ok else 1


def parse_concurrency(value: str) -> tuple[int, ...]:
    """`--concurrency 1,8,32` as levels; ValueError says what is wrong."""
    try:
        levels = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--concurrency takes comma-separated integers, not {value!r}") from None
    if not levels or min(levels) < 1:
        raise ValueError("--concurrency levels must be at least 1")
    return levels
