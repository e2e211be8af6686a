"""Runs aio servers on a background thread's event loop, for tests and the demo:
callers keep plain blocking code and talk to the servers over real channels."""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable
from types import TracebackType

from services.common.server import RunningServer

# How long starting or stopping may take before it is reported as stuck: far beyond a healthy
# start or a `grace`-second stop, short of a CI run's limit.
STUCK_AFTER = 120.0


class BackgroundServerStuck(RuntimeError):
    """The server's thread did not start or stop in time; the message carries its stack."""


def _awaiting(coroutine: object) -> str:
    """A suspended coroutine's chain of awaits, outermost first (Task.get_stack shows one frame)."""
    lines: list[str] = []
    while coroutine is not None:
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "gi_frame", None)
        if frame is not None:
            lines.append(f"\n  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)
    return "".join(lines)


class BackgroundServer:
    def __init__(
        self, start: Callable[[], Awaitable[RunningServer]], grace: float = 1.0, drain_delay: float = 0.0
    ) -> None:
        self._start = start
        self._grace = grace
        self._drain_delay = drain_delay
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grpc-server", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.running: RunningServer | None = None

    @property
    def port(self) -> int:
        assert self.running is not None, "server not started"
        return self.running.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        if not self._ready.wait(STUCK_AFTER):
            raise BackgroundServerStuck(f"the server did not start within {STUCK_AFTER:.0f}s\n{self._stack()}")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self._drain_delay + self._grace + STUCK_AFTER)
        if self._thread.is_alive():
            raise BackgroundServerStuck(f"the server did not stop within {STUCK_AFTER:.0f}s\n{self._stack()}")

    def _stack(self) -> str:
        """Where the server's thread and its event loop's tasks are, for a report of it being
        stuck: the thread alone only shows the loop waiting in select."""
        frame = sys._current_frames().get(self._thread.ident or -1)
        thread = "".join(traceback.format_stack(frame)) if frame is not None else "(the thread has ended)"
        return f"{thread}{self._tasks()}"

    def _tasks(self) -> str:
        if self._loop is None or self._loop.is_closed():
            return ""
        # Listing another thread's tasks may meet the set changing; a retry is enough.
        for _ in range(3):
            try:
                tasks = list(asyncio.all_tasks(self._loop))
                break
            except RuntimeError:
                continue
        else:
            return "\n(the loop's tasks could not be listed)"
        return "".join(f"\ntask {task.get_name()} awaits:{_awaiting(task.get_coro())}" for task in tasks)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.running = await self._start()
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.running.stop(self._grace, self._drain_delay)
