"""The database baseline: PostgreSQL's own pgbench TPC-B (`-s 1`) on a scratch database, with as
many clients as each concurrency level: what the database alone does on this machine.

For the open-loop levels, the same database at the same arrival rates (`pgbench -R`: Poisson
arrivals, each transaction's latency counted from its scheduled start, so a transaction that waits
for its client counts the wait, as the open-loop Settle calls do). Its p99 is the floor this
machine's PostgreSQL sets under any service that commits once a call: the commit's WAL flush."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url

from services.benchmark.cpu import CpuMeter
from services.benchmark.errors import BenchmarkError
from services.benchmark.latency import percentile
from services.benchmark.options import Options
from services.benchmark.processes import Scratch
from services.benchmark.progress import say


def _pgbench_connection(url: str) -> tuple[list[str], dict[str, str]]:
    """pgbench's connection flags and environment for a SQLAlchemy URL."""
    parsed = make_url(url)
    args = []
    if parsed.host:
        args += ["-h", parsed.host]
    if parsed.port:
        args += ["-p", str(parsed.port)]
    if parsed.username:
        args += ["-U", parsed.username]
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return [*args, str(parsed.database)], env


def _pgbench_latencies(prefix: str) -> list[float]:
    """Every transaction's latency in seconds, from pgbench's per-thread logs (-l)."""
    latencies = []
    for path in glob.glob(f"{prefix}.*"):
        with open(path, encoding="ascii") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    latencies.append(int(fields[2]) / 1e6)  # microseconds
    return latencies


@dataclass(frozen=True)
class Pgbench:
    """pgbench and the scratch database it was initialised on."""

    program: str
    target: list[str]
    env: dict[str, str]
    directory: str


def prepare_pgbench(scratch: Scratch) -> Pgbench:
    """A scratch database initialised for TPC-B at scale 1."""
    program = shutil.which("pgbench")
    if program is None:
        raise BenchmarkError("pgbench is not on PATH (Debian: apt-get install postgresql-client)")
    target, env = _pgbench_connection(scratch.create_database("pgbench"))
    init = subprocess.run([program, "-i", "-s", "1", "-q", *target], capture_output=True, text=True, env=env)
    if init.returncode:
        raise BenchmarkError(f"pgbench -i failed: {init.stderr.strip()}")
    return Pgbench(program, target, env, scratch.directory)


def _run(bench: Pgbench, name: str, flags: list[str], seconds: int, meter: CpuMeter) -> dict[str, Any]:
    """One pgbench run of `seconds` with `flags`; its figures, every latency read from its logs."""
    prefix = os.path.join(bench.directory, f"pgbench_{name}")
    started = time.perf_counter()
    run = subprocess.Popen(
        [bench.program, *flags, "-T", str(seconds), "-l", f"--log-prefix={prefix}", *bench.target],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=bench.env, cwd=bench.directory,
    )  # fmt: skip
    try:
        # pgbench's backends end with it, so CPU is sampled inside the run: from 15% to 90% of it.
        time.sleep(max(0.0, started + 0.15 * seconds - time.perf_counter()))
        before = meter.snapshot()
        time.sleep(max(0.0, started + 0.9 * seconds - time.perf_counter()))
        after = meter.snapshot()
        cpu = CpuMeter.percent(before, after)
        stdout, stderr = run.communicate()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", stdout)
    if run.returncode or not found:
        raise BenchmarkError(f"pgbench {' '.join(flags)} failed: {stderr.strip() or stdout.strip()}")
    latencies = sorted(_pgbench_latencies(prefix))
    average = re.search(r"latency average = ([0-9.]+) ms", stdout)
    return {
        "seconds": seconds,
        "tps": float(found.group(1)),
        "latency_average_ms": float(average.group(1)) if average else None,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "p999_ms": percentile(latencies, 99.9) * 1000,
        "cpu_percent": cpu,
        "checkpoint_write_mb": CpuMeter.checkpoint_mb(before, after),
    }


def _cpu_text(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}%" for k, v in cpu.items())


def measure_pgbench(options: Options, bench: Pgbench, meter: CpuMeter) -> list[dict[str, Any]]:
    """TPC-B as fast as each concurrency level's clients go (a closed loop, as the Settle levels)."""
    seconds = max(1, round(options.seconds))
    results = []
    for clients in options.concurrency:
        threads = min(2, clients)
        row = _run(bench, f"c{clients}", ["-c", str(clients), "-j", str(threads)], seconds, meter)
        results.append({"concurrency": clients, "threads": threads, **row})
        say(
            f"  pgbench {clients:3d} clients: {row['tps']:8.1f} tps  p50 {row['p50_ms']:6.2f} ms  "
            f"p99 {row['p99_ms']:6.2f} ms  [CPU {_cpu_text(row['cpu_percent'])}]"
        )
    return results


def measure_pgbench_open(
    bench: Pgbench, rates: list[float], seconds: float, clients: int, meter: CpuMeter
) -> list[dict[str, Any]]:
    """TPC-B at each open-loop rate (`pgbench -R`) with `clients` connections, so one slow commit
    seldom leaves the next transaction without a client."""
    results = []
    for rate in rates:
        flags = ["-c", str(clients), "-j", str(min(2, clients)), "-R", f"{rate:g}"]
        row = _run(bench, f"r{rate:g}", flags, max(1, round(seconds)), meter)
        results.append({"rate": rate, "clients": clients, **row})
        say(
            f"  pgbench at {rate:7.1f}/s: {row['tps']:8.1f} tps  p50 {row['p50_ms']:6.2f} ms  "
            f"p99 {row['p99_ms']:6.2f} ms  p99.9 {row['p999_ms']:6.2f} ms  [CPU {_cpu_text(row['cpu_percent'])}]"
        )
    return results
