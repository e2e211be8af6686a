"""The database baseline: PostgreSQL's own pgbench TPC-B (`-s 1`) on a scratch database, with as
many clients as each concurrency level: what the database alone does on this machine."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import time
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


def measure_pgbench(options: Options, scratch: Scratch, meter: CpuMeter) -> list[dict[str, Any]]:
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        raise BenchmarkError("pgbench is not on PATH (Debian: apt-get install postgresql-client)")
    target, env = _pgbench_connection(scratch.create_database("pgbench"))
    init = subprocess.run([pgbench, "-i", "-s", "1", "-q", *target], capture_output=True, text=True, env=env)
    if init.returncode:
        raise BenchmarkError(f"pgbench -i failed: {init.stderr.strip()}")
    seconds = max(1, round(options.seconds))
    results = []
    for clients in options.concurrency:
        threads = min(2, clients)
        prefix = os.path.join(scratch.directory, f"pgbench_c{clients}")
        started = time.perf_counter()
        run = subprocess.Popen(
            [pgbench, "-c", str(clients), "-j", str(threads), "-T", str(seconds), "-l", f"--log-prefix={prefix}",
             *target],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=scratch.directory,
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
            raise BenchmarkError(f"pgbench -c {clients} failed: {stderr.strip() or stdout.strip()}")
        latencies = sorted(_pgbench_latencies(prefix))
        average = re.search(r"latency average = ([0-9.]+) ms", stdout)
        results.append(
            {
                "concurrency": clients,
                "threads": threads,
                "seconds": seconds,
                "tps": float(found.group(1)),
                "latency_average_ms": float(average.group(1)) if average else None,
                "p50_ms": percentile(latencies, 50) * 1000,
                "p99_ms": percentile(latencies, 99) * 1000,
                "cpu_percent": cpu,
                "checkpoint_write_mb": CpuMeter.checkpoint_mb(before, after),
            }
        )
        say(
            f"  pgbench {clients:3d} clients: {results[-1]['tps']:8.1f} tps  p50 {results[-1]['p50_ms']:6.2f} ms  "
            f"p99 {results[-1]['p99_ms']:6.2f} ms  [CPU {', '.join(f'{k} {v:.0f}%' for k, v in cpu.items())}]"
        )
    return results
