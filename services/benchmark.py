"""`gongji benchmark`: settlements per second and their latency on PostgreSQL,
beside two baselines measured in the same run on the same machine.

* gongji: the binding and payment services, each in its own process (as in
  production; `--in-process` runs them on threads of this process instead),
  on scratch PostgreSQL databases. N families are registered over gRPC (a
  child with two grantors who split the child's bills PROPORTIONAL, so every
  bill is a two-payer settlement), then 1, 8, 32 … concurrent callers send
  Settle as fast as the answers come back.
* Everything runs as in production: every port serves mutual TLS with
  certificates of a development CA made in the scratch directory, and every
  call passes the shipped access policy as its natural caller (a `Desk` holds
  one stub per caller): people and policies are registered by a national
  operator, bindings and payer orders made by the national app, accounts
  credited and ledgers checked by the operator, and each bill is settled by
  the hospital named in it (one certificate per institution code).
* PostgreSQL's own pgbench TPC-B (`-s 1`) with as many clients: what the
  database alone does on this machine.
* A bare grpc.aio echo server in its own process, driven by the same client
  loop over the same mutual TLS (a service certificate on the server, a
  hospital's on the client): what gRPC in Python alone costs per call, so
  settle ÷ echo compares like with like.
* The cost of security (on by default; `--no-plaintext-baseline` skips it):
  after the single-node phase the binding and payment servers are restarted
  with `--insecure` (plaintext on 127.0.0.1) on the same databases and the same
  families, and the same Settle load runs at the same concurrency levels. Those
  calls name their hospital in an `x-forwarded-client-cert` header, so the access
  policy still judges every call and only TLS differs; the report gives both
  rates and mTLS ÷ plaintext per level. The servers then get mutual TLS again.
  The phases run one after the other, and on a shared host the machine's speed
  can change in between: postgres's CPU per settlement, which TLS does not touch,
  is reported beside each ratio as a control, and the report says when it moved.
  `--in-process` skips this phase (as it skips the cross-node one), and so does
  `--profile` (the profiler would slow the mutual-TLS side only).
* Cross-node (on by default; `--no-cross-node` skips it): the payment service
  runs as two nodes on this machine, "east" (Jiangsu, 32, among others) and
  "west" (Gansu, 62, among others), each with its own scratch database and one
  routing file, which the binding service gets too (it answers only these
  nodes). The single-node figures come from families entirely in Nanjing,
  served by east alone; then as many cross-province families (child and mother
  in Nanjing, father in Lanzhou with his account on west) settle two-payer bills
  at a Nanjing hospital through east, at the same concurrency levels. Afterwards
  both ledgers must balance and both nodes must report the same clearing.

Every window also records the CPU each process used (from /proc), including
"other": what processes outside the benchmark took, since a busy machine skews
everything. It reports what it measured; it never fails on speed.
`--profile PATH` runs both services under cProfile (every thread, from the first
measured call to the last of the single-node mutual-TLS phase) and prints where
the payment service's time goes: the top functions and the share of each layer
(SQLAlchemy, psycopg, asyncio …).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import glob
import json
import logging
import math
import os
import pstats
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.database import migrate, normalise_url
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.transport import ForwardedIdentity
from shared.bindings import Channel
from shared.principals import BINDING_SERVICE, Principal, channel_principal, institution, operator, payment_node

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_CONCURRENCY = (1, 8, 32)
# The targets, checked at the highest concurrency measured.
TARGET_SHARE_OF_PGBENCH = 0.25
TARGET_P99_MS = 50.0
TARGET_CALLERS = 32

ADMDVS = "320100"  # Nanjing
WEST_ADMDVS = "620100"  # Lanzhou: the cross-node families' fathers
EAST_PROVINCES = ("11", "12", "31", "32", "33", "34", "35", "36", "44")
WEST_PROVINCES = ("37", "41", "42", "50", "51", "61", "62", "63", "64", "65")
INSTITUTIONS = tuple(f"H320100{n:02d}" for n in range(1, 9))
# 100,000 yuan per grantor: no bill is ever short of money, and no more than one
# PaymentService call may move (`gongji serve payment --max-amount-fen`, default 10,000,000).
CREDIT_FEN = 10_000_000
ECHO_METHOD = "/gongji.benchmark.Echo/Echo"
CALL_TIMEOUT = 10.0
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

# Who makes which call (the shipped access policy, services/common/security/access_policy.json).
OPERATOR = operator("000000", "bench-ops")  # national: registers people and policies, credits, checks ledgers
APP = channel_principal(Channel.NATIONAL_APP)  # makes the bindings and payer orders (request channel NATIONAL_APP)
EAST = payment_node("east")  # the payment server of the single-node phase, and east of the cross-node one
WEST = payment_node("west")
# Every channel its own connection, secure or not: gRPC would otherwise let plaintext channels to one
# address share a connection while each certificate gets its own, and the phases would not compare.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
BINDING = "gongji.binding.v1.BindingService"
PAYMENT = "gongji.payment.v1.PaymentService"


class BenchmarkError(Exception):
    """The benchmark could not run; the message says why."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Measuring -----------------------------------------------------------------------------


def percentile(sorted_values: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(latencies_s: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies_s)
    ms = 1000.0
    return {
        "calls": len(ordered),
        "per_second": len(ordered) / seconds if seconds > 0 else 0.0,
        "mean_ms": sum(ordered) / len(ordered) * ms if ordered else 0.0,
        "p50_ms": percentile(ordered, 50) * ms,
        "p90_ms": percentile(ordered, 90) * ms,
        "p99_ms": percentile(ordered, 99) * ms,
        "max_ms": (ordered[-1] if ordered else 0.0) * ms,
    }


def _proc_cpu_seconds(pid: int | str, tick: int) -> tuple[str, float] | None:
    """(command name, user + system CPU seconds) of a process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            raw = handle.read()
    except OSError:
        return None
    name = raw[raw.find("(") + 1 : raw.rfind(")")]
    fields = raw[raw.rfind(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / tick


def _cmdline(pid: int | str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class CpuMeter:
    """CPU used by this process, the service processes and PostgreSQL (Linux /proc;
    elsewhere only this process). "postgres" counts only the backends serving the
    databases whose names contain `database_marker` (the server may be serving
    others too); "postgres-shared" the postmaster and its background workers
    (WAL writer, checkpointer …), which work for every database."""

    def __init__(self, processes: dict[str, int] | None = None, database_marker: str = "") -> None:
        self.processes = dict(processes or {})
        self.database_marker = database_marker
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _postgres_group(self, pid: str) -> str | None:
        command = _cmdline(pid)
        if self.database_marker and self.database_marker in command:
            return "postgres"
        if "127.0.0.1(" in command or "[local]" in command or re.search(r"\(\d+\)", command):
            return None  # a backend of somebody else's database
        return "postgres-shared"

    def snapshot(self) -> tuple[float, dict[str, dict[int, float]]]:
        times = os.times()
        taken: dict[str, dict[int, float]] = {"client": {os.getpid(): times.user + times.system}}
        for name, pid in self.processes.items():
            found = _proc_cpu_seconds(pid, self._tick)
            if found is not None:
                taken[name] = {pid: found[1]}
        busy = _machine_busy_seconds(self._tick)
        if busy is not None:
            taken["machine"] = {0: busy}
        if os.path.isdir("/proc"):
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                found = _proc_cpu_seconds(entry, self._tick)
                if found is None or found[0] not in ("postgres", "pgbench"):
                    continue
                group = found[0] if found[0] == "pgbench" else self._postgres_group(entry)
                if group is not None:
                    taken.setdefault(group, {})[int(entry)] = found[1]
        return time.perf_counter(), taken

    @staticmethod
    def percent(
        before: tuple[float, dict[str, dict[int, float]]], after: tuple[float, dict[str, dict[int, float]]]
    ) -> dict[str, float]:
        """Percent of one core each group used between two snapshots; "machine" is every
        core's busy time, "other" what processes outside the benchmark used."""
        wall = after[0] - before[0]
        if wall <= 0:
            return {}
        used = {}
        for name, pids in after[1].items():
            earlier = before[1].get(name, {})
            used[name] = round(sum(cpu - earlier.get(pid, 0.0) for pid, cpu in pids.items()) / wall * 100, 1)
        if "machine" in used:
            machine = used.pop("machine")
            used["other"] = round(max(0.0, machine - sum(used.values())), 1)
            used["machine"] = machine
        return used


def _machine_busy_seconds(tick: int) -> float | None:
    """CPU seconds all cores spent busy since boot (not idle, not waiting for I/O)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(value) for value in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / tick


@dataclass
class Level:
    concurrency: int
    summary: dict[str, float]
    errors: dict[str, int]
    cpu_percent: dict[str, float]


async def drive(
    call: Callable[[], Awaitable[Any]],
    concurrency: int,
    warmup: float,
    seconds: float,
    on_answer: Callable[[Any], None] | None = None,
    meter: CpuMeter | None = None,
) -> Level:
    """`concurrency` closed-loop callers; counts the calls that complete inside the
    `seconds` window that follows `warmup`."""
    window_start = time.perf_counter() + warmup
    window_end = window_start + seconds
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def caller() -> None:
        while (began := time.perf_counter()) < window_end:
            try:
                answer = await call()
            except grpc.aio.AioRpcError as error:
                if window_start <= time.perf_counter() < window_end:
                    errors[f"{error.code().name}: {error.details()}"[:160]] += 1
                continue
            ended = time.perf_counter()
            if window_start <= ended < window_end:
                latencies.append(ended - began)
                if on_answer is not None:
                    on_answer(answer)

    async def watch_cpu() -> dict[str, float]:
        if meter is None:
            return {}
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        before = meter.snapshot()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        return CpuMeter.percent(before, meter.snapshot())

    cpu, *_ = await asyncio.gather(watch_cpu(), *(caller() for _ in range(concurrency)))
    return Level(concurrency, latency_summary(latencies, seconds), dict(errors), cpu)


# Scratch databases and server processes -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: str
    address: str

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""


class Scratch:
    """Owns everything the benchmark creates and removes it on exit, errors and Ctrl-C
    included: server processes (SIGTERM, then SIGKILL), databases, a temporary directory."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = normalise_url(admin_url)
        self.run_id = uuid.uuid4().hex[:8]
        self.marker = f"gongji_bench_{self.run_id}_"  # in every scratch database's name
        self.directory = tempfile.mkdtemp(prefix="gongji-bench-")
        self.databases: list[str] = []
        self.processes: list[Process] = []

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def check_postgres(self) -> None:
        try:
            engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as error:
            raise BenchmarkError(
                f"PostgreSQL at {make_url(self.admin_url).render_as_string()} is not reachable: "
                f"{error.__class__.__name__}: {str(error).strip().splitlines()[0]}"
            ) from None

    def create_database(self, suffix: str) -> str:
        name = f"{self.marker}{suffix}"
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        self.databases.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def spawn(self, name: str, argv: list[str], address: str) -> Process:
        log_path = os.path.join(self.directory, f"{name}.log")
        with open(log_path, "wb") as log_file:
            popen = subprocess.Popen(
                [sys.executable, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        process = Process(name, popen, log_path, address)
        self.processes.append(process)
        return process

    def stop(self, process: Process, timeout: float = 20.0) -> None:
        if process.popen.poll() is None:
            process.popen.send_signal(signal.SIGTERM)
            try:
                process.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _say(f"{process.name} did not stop within {timeout:.0f}s of SIGTERM; killing it")
                process.popen.kill()
                process.popen.wait()
        if process in self.processes:
            self.processes.remove(process)

    def close(self) -> None:
        for process in list(self.processes):
            with contextlib.suppress(Exception):
                self.stop(process)
        if self.databases:
            try:
                engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
                with engine.connect() as connection:
                    for name in self.databases:
                        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                engine.dispose()
                self.databases.clear()
            except Exception as error:
                _say(f"could not drop the scratch databases {self.databases}: {error}")
        shutil.rmtree(self.directory, ignore_errors=True)


def _wait_serving(
    process: Process | None,
    address: str,
    service: str,
    credentials: grpc.ChannelCredentials | None,
    timeout: float = 60.0,
) -> None:
    """Waits for the health check to answer SERVING: over mutual TLS with `credentials`
    (anyone authenticated may ask), in plaintext without (a server started --insecure)."""
    deadline = time.monotonic() + timeout
    opened = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with opened as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process is not None and process.popen.poll() is not None:
                raise BenchmarkError(
                    f"the {process.name} server exited with {process.popen.returncode}:\n{process.log_tail()}"
                )
            with contextlib.suppress(grpc.RpcError):
                answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
    tail = process.log_tail() if process is not None else ""
    raise BenchmarkError(f"{service or address} did not become SERVING within {timeout:.0f}s\n{tail}")


# The echo baseline ---------------------------------------------------------------------


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


class _EchoHandler(grpc.GenericRpcHandler):
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if handler_call_details.method == ECHO_METHOD:  # type: ignore[attr-defined]
            return grpc.unary_unary_rpc_method_handler(_echo)  # no serializers: bytes in, bytes out
        return None


async def _serve_echo(address: str, cert: Path, key: Path, ca: Path) -> None:
    """Echoes every request, behind mutual TLS as gongji's ports are: the server presents `cert`
    and requires a client certificate signed by `ca`."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_EchoHandler(),))
    credentials = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())], root_certificates=ca.read_bytes(), require_client_auth=True
    )
    server.add_secure_port(address, credentials)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0.5)


# Profiling a server process ---------------------------------------------------------------


ProfileStats = dict[tuple[str, int, str], tuple[int, int, float, float, dict[Any, tuple[Any, ...]]]]
PROFILE_START_SIGNAL = signal.SIGUSR1  # leave out what was counted so far
PROFILE_STOP_SIGNAL = signal.SIGUSR2  # leave out what is counted from now on


def _merge_stats(into: ProfileStats, stats: ProfileStats, sign: int = 1) -> None:
    """Adds (sign 1) or subtracts (sign -1) one profile's stats, pstats' layout."""
    for func, (cc, nc, tt, ct, callers) in stats.items():
        old = into.get(func, (0, 0, 0.0, 0.0, {}))
        merged_callers = dict(old[4])
        for caller, values in callers.items():
            previous = merged_callers.get(caller, (0,) * len(values))
            merged_callers[caller] = tuple(a + sign * b for a, b in zip(previous, values, strict=True))
        into[func] = (old[0] + sign * cc, old[1] + sign * nc, old[2] + sign * tt, old[3] + sign * ct, merged_callers)


def _snapshot(profiles: list[cProfile.Profile]) -> ProfileStats:
    merged: ProfileStats = {}
    for profile in list(profiles):
        profile.snapshot_stats()  # reads the counters without stopping the profiler
        _merge_stats(merged, profile.stats)  # type: ignore[attr-defined]
    return merged


def profiled_cli(path: str, clock: str, argv: list[str]) -> int:
    """Runs `gongji ARGV` with every Python thread under cProfile and writes the merged
    stats to PATH when the command returns (a served process: on SIGTERM).

    SIGUSR1 marks the start of the measurement and SIGUSR2 its end: what was counted
    before (start-up, migrations, registering the families) and after (the ledger
    check, shutdown) is left out of PATH; PATH.marked appears once a mark is taken.
    clock "cpu" counts each thread's own CPU time (idle pool
    threads cost nothing); "wall" counts elapsed time, waits on the database and the
    network included."""
    import marshal

    from services.cli import main

    timer = time.thread_time if clock == "cpu" else time.perf_counter
    live: list[cProfile.Profile] = []
    marks: dict[int, ProfileStats] = {}
    original_run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile(timer)
        live.append(profile)
        profile.enable()
        try:
            original_run(thread)
        finally:
            profile.disable()

    main_profile = cProfile.Profile(timer)
    live.append(main_profile)

    def mark(signum: int, frame: FrameType | None) -> None:
        main_profile.disable()  # the handler runs on the main thread: leave its own work out
        try:
            marks[signum] = _snapshot(live)
        finally:
            main_profile.enable()
        with open(f"{path}.marked", "w", encoding="ascii") as marked:
            marked.write("marked\n")

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    for signum in (PROFILE_START_SIGNAL, PROFILE_STOP_SIGNAL):
        signal.signal(signum, mark)
    main_profile.enable()
    try:
        return main(argv)
    finally:
        main_profile.disable()
        for signum in (PROFILE_START_SIGNAL, PROFILE_STOP_SIGNAL):
            signal.signal(signum, signal.SIG_IGN)
        stats = marks.get(PROFILE_STOP_SIGNAL) or _snapshot(live)
        _merge_stats(stats, marks.get(PROFILE_START_SIGNAL, {}), sign=-1)
        stats = {func: row for func, row in stats.items() if row[1] > 0}
        with open(path, "wb") as out:
            marshal.dump(stats, out)


def _mark_profiles(path: str, pids: dict[str, int], signum: int, timeout: float = 10.0) -> None:
    """Marks the start or the end of the measurement in the profiled servers."""
    for name, pid in pids.items():
        target = path if name == "payment" else f"{path}.binding"
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{target}.marked")
        os.kill(pid, signum)
        deadline = time.monotonic() + timeout
        while not os.path.exists(f"{target}.marked"):
            if time.monotonic() > deadline:
                raise BenchmarkError(f"the profiled {name} server did not take the mark within {timeout:.0f}s")
            time.sleep(0.05)
        os.remove(f"{target}.marked")


def _short(filename: str) -> str:
    if filename == "~":
        return ""
    for prefix in sorted({*sys.path, os.getcwd()}, key=len, reverse=True):
        if prefix and filename.startswith(prefix.rstrip("/") + "/"):
            return filename[len(prefix.rstrip("/")) + 1 :]
    return filename


def profile_rows(path: str, sort: str, limit: int, per: int) -> list[dict[str, Any]]:
    """The top functions of a cProfile dump; `per` normalises times to per-settlement ms."""
    raw = pstats.Stats(path).stats  # type: ignore[attr-defined]
    key_index = 3 if sort == "cumulative" else 2
    rows = sorted(raw.items(), key=lambda item: item[1][key_index], reverse=True)[:limit]
    result = []
    for (filename, line, function), (_primitive, calls, own, cumulative, _callers) in rows:
        where = _short(filename)
        result.append(
            {
                "function": f"{where}:{line}({function})" if where else function,
                "calls": calls,
                "tottime_s": round(own, 4),
                "cumtime_s": round(cumulative, 4),
                "tottime_ms_per_settlement": round(own / per * 1000, 4) if per else None,
                "cumtime_ms_per_settlement": round(cumulative / per * 1000, 4) if per else None,
            }
        )
    return result


_LAYERS = (
    ("/sqlalchemy/", "sqlalchemy"),
    ("/psycopg", "psycopg"),
    ("/grpc", "grpc (Python side)"),
    ("/google/protobuf/", "protobuf"),
    ("/asyncio/", "asyncio"),
    ("/selectors.py", "asyncio"),
    ("/logging/", "logging"),
    ("/stdnum/", "stdnum (ID numbers)"),
    ("/concurrent/futures/", "thread pool"),
    ("/threading.py", "thread pool"),
    ("/queue.py", "thread pool"),
    ("/services/", "gongji services"),
    ("/shared/", "gongji domain"),
    ("/gongji/", "generated stubs"),
)


def _layer(filename: str) -> str:
    for needle, layer in _LAYERS:
        if needle in filename:
            return layer
    return "other Python"


def profile_layers(path: str, per: int) -> list[dict[str, Any]]:
    """Own time summed by library: which layer of the stack the time is spent in. Time in
    C built-ins (len, isinstance, socket calls …) goes to the layer that called them."""
    raw = pstats.Stats(path).stats  # type: ignore[attr-defined]
    totals: Counter[str] = Counter()
    for (filename, _line, _function), row in raw.items():
        if filename != "~":
            totals[_layer(filename)] += row[2]
            continue
        callers = {caller: values[2] for caller, values in row[4].items() if caller[0] != "~"}
        attributed = sum(callers.values())
        for caller, own in callers.items():
            totals[_layer(caller[0])] += own
        if row[2] - attributed > 1e-9:
            totals["C built-ins"] += row[2] - attributed
    whole = sum(totals.values()) or 1.0
    return [
        {
            "layer": layer,
            "own_s": round(own, 3),
            "percent": round(own / whole * 100, 1),
            "ms_per_settlement": round(own / per * 1000, 3) if per else None,
        }
        for layer, own in totals.most_common()
    ]


# Who calls: a desk of stubs, one per natural caller ---------------------------------------

Connect = Callable[[str, Principal], grpc.aio.Channel]


def mutual_tls(pki: DevelopmentPKI) -> Connect:
    """Channels that present the principal's certificate, as every caller of a gongji port must."""

    def connect(address: str, principal: Principal) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(address, pki.credentials(principal), options=CHANNEL_OPTIONS)

    return connect


def plaintext(address: str, principal: Principal) -> grpc.aio.Channel:
    """A plaintext channel to a server started with --insecure, each call naming the principal in
    x-forwarded-client-cert (as a TLS-terminating sidecar would): the access policy still applies."""
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=[ForwardedIdentity(principal)])


@dataclass
class Desk:
    """The benchmark's stubs, each making its calls as the principal a deployment would."""

    registry: binding_grpc.BindingServiceStub  # the national operator: people, region policies
    app: binding_grpc.BindingServiceStub  # the national app: bindings, payer orders
    treasury: payment_grpc.PaymentServiceStub  # the national operator: credits, ledger, clearing report
    hospitals: dict[str, payment_grpc.PaymentServiceStub]  # one per institution code: Settle

    async def settle(self, request: papi.SettleRequest) -> papi.SettleResponse:
        """Settles the bill as the institution named in it."""
        return await self.hospitals[request.bill.institution_code].Settle(request, timeout=CALL_TIMEOUT)


@contextlib.asynccontextmanager
async def open_desk(binding_address: str, payment_address: str, connect: Connect) -> AsyncIterator[Desk]:
    """A desk on these servers; its channels close when the block ends. A channel connects on
    its first call, so stubs a phase does not use cost nothing."""
    channels: list[grpc.aio.Channel] = []

    def channel(address: str, principal: Principal) -> grpc.aio.Channel:
        channels.append(connect(address, principal))
        return channels[-1]

    try:
        yield Desk(
            registry=binding_grpc.BindingServiceStub(channel(binding_address, OPERATOR)),
            app=binding_grpc.BindingServiceStub(channel(binding_address, APP)),
            treasury=payment_grpc.PaymentServiceStub(channel(payment_address, OPERATOR)),
            hospitals={
                code: payment_grpc.PaymentServiceStub(channel(payment_address, institution(code)))
                for code in INSTITUTIONS
            },
        )
    finally:
        await asyncio.gather(*(opened.close() for opened in channels))


# Families -------------------------------------------------------------------------------


def _id_number(birth: date, sequence: int, area: str = "320102") -> str:
    body = f"{area}{birth:%Y%m%d}{sequence:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True)) % 11]


def _person_id(base: date, index: int) -> str:
    return _id_number(base + timedelta(days=index // 1000), index % 1000)


@dataclass(frozen=True)
class Family:
    child: str
    grantors: tuple[str, str]


def _rid() -> str:
    return str(uuid.uuid4())


async def register_family(number: int, desk: Desk) -> Family:
    """Two employee grantors, one resident child, both bindings ACTIVE, PROPORTIONAL
    payer order, and both personal accounts credited."""
    mother = _person_id(date(1975, 1, 1), 2 * number)
    father = _person_id(date(1975, 1, 1), 2 * number + 1)
    child = _person_id(date(2012, 1, 1), number)
    await _bind_family(desk, f"family {number}", f"birth-{number}", (mother, ADMDVS), (father, ADMDVS), child)
    for grantor in (mother, father):
        await _credit(desk.treasury, grantor, ADMDVS)
    return Family(child, (mother, father))


async def _bind_family(
    desk: Desk,
    label: str,
    proof_ref: str,
    mother: tuple[str, str],
    father: tuple[str, str],
    child: str,
) -> None:
    """Registers mother and father (id number, admdvs) and the child, insured in the mother's
    region (as the operator); binds both parents to the child, ACTIVE, in a PROPORTIONAL payer
    order (as the national app)."""
    people = ((*mother, "李妈妈", False), (*father, "王爸爸", False), (child, mother[1], "王小宝", True))
    for id_number, admdvs, name, resident in people:
        person = bpb.InsuredPerson(
            id_number=id_number, name=name,
            insurance_type=common.INSURANCE_TYPE_RESIDENT if resident else common.INSURANCE_TYPE_EMPLOYEE,
            status=common.INSURANCE_STATUS_NORMAL, admdvs=admdvs, phone="13800000000",
            has_personal_account=not resident,
        )  # fmt: skip
        await desk.registry.UpsertInsuredPerson(
            bapi.UpsertInsuredPersonRequest(request_id=_rid(), insured_person=person), timeout=CALL_TIMEOUT
        )
    binding_ids = []
    for grantor, name in ((mother[0], "李妈妈"), (father[0], "王爸爸")):
        created = await desk.app.CreateBinding(
            bapi.CreateBindingRequest(
                request_id=_rid(),
                grantor=bapi.PersonIdentity(id_number=grantor, name=name),
                beneficiary=bapi.PersonIdentity(id_number=child, name="王小宝"),
                relationship=common.RELATIONSHIP_CHILD,
                proofs=[bpb.Proof(type=bpb.PROOF_TYPE_BIRTH_CERTIFICATE, document_ref=proof_ref)],
                consent_version="notice-2025-01",
                channel=common.CHANNEL_NATIONAL_APP,  # the caller's own channel, as the policy demands
            ),
            timeout=CALL_TIMEOUT,
        )
        if created.binding.state != bpb.BINDING_STATE_ACTIVE:
            raise BenchmarkError(f"{label}: binding is {bpb.BindingState.Name(created.binding.state)}")
        binding_ids.append(created.binding.binding_id)
    await desk.app.SetPayerOrder(
        bapi.SetPayerOrderRequest(
            request_id=_rid(), beneficiary_id_number=child, binding_ids=binding_ids, mode=bpb.PAYER_MODE_PROPORTIONAL
        ),
        timeout=CALL_TIMEOUT,
    )


async def _credit(treasury: payment_grpc.PaymentServiceStub, grantor: str, admdvs: str) -> None:
    await treasury.CreditAccount(
        papi.CreditAccountRequest(
            request_id=_rid(), id_number=grantor, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
            amount_fen=CREDIT_FEN, kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, period="2026-01", admdvs=admdvs,
        ),
        timeout=CALL_TIMEOUT,
    )  # fmt: skip


def settle_request(family: Family, rng: random.Random) -> papi.SettleRequest:
    return papi.SettleRequest(
        request_id=_rid(),
        bill=ppb.Bill(
            institution_code=rng.choice(INSTITUTIONS),
            institution_admdvs=ADMDVS,
            patient_id_number=family.child,
            credential=ppb.Credential(type=ppb.CREDENTIAL_TYPE_CARD, holder_id_number=family.child),
            use_category=common.USE_CATEGORY_OUTPATIENT,
            self_pay_fen=rng.randint(200, 3000),
        ),
    )


# The run -------------------------------------------------------------------------------


@dataclass
class Options:
    postgres_url: str = DEFAULT_POSTGRES_URL
    families: int = 200
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY
    seconds: float = 10.0
    warmup: float = 2.0
    in_process: bool = False
    profile: str | None = None
    profile_clock: str = "cpu"
    server_log_level: str = "INFO"
    json_output: bool = False
    cross_node: bool = True
    plaintext_baseline: bool = True


@dataclass
class Servers:
    binding_address: str
    payment_address: str  # node "east"
    pids: dict[str, int] = field(default_factory=dict)  # kept current across restarts
    stop: Callable[[], None] = lambda: None
    west_address: str | None = None  # the second payment node, for the cross-node phase
    west_pid: int | None = None
    # Stops binding and east and starts them again on the same addresses and databases: with
    # --insecure (plaintext) when given True, with mutual TLS when given False. None in-process.
    restart: Callable[[bool], None] | None = None


def _start_subprocess_servers(scratch: Scratch, options: Options, urls: dict[str, str], pki: DevelopmentPKI) -> Servers:
    binding_address = f"127.0.0.1:{_free_port()}"
    payment_address = f"127.0.0.1:{_free_port()}"
    common_args = ["--log-level", options.server_log_level, "serve"]
    binding_args = [*common_args, "binding", "--address", binding_address, "--database", urls["binding"]]
    payment_args = [
        *common_args, "payment", "--address", payment_address, "--database", urls["payment"],
        "--binding-address", binding_address, "--grace", "5", "--verifier", "stand-in", "--node", "east",
    ]  # fmt: skip
    west_address = west_args = None
    if options.cross_node:
        west_address = f"127.0.0.1:{_free_port()}"
        routing = os.path.join(scratch.directory, "routing.json")
        with open(routing, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "nodes": {
                        "east": {"address": payment_address, "provinces": list(EAST_PROVINCES)},
                        "west": {"address": west_address, "provinces": list(WEST_PROVINCES)},
                    }
                },
                handle,
            )
        west_args = [
            *common_args, "payment", "--address", west_address, "--database", urls["payment_west"],
            "--binding-address", binding_address, "--grace", "5", "--verifier", "stand-in",
            "--routing", routing, "--node", "west", *pki.args(WEST),
        ]  # fmt: skip
        payment_args += ["--routing", routing]
        binding_args += ["--routing", routing]  # the binding service answers only the routing file's nodes
    health = pki.credentials(OPERATOR)

    def command(name: str, args: list[str], profiled: bool) -> list[str]:
        if profiled and options.profile:
            path = options.profile if name == "payment" else f"{options.profile}.binding"
            return ["-m", "services.benchmark", "profile", path, options.profile_clock, *args]
        return ["-m", "services.cli", *args]

    def start_pair(plaintext: bool, log_suffix: str = "", profiled: bool = False) -> tuple[Process, Process]:
        """Binding, then payment east: with mutual TLS, or plaintext with --insecure (the rest alike)."""
        binding_security = ["--insecure"] if plaintext else pki.args(BINDING_SERVICE)
        payment_security = ["--insecure"] if plaintext else pki.args(EAST)
        credentials = None if plaintext else health
        binding = scratch.spawn(
            f"binding{log_suffix}", command("binding", [*binding_args, *binding_security], profiled), binding_address
        )
        _wait_serving(binding, binding_address, BINDING, credentials)
        payment = scratch.spawn(
            f"payment{log_suffix}", command("payment", [*payment_args, *payment_security], profiled), payment_address
        )
        _wait_serving(payment, payment_address, PAYMENT, credentials)
        return binding, payment

    # Only the first start is profiled: the profile is of the single-node mutual-TLS phase.
    binding, payment = start_pair(plaintext=False, profiled=True)
    west = None
    if west_address and west_args:  # never profiled
        west = scratch.spawn("west", ["-m", "services.cli", *west_args], west_address)
        _wait_serving(west, west_address, PAYMENT, health)
    servers = Servers(
        binding_address, payment_address, {"binding": binding.popen.pid, "payment": payment.popen.pid},
        west_address=west_address, west_pid=west.popen.pid if west is not None else None,
    )  # fmt: skip

    def restart(plaintext: bool) -> None:
        nonlocal binding, payment
        scratch.stop(payment)
        scratch.stop(binding)
        binding, payment = start_pair(plaintext, log_suffix="-plaintext" if plaintext else "-mtls")
        servers.pids.update(binding=binding.popen.pid, payment=payment.popen.pid)

    def stop() -> None:
        if west is not None:
            scratch.stop(west)
        scratch.stop(payment)
        scratch.stop(binding)

    servers.stop, servers.restart = stop, restart
    return servers


def _start_in_process_servers(scratch: Scratch, options: Options, urls: dict[str, str], pki: DevelopmentPKI) -> Servers:
    from services.binding.app import BindingSettings, start_binding_server
    from services.common.hosting import BackgroundServer
    from services.common.server import ServerSecurity
    from services.payment.app import PaymentSettings, start_payment_server
    from services.payment.routing import RoutingTable
    from services.payment.verification import StandInVerifier

    # One line per call, as `gongji serve` writes it, into a file instead of the terminal.
    rpc_log = logging.getLogger("gongji.rpc")
    saved = rpc_log.propagate, rpc_log.level
    handler = logging.FileHandler(os.path.join(scratch.directory, "servers.log"))
    rpc_log.propagate = False
    rpc_log.setLevel(getattr(logging, options.server_log_level.upper(), logging.INFO))
    rpc_log.addHandler(handler)

    def restore_logging() -> None:
        rpc_log.removeHandler(handler)
        handler.close()
        rpc_log.propagate, rpc_log.level = saved

    binding_settings = BindingSettings(
        database_url=urls["binding"], security=ServerSecurity(pki.transport(BINDING_SERVICE)),
        address="127.0.0.1:0", migrate_on_start=False,
    )  # fmt: skip
    binding: BackgroundServer | None = None
    try:
        binding = BackgroundServer(lambda: start_binding_server(binding_settings)).start()
        payment_settings = PaymentSettings(
            database_url=urls["payment"],
            security=ServerSecurity(pki.transport(EAST)),
            verifier=StandInVerifier(),
            address="127.0.0.1:0",
            binding_address=binding.address,
            migrate_on_start=False,
            routing=RoutingTable.single("east"),
        )
        payment = BackgroundServer(lambda: start_payment_server(payment_settings)).start()
    except BaseException:
        if binding is not None:
            binding.stop()
        restore_logging()
        raise

    def stop() -> None:
        try:
            payment.stop()
            binding.stop()
        finally:
            restore_logging()

    return Servers(binding.address, payment.address, {}, stop)


@dataclass
class SettleLoad:
    """Settle as fast as the answers come back: a random family's bill at a random hospital,
    sent by that hospital."""

    desk: Desk
    families: list[Family]
    rng: random.Random
    sent: int = 0
    succeeded: int = 0

    async def settle(self) -> papi.SettleResponse:
        self.sent += 1
        answer = await self.desk.settle(settle_request(self.rng.choice(self.families), self.rng))
        self.succeeded += 1
        return answer

    async def run_levels(
        self, what: str, options: Options, meter: CpuMeter, on_answer: Callable[[papi.SettleResponse], None]
    ) -> list[Level]:
        levels = []
        for concurrency in options.concurrency:
            level = await drive(self.settle, concurrency, options.warmup, options.seconds, on_answer, meter)
            levels.append(level)
            _say(_level_line(what, level))
        return levels


async def _measure_settlements(options: Options, servers: Servers, connect: Connect, meter: CpuMeter) -> dict[str, Any]:
    async with open_desk(servers.binding_address, servers.payment_address, connect) as desk:
        _say(f"registering {options.families} families (3 persons, 2 bindings, 2 credits each) …")
        started = time.perf_counter()
        gate = asyncio.Semaphore(16)

        async def register(number: int) -> Family:
            async with gate:
                return await register_family(number, desk)

        families = await asyncio.gather(*(register(n) for n in range(options.families)))
        _say(f"  done in {time.perf_counter() - started:.1f}s")

        rng = random.Random(20260301)
        sample = (await desk.settle(settle_request(families[0], rng))).settlement
        sources = [ppb.PaymentSource.Name(leg.source) for leg in sample.legs]
        if len(sample.legs) != 2 or sample.cash_pay_fen:
            raise BenchmarkError(f"expected a two-payer settlement, got legs {sources}, cash {sample.cash_pay_fen}")
        _say(f"a sample bill settles in 2 legs: {', '.join(sources)}")
        if options.profile:
            _mark_profiles(options.profile, servers.pids, PROFILE_START_SIGNAL)

        legs: Counter[int] = Counter()
        load = SettleLoad(desk, families, rng)
        levels = await load.run_levels(
            "settle", options, meter, lambda answer: legs.update([len(answer.settlement.legs)])
        )

        if options.profile:
            _mark_profiles(options.profile, servers.pids, PROFILE_STOP_SIGNAL)
        _say("checking the ledger …")
        ledger = await desk.treasury.CheckLedger(papi.CheckLedgerRequest(), timeout=300)
        return {
            "families": families,  # for the plaintext phase; not part of the summary
            "levels": levels,
            "legs": dict(legs),
            "settle_calls_sent": load.sent,
            # With the sample; every one is a journal entry, as is every credit.
            "settlements_made": load.succeeded + 1,
            "ledger": _ledger_dict(ledger),
        }


# The cost of security -------------------------------------------------------------------------


async def _measure_plaintext(
    options: Options, servers: Servers, families: list[Family], meter: CpuMeter
) -> dict[str, Any]:
    """The single-node phase's Settle load again, on binding and east restarted with --insecure:
    plaintext channels whose calls name their hospital in x-forwarded-client-cert, so the access
    policy still judges each one and only TLS differs. The families are those already registered."""
    async with open_desk(servers.binding_address, servers.payment_address, plaintext) as desk:
        rng = random.Random(20260303)
        sample = (await desk.settle(settle_request(families[0], rng))).settlement  # as the mTLS phase's sample
        if len(sample.legs) != 2:
            raise BenchmarkError(f"plaintext: expected a two-payer settlement, got {len(sample.legs)} legs")
        legs: Counter[int] = Counter()
        load = SettleLoad(desk, families, rng)
        levels = await load.run_levels(
            "plain", options, meter, lambda answer: legs.update([len(answer.settlement.legs)])
        )
        _say("checking the ledger (plaintext, as the operator) …")
        ledger = await desk.treasury.CheckLedger(papi.CheckLedgerRequest(), timeout=300)
    return {
        "levels": levels,
        "legs": dict(legs),
        "settlements_made": load.succeeded + 1,
        "ledger": _ledger_dict(ledger),
    }


# The cross-node phase ---------------------------------------------------------------------


def _china_today() -> str:
    """Today in China Standard Time (UTC+8), the clearing report's day."""
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))


async def put_cross_province_policies(registry: binding_grpc.BindingServiceStub) -> None:
    """Jiangsu and Gansu let a grantor in either province pay for a beneficiary in the other
    (put by the national operator)."""
    for province in ("320000", "620000"):
        policy = bpb.RegionPolicy(
            admdvs=province, relationship_scope=bpb.RELATIONSHIP_SCOPE_EXTENDED, max_beneficiaries=6,
            geographic_scope=bpb.GEOGRAPHIC_SCOPE_CROSS_PROVINCE, cross_province_provinces=["32", "62"],
            allowed_uses=[common.USE_CATEGORY_OUTPATIENT], auto_approve_relationships=[common.RELATIONSHIP_CHILD],
            contact_change_grace_days=15,
        )  # fmt: skip
        policy.effective_from.FromSeconds(0)
        await registry.PutRegionPolicy(
            bapi.PutRegionPolicyRequest(request_id=_rid(), policy=policy), timeout=CALL_TIMEOUT
        )


async def register_cross_family(number: int, east: Desk, west: Desk) -> Family:
    """A resident child and an employee mother in Nanjing, an employee father in Lanzhou;
    both bindings ACTIVE, PROPORTIONAL payer order; the mother credited on east, the
    father on west, so every bill has one leg on each node."""
    mother = _id_number(date(1980, 1, 1) + timedelta(days=number // 1000), number % 1000)
    father = _id_number(date(1980, 1, 1) + timedelta(days=number // 1000), number % 1000, area="620102")
    child = _id_number(date(2015, 1, 1) + timedelta(days=number // 1000), number % 1000)
    await _bind_family(
        east, f"cross family {number}", f"cross-birth-{number}", (mother, ADMDVS), (father, WEST_ADMDVS), child
    )
    await _credit(east.treasury, mother, ADMDVS)
    await _credit(west.treasury, father, WEST_ADMDVS)
    return Family(child, (mother, father))


def _ledger_dict(ledger: papi.CheckLedgerResponse) -> dict[str, Any]:
    return {
        "balanced": ledger.balanced,
        "entry_count": ledger.entry_count,
        "account_count": ledger.account_count,
        "problems": list(ledger.problems)[:20],
    }


async def _measure_cross_node(options: Options, servers: Servers, connect: Connect, meter: CpuMeter) -> dict[str, Any]:
    """Bills go to east, as the hospital; west is asked only for credits, its ledger and its clearing."""
    assert servers.west_address is not None
    async with (
        open_desk(servers.binding_address, servers.payment_address, connect) as east,
        open_desk(servers.binding_address, servers.west_address, connect) as west,
    ):
        _say(f"cross-node: registering {options.families} families (child + mother in {ADMDVS} on east, "
             f"father in {WEST_ADMDVS} credited on west) …")  # fmt: skip
        started = time.perf_counter()
        await put_cross_province_policies(east.registry)
        gate = asyncio.Semaphore(16)

        async def register(number: int) -> Family:
            async with gate:
                return await register_cross_family(number, east, west)

        families = await asyncio.gather(*(register(n) for n in range(options.families)))
        _say(f"  done in {time.perf_counter() - started:.1f}s")

        rng = random.Random(20260302)
        sample = (await east.settle(settle_request(families[0], rng))).settlement
        where = [f"{ppb.PaymentSource.Name(leg.source)}@{leg.payer_admdvs}" for leg in sample.legs]
        if (
            len(sample.legs) != 2
            or sample.cash_pay_fen
            or [leg.payer_admdvs for leg in sample.legs].count(WEST_ADMDVS) != 1
        ):
            raise BenchmarkError(
                f"expected a cross-node settlement with one leg paid in {WEST_ADMDVS}, got legs {where}, "
                f"cash {sample.cash_pay_fen}"
            )
        _say(f"a sample cross-node bill settles in 2 legs: {', '.join(where)}")

        checked = {"settlements": 0, "two_legs": 0, "west_leg": 0}

        def count_legs(answer: papi.SettleResponse) -> None:
            legs = answer.settlement.legs
            checked["settlements"] += 1
            checked["two_legs"] += len(legs) == 2
            checked["west_leg"] += [leg.payer_admdvs for leg in legs].count(WEST_ADMDVS) == 1

        load = SettleLoad(east, families, rng)
        levels = await load.run_levels("cross", options, meter, count_legs)

        _say("checking both ledgers and the clearing report …")
        ledgers = {
            name: _ledger_dict(await desk.treasury.CheckLedger(papi.CheckLedgerRequest(), timeout=300))
            for name, desk in (("east", east), ("west", west))
        }
        day = _china_today()

        async def clearing(desk: Desk) -> list[dict[str, Any]]:
            report = await desk.treasury.GetClearingReport(papi.GetClearingReportRequest(date=day), timeout=60)
            return [
                {
                    "debtor_province": b.debtor_province,
                    "creditor_province": b.creditor_province,
                    "amount_fen": b.amount_fen,
                }
                for b in report.balances
            ]

        # A saga's last step may still be on its way: give the nodes a little while to agree.
        deadline = time.monotonic() + 30
        while True:
            reports = {"east": await clearing(east), "west": await clearing(west)}
            if reports["east"] == reports["west"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        return {
            "levels": levels,
            "families": options.families,
            "sample_legs": where,
            "checked": checked,
            "settlements_made": load.succeeded + 1,
            "ledgers": ledgers,
            "clearing": {"date": day, **reports, "agree": reports["east"] == reports["west"]},
        }


async def _measure_echo(
    options: Options, address: str, connect: Connect, payload: bytes, meter: CpuMeter
) -> list[Level]:
    """Echo over mutual TLS, the client presenting a hospital's certificate as Settle's callers do."""
    async with connect(address, institution(INSTITUTIONS[0])) as channel:
        echo = channel.unary_unary(ECHO_METHOD)
        await echo(payload, timeout=30, wait_for_ready=True)
        levels = []
        for concurrency in options.concurrency:
            level = await drive(lambda: echo(payload, timeout=CALL_TIMEOUT), concurrency, options.warmup,
                                options.seconds, meter=meter)  # fmt: skip
            levels.append(level)
            _say(_level_line("echo", level))
        return levels


def _level_line(what: str, level: Level) -> str:
    s = level.summary
    errors = f", {sum(level.errors.values())} errors" if level.errors else ""
    cpu = ", ".join(f"{name} {pct:.0f}%" for name, pct in level.cpu_percent.items())
    return (
        f"  {what:7s} {level.concurrency:3d} callers: {s['per_second']:8.1f}/s  "
        f"p50 {s['p50_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms{errors}  [CPU {cpu}]"
    )


def _pgbench_connection(url: str) -> tuple[list[str], dict[str, str]]:
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
    latencies = []
    for path in glob.glob(f"{prefix}.*"):
        with open(path, encoding="ascii") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    latencies.append(int(fields[2]) / 1e6)  # microseconds
    return latencies


def _measure_pgbench(options: Options, scratch: Scratch, meter: CpuMeter) -> list[dict[str, Any]]:
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
            cpu = CpuMeter.percent(before, meter.snapshot())
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
            }
        )
        _say(
            f"  pgbench {clients:3d} clients: {results[-1]['tps']:8.1f} tps  p50 {results[-1]['p50_ms']:6.2f} ms  "
            f"p99 {results[-1]['p99_ms']:6.2f} ms  [CPU {', '.join(f'{k} {v:.0f}%' for k, v in cpu.items())}]"
        )
    return results


def _level_dict(level: Level) -> dict[str, Any]:
    return {
        "concurrency": level.concurrency,
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in level.summary.items()},
        "errors": level.errors,
        "cpu_percent": level.cpu_percent,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def cpu_cost(cpu_percent: dict[str, float], per_second: float, serving: tuple[str, ...]) -> dict[str, Any]:
    """CPU milliseconds each process spent per call, and the calls per second the serving
    side (servers and database, not the load generator) could reach on all cores if
    nothing else ran. Unlike throughput, this hardly moves when the machine is busy."""
    if per_second <= 0 or not cpu_percent:
        return {}
    per_call = {
        name: round(percent * 10 / per_second, 3)
        for name, percent in cpu_percent.items()
        if name not in ("other", "machine")
    }
    serving_ms = sum(per_call.get(name, 0.0) for name in serving)
    cores = os.cpu_count() or 1
    return {
        "ms_per_call": per_call,
        "serving": list(serving),
        "serving_ms_per_call": round(serving_ms, 3),
        "ceiling_per_second": round(cores * 1000 / serving_ms, 1) if serving_ms else None,
    }


def _summarise(
    options: Options,
    gongji: dict[str, Any],
    echo: list[Level],
    pgbench: list[dict[str, Any]],
    profile: dict[str, Any] | None,
    cross: dict[str, Any] | None = None,
    plain: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rows = []
    for settle, ping, pg in zip(gongji["levels"], echo, pgbench, strict=True):
        row = _level_dict(settle)
        row["settlements_per_second"] = row.pop("per_second")
        row["echo"] = _level_dict(ping)
        row["pgbench"] = pg
        # In-process, "client" is the servers and the load generator together.
        serving = ("client", "postgres") if options.in_process else ("binding", "payment", "postgres")
        row["cpu_cost"] = cpu_cost(row["cpu_percent"], row["settlements_per_second"], serving)
        row["echo"]["cpu_cost"] = cpu_cost(row["echo"]["cpu_percent"], row["echo"]["per_second"], ("echo",))
        pg["cpu_cost"] = cpu_cost(pg["cpu_percent"], pg["tps"], ("postgres",))
        row["ratios"] = {
            "settlements_per_pgbench_tps": _ratio(row["settlements_per_second"], pg["tps"]),
            "ceiling_settlements_per_pgbench_tps": _ratio(
                row["cpu_cost"].get("ceiling_per_second"), pg["cpu_cost"].get("ceiling_per_second")
            ),
            "p50_vs_echo_p50": _ratio(row["p50_ms"], row["echo"]["p50_ms"]),
            "p99_vs_echo_p99": _ratio(row["p99_ms"], row["echo"]["p99_ms"]),
            "settlements_per_echo_call": _ratio(row["settlements_per_second"], row["echo"]["per_second"]),
        }
        rows.append(row)
    top = max(rows, key=lambda r: r["concurrency"])
    share = top["ratios"]["settlements_per_pgbench_tps"]
    legs = gongji["legs"]
    answered = sum(legs.values())
    security = _security_summary(plain, rows)
    return {
        "server_mode": "in-process" if options.in_process else "subprocess",
        # Settle, echo and the cross-node phase; the "security" part adds a plaintext run.
        "transport": "mutual TLS",
        "cpu_count": os.cpu_count(),
        "families": options.families,
        "seconds": options.seconds,
        "warmup": options.warmup,
        "concurrency": list(options.concurrency),
        "server_log_level": options.server_log_level.upper(),
        "code": _code_version(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "other_cpu_percent_max": max(
            (
                level["cpu_percent"].get("other", 0.0)
                for level in [
                    *rows,
                    *(r["echo"] for r in rows),
                    *(r["pgbench"] for r in rows),
                    *(r["plaintext"] for r in (security or {}).get("levels", [])),
                ]
            ),
            default=0.0,
        ),
        "settlements_per_second": max(r["settlements_per_second"] for r in rows),
        "levels": rows,
        "two_payer": {
            "settlements_checked": answered,
            "with_two_legs": legs.get(2, 0),
            "fraction": round(legs.get(2, 0) / answered, 4) if answered else 0.0,
            "legs_histogram": {str(k): v for k, v in sorted(legs.items())},
        },
        "ledger": {**gongji["ledger"], "credits": 2 * options.families, "settlements": gongji["settlements_made"]},
        "targets": {
            "settlements_vs_pgbench": {
                "target": TARGET_SHARE_OF_PGBENCH,
                "concurrency": top["concurrency"],
                "value": share,
                "met": share is not None and share >= TARGET_SHARE_OF_PGBENCH,
                # The same comparison on CPU cost, which a busy machine hardly skews.
                "ceiling_value": top["ratios"]["ceiling_settlements_per_pgbench_tps"],
            },
            "p99_ms": {
                "target": TARGET_P99_MS,
                "concurrency": top["concurrency"],
                "value": top["p99_ms"],
                "met": top["p99_ms"] < TARGET_P99_MS,
            },
        },
        "profile": profile,
        "security": security,
        "cross_node": _cross_summary(options, cross, rows),
    }


# Postgres's CPU per settlement does not depend on the transport; when it moved more than this
# between the mutual-TLS and the plaintext phase, the machine (a shared host) or the database did.
STEADY_CONTROL = (0.9, 1.1)


def _security_summary(plain: dict[str, Any] | None, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Each plaintext level beside the mutual-TLS one at the same concurrency: what TLS costs.
    "security_cost" is the share of the plaintext rate that mutual TLS gives up (1 − mTLS ÷ plaintext).
    The phases run one after the other, so "postgres_cpu_mtls_per_plaintext" is the control: TLS does
    not touch the database, and a ratio far from 1 means the machine's speed changed in between."""
    if plain is None:
        return None
    secured = {row["concurrency"]: row for row in rows}
    levels = []
    for level in plain["levels"]:
        row = _level_dict(level)
        row["settlements_per_second"] = row.pop("per_second")
        row["cpu_cost"] = cpu_cost(
            row["cpu_percent"], row["settlements_per_second"], ("binding", "payment", "postgres")
        )
        tls = secured[level.concurrency]
        ratio = _ratio(tls["settlements_per_second"], row["settlements_per_second"])
        control = _ratio(
            tls["cpu_cost"].get("ms_per_call", {}).get("postgres"),
            row["cpu_cost"].get("ms_per_call", {}).get("postgres"),
        )
        levels.append(
            {
                "concurrency": level.concurrency,
                "mutual_tls": {
                    **{key: tls[key] for key in ("settlements_per_second", "p50_ms", "p99_ms", "errors")},
                    "serving_ms_per_call": tls["cpu_cost"].get("serving_ms_per_call"),
                },
                "plaintext": row,
                "ratios": {
                    "mtls_per_plaintext_settlements": ratio,
                    "mtls_per_plaintext_p50": _ratio(tls["p50_ms"], row["p50_ms"]),
                    "mtls_per_plaintext_p99": _ratio(tls["p99_ms"], row["p99_ms"]),
                    "mtls_per_plaintext_serving_cpu": _ratio(
                        tls["cpu_cost"].get("serving_ms_per_call"), row["cpu_cost"].get("serving_ms_per_call")
                    ),
                    "postgres_cpu_mtls_per_plaintext": control,
                },
                "security_cost": round(1 - ratio, 3) if ratio is not None else None,
            }
        )
    legs = plain["legs"]
    controls = [level["ratios"]["postgres_cpu_mtls_per_plaintext"] for level in levels]
    return {
        "mutual_tls": "every port mutual TLS; each call presents its caller's certificate",
        "plaintext": (
            "binding and east restarted with --insecure on the same databases and families; each call names "
            "its caller in x-forwarded-client-cert, so the access policy still judges it"
        ),
        "levels": levels,
        # Whether the control stayed within STEADY_CONTROL at every level (None: no CPU figures).
        "steady": all(STEADY_CONTROL[0] <= c <= STEADY_CONTROL[1] for c in controls) if None not in controls else None,
        "settlements": plain["settlements_made"],
        "two_payer": {"settlements_checked": sum(legs.values()), "with_two_legs": legs.get(2, 0)},
        "ledger": plain["ledger"],
        "ok": plain["ledger"]["balanced"],
    }


def _cross_summary(options: Options, cross: dict[str, Any] | None, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The cross-node levels, each beside the single-node one at the same concurrency."""
    if cross is None:
        return None
    single = {row["concurrency"]: row for row in rows}
    levels = []
    for level in cross["levels"]:
        row = _level_dict(level)
        row["settlements_per_second"] = row.pop("per_second")
        row["cpu_cost"] = cpu_cost(
            row["cpu_percent"], row["settlements_per_second"], ("binding", "payment", "west", "postgres")
        )
        alone = single[level.concurrency]
        row["single_node"] = {k: alone[k] for k in ("settlements_per_second", "p50_ms", "p99_ms")}
        row["ratios"] = {
            "cross_per_single_settlements": _ratio(row["settlements_per_second"], alone["settlements_per_second"]),
            "cross_per_single_p50": _ratio(row["p50_ms"], alone["p50_ms"]),
            "cross_per_single_p99": _ratio(row["p99_ms"], alone["p99_ms"]),
        }
        levels.append(row)
    checked = cross["checked"]
    return {
        "nodes": {"east": list(EAST_PROVINCES), "west": list(WEST_PROVINCES)},
        "families": cross["families"],
        "settlements_per_second": max(r["settlements_per_second"] for r in levels),
        "levels": levels,
        "sample_legs": cross["sample_legs"],
        "legs": {
            "settlements_checked": checked["settlements"],
            "with_two_legs": checked["two_legs"],
            "with_a_leg_in_west": checked["west_leg"],
        },
        "settlements": cross["settlements_made"],
        "ledgers": cross["ledgers"],
        "clearing": cross["clearing"],
        "ok": all(ledger["balanced"] for ledger in cross["ledgers"].values()) and cross["clearing"]["agree"],
    }


def _code_version() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
            timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(dirty) if commit else None}


def _collect_profile(options: Options, settlements: int) -> dict[str, Any] | None:
    if not options.profile:
        return None
    result: dict[str, Any] = {"clock": options.profile_clock, "settle_calls": settlements}
    for name, path in (("payment", options.profile), ("binding", f"{options.profile}.binding")):
        if not os.path.exists(path):
            result[name] = {"path": path, "missing": True}
            continue
        result[name] = {
            "path": path,
            "top_cumulative": profile_rows(path, "cumulative", 25, settlements),
            "top_self": profile_rows(path, "tottime", 15, settlements),
            "layers": profile_layers(path, settlements),
        }
    return result


def _print_report(summary: dict[str, Any]) -> None:
    print(
        f"\ngongji benchmark: {summary['cpu_count']} CPUs, servers {summary['server_mode']}, "
        f"{summary['families']} families, {summary['seconds']:g}s per level after {summary['warmup']:g}s warm-up, "
        f"server log level {summary['server_log_level']}, code {summary['code']['commit'] or '(not a git checkout)'}"
        f"{' + uncommitted changes' if summary['code']['dirty'] else ''}"
    )
    print(
        f"transport: {summary['transport']}; every settle, echo and cross-node call presents its caller's certificate"
    )
    header = (
        f"{'callers':>7} | {'settle/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} | {'echo/s':>8} {'p50':>6} "
        f"{'p99':>6} | {'pgbench':>8} {'p50':>6} {'p99':>6} | {'÷pgbench':>8} {'p50÷echo':>8} {'p99÷echo':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in summary["levels"]:
        echo, pg, ratios = row["echo"], row["pgbench"], row["ratios"]
        print(
            f"{row['concurrency']:>7} | {row['settlements_per_second']:>9.1f} {row['p50_ms']:>7.2f} "
            f"{row['p99_ms']:>7.2f} {sum(row['errors'].values()):>4} | {echo['per_second']:>8.0f} "
            f"{echo['p50_ms']:>6.2f} {echo['p99_ms']:>6.2f} | {pg['tps']:>8.0f} {pg['p50_ms']:>6.2f} "
            f"{pg['p99_ms']:>6.2f} | {ratios['settlements_per_pgbench_tps'] or 0:>8.1%} "
            f"{ratios['p50_vs_echo_p50'] or 0:>7.1f}x {ratios['p99_vs_echo_p99'] or 0:>7.1f}x"
        )
    print("\nCPU during the settlement window (% of one core):")
    for row in summary["levels"]:
        print(
            f"  {row['concurrency']:>3} callers: " + ", ".join(f"{k} {v:.0f}%" for k, v in row["cpu_percent"].items())
        )
    print("\nCPU per call (ms; from /proc, so it holds even when the machine is busy), and the rate the serving")
    print(f"side alone could reach on {summary['cpu_count']} free cores:")
    for row in summary["levels"]:
        cost, pg, echo = row["cpu_cost"], row["pgbench"]["cpu_cost"], row["echo"]["cpu_cost"]
        if not cost or not pg:
            continue
        parts = " + ".join(f"{name} {cost['ms_per_call'].get(name, 0):.2f}" for name in cost["serving"])
        print(
            f"  {row['concurrency']:>3} callers: settlement {parts} = {cost['serving_ms_per_call']:.2f} ms "
            f"(≤ {cost['ceiling_per_second'] or 0:.0f}/s); pgbench {pg['serving_ms_per_call']:.2f} ms "
            f"(≤ {pg['ceiling_per_second'] or 0:.0f}/s); echo {echo.get('serving_ms_per_call', 0):.2f} ms; "
            f"ceiling ratio {row['ratios']['ceiling_settlements_per_pgbench_tps'] or 0:.1%}"
        )
    if summary["other_cpu_percent_max"] > 20:
        print(
            f"  note: other processes used up to {summary['other_cpu_percent_max']:.0f}% of a core during a "
            "window (the 'other' column); the machine was not quiet, so these figures are pessimistic"
        )
    for row in summary["levels"]:
        for error, count in row["errors"].items():
            print(f"  errors at {row['concurrency']} callers: {count} × {error}")
    two = summary["two_payer"]
    print(
        f"\ntwo-payer bills: {two['with_two_legs']} of {two['settlements_checked']} settlements had 2 legs "
        f"({two['fraction']:.1%})"
    )
    ledger = summary["ledger"]
    state = "balanced" if ledger["balanced"] else "NOT BALANCED: " + "; ".join(ledger["problems"])
    print(
        f"ledger after the run: {state} ({ledger['entry_count']} entries, {ledger['account_count']} accounts; "
        f"the run made {ledger['credits']} credits and {ledger['settlements']} settlements)"
    )
    if summary.get("security"):
        _print_security(summary["security"])
    if summary.get("cross_node"):
        _print_cross(summary["cross_node"])
    targets = summary["targets"]
    share, p99 = targets["settlements_vs_pgbench"], targets["p99_ms"]
    mark = {True: "met", False: "NOT met"}
    print("\ntargets:")
    print(
        f"  settlements/s ≥ {share['target']:.0%} of pgbench tps at {share['concurrency']} callers: "
        f"{(share['value'] or 0):.1%} — {mark[share['met']]}"
        + (f" (on CPU cost per call: {share['ceiling_value']:.1%})" if share.get("ceiling_value") else "")
    )
    print(f"  p99 < {p99['target']:g} ms at {p99['concurrency']} callers: {p99['value']:.1f} ms — {mark[p99['met']]}")
    if share["concurrency"] != TARGET_CALLERS:
        print(f"  (the issue states both at {TARGET_CALLERS} callers; this run's highest level was checked)")
    profile = summary["profile"]
    if profile:
        _print_profile(profile)


def _print_security(security: dict[str, Any]) -> None:
    print(
        "\ncost of security: the same Settle load on the same databases with binding and payment restarted "
        "--insecure\n(plaintext; each call names its hospital in x-forwarded-client-cert, so authorization "
        "still runs and only TLS differs):"
    )
    header = (
        f"{'callers':>7} | {'mTLS/s':>9} {'p50 ms':>7} {'p99 ms':>7} | {'plain/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'err':>4} | {'mTLS÷plain':>10} {'cost':>6} {'p50 ×':>6} {'p99 ×':>6} | {'CPU ms/call mTLS plain':>22} "
        f"{'pg ×':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in security["levels"]:
        tls, plain, ratios = row["mutual_tls"], row["plaintext"], row["ratios"]
        print(
            f"{row['concurrency']:>7} | {tls['settlements_per_second']:>9.1f} {tls['p50_ms']:>7.2f} "
            f"{tls['p99_ms']:>7.2f} | {plain['settlements_per_second']:>9.1f} {plain['p50_ms']:>7.2f} "
            f"{plain['p99_ms']:>7.2f} {sum(plain['errors'].values()):>4} | "
            f"{ratios['mtls_per_plaintext_settlements'] or 0:>10.1%} {row['security_cost'] or 0:>6.1%} "
            f"{ratios['mtls_per_plaintext_p50'] or 0:>5.2f}x {ratios['mtls_per_plaintext_p99'] or 0:>5.2f}x | "
            f"{tls['serving_ms_per_call'] or 0:>16.2f} {plain['cpu_cost'].get('serving_ms_per_call', 0):>5.2f} "
            f"{ratios['postgres_cpu_mtls_per_plaintext'] or 0:>4.2f}x"
        )
    low, high = STEADY_CONTROL
    verdict = {
        True: f"within {low:.1f}–{high:.1f} at every level: the machine held its speed between the phases",
        False: f"outside {low:.1f}–{high:.1f}: the machine's speed changed between the phases (a shared host?), "
        "so the ratio says more about that than about TLS",
        None: "no CPU figures on this system",
    }[security["steady"]]
    print(f"  pg ×: postgres's CPU per settlement, mTLS ÷ plaintext, a control TLS does not touch; {verdict}")
    for row in security["levels"]:
        for error, count in row["plaintext"]["errors"].items():
            print(f"  plaintext errors at {row['concurrency']} callers: {count} × {error}")
    ledger = security["ledger"]
    state = "balanced" if ledger["balanced"] else "NOT BALANCED: " + "; ".join(ledger["problems"])
    two = security["two_payer"]
    print(
        f"plaintext: {two['with_two_legs']} of {two['settlements_checked']} settlements had 2 legs; "
        f"ledger afterwards {state} ({ledger['entry_count']} entries)"
    )


def _print_cross(cross: dict[str, Any]) -> None:
    print(
        f"\ncross-node settlements ({cross['families']} families: child and mother in {ADMDVS} on east, father in "
        f"{WEST_ADMDVS} on west; bills sent to east) beside single-node ones:"
    )
    header = (
        f"{'callers':>7} | {'single/s':>9} {'p50 ms':>7} {'p99 ms':>7} | {'cross/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'err':>4} | {'cross÷single':>12} {'p50 ×':>6} {'p99 ×':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in cross["levels"]:
        alone, ratios = row["single_node"], row["ratios"]
        print(
            f"{row['concurrency']:>7} | {alone['settlements_per_second']:>9.1f} {alone['p50_ms']:>7.2f} "
            f"{alone['p99_ms']:>7.2f} | {row['settlements_per_second']:>9.1f} {row['p50_ms']:>7.2f} "
            f"{row['p99_ms']:>7.2f} {sum(row['errors'].values()):>4} | "
            f"{ratios['cross_per_single_settlements'] or 0:>12.1%} {ratios['cross_per_single_p50'] or 0:>5.1f}x "
            f"{ratios['cross_per_single_p99'] or 0:>5.1f}x"
        )
    for row in cross["levels"]:
        for error, count in row["errors"].items():
            print(f"  cross-node errors at {row['concurrency']} callers: {count} × {error}")
    legs = cross["legs"]
    print(
        f"cross-node bills: {legs['with_a_leg_in_west']} of {legs['settlements_checked']} had one leg paid in "
        f"{WEST_ADMDVS} ({legs['with_two_legs']} with 2 legs); sample: {', '.join(cross['sample_legs'])}"
    )
    for name, ledger in cross["ledgers"].items():
        state = "balanced" if ledger["balanced"] else "NOT BALANCED: " + "; ".join(ledger["problems"])
        print(f"ledger on {name}: {state} ({ledger['entry_count']} entries, {ledger['account_count']} accounts)")
    clearing = cross["clearing"]

    def owed(balances: list[dict[str, Any]]) -> str:
        return (
            ", ".join(
                f"{b['debtor_province']}→{b['creditor_province']} {b['amount_fen'] / 100:.2f} yuan" for b in balances
            )
            or "nothing"
        )

    print(
        f"clearing report for {clearing['date']} (China Standard Time): "
        + (f"east and west agree: {owed(clearing['east'])}" if clearing["agree"] else
           f"east and west DISAGREE: east {owed(clearing['east'])}; west {owed(clearing['west'])}")
    )  # fmt: skip


def _print_profile(profile: dict[str, Any]) -> None:
    clock = "CPU time of each thread" if profile["clock"] == "cpu" else "wall-clock time"
    print(f"\nprofile ({clock}, {profile['settle_calls']} Settle calls with the warm-ups; ms are per settlement):")
    sections = (
        ("payment", "top_cumulative", "payment service, top 25 by cumulative time"),
        ("payment", "top_self", "payment service, top 15 by own time"),
        ("binding", "top_self", "binding service, top 15 by own time"),
    )
    for service in ("payment", "binding"):
        layers = profile.get(service, {}).get("layers")
        if layers:
            print(f"\n  {service} service, own time by layer:")
            for row in layers:
                print(f"  {row['layer']:>22} {row['percent']:>5.1f}%  {row['ms_per_settlement'] or 0:>7.3f} ms")
    for service, key, title in sections:
        found = profile.get(service, {})
        if key not in found:
            continue
        print(f"\n  {title} ({found['path']}):")
        print(f"  {'calls':>9} {'own s':>8} {'cum s':>8} {'own ms':>7} {'cum ms':>7}  function")
        for row in found[key]:
            print(
                f"  {row['calls']:>9} {row['tottime_s']:>8.2f} {row['cumtime_s']:>8.2f} "
                f"{row['tottime_ms_per_settlement'] or 0:>7.3f} {row['cumtime_ms_per_settlement'] or 0:>7.3f}  "
                f"{row['function']}"
            )


def _echo_payload() -> bytes:
    """As many bytes as a Settle request, so echo carries a comparable message."""
    family = Family(_person_id(date(2012, 1, 1), 0), (_person_id(date(1975, 1, 1), 0),) * 2)
    return settle_request(family, random.Random(1)).SerializeToString()


def _run(options: Options, scratch: Scratch) -> dict[str, Any]:
    scratch.check_postgres()
    databases = ("binding", "payment", "payment_west") if options.cross_node else ("binding", "payment")
    urls = {name: scratch.create_database(name) for name in databases}
    for name, url in urls.items():
        migrate("payment" if name == "payment_west" else name, url)
    pki = DevelopmentPKI(Path(scratch.directory) / "pki", "gongji benchmark CA")
    connect = mutual_tls(pki)
    _say(f"scratch databases {', '.join(scratch.databases)} migrated; servers run {_mode(options)}")
    start = _start_in_process_servers if options.in_process else _start_subprocess_servers
    servers = start(scratch, options, urls, pki)
    try:
        gongji = asyncio.run(_measure_settlements(options, servers, connect, CpuMeter(servers.pids, scratch.marker)))
        plain = None
        if options.plaintext_baseline and servers.restart is not None:
            _say("cost of security: binding and east restarted with --insecure (plaintext) on the same databases")
            servers.restart(True)
            meter = CpuMeter(servers.pids, scratch.marker)
            plain = asyncio.run(_measure_plaintext(options, servers, gongji["families"], meter))
            if servers.west_address is not None:
                _say("binding and east restarted with mutual TLS for the cross-node phase")
                servers.restart(False)
        cross = None
        if servers.west_address is not None and servers.west_pid is not None:
            meter = CpuMeter({**servers.pids, "west": servers.west_pid}, scratch.marker)
            cross = asyncio.run(_measure_cross_node(options, servers, connect, meter))
    finally:
        servers.stop()  # a profiled payment server writes its stats as it stops
    profile = _collect_profile(options, gongji["settle_calls_sent"])

    _say("baseline: bare gRPC echo in its own process, over the same mutual TLS")
    echo_address = f"127.0.0.1:{_free_port()}"
    served = pki.files(EAST)  # the echo server stands where the payment service does
    echo_argv = ["-m", "services.benchmark", "echo", echo_address, str(served.cert), str(served.key), str(served.ca)]
    echo_process = scratch.spawn("echo", echo_argv, echo_address)
    try:
        meter = CpuMeter({"echo": echo_process.popen.pid}, scratch.marker)
        echo = asyncio.run(_measure_echo(options, echo_address, connect, _echo_payload(), meter))
    finally:
        scratch.stop(echo_process)

    _say("baseline: pgbench TPC-B, scale 1")
    pgbench = _measure_pgbench(options, scratch, CpuMeter(database_marker=scratch.marker))
    return _summarise(options, gongji, echo, pgbench, profile, cross, plain)


def _mode(options: Options) -> str:
    if options.in_process:
        return "in this process (threads; they share the GIL with the load generator), mutual TLS"
    return "in their own processes (python -m services.cli serve), mutual TLS"


class _Interrupts:
    """Ctrl-C and SIGTERM unwind the run once, so the cleanup runs; further signals
    are ignored while it does. The servers share the terminal's process group and
    stop on Ctrl-C too, so a failed call after an interrupt counts as the interrupt."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            raise KeyboardInterrupt
        _say("still cleaning up: stopping the servers and dropping the scratch databases")

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


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
) -> int:
    """Runs the benchmark and prints the report (or, with json_output, one JSON object
    on stdout). 0 when it ran and the ledgers balanced (and, cross-node, both nodes'
    clearing reports agreed), 1 when not, 2 when it could not run, 130 on Ctrl-C.
    The cross-node phase and the plaintext baseline (the cost of security) restart or add
    server processes; --in-process skips both. --profile skips the plaintext baseline too:
    the profiler would weigh on one side of the comparison only."""
    if cross_node and in_process:
        _say("benchmark: the cross-node phase needs the servers in their own processes; skipped with --in-process")
        cross_node = False
    if plaintext_baseline and in_process:
        _say("benchmark: the plaintext baseline restarts the server processes; skipped with --in-process")
        plaintext_baseline = False
    if plaintext_baseline and profile:
        _say("benchmark: under --profile the mutual-TLS servers run in cProfile and the comparison would measure it; "
             "plaintext baseline skipped")  # fmt: skip
        plaintext_baseline = False
    options = Options(
        postgres_url, families, tuple(concurrency), seconds, warmup, in_process,
        os.path.abspath(profile) if profile else None, profile_clock, server_log_level, json_output, cross_node,
        plaintext_baseline,
    )  # fmt: skip
    if families < 1 or seconds <= 0 or warmup < 0 or not options.concurrency or min(options.concurrency) < 1:
        _say("benchmark: --families, --seconds and every --concurrency level must be positive")
        return 2
    if profile and in_process:
        _say("benchmark: --profile needs the servers in their own processes (drop --in-process)")
        return 2
    for name in ("alembic", "services", "gongji.rpc"):
        if not in_process or name != "gongji.rpc":
            logging.getLogger(name).setLevel(logging.WARNING)
    interrupts = _Interrupts()
    try:
        with interrupts, Scratch(postgres_url) as scratch:
            summary = _run(options, scratch)
    except (KeyboardInterrupt, BenchmarkError, grpc.RpcError) as error:
        if interrupts.received is not None or isinstance(error, KeyboardInterrupt):
            _say("benchmark interrupted; servers stopped and scratch databases dropped")
            return 130
        if isinstance(error, grpc.RpcError):
            _say(f"benchmark: a call failed: {error.code().name}: {error.details()}")  # type: ignore[attr-defined]
        else:
            _say(f"benchmark: {error}")
        return 2
    if json_output:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        _print_report(summary)
    cross_ok = summary["cross_node"] is None or summary["cross_node"]["ok"]
    plaintext_ok = summary["security"] is None or summary["security"]["ok"]
    return 0 if summary["ledger"]["balanced"] and cross_ok and plaintext_ok else 1


def parse_concurrency(value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--concurrency takes comma-separated integers, not {value!r}") from None
    if not levels or min(levels) < 1:
        raise ValueError("--concurrency levels must be at least 1")
    return levels


def _subprocess_main(argv: list[str]) -> int:
    """`python -m services.benchmark echo ADDRESS CERT KEY CA` or `… profile PATH CLOCK GONGJI-ARGS…`:
    the helper processes the benchmark starts."""
    if len(argv) == 5 and argv[0] == "echo":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_echo(argv[1], Path(argv[2]), Path(argv[3]), Path(argv[4])))
        return 0
    if len(argv) >= 3 and argv[0] == "profile":
        return profiled_cli(argv[1], argv[2], argv[3:])
    print(_subprocess_main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_subprocess_main(sys.argv[1:]))
