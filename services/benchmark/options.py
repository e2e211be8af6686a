"""What one benchmark run was asked to do: the `gongji benchmark` flags, after their checks."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_CONCURRENCY = (1, 8, 32)


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
