"""Ctrl-C and SIGTERM during a run: unwind once so the cleanup runs, and ignore the rest."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from services.benchmark.progress import say


class Interrupts:
    """Ctrl-C and SIGTERM unwind the run once, so the cleanup runs; further signals
    are ignored while it does. The servers share the terminal's process group and
    stop on Ctrl-C too, so a failed call after an interrupt counts as the interrupt."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            raise KeyboardInterrupt
        say("still cleaning up: stopping the servers and dropping the scratch databases")

    def __enter__(self) -> Interrupts:
        # Python lets only the main thread install signal handlers.
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
