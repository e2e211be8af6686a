"""Profiling a served process: every Python thread under cProfile, a measurement window the
benchmark marks with signals, and the merged stats written (pstats' layout) when it ends."""

from __future__ import annotations

import contextlib
import cProfile
import marshal
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from services.benchmark.errors import BenchmarkError

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


def run_profiled(path: str, clock: str, entry: Callable[[], int]) -> int:
    """Runs `entry` with every Python thread under cProfile and writes the merged stats
    to PATH when it returns (a served process: on SIGTERM); its exit status.

    SIGUSR1 marks the start of the measurement and SIGUSR2 its end: what was counted
    before (start-up, migrations, registering the families) and after (the ledger
    check, shutdown) is left out of PATH; PATH.marked appears once a mark is taken.
    clock "cpu" counts each thread's own CPU time (idle pool
    threads cost nothing); "wall" counts elapsed time, waits on the database and the
    network included."""
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
        return entry()
    finally:
        main_profile.disable()
        for signum in (PROFILE_START_SIGNAL, PROFILE_STOP_SIGNAL):
            signal.signal(signum, signal.SIG_IGN)
        stats = marks.get(PROFILE_STOP_SIGNAL) or _snapshot(live)
        _merge_stats(stats, marks.get(PROFILE_START_SIGNAL, {}), sign=-1)
        stats = {func: row for func, row in stats.items() if row[1] > 0}
        with open(path, "wb") as out:
            marshal.dump(stats, out)


def mark_profiles(path: str, pids: dict[str, int], signum: int, timeout: float = 10.0) -> None:
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
