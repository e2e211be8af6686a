"""One benchmark run from start to end: check the options, make the scratch databases and
certificates, start the servers, run the phases in order (single-node, through the gateway,
cost of security, cost of observability, cross-node, echo, pgbench), clean up, and print the
report or the JSON summary."""

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
from services.benchmark.families import Family
from services.benchmark.gateway_server import start_gateway_server
from services.benchmark.interrupts import Interrupts
from services.benchmark.options import DEFAULT_CONCURRENCY, DEFAULT_POSTGRES_URL, Options, default_payment_processes
from services.benchmark.pgbench import Pgbench, measure_pgbench, measure_pgbench_open, prepare_pgbench
from services.benchmark.processes import Scratch, free_port
from services.benchmark.profile_stats import collect_profile
from services.benchmark.progress import say
from services.benchmark.report import print_report
from services.benchmark.scale import measure_scale, scale_summary
from services.benchmark.servers import Servers, start_in_process_servers, start_subprocess_servers
from services.benchmark.single_node import measure_settlements
from services.benchmark.summary import summarise
from services.benchmark.through_gateway import measure_gateway
from services.common.database import migrate
from services.common.security.development_pki import DevelopmentPKI


def _run(options: Options, scratch: Scratch) -> dict[str, Any]:
    scratch.check_postgres()
    databases = ("binding", "payment", *(("payment_west",) if options.cross_node else ()))
    databases += ("gateway",) if options.gateway else ()
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
        through = None
        if options.gateway:
            through = _through_gateway(options, scratch, urls["gateway"], pki, servers, gongji["families"])
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
    bench = prepare_pgbench(scratch)
    pgbench = measure_pgbench(options, bench, CpuMeter(database_marker=scratch.marker))
    pgbench_open = _pgbench_at_open_loop_rates(options, bench, gongji.get("open_loop"), scratch)
    scale = measure_scale(options, scratch, pki, connect) if options.population else None
    return summarise(
        options, gongji, echo, pgbench, profile, cross, plain, observed, through, scale_summary(scale, options),
        pgbench_open,
    )  # fmt: skip


def _pgbench_at_open_loop_rates(
    options: Options, bench: Pgbench, opened: dict[str, Any] | None, scratch: Scratch
) -> list[dict[str, Any]]:
    """The database alone at the open-loop phase's rates: the latency floor its p99 stands on."""
    if not opened or not opened["levels"]:
        return []
    clients = max(options.concurrency)
    say(f"baseline: pgbench TPC-B at the open-loop rates (-R, Poisson, {clients} clients, timed from the schedule)")
    rates = [level.rate for level, _ in opened["levels"]]
    return measure_pgbench_open(bench, rates, options.seconds, clients, CpuMeter(database_marker=scratch.marker))


def _through_gateway(
    options: Options, scratch: Scratch, url: str, pki: DevelopmentPKI, servers: Servers, families: list[Family]
) -> dict[str, Any]:
    """The gateway started in front of the single-node phase's binding and east, the same families'
    bills settled through it as 2207 over HTTPS, and the gateway stopped again."""
    say("through the gateway: 2207 settlements over HTTPS (hospital certificates, keep-alive) to the gateway, "
        "which settles them on east over mutual-TLS gRPC")  # fmt: skip
    gateway = start_gateway_server(scratch, options, url, pki, servers)
    try:
        pids = {**servers.pids, **({"gateway": gateway.pid} if gateway.pid is not None else {})}
        meter = CpuMeter(pids, scratch.marker)
        return asyncio.run(measure_gateway(options, servers, gateway, families, pki, mutual_tls(pki), meter))
    finally:
        gateway.stop()


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
    gateway: bool = True,
    open_loop: bool = True,
    rates: tuple[float, ...] = (),
    population: tuple[int, ...] = (),
    scale_concurrency: int = 8,
    scale_rate: float | None = None,
    payer_cache: bool = True,
    payment_processes: int | None = None,
    one_round: bool = True,
) -> int:
    """Runs the benchmark and prints the report (or, with json_output, one JSON object
    on stdout). 0 when it ran and the ledgers balanced (and, cross-node, both nodes'
    clearing reports agreed), 1 when not, 2 when it could not run, 130 on Ctrl-C.
    The cross-node phase and the plaintext and observability baselines (the costs of security and
    of metrics and traces) restart or add server processes; --in-process skips them. --profile skips
    both baselines too: the profiler would weigh on one side of each comparison only. The gateway
    phase (2207 through the national-interface gateway) runs in either mode; --profile skips it.
    `payment_processes` None: one per core (at most four), or one with --in-process or --profile
    (the profiler sees one process). The open-loop phase (Poisson arrivals timed from their
    intended send, at `rates` or at 50/70/90 % of the best closed-loop rate) runs right after the
    single-node levels on the same servers.
    With `population` (sizes in persons) the scale phase runs last: per size, fresh databases loaded
    with COPY, a sample of their families settled closed- and open-loop (services/benchmark/scale.py)."""
    if payment_processes is None:
        payment_processes = 1 if in_process or profile else default_payment_processes()
    if cross_node and in_process:
        say("benchmark: the cross-node phase needs the servers in their own processes; skipped with --in-process")
        cross_node = False
    plaintext_baseline = _baseline_runs(plaintext_baseline, "plaintext", in_process, profile)
    observability_baseline = _baseline_runs(observability_baseline, "observability", in_process, profile)
    if gateway and profile:
        say("benchmark: under --profile direct Settle would be measured under cProfile; gateway phase skipped")
        gateway = False
    options = Options(
        postgres_url, families, tuple(concurrency), seconds, warmup, in_process,
        os.path.abspath(profile) if profile else None, profile_clock, server_log_level, json_output, cross_node,
        plaintext_baseline, observability_baseline, gateway, open_loop=open_loop or bool(rates),
        rates=tuple(rates), population=tuple(sorted(set(population))), scale_concurrency=scale_concurrency,
        scale_rate=scale_rate, payer_cache=payer_cache, payment_processes=payment_processes, one_round=one_round,
    )  # fmt: skip
    if families < 1 or seconds <= 0 or warmup < 0 or not options.concurrency or min(options.concurrency) < 1:
        say("benchmark: --families, --seconds and every --concurrency level must be positive")
        return 2
    if rates and (not open_loop or min(rates) <= 0):
        say("benchmark: every --rate must be positive, and --rate cannot go with --no-open-loop")
        return 2
    if population and (min(population) < 3 or scale_concurrency < 1 or (scale_rate is not None and scale_rate <= 0)):
        say("benchmark: every --population must be at least 3 persons (one family), --scale-concurrency and "
            "--scale-rate positive")  # fmt: skip
        return 2
    if payment_processes < 1 or (payment_processes > 1 and in_process):
        say("benchmark: --payment-processes must be at least 1, and more than 1 needs the servers in processes")
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
    gateway_ok = summary["gateway"] is None or summary["gateway"]["ok"]
    scale_ok = summary["scale"] is None or summary["scale"]["ok"]
    phases_ok = cross_ok and plaintext_ok and observed_ok and gateway_ok and scale_ok
    return 0 if summary["ledger"]["balanced"] and phases_ok else 1


def parse_rates(value: str) -> tuple[float, ...]:
    """`--rate 50,120.5` as open-loop rates (settlements per second); ValueError says what is wrong."""
    try:
        rates = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--rate takes comma-separated numbers (settlements per second), not {value!r}") from None
    if not rates or min(rates) <= 0:
        raise ValueError("--rate values must be positive")
    return rates


def parse_population(value: str) -> tuple[int, ...]:
    """`--population 10000,1000000` (or 10k,1M) as the scale phase's sizes, ascending and without
    repeats; ValueError says what is wrong."""
    sizes = []
    for part in (part.strip() for part in value.split(",")):
        if not part:
            continue
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1].lower(), 1)
        try:
            sizes.append(int(float(part[:-1] if scale > 1 else part) * scale))
        except ValueError:
            raise ValueError(f"--population takes comma-separated persons (10000, 10k, 1M), not {value!r}") from None
    if not sizes or min(sizes) < 3:
        raise ValueError("--population sizes must be at least 3 persons (one family of three)")
    return tuple(sorted(set(sizes)))


def parse_concurrency(value: str) -> tuple[int, ...]:
    """`--concurrency 1,8,32` as levels; ValueError says what is wrong."""
    try:
        levels = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--concurrency takes comma-separated integers, not {value!r}") from None
    if not levels or min(levels) < 1:
        raise ValueError("--concurrency levels must be at least 1")
    return levels
