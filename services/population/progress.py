"""A progress line on stderr: done of total, rows per second, time left. Redrawn in place
with a carriage return on a terminal; elsewhere (a log, CI) a plain line every few seconds."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int, unit: str = "persons", stream: TextIO | None = None, every: float = 5.0) -> None:
        self.total = max(total, 1)
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.2 if self.tty else every
        self.started = time.monotonic()
        self.shown = 0.0
        self.done = 0
        self.rows = 0

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        share = self.done / self.total
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        left = elapsed / share - elapsed if share > 0 else 0.0
        width = 30
        bar = "#" * int(width * share) + "-" * (width - int(width * share))
        return (
            f"[{bar}] {share:6.1%} {self.done:,}/{self.total:,} {self.unit}, {rate:,.0f} rows/s, "
            f"elapsed {_clock(elapsed)}, ETA {_clock(left)}"
        )

    def advance(self, done: int, rows: int) -> None:
        self.done += done
        self.rows += rows
        now = time.monotonic()
        if now - self.shown >= self.every or self.done >= self.total:
            self.shown = now
            self._show()

    def _show(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
