"""A throwaway PostgreSQL cluster for one test, so the test may crash it.

The machine's shared PostgreSQL serves other tests; this one lives in its own
temporary directory, runs as the `postgres` OS user on a free port of
127.0.0.1 (its unix socket in the same directory), trusts every local login,
and is stopped and deleted afterwards.

    with private_postgres() as server:
        url = server.create_database("payment_east")
        server.crash()    # pg_ctl stop -m immediate: no checkpoint, no goodbye to clients
        server.start()    # crash recovery from the WAL, then serving again

Without the binaries, the `postgres` user or root, the test is skipped,
unless CI is set, when it fails instead.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import _free_port

BIN = Path(os.environ.get("GONGJI_TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"


def missing() -> str | None:
    """Why a private cluster cannot be made here, or None."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (BIN / tool).exists():
            return f"{BIN / tool} is missing"
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        return f"there is no {OS_USER!r} OS user to run initdb as"
    if os.geteuid() != 0:
        return "runuser needs root to run initdb as the postgres user"
    if shutil.which("runuser") is None:
        return "runuser is missing"
    return None


def require_private_postgres() -> None:
    problem = missing()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI needs a private PostgreSQL cluster: {problem}")
    pytest.skip(f"private PostgreSQL cluster unavailable: {problem} (set CI to make this a failure)")


class PrivatePostgres:
    def __init__(self) -> None:
        # Not under pytest's tmp_path: that lies in a root-only directory the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="gongji-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        user = pwd.getpwnam(OS_USER)
        os.chown(self.root, user.pw_uid, user.pw_gid)

    def init(self) -> None:
        self._as_postgres(
            BIN / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"
        )

    def _as_postgres(self, *command: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            ["runuser", "-u", OS_USER, "--", *(str(part) for part in command)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"{' '.join(str(p) for p in command)} failed ({completed.returncode}):\n"
                f"{completed.stdout}\n{completed.stderr}\n{self.log_tail()}"
            )
        return completed

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=32MB"
        )
        self._as_postgres(BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")

    def crash(self) -> None:
        """Stops the server the way a power cut would look to its clients."""
        self._as_postgres(BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop")

    def running(self) -> bool:
        command = ["runuser", "-u", OS_USER, "--", str(BIN / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0

    def create_database(self, name: str) -> str:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.data.exists() and self.running():
                self._as_postgres(BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster (skips or fails as `require_private_postgres` says)."""
    require_private_postgres()
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()
