"""Steps for one peer that arrive while an earlier one is on its way travel together.

Batching as a database's group commit does it: a step (a prepare, a commit) for an idle peer goes
at once, alone, as before; the steps that arrive while a call to that peer is out wait for it and
then go together as one batch call (one call and one transaction on the peer). Nothing waits on a
timer, so a lone settlement is as quick as before, and many at once share the cost of a call.

Each step's caller still waits for its own answer. When a batch is refused (one of its steps is,
or the peer is down), every step in it is sent again on its own; the steps are idempotent, so
each caller gets its own step's answer and one bad step holds up no other. A peer of a version
without the batch call is sent single steps from then on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.payment.routing import Node

log = logging.getLogger(__name__)

# The most steps one batch call carries; the node service takes up to 100.
MAX_BATCH = 100

T = TypeVar("T")
R = TypeVar("R")


class BatchUnsupported(Exception):
    """The peer does not know the batch call (a version before it)."""


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    answered: asyncio.Future[R] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def settle(self, answer: R | None, error: BaseException | None = None) -> None:
        if self.answered.done():
            return  # its caller stopped waiting (a deadline); the step was sent all the same
        if error is None:
            self.answered.set_result(answer)  # type: ignore[arg-type]
        else:
            self.answered.set_exception(error)


class PeerBatcher(Generic[T, R]):
    def __init__(
        self,
        what: str,
        send_one: Callable[[Node, T], Awaitable[R]],
        send_many: Callable[[Node, list[T]], Awaitable[list[R]]],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._what = what
        self._send_one = send_one
        self._send_many = send_many
        self._max_batch = max_batch
        self._waiting: dict[str, list[_Waiting[T, R]]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._unbatched: set[str] = set()

    async def send(self, peer: Node, item: T) -> R:
        """Sends one step to `peer` and returns its answer once the peer applied it; raises as the
        single call would."""
        waiting: _Waiting[T, R] = _Waiting(item)
        self._waiting.setdefault(peer.address, []).append(waiting)
        if peer.address not in self._senders:
            self._senders[peer.address] = asyncio.get_running_loop().create_task(self._send_all(peer))
        return await waiting.answered

    async def close(self) -> None:
        """Waits for the steps already handed over; each call is bounded by its deadline."""
        await asyncio.gather(*self._senders.values(), return_exceptions=True)

    async def _send_all(self, peer: Node) -> None:
        try:
            while queued := self._waiting.pop(peer.address, []):
                for start in range(0, len(queued), self._max_batch):
                    await self._send(peer, queued[start : start + self._max_batch])
        finally:
            del self._senders[peer.address]

    async def _send(self, peer: Node, batch: list[_Waiting[T, R]]) -> None:
        if len(batch) > 1 and peer.address not in self._unbatched:
            try:
                answers = await self._send_many(peer, [w.item for w in batch])
                if len(answers) != len(batch):
                    raise ValueError(f"{len(answers)} answers to {len(batch)} {self._what}")
            except BatchUnsupported:
                log.info("node %s does not take batched %s; sending them one by one", peer.name, self._what)
                self._unbatched.add(peer.address)
            except Exception as error:  # each is sent again alone and answers for itself
                log.info("a batch of %d %s to node %s was refused (%s); sending them one by one",
                         len(batch), self._what, peer.name, type(error).__name__)  # fmt: skip
            else:
                for waiting, answer in zip(batch, answers, strict=True):
                    waiting.settle(answer)
                return
        await asyncio.gather(*(self._send_alone(peer, waiting) for waiting in batch))

    async def _send_alone(self, peer: Node, waiting: _Waiting[T, R]) -> None:
        try:
            answer = await self._send_one(peer, waiting.item)
        except Exception as error:  # handed to the step's caller
            waiting.settle(None, error)
        else:
            waiting.settle(answer)
