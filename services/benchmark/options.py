"""What one benchmark run was asked to do: the `gongji benchmark` flags, after their checks."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_CONCURRENCY = (1, 8, 32)
# Each payment process opens up to twice its workers' connections (16 by default); four per node
# keep two nodes, the binding service and pgbench's 32 clients under PostgreSQL's 100.
MOST_DEFAULT_PAYMENT_PROCESSES = 4


def default_payment_processes() -> int:
    """One payment process per core this run may use (at most four): one process is bound by
    one core's Python, and on the 2-core development machine a second one raised settlements/s
    by 16-40 % (four quiet runs, 3 December 2026)."""
    return max(1, min(len(os.sched_getaffinity(0)), MOST_DEFAULT_PAYMENT_PROCESSES))


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
    observability_baseline: bool = True
    gateway: bool = True
    open_loop: bool = True  # Poisson arrivals after the single-node levels (services/benchmark/open_loop.py)
    rates: tuple[float, ...] = ()  # --rate: open-loop rates; empty: 50/70/90 % of the closed-loop best
    population: tuple[int, ...] = ()  # --population: the scale phase's sizes, ascending (services/benchmark/scale.py)
    scale_concurrency: int = 8  # its closed-loop callers
    scale_rate: float | None = None  # its open-loop rate; None: 70 % of the smallest population's closed-loop rate
    payer_cache: bool = True  # payment nodes keep ResolvePayers answers, kept current by the binding watch
    one_round: bool = True  # a cross-node bill whose other node's payers come last is captured in one call
    payment_processes: int = 1  # processes per payment node (gongji serve payment --processes)
