"""The closed-loop load driver: N callers each send the next call as soon as the last one is
answered, and one window's latencies, errors and CPU become a `Level`."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from services.benchmark.cpu import CpuMeter
from services.benchmark.errors import CallRefused
from services.benchmark.latency import latency_summary


@dataclass
class Level:
    concurrency: int
    summary: dict[str, float]
    errors: dict[str, int]
    cpu_percent: dict[str, float]
    checkpoint_mb: float | None = None  # what PostgreSQL's checkpointer wrote during the window


def _described(error: grpc.aio.AioRpcError | CallRefused) -> str:
    if isinstance(error, CallRefused):
        return str(error)
    return f"{error.code().name}: {error.details()}"


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
            except (grpc.aio.AioRpcError, CallRefused) as error:
                if window_start <= time.perf_counter() < window_end:
                    errors[_described(error)[:160]] += 1
                continue
            ended = time.perf_counter()
            if window_start <= ended < window_end:
                latencies.append(ended - began)
                if on_answer is not None:
                    on_answer(answer)

    async def watch_cpu() -> tuple[dict[str, float], float | None]:
        if meter is None:
            return {}, None
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        return await meter.over_window(window_end)

    (cpu, checkpoint_mb), *_ = await asyncio.gather(watch_cpu(), *(caller() for _ in range(concurrency)))
    return Level(concurrency, latency_summary(latencies, seconds), dict(errors), cpu, checkpoint_mb)
