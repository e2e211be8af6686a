"""More than one process serving one address (`gongji serve payment --processes N`).

Python runs one thread of Python at a time per process, so a payment node that keeps its
payers is bound by one core. Sibling processes bind the same address (gRPC sets SO_REUSEPORT
on Linux) and the kernel spreads new connections over them; each has its own database pool,
payer cache and payer watch. Only the first process migrates the database and runs the
background work (the expiry sweep, cross-node recovery, the ledger audit), so those never run
twice at once. A sibling dies with the first process (PR_SET_PDEATHSIG) and is stopped with it.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from services.common.paging import key_for_processes_started_here

log = logging.getLogger("gongji.siblings")
SIBLING_FLAG = "--sibling-of-first-process"
_PR_SET_PDEATHSIG = 1


def die_with_first_process() -> None:
    """Called first thing in a sibling: the kernel sends it SIGTERM when the first process dies
    (no preexec_fn: forking a threaded gRPC process and running Python before exec can hang)."""
    first = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        log.warning("cannot ask the kernel to stop this sibling with its first process (not Linux?)")
    if os.getppid() != first or first == 1:
        raise SystemExit("the first process ended before this sibling started")


def metrics_address_of(metrics_address: str, index: int) -> str:
    """Where the `index`-th process of a node serves its metrics (0: the first): the node's
    --metrics-address with the port moved up by `index`."""
    host, _, port = metrics_address.rpartition(":")
    return f"{host}:{int(port) + index}"


def sibling_argv(argv: Sequence[str], index: int, metrics_address: str | None) -> list[str]:
    """The sibling's `gongji` arguments: the first process's, one process each, marked as a
    sibling, and the metrics port moved up by `index` (each process serves its own metrics)."""
    out: list[str] = []
    skip = False
    for position, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--processes":
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        if arg == "--metrics-address" and metrics_address and position + 1 < len(argv):
            out += [arg, metrics_address_of(metrics_address, index)]
            skip = True
            continue
        out.append(arg)
    return [*out, SIBLING_FLAG]


class Siblings:
    """The first process's siblings, started after it serves and stopped with it."""

    def __init__(self, argv: Sequence[str], count: int, metrics_address: str | None) -> None:
        # The first process's page-token key, so a token either process issued is taken by both.
        environment = {**os.environ, **key_for_processes_started_here()}
        self._children = [
            subprocess.Popen(
                [sys.executable, "-m", "services.cli", *sibling_argv(argv, index, metrics_address)], env=environment
            )
            for index in range(1, count)
        ]
        log.info("started %d sibling processes on the same address: pids %s", len(self._children),
                 ", ".join(str(child.pid) for child in self._children))  # fmt: skip

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self._children]

    def stop(self) -> None:
        """Asks each sibling to shut down gracefully (it drains its own calls)."""
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    async def wait(self, grace: float) -> None:
        """Waits for the siblings to end, killing any still running after `grace` seconds."""
        for child in self._children:
            try:
                await asyncio.to_thread(child.wait, grace + 5)
            except subprocess.TimeoutExpired:
                child.kill()
                await asyncio.to_thread(child.wait)
