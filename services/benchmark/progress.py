"""Progress on stderr while the benchmark runs; stdout is kept for the report or the JSON."""

from __future__ import annotations

import sys

from services.benchmark.driver import Level


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def level_line(what: str, level: Level) -> str:
    """One measured level as a progress line: rate, latencies, errors and CPU."""
    s = level.summary
    errors = f", {sum(level.errors.values())} errors" if level.errors else ""
    cpu = ", ".join(f"{name} {pct:.0f}%" for name, pct in level.cpu_percent.items())
    return (
        f"  {what:7s} {level.concurrency:3d} callers: {s['per_second']:8.1f}/s  "
        f"p50 {s['p50_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms{errors}  [CPU {cpu}]"
        + checkpoint_note(level.checkpoint_mb)
    )


def checkpoint_note(written_mb: float | None) -> str:
    """A progress line's mention of a PostgreSQL checkpoint that wrote during the window, if one did."""
    return f" [checkpoint wrote {written_mb:.0f} MB]" if written_mb else ""
