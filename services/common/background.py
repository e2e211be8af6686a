"""Tasks that outlive the code that started them: a request's leftover work (giving back what a
cancelled call held, announcing a change once its commit is done) or a watch's side work."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundTasks:
    """Keeps each task referenced until it ends: the event loop holds only a weak reference to a
    task, and one nobody references may be collected before it is done."""

    def __init__(self) -> None:
        self._running: set[asyncio.Future[Any]] = set()

    def start(self, work: Coroutine[Any, Any, T], context: contextvars.Context | None = None) -> asyncio.Task[T]:
        """Runs `work` as a task of its own (in `context`, else a copy of the current one)."""
        task = asyncio.get_running_loop().create_task(work, context=context)
        self.keep(task)
        return task

    def keep(self, future: asyncio.Future[Any]) -> None:
        self._running.add(future)
        future.add_done_callback(self._running.discard)

    def cancel_all(self) -> None:
        for future in list(self._running):
            future.cancel()
