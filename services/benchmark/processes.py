"""Everything a run creates and must remove: scratch PostgreSQL databases, a temporary
directory, and child processes (started, waited for until SERVING, stopped)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.benchmark.errors import BenchmarkError
from services.benchmark.progress import say
from services.common.database import normalise_url

# Ports handed out lie below the kernel's ephemeral range (Linux's default starts at 32768).
_LOWEST_PORT = 10_000
_ports = random.Random()  # seeded from the OS: a test that seeds `random` does not repeat our ports
# Every port handed out by this process: two servers started from one process never share one.
_HANDED_OUT: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(count: int = 1) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 now, for a server to bind next (a
    node's n-th process serves its metrics on the node's port + n).

    Picked below the kernel's ephemeral range: a port the kernel offers for bind(0) is an
    ephemeral one, which any outgoing connection (to PostgreSQL, to another server) may take as
    its local port between this probe and the server's bind, and the server then cannot listen.
    """
    highest = _ephemeral_start() - count
    for _ in range(200):
        port = _ports.randrange(_LOWEST_PORT, highest) if highest > _LOWEST_PORT else 0
        if port and not _HANDED_OUT.isdisjoint(range(port, port + count)):
            continue
        with contextlib.ExitStack() as held:
            try:
                first = held.enter_context(socket.socket())
                first.bind(("127.0.0.1", port))
                port = int(first.getsockname()[1])
                for offset in range(1, count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port + offset))
            except (OSError, OverflowError):  # taken, or past the last port
                continue
            # Free now, but maybe not yet bound by the server it is for: never handed out twice.
            _HANDED_OUT.update(range(port, port + count))
            return port
    raise OSError(f"no {count} consecutive free ports found on 127.0.0.1")


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

    def _administer(self, statement: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
        finally:
            engine.dispose()

    def create_database(self, suffix: str) -> str:
        name = f"{self.marker}{suffix}"
        self._administer(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_database(self, suffix: str) -> None:
        """Drops a scratch database made by create_database before the run ends (a large one)."""
        name = f"{self.marker}{suffix}"
        self._administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.databases:
            self.databases.remove(name)

    def spawn(self, name: str, argv: list[str], address: str, environment: Mapping[str, str] | None = None) -> Process:
        """Starts `python ARGV` in the scratch directory, its output to NAME.log there, with this
        process's environment less any OTEL_* variables, plus `environment`."""
        # A developer's OTEL_* settings would turn tracing on in some phases' servers and not
        # others' (or in none the observability phase meant); only that phase traces, by `environment`.
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        log_path = os.path.join(self.directory, f"{name}.log")
        with open(log_path, "wb") as log_file:
            popen = subprocess.Popen(
                [sys.executable, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env={**inherited, "PYTHONUNBUFFERED": "1", **(environment or {})},
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
                say(f"{process.name} did not stop within {timeout:.0f}s of SIGTERM; killing it")
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
                say(f"could not drop the scratch databases {self.databases}: {error}")
        shutil.rmtree(self.directory, ignore_errors=True)


def _check_alive(process: Process | None) -> None:
    if process is not None and process.popen.poll() is not None:
        raise BenchmarkError(f"the {process.name} server exited with {process.popen.returncode}:\n{process.log_tail()}")


def wait_until_serving(
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
            _check_alive(process)
            with contextlib.suppress(grpc.RpcError):
                answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
    tail = process.log_tail() if process is not None else ""
    raise BenchmarkError(f"{service or address} did not become SERVING within {timeout:.0f}s\n{tail}")


def listening_sockets(port: int) -> int:
    """How many sockets of this machine listen on TCP `port`: with SO_REUSEPORT, one per process
    serving it (Linux's /proc/net tables; 0 where they cannot be read)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as rows:
            next(rows, None)  # the header
            for row in rows:
                fields = row.split()
                listening = fields[3] == "0A"  # TCP_LISTEN
                if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def wait_until_listening(process: Process | None, address: str, count: int, timeout: float = 60.0) -> None:
    """Waits until `count` sockets listen on the address's port. The kernel spreads connections
    over SO_REUSEPORT siblings as they are opened, so a load whose channels connected before every
    sibling listened would never reach the late ones."""
    port = int(address.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while listening_sockets(port) < count:
        _check_alive(process)
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{count} processes did not all listen on {address} within {timeout:.0f}s")
        time.sleep(0.1)
