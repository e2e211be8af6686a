"""CPU metering from /proc: what this process, the service processes, PostgreSQL and the rest of
the machine used during a window, and what that comes to per call."""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any, NamedTuple


class CpuSnapshot(NamedTuple):
    at: float  # perf_counter
    cpu_seconds: dict[str, dict[int, float]]  # by group, then by pid
    # What PostgreSQL's checkpointer had written since it started. A checkpoint writes every page
    # dirtied since the last one, and its writes and final fsyncs queue before the WAL flush each
    # commit waits for: a latency tail in a window with checkpoint writes has a cause outside gongji.
    checkpointer_bytes: int | None = None


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


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(child) for child in handle.read().split()]
    except (OSError, ValueError):
        return []


def _cmdline(pid: int | str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _written_bytes(pid: int | str) -> int | None:
    """Bytes a process caused to be written to storage (Linux /proc/PID/io; readable by its owner or root)."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _machine_seconds(tick: int) -> tuple[float, float] | None:
    """CPU seconds all cores spent busy since boot (not idle, not waiting for I/O), and of those
    the seconds stolen: when a core of this virtual machine was ready to run and the hypervisor
    ran another guest instead. Stolen time is time the machine was slower than it looks."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(value) for value in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0
    return (sum(fields[:8]) - idle) / tick, steal / tick


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

    def _postgres_group(self, command: str) -> str | None:
        if self.database_marker and self.database_marker in command:
            return "postgres"
        if "127.0.0.1(" in command or "[local]" in command or re.search(r"\(\d+\)", command):
            return None  # a backend of somebody else's database
        return "postgres-shared"

    def snapshot(self) -> CpuSnapshot:
        times = os.times()
        taken: dict[str, dict[int, float]] = {"client": {os.getpid(): times.user + times.system}}
        for name, pid in self.processes.items():
            # A payment node's sibling processes (--processes) count with it.
            for member in (pid, *_children(pid)):
                found = _proc_cpu_seconds(member, self._tick)
                if found is not None:
                    taken.setdefault(name, {})[member] = found[1]
        machine = _machine_seconds(self._tick)
        if machine is not None:
            taken["machine"], taken["steal"] = {0: machine[0]}, {0: machine[1]}
        checkpointer: int | None = None
        if os.path.isdir("/proc"):
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                found = _proc_cpu_seconds(entry, self._tick)
                if found is None or found[0] not in ("postgres", "pgbench"):
                    continue
                command = _cmdline(entry) if found[0] == "postgres" else ""
                group = found[0] if found[0] == "pgbench" else self._postgres_group(command)
                if group is not None:
                    taken.setdefault(group, {})[int(entry)] = found[1]
                written = _written_bytes(entry) if command.rstrip().endswith(": checkpointer") else None
                if written is not None:
                    checkpointer = (checkpointer or 0) + written  # every cluster on the machine shares its disk
        return CpuSnapshot(time.perf_counter(), taken, checkpointer)

    async def over_window(self, window_end: float) -> tuple[dict[str, float], float | None]:
        """From now until `window_end` (perf_counter): the CPU percent of each group and what the
        checkpointer wrote (MB)."""
        before = self.snapshot()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        after = self.snapshot()
        return CpuMeter.percent(before, after), CpuMeter.checkpoint_mb(before, after)

    @staticmethod
    def percent(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
        """Percent of one core each group used between two snapshots; "machine" is every
        core's busy time, "steal" the part of it the hypervisor gave other guests, "other" what
        processes outside the benchmark used."""
        wall = after[0] - before[0]
        if wall <= 0:
            return {}
        used: dict[str, float] = {}
        members: dict[str, float] = {}
        for name, pids in after[1].items():
            earlier = before[1].get(name, {})
            each = {pid: (cpu - earlier.get(pid, 0.0)) / wall * 100 for pid, cpu in pids.items()}
            used[name] = round(sum(each.values()), 1)
            if len(each) > 1 and name not in _MANY_BY_NATURE:
                # A service of several processes, each given whole connections by the kernel: how
                # evenly the load fell on them (one busy while another idles caps the rate).
                members |= {f"{name}:{n}": round(pct, 1) for n, (_, pct) in enumerate(sorted(each.items()), 1)}
        if "machine" in used:
            machine, steal = used.pop("machine"), used.pop("steal", 0.0)
            used["other"] = round(max(0.0, machine - steal - sum(used.values())), 1)
            used["steal"] = steal
            used["machine"] = machine
        return _each_after_its_service(used, members)

    @staticmethod
    def checkpoint_mb(before: CpuSnapshot, after: CpuSnapshot) -> float | None:
        """Megabytes PostgreSQL's checkpointer wrote between two snapshots; None where /proc does not tell."""
        if before.checkpointer_bytes is None or after.checkpointer_bytes is None:
            return None
        return round(max(0, after.checkpointer_bytes - before.checkpointer_bytes) / 1e6, 1)


# Groups that are many processes by their nature (a backend per connection), not a service's siblings.
_MANY_BY_NATURE = frozenset({"postgres", "postgres-shared", "pgbench", "client"})


def _each_after_its_service(used: dict[str, float], members: dict[str, float]) -> dict[str, float]:
    """`used` with each process's figure (`payment:1`, `payment:2`) right after its service's; the
    per-process figures are not counted again in "other"."""
    ordered: dict[str, float] = {}
    for name, pct in used.items():
        ordered[name] = pct
        ordered |= {key: value for key, value in members.items() if key.rpartition(":")[0] == name}
    return ordered


def cpu_cost(cpu_percent: dict[str, float], per_second: float, serving: tuple[str, ...]) -> dict[str, Any]:
    """CPU milliseconds each process spent per call, and the calls per second the serving
    side (servers and database, not the load generator) could reach on all cores if
    nothing else ran. Unlike throughput, this hardly moves when the machine is busy."""
    if per_second <= 0 or not cpu_percent:
        return {}
    per_call = {
        name: round(percent * 10 / per_second, 3)
        for name, percent in cpu_percent.items()
        if name not in ("other", "steal", "machine")
    }
    serving_ms = sum(per_call.get(name, 0.0) for name in serving)
    cores = os.cpu_count() or 1
    return {
        "ms_per_call": per_call,
        "serving": list(serving),
        "serving_ms_per_call": round(serving_ms, 3),
        "ceiling_per_second": round(cores * 1000 / serving_ms, 1) if serving_ms else None,
    }
