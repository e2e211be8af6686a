"""WatchPayerChanges: payment nodes that keep ResolvePayers answers learn of every change
before the call that made it is answered.

The guarantee: once a mutating call (ending a binding, a death, a lower cap, a new payer
order, a policy version …) has answered, every watching node has dropped the answers it kept
and let the settlements that read payers before the change finish, or that node's lease has
run out. So no settlement authorized after the answer uses the old state.

How: each committed change raises the revision. The call that made it waits until every
watcher has acknowledged that revision. A watcher that does not acknowledge within its lease is
cut off, and the call waits until that watcher's lease is over too: the node counts its
lease from when it sent its keepalive, this service from when it received it, so the node
stops using what it kept first. After a restart the service cannot know who watched its
predecessor, so for one lease it answers changes only once that lease has passed.

Every change drops everything the nodes kept: changes are rare next to settlements, and
this keeps the rule obviously right.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.duration_pb2 import Duration

from gongji.binding.v1 import binding_service_pb2 as api

log = logging.getLogger("gongji.binding.payer_watch")
# Covers the instant between a node's last look at its lease and the commit it guards.
LEASE_MARGIN_SECONDS = 0.5


@dataclass(eq=False)
class Watcher:
    """One payment node's open watch."""

    lease_until: float
    applied_revision: int = 0
    # Why the node's side of the stream failed (a request that did not parse), if it did.
    failure: Exception | None = None
    outbox: asyncio.Queue[api.WatchPayerChangesResponse | None] = field(default_factory=asyncio.Queue)
    acknowledged: asyncio.Event = field(default_factory=asyncio.Event)


class PayerChangeHub:
    """Announces committed changes to the watchers and waits for their acknowledgements."""

    def __init__(self, lease_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._revision = 0
        self._watchers: set[Watcher] = set()
        # Nodes may still trust a predecessor process's answers until then.
        self._answers_from = clock() + lease_seconds + LEASE_MARGIN_SECONDS

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def _lease(self) -> Duration:
        lease = Duration()
        lease.FromNanoseconds(int(self.lease_seconds * 1e9))
        return lease

    async def announce(self) -> None:
        """Raises the revision and returns once every watcher applied it or lost its lease."""
        self._revision += 1
        revision = self._revision
        for watcher in list(self._watchers):
            watcher.outbox.put_nowait(api.WatchPayerChangesResponse(revision=revision))
        await asyncio.gather(*(self._applied(watcher, revision) for watcher in list(self._watchers)))
        wait = self._answers_from - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _applied(self, watcher: Watcher, revision: int) -> None:
        while watcher.applied_revision < revision:
            left = watcher.lease_until - self._clock()
            if left <= 0 or watcher not in self._watchers:
                break
            watcher.acknowledged.clear()
            try:
                async with asyncio.timeout(left):  # not wait_for, which may lose a cancel on 3.11
                    await watcher.acknowledged.wait()
            except TimeoutError:
                break
        if watcher.applied_revision >= revision:
            return
        # Silent or gone: cut it off, then wait out the lease it may still be using.
        self._drop(watcher)
        wait = watcher.lease_until + LEASE_MARGIN_SECONDS - self._clock()
        if wait > 0:
            log.warning(
                "a payment node did not acknowledge payer change %d; waiting %.1fs for its lease", revision, wait
            )
            await asyncio.sleep(wait)

    def close(self) -> None:
        """Ends every watch (the service is stopping); the nodes ask for every bill meanwhile."""
        for watcher in list(self._watchers):
            self._drop(watcher)

    def _drop(self, watcher: Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.discard(watcher)
            watcher.outbox.put_nowait(None)

    def _heard(self, watcher: Watcher, request: api.WatchPayerChangesRequest) -> None:
        if request.keepalive:
            watcher.lease_until = self._clock() + self.lease_seconds
            watcher.outbox.put_nowait(
                api.WatchPayerChangesResponse(revision=self._revision, keepalive=request.keepalive, lease=self._lease())
            )
        if request.applied_revision > watcher.applied_revision:
            watcher.applied_revision = min(request.applied_revision, self._revision)
            watcher.acknowledged.set()

    async def watch(self, requests: AsyncIterator[api.WatchPayerChangesRequest]) -> AsyncIterator[Any]:
        """One node's stream: the current revision and lease first, then changes and keepalive
        answers. It ends when the node closes its side or stops renewing its lease."""
        watcher = Watcher(lease_until=self._clock() + self.lease_seconds)
        self._watchers.add(watcher)

        async def listen() -> None:
            try:
                async for request in requests:
                    self._heard(watcher, request)
            except Exception as error:
                watcher.failure = error
            finally:
                self._drop(watcher)

        listening = asyncio.create_task(listen())
        try:
            yield api.WatchPayerChangesResponse(revision=self._revision, lease=self._lease())
            while True:
                left = watcher.lease_until - self._clock()
                try:
                    async with asyncio.timeout(max(left, 0.0)):  # not wait_for, which may lose a cancel on 3.11
                        message = await watcher.outbox.get()
                except TimeoutError:
                    message = None  # no keepalive within the lease: the node must stop trusting its answers
                if message is None:
                    break
                yield message
        finally:
            self._drop(watcher)
            listening.cancel()
        if watcher.failure is not None:
            raise watcher.failure
