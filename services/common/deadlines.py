"""The caller's deadline, carried from the call to the worker thread and into the database.

The call guard records when the call must be answered; the runner refuses work whose
deadline passed while it waited for a thread, and the database gets the time that is
left: PostgreSQL as the transaction's `statement_timeout`, SQLite through a progress
handler that interrupts a statement running past it.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_CALL: contextvars.ContextVar[float | None] = contextvars.ContextVar("gongji_deadline", default=None)
_THREAD = threading.local()


def set_call_deadline(remaining_seconds: float | None) -> contextvars.Token[float | None]:
    deadline = None if remaining_seconds is None else time.monotonic() + remaining_seconds
    return _CALL.set(deadline)


def reset_call_deadline(token: contextvars.Token[float | None]) -> None:
    _CALL.reset(token)


def without_call_deadline() -> contextvars.Context:
    """The current context (span, log identity) without the caller's deadline: for the work a
    call leaves behind, such as giving back what it held, which must finish after the caller gave up."""
    context = contextvars.copy_context()
    context.run(_CALL.set, None)
    return context


def call_deadline() -> float | None:
    """When the current call must be answered (time.monotonic()), if the caller said."""
    return _CALL.get()


@contextmanager
def working_until(deadline: float | None) -> Iterator[None]:
    """Marks the current thread's work with the call's deadline while it runs."""
    previous = getattr(_THREAD, "deadline", None)
    _THREAD.deadline = deadline
    try:
        yield
    finally:
        _THREAD.deadline = previous


def thread_deadline() -> float | None:
    return getattr(_THREAD, "deadline", None)


def remaining_milliseconds() -> int | None:
    """What is left of the current thread's deadline, at least 1 ms; None without one."""
    deadline = thread_deadline()
    if deadline is None:
        return None
    return max(1, int((deadline - time.monotonic()) * 1000))


def past_deadline() -> bool:
    deadline = thread_deadline()
    return deadline is not None and time.monotonic() >= deadline
