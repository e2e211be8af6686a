"""Runs synchronous use cases off the event loop, each in its own unit of work.

`mutate` makes a request idempotent by its request_id: the first answer,
success or refusal, is stored with the effect and replayed to every retry. Keys are
the calling principal's own (see services.common.idempotency).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Generic, TypeVar

from google.protobuf.message import Message
from google.rpc import status_pb2
from sqlalchemy.exc import DBAPIError, IntegrityError

from services.common.background import BackgroundTasks
from services.common.clock import Clock
from services.common.deadlines import call_deadline, past_deadline, without_call_deadline, working_until
from services.common.idempotency import Outcome, check_request_id, check_same_request, fingerprint
from services.common.interceptors import RpcFailure
from services.common.security.callers import caller_id
from services.common.status import status_of
from services.common.unit_of_work import SqlUnitOfWork
from shared.errors import TRANSIENT_KINDS, DomainError, Reason

log = logging.getLogger(__name__)

U = TypeVar("U", bound=SqlUnitOfWork)
R = TypeVar("R", bound=Message)
T = TypeVar("T")

# Where `mutate` notes the work a cancelled call left running, for whoever must outlast it.
_LEFT_RUNNING: contextvars.ContextVar[list[asyncio.Future[object]] | None] = contextvars.ContextVar(
    "gongji_left_running", default=None
)


@contextlib.contextmanager
def noting_work_left_running() -> Iterator[list[asyncio.Future[object]]]:
    """The work of the mutations cut off (cancelled) inside the block that still runs on its
    thread and may commit: what guards such work must stay in place until it ends."""
    left: list[asyncio.Future[object]] = []
    token = _LEFT_RUNNING.set(left)
    try:
        yield left
    finally:
        _LEFT_RUNNING.reset(token)


def _reconnecting(fn: Callable[[], T]) -> T:
    """Runs fn again once when its pooled connection turned out dead (the database restarted).

    The pool does not ping each connection it lends (a round trip per
    transaction); the first use of a stale one fails instead, SQLAlchemy
    invalidates the pool, and the work runs again on a fresh connection. That
    is safe: a transaction cut off by a disconnect did nothing, and one whose
    COMMIT reached the server is found by its idempotency key.
    """
    try:
        return fn()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        log.warning("database connection lost (%s); running the work again on a new one", type(error.orig).__name__)
        return fn()


def _in_time(fn: Callable[[], T], deadline: float | None) -> Callable[[], T]:
    """fn, refused unstarted when the caller's deadline passed while it waited for a thread,
    and run with that deadline for the database to keep."""

    def run() -> T:
        with working_until(deadline):
            if past_deadline():
                raise DomainError(Reason.DEADLINE_EXCEEDED, "the deadline passed before the work could start")
            return _reconnecting(fn)

    return run


class UseCaseRunner(Generic[U]):
    def __init__(
        self,
        unit_of_work: Callable[[], U],
        clock: Clock,
        error_domain: str,
        workers: int = 16,
        max_waiting: int = 256,
        after_mutation: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        # Awaited after each mutating call, before it answers (the binding service announces
        # the change to the payment nodes that keep its answers).
        self._after_mutation = after_mutation
        self._clock = clock
        self._domain = error_domain
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="use-case")
        # Work accepted but not finished; beyond workers + max_waiting, new work is shed.
        self._capacity = workers + max_waiting
        self._accepted = 0
        self._background = BackgroundTasks()

    @property
    def unit_of_work(self) -> Callable[[], U]:
        return self._unit_of_work

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Runs fn on a worker thread; sheds it with SERVER_BUSY when too much waits already."""
        if self._accepted >= self._capacity:
            raise DomainError(
                Reason.SERVER_BUSY, "the service has more work waiting than it takes; retry shortly with the same key"
            )
        self._accepted += 1
        try:
            # The call's context goes along (executor threads start without it): the current span, so
            # SQL spans and outgoing calls are its children, and the server's log identity.
            work = partial(contextvars.copy_context().run, _in_time(fn, call_deadline()))
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        finally:
            self._accepted -= 1

    async def query(self, fn: Callable[[U], T], snapshot: bool = True) -> T:
        """A read in its own transaction; with snapshot=False, none on PostgreSQL (see SqlUnitOfWork.reading)."""

        def read() -> T:
            with self._unit_of_work().reading(snapshot) as uow:
                return fn(uow)

        return await self.in_thread(read)

    async def transact(self, fn: Callable[[U], T], statement_by_statement: bool = False) -> T:
        """A write in its own transaction, for work idempotent by its own ids (node-to-node steps);
        with statement_by_statement, none on PostgreSQL (see SqlUnitOfWork.statement_by_statement)."""

        def write() -> T:
            uow = self._unit_of_work()
            with uow.statement_by_statement() if statement_by_statement else uow:
                result = fn(uow)
                uow.commit()
                return result

        return await self.in_thread(write)

    def answered(self, uow: U, request_id: str) -> bool:
        """Whether the calling principal's request_id has a stored answer, read in a unit of work
        already open for other work (then `replay` gives the answer)."""
        if not request_id:
            return False
        stored = uow.idempotency.get(caller_id(), request_id)  # type: ignore[attr-defined]
        return stored is not None and stored.outcome is not None

    async def replay(self, method: str, request_id: str, request: Message, response_type: type[R]) -> R | None:
        """The stored answer of an earlier identical request, or None when there is none yet.

        For requests that do network work before their transaction (asking other
        nodes), so a retry is answered without that work.
        """
        if not request_id:
            return None
        principal = caller_id()
        digest = fingerprint(method, request.SerializeToString(deterministic=True))
        stored = await self.query(lambda uow: uow.idempotency.get(principal, request_id))
        if stored is None or stored.outcome is None:
            return None
        check_same_request(stored, method, digest)
        if stored.outcome.succeeded:
            return response_type.FromString(stored.outcome.payload)
        raise RpcFailure(status_pb2.Status.FromString(stored.outcome.payload), replayed=True)

    async def replayed_or_raise(
        self, method: str, request_id: str, request: Message, response_type: type[R], error: DomainError
    ) -> R:
        """The stored answer of an earlier identical request, else `error`: for a dependency that
        failed before the transaction (another service down), which a retry of a request already
        answered must not meet."""
        replayed = await self.replay(method, request_id, request, response_type)
        if replayed is not None:
            return replayed
        raise error

    async def refuse(
        self, method: str, request_id: str, request: Message, response_type: type[R], refusal: DomainError
    ) -> R:
        """Answers with a refusal found before the request's transaction (by another service, or
        against the clock), stored under its key as if the transaction gave it: the condition may
        change, and a retry must still get this answer, never the effect. An answer already stored
        under the key wins (and the same key with another request is IDEMPOTENCY_KEY_REUSED); a
        transient refusal is raised unstored, as `mutate` does."""

        def run(uow: U) -> R:
            raise refusal

        return await self.mutate(method, request_id, request, response_type, run)

    async def mutate(
        self,
        method: str,
        request_id: str,
        request: Message,
        response_type: type[R],
        fn: Callable[[U], R],
        after_commit: Callable[[], None] | None = None,
    ) -> R:
        """Runs fn once per request_id; a retry gets the stored answer.

        A transient refusal (ErrorKind.UNAVAILABLE) is not stored: the claim is
        rolled back with everything else, so a retry with the same key runs again.
        `after_commit` runs on the worker thread once the transaction ended (committed or not),
        before anything follows the mutation, even when the caller gave up meanwhile.
        """
        check_request_id(request_id, "request_id")
        key = (caller_id(), request_id)
        digest = fingerprint(method, request.SerializeToString(deterministic=True))

        def run() -> tuple[Outcome, bool]:
            try:
                return self._run_once(method, key, digest, fn)
            finally:
                if after_commit is not None:
                    after_commit()

        work = asyncio.ensure_future(self.in_thread(run))
        try:
            outcome, replayed = await asyncio.shield(work)
        except asyncio.CancelledError:
            # The caller gave up, but the work goes on in its thread and may still commit: what
            # follows a mutation must come after it ends, not at the cancel, so a task waits for it.
            self._after_in_background(work)
            left_running = _LEFT_RUNNING.get()
            if left_running is not None:
                left_running.append(work)
            raise
        finally:
            if work.done() and self._after_mutation is not None:
                # Replays and refusals too: a twin may still await the acknowledgements.
                await self._after_mutation()
        if outcome.succeeded:
            return response_type.FromString(outcome.payload)
        raise RpcFailure(status_pb2.Status.FromString(outcome.payload), replayed=replayed)

    def _after_in_background(self, work: asyncio.Future[object]) -> None:
        """Keeps the work a caller left running until it ends (its outcome, which that caller no
        longer awaits, is retrieved so none is reported as lost), then does what follows a mutation."""
        self._background.keep(work)
        work.add_done_callback(lambda done: done.cancelled() or done.exception())
        after_mutation = self._after_mutation
        if after_mutation is None:
            return

        async def after_it_ends() -> None:
            await asyncio.wait([work])
            await after_mutation()

        self._background.start(after_it_ends(), context=without_call_deadline())

    def _run_once(
        self, method: str, key: tuple[str, str], digest: str, fn: Callable[[U], Message]
    ) -> tuple[Outcome, bool]:
        """The request's outcome, and whether it was an earlier answer replayed."""
        for _ in range(3):
            try:
                return self._attempt(method, key, digest, fn)
            except IntegrityError as error:
                # A constraint the effect ran into while a concurrent twin committed first; retry to read its answer.
                # Only the error's class is logged: the driver's text quotes the values (ID numbers).
                log.info("request_id %s collided with a concurrent request (%s); retrying", key[1],
                         type(error.orig).__name__)  # fmt: skip
        raise RuntimeError(f"request_id {key[1]} could neither be claimed nor read")

    def _attempt(
        self, method: str, key: tuple[str, str], digest: str, fn: Callable[[U], Message]
    ) -> tuple[Outcome, bool]:
        principal, request_id = key
        with self._unit_of_work() as uow:
            now = self._clock.now()
            if not uow.idempotency.claim(principal, request_id, method, digest, now):
                return self._stored(uow, key, method, digest), True
            try:
                outcome = Outcome(True, fn(uow).SerializeToString())
            except DomainError as error:
                if error.kind in TRANSIENT_KINDS:
                    raise  # transient: nothing is stored, so a retry with the same key runs again
                outcome = Outcome(False, status_of(error, self._domain).SerializeToString())
                if not error.keep_effects:
                    # Undo the effect and the claim together, then store the refusal alone.
                    uow.rollback()
                    if not uow.idempotency.claim(principal, request_id, method, digest, now, outcome):
                        return self._stored(uow, key, method, digest), True
                    uow.commit()
                    return outcome, False
            uow.idempotency.complete(principal, request_id, outcome)
            uow.commit()
            return outcome, False

    @staticmethod
    def _stored(uow: U, key: tuple[str, str], method: str, digest: str) -> Outcome:
        stored = uow.idempotency.get(*key)
        if stored is None or stored.outcome is None:
            raise RuntimeError(f"request_id {key[1]} is claimed but holds no answer")
        check_same_request(stored, method, digest)
        return stored.outcome
