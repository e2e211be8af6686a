"""Commits to one peer that are decided while an earlier one is on its way travel together.

Batching as a database's group commit does it: a commit for an idle peer goes at once, alone,
as CommitLegs; the commits decided while a call to that peer is out wait for it and then go
together as one BatchCommitLegs (one call and one transaction on the peer). Nothing waits on a
timer, so a lone settlement is as quick as before, and many at once share the cost of a call.

A commit sent alone is sent in its caller's context, so its call is traced under the caller's
span; a batch, which serves many callers, is traced under none of them.

Each commit's caller still waits for its own answer. When a batch is refused (one of its commits
is, or the peer is down), every commit in it is sent again on its own, so each caller gets its
own commit's answer and one bad commit holds up no other. A peer of a version without
BatchCommitLegs is sent single commits from then on.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from opentelemetry import context as trace_context

from services.payment.routing import Node

log = logging.getLogger(__name__)

# The most commits one BatchCommitLegs carries; the node service takes up to 100.
MAX_BATCH = 100

SendOne = Callable[[Node, str, dict[int, int]], Awaitable[None]]
SendMany = Callable[[Node, list[tuple[str, dict[int, int]]]], Awaitable[None]]


class BatchUnsupported(Exception):
    """The peer does not know BatchCommitLegs (a version before it)."""


@dataclass
class _Waiting:
    transaction_id: str
    captures: dict[int, int]
    answered: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    context: contextvars.Context = field(default_factory=contextvars.copy_context)  # the caller's: its span

    def settle(self, error: BaseException | None) -> None:
        if self.answered.done():
            return  # its caller stopped waiting (a deadline); the commit was sent all the same
        if error is None:
            self.answered.set_result(None)
        else:
            self.answered.set_exception(error)


class CommitBatcher:
    def __init__(self, send_one: SendOne, send_many: SendMany, max_batch: int = MAX_BATCH) -> None:
        self._send_one = send_one
        self._send_many = send_many
        self._max_batch = max_batch
        self._waiting: dict[str, list[_Waiting]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._unbatched: set[str] = set()

    async def commit(self, peer: Node, transaction_id: str, captures: dict[int, int]) -> None:
        """Sends the commit of one transaction to `peer`; returns once the peer applied it, raises as
        CommitLegs would."""
        waiting = _Waiting(transaction_id, captures)
        self._waiting.setdefault(peer.address, []).append(waiting)
        if peer.address not in self._senders:
            self._senders[peer.address] = asyncio.get_running_loop().create_task(self._send_all(peer))
        await waiting.answered

    async def close(self) -> None:
        """Waits for the commits already handed over; each call is bounded by its deadline."""
        await asyncio.gather(*self._senders.values(), return_exceptions=True)

    async def _send_all(self, peer: Node) -> None:
        # The task began in the context of the commit that started it; its later batches are not
        # that caller's, so it keeps no current span (the log identity in its context stays).
        trace_context.attach(trace_context.Context())
        try:
            while queued := self._waiting.pop(peer.address, []):
                for start in range(0, len(queued), self._max_batch):
                    await self._send(peer, queued[start : start + self._max_batch])
        finally:
            del self._senders[peer.address]

    async def _send(self, peer: Node, batch: list[_Waiting]) -> None:
        if len(batch) > 1 and peer.address not in self._unbatched:
            try:
                await self._send_many(peer, [(w.transaction_id, w.captures) for w in batch])
            except BatchUnsupported:
                log.info("node %s does not take batched commits; sending them one by one", peer.name)
                self._unbatched.add(peer.address)
            except Exception as error:  # each is sent again alone and answers for itself
                log.info("a batch of %d commits to node %s was refused (%s); sending them one by one",
                         len(batch), peer.name, type(error).__name__)  # fmt: skip
            else:
                for waiting in batch:
                    waiting.settle(None)
                return
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.create_task(self._send_alone(peer, waiting), context=waiting.context) for waiting in batch)
        )

    async def _send_alone(self, peer: Node, waiting: _Waiting) -> None:
        try:
            await self._send_one(peer, waiting.transaction_id, waiting.captures)
        except Exception as error:  # handed to the commit's caller
            waiting.settle(error)
        else:
            waiting.settle(None)
