"""The open-loop phase: Settle calls arriving at a fixed mean rate, as wrk2 sends them.

Arrivals follow a Poisson process (exponential gaps from a seeded RNG). Each call is sent at its
intended time whether or not the earlier ones have been answered (one asyncio task per call), and
its latency runs from that intended time, not from when it was really sent. So when the servers
(or the load generator itself) stall, every call that should have gone out during the stall counts
the wait: coordinated omission cannot hide the queue the way a closed loop does, where a caller
stuck on a slow answer simply stops asking.

The only bound on calls in flight is a very high cap (IN_FLIGHT_CAP); when it is reached the next
send waits for a slot, that wait still counts in the latency (it runs from the intended time), and
the level reports how often it happened. Percentiles are exact: every latency of the window is kept
(a few thousand floats a level) and read nearest-rank, so no histogram buckets round them. A call
still unanswered when the drain after the window gives up counts as unfinished, with the time it
had waited so far as its latency (a lower bound); errors are counted apart and have no latency.

By default the phase runs right after the single-node closed-loop levels, on the same servers and
families, at 50 %, 70 % and 90 % of the best closed-loop settlements/s of that phase; `--rate`
names the rates instead and `--no-open-loop` skips it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from services.benchmark.cpu import CpuMeter
from services.benchmark.desk import CALL_TIMEOUT
from services.benchmark.errors import CallRefused
from services.benchmark.latency import percentile
from services.benchmark.progress import checkpoint_note, say

SHARES = (0.5, 0.7, 0.9)  # of the closed-loop maximum, when no --rate is given
TARGET_SHARE = 0.7
TARGET_P99_MS = 25.0
IN_FLIGHT_CAP = 10_000
# After the window, calls still in flight get this long to answer; Settle's own deadline is shorter.
DRAIN_SECONDS = CALL_TIMEOUT + 5.0
_SEED = 20261203


def poisson_schedule(rate: float, seconds: float, rng: random.Random) -> list[float]:
    """The intended send times, in seconds from the start, of a Poisson process of `rate` arrivals
    per second over [0, seconds): exponentially distributed gaps of mean 1 / rate."""
    if rate <= 0 or seconds <= 0:
        return []
    times: list[float] = []
    at = rng.expovariate(rate)
    while at < seconds:
        times.append(at)
        at += rng.expovariate(rate)
    return times


@dataclass
class OpenLevel:
    """One open-loop window: what was offered, what came back, and how late."""

    rate: float  # offered, calls per second
    seconds: float
    intended: int  # calls whose intended send time fell in the window
    latencies_s: list[float] = field(repr=False)  # answered and unfinished calls, from the intended time
    errors: dict[str, int]
    unfinished: int  # still unanswered when the drain gave up (their wait so far is in latencies_s)
    achieved_per_second: float
    max_in_flight: int
    cap_hits: int  # sends that waited because IN_FLIGHT_CAP calls were in flight
    send_lag_max_s: float  # how far behind its schedule the generator sent a call, at worst
    cpu_percent: dict[str, float]
    checkpoint_mb: float | None = None  # what PostgreSQL's checkpointer wrote during the window

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies_s)
        ms = 1000.0
        return {
            "calls": len(ordered),
            "mean_ms": sum(ordered) / len(ordered) * ms if ordered else 0.0,
            "p50_ms": percentile(ordered, 50) * ms,
            "p90_ms": percentile(ordered, 90) * ms,
            "p99_ms": percentile(ordered, 99) * ms,
            "p999_ms": percentile(ordered, 99.9) * ms,
            "max_ms": (ordered[-1] if ordered else 0.0) * ms,
        }


def _described(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    if isinstance(error, CallRefused):
        return str(error)
    return f"{type(error).__name__}: {error}"


async def drive_open(
    call: Callable[[], Awaitable[Any]],
    rate: float,
    warmup: float,
    seconds: float,
    rng: random.Random,
    on_answer: Callable[[Any], None] | None = None,
    meter: CpuMeter | None = None,
    cap: int = IN_FLIGHT_CAP,
    drain: float = DRAIN_SECONDS,
) -> OpenLevel:
    """Calls `call` at Poisson arrivals of mean `rate` per second for `warmup` + `seconds`; the
    calls intended in the last `seconds` are measured, each from its intended send time."""
    schedule = poisson_schedule(rate, warmup + seconds, rng)
    clock = time.perf_counter
    start = clock()
    window_start, window_end = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    slots = asyncio.Semaphore(cap)
    in_flight: dict[asyncio.Task[None], float] = {}
    last_end, cap_hits, most_in_flight, lag, answered = window_start, 0, 0, 0.0, 0

    async def one(intended: float, measured: bool) -> None:
        nonlocal last_end, answered
        try:
            answer = await call()
        except Exception as error:  # every failure is counted: a task's exception would otherwise vanish
            if measured:
                errors[_described(error)[:160]] += 1
            return
        finally:
            slots.release()
        ended = clock()
        if measured:
            latencies.append(ended - intended)
            answered += 1
            last_end = max(last_end, ended)
            if on_answer is not None:
                on_answer(answer)

    async def send_all() -> None:
        nonlocal cap_hits, most_in_flight, lag
        for offset in schedule:
            intended = start + offset
            delay = intended - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if slots.locked():
                cap_hits += 1
            await slots.acquire()
            measured = intended >= window_start
            if measured:
                lag = max(lag, clock() - intended)
            task = asyncio.create_task(one(intended, measured))
            in_flight[task] = intended
            task.add_done_callback(lambda done: in_flight.pop(done, None))
            most_in_flight = max(most_in_flight, len(in_flight))

    async def watch_cpu() -> tuple[dict[str, float], float | None]:
        if meter is None:
            return {}, None
        await asyncio.sleep(max(0.0, window_start - clock()))
        return await meter.over_window(window_end)

    (cpu, checkpoint_mb), _ = await asyncio.gather(watch_cpu(), send_all())
    unfinished = 0
    if in_flight:
        _, pending = await asyncio.wait(list(in_flight), timeout=drain)
        given_up = clock()
        for task in pending:
            intended = in_flight.get(task, given_up)
            if intended >= window_start:
                unfinished += 1
                latencies.append(given_up - intended)  # a lower bound: it had not answered yet
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    measured_calls = sum(1 for offset in schedule if start + offset >= window_start)
    span = max(seconds, last_end - window_start)
    return OpenLevel(
        rate=rate,
        seconds=seconds,
        intended=measured_calls,
        latencies_s=latencies,
        errors=dict(errors),
        unfinished=unfinished,
        achieved_per_second=answered / span if span > 0 else 0.0,
        max_in_flight=most_in_flight,
        cap_hits=cap_hits,
        send_lag_max_s=lag,
        cpu_percent=cpu,
        checkpoint_mb=checkpoint_mb,
    )


def open_loop_rates(closed_max: float, rates: tuple[float, ...]) -> list[tuple[float, float | None]]:
    """(rate, share of the closed-loop maximum) for each level: the given rates, or SHARES of it."""
    if rates:
        return [(rate, rate / closed_max if closed_max > 0 else None) for rate in rates]
    return [(round(share * closed_max, 1), share) for share in SHARES if share * closed_max > 0]


async def measure_open_loop(
    call: Callable[[], Awaitable[Any]],
    closed_max: float,
    rates: tuple[float, ...],
    warmup: float,
    seconds: float,
    on_answer: Callable[[Any], None] | None = None,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """The open-loop levels, one after another; `call` is the closed-loop phase's Settle."""
    levels = []
    for index, (rate, share) in enumerate(open_loop_rates(closed_max, rates)):
        level = await drive_open(call, rate, warmup, seconds, random.Random(_SEED + index), on_answer, meter)
        s = level.summary()
        share_text = f" ({share:.0%} of {closed_max:.1f}/s)" if share is not None else ""
        errors = f", {sum(level.errors.values())} errors" if level.errors else ""
        say(
            f"  open loop {rate:7.1f}/s{share_text}: achieved {level.achieved_per_second:.1f}/s  "
            f"p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms  p99.9 {s['p999_ms']:.2f} ms  "
            f"max {s['max_ms']:.2f} ms, {level.max_in_flight} in flight at most{errors}"
            f"{checkpoint_note(level.checkpoint_mb)}"
        )
        levels.append((level, share))
    return {"closed_loop_max": closed_max, "levels": levels}


def open_level_row(level: OpenLevel, share: float | None) -> dict[str, Any]:
    """One open-loop window as the JSON summary carries it."""
    return {
        "rate": level.rate,
        "share_of_closed_loop_max": round(share, 3) if share is not None else None,
        "intended": level.intended,
        "achieved_per_second": round(level.achieved_per_second, 3),
        **{key: round(value, 3) for key, value in level.summary().items()},
        "errors": level.errors,
        "unfinished": level.unfinished,
        "max_in_flight": level.max_in_flight,
        "cap_hits": level.cap_hits,
        "send_lag_max_ms": round(level.send_lag_max_s * 1000, 3),
        "cpu_percent": level.cpu_percent,
        "checkpoint_write_mb": level.checkpoint_mb,
    }


def open_loop_summary(
    result: dict[str, Any] | None,
    closed_loop_concurrency: int | None,
    pgbench_open: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The open-loop levels as the JSON summary carries them, and the project's target: p99 at most
    TARGET_P99_MS at TARGET_SHARE of the closed-loop maximum (checked at the level within 5 points of
    that share; `met` is None when no level was). `pgbench_open`, one run a level at its rate, puts
    the database's own latency beside each level's."""
    if result is None:
        return None
    rows = [open_level_row(level, share) for level, share in result["levels"]]
    for row, database in zip(rows, pgbench_open or [], strict=False):
        row["pgbench"] = database
        row["p99_vs_pgbench_p99"] = round(row["p99_ms"] / database["p99_ms"], 3) if database["p99_ms"] else None
    near = [row for row in rows if row["share_of_closed_loop_max"] is not None]
    near = [row for row in near if abs(row["share_of_closed_loop_max"] - TARGET_SHARE) <= 0.05]
    checked = min(near, key=lambda row: abs(row["share_of_closed_loop_max"] - TARGET_SHARE)) if near else None
    return {
        "arrivals": "Poisson (exponential gaps, seeded); each call sent at its intended time, in flight unbounded "
        f"up to {IN_FLIGHT_CAP}",
        "latency_from": "intended send time (as wrk2), so queueing behind a stall counts",
        "percentiles": "exact, nearest-rank over every latency of the window",
        "closed_loop_max_per_second": round(result["closed_loop_max"], 3),
        "closed_loop_concurrency": closed_loop_concurrency,
        "seconds": result["levels"][0][0].seconds if result["levels"] else None,
        "in_flight_cap": IN_FLIGHT_CAP,
        "cap_hit": any(row["cap_hits"] for row in rows),
        "levels": rows,
        "target": {
            "share": TARGET_SHARE,
            "p99_ms": TARGET_P99_MS,
            "rate": checked["rate"] if checked else None,
            "value": checked["p99_ms"] if checked else None,
            "met": checked["p99_ms"] <= TARGET_P99_MS and not checked["errors"] if checked else None,
            "pgbench_p99_ms": checked["pgbench"]["p99_ms"] if checked and "pgbench" in checked else None,
        },
    }
