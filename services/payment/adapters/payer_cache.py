"""Kept ResolvePayers answers, current by the binding service's WatchPayerChanges.

A settlement asks the binding service who may pay; most ask about the same patients again
and again, and the answer changes only when a call changes the registry, a binding, a payer
order or a policy, or when the clock passes the answer's valid_until. So the node keeps the
answers, and drops them all when the binding service announces a change. Only settlement
attempts use them (settlement_reads); every other question is asked afresh.

The guarantee, kept together with the binding service: once a call that removes or narrows a
payer has answered OK, no settlement authorized after that answer uses the old state.
- The binding service answers a change only after this node acknowledged it (or after this
  node's lease ran out). This node acknowledges a change after it dropped every kept answer
  and every settlement attempt that began before the change has finished.
- An attempt checks, as the last step before its commit, that no change was announced since
  it began and that its lease still holds if it used a kept answer; if not, it does not commit
  and runs again with fresh answers (services.payment.service_layer.settling).
- The lease: the node renews it with keepalives and trusts kept answers only until `lease`
  after it sent the last keepalive the service answered; the service counts from when it
  received it, and waits for a silent node's lease to end before it answers a change.
- A broken or new watch drops everything kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime

import grpc

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from services.common.background import BackgroundTasks
from services.common.runner import noting_work_left_running
from services.payment.adapters.binding_client import GrpcBindingDirectory
from services.payment.service_layer.accounts import RegisteredPerson
from services.payment.service_layer.binding_directory import (
    BoundPair,
    PayerQuery,
    WalletLimits,
)
from services.payment.service_layer.settlements import Payers
from shared.errors import DomainError

log = logging.getLogger("gongji.payment.payer_cache")

DEFAULT_MAX_ANSWERS = 100_000
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class _Kept:
    payers: Payers
    asked_at: datetime  # the bill time the answer was given for
    valid_until: datetime | None


def _key(query: PayerQuery) -> tuple[str, str, str, bool]:
    return (query.patient_id_number, query.use_category.value, query.institution_admdvs, query.chronic_disease)


class CachingBindingDirectory:
    """A BindingDirectory that keeps payer answers while its watch holds a lease."""

    def __init__(
        self,
        inner: GrpcBindingDirectory,
        max_answers: int = DEFAULT_MAX_ANSWERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._max_answers = max_answers
        self._clock = clock
        self._kept: OrderedDict[tuple[str, str, str, bool], _Kept] = OrderedDict()
        # Raised by every change announced and every loss of the watch.
        self.epoch = 0
        self._lease_until = 0.0
        self._attempts: dict[int, int] = {}
        self._drained = asyncio.Condition()
        self._background = BackgroundTasks()
        self.hits = 0
        self.misses = 0

    # What the watch tells it ----------------------------------------------------

    def trusted(self) -> bool:
        return self._clock() < self._lease_until

    def renew(self, lease_until: float) -> None:
        self._lease_until = max(self._lease_until, lease_until)

    def distrust(self) -> None:
        """The watch is lost: nothing kept may be used, and nothing begun before may commit."""
        self._lease_until = 0.0
        self.drop_all()

    def drop_all(self) -> int:
        """Drops every kept answer and fails every attempt in flight; the epoch they end."""
        self.epoch += 1
        self._kept.clear()
        return self.epoch

    async def drained(self, epoch: int) -> None:
        """Returns once no settlement attempt begun before `epoch` is in flight."""
        async with self._drained:
            await self._drained.wait_for(lambda: not any(e < epoch for e in self._attempts))

    # BindingDirectory ------------------------------------------------------------

    @asynccontextmanager
    async def settlement_reads(self) -> AsyncIterator[_Reads]:
        reads = _Reads(self, self.epoch)
        self._attempts[reads.epoch] = self._attempts.get(reads.epoch, 0) + 1
        with noting_work_left_running() as left_running:
            try:
                yield reads
            finally:
                if any(not work.done() for work in left_running):
                    # The caller gave up, but the attempt's work goes on in its thread, past its payer
                    # check perhaps, and may still commit: a change announced meanwhile must wait for
                    # that commit, so the attempt counts as in flight until its work ends.
                    self._background.start(self._end_after(reads.epoch, left_running))
                else:
                    await self._end_attempt(reads.epoch)

    async def _end_after(self, epoch: int, work: list[asyncio.Future[object]]) -> None:
        await asyncio.gather(*work, return_exceptions=True)  # its outcome was the caller's, who left
        await self._end_attempt(epoch)

    async def _end_attempt(self, epoch: int) -> None:
        left = self._attempts[epoch] - 1
        if left:
            self._attempts[epoch] = left
        else:
            del self._attempts[epoch]
        async with self._drained:
            self._drained.notify_all()

    async def payers(self, query: PayerQuery) -> Payers | DomainError:
        """Asked afresh: only a settlement attempt, which checks before its commit that nothing
        changed meanwhile, may use what is kept (a peer's claim, say, is checked against the
        binding service itself)."""
        return await self._inner.payers(query)

    async def _payers(self, query: PayerQuery) -> tuple[Payers | DomainError, bool]:
        """The answer, and whether it came from what is kept."""
        key = _key(query)
        kept = self._kept.get(key)
        if (
            kept is not None
            and self.trusted()
            and kept.asked_at <= query.at
            and (kept.valid_until is None or query.at < kept.valid_until)
        ):
            self._kept.move_to_end(key)
            self.hits += 1
            return kept.payers, True
        self.misses += 1
        epoch = self.epoch
        answer, valid_until = await self._inner.payers_until(query)
        if isinstance(answer, Payers) and epoch == self.epoch and self.trusted():
            # Asked before a change was announced: the answer may predate it, so it is not kept.
            self._kept[key] = _Kept(answer, query.at, valid_until)
            self._kept.move_to_end(key)
            while len(self._kept) > self._max_answers:
                self._kept.popitem(last=False)
        return answer, False

    async def binding(self, binding_id: str) -> BoundPair | None:
        return await self._inner.binding(binding_id)

    async def active_binding_between(self, grantor_id_number: str, beneficiary_id_number: str) -> BoundPair:
        return await self._inner.active_binding_between(grantor_id_number, beneficiary_id_number)

    async def registered_person(self, id_number: str) -> RegisteredPerson | None:
        return await self._inner.registered_person(id_number)

    async def impersonation_threshold(self, admdvs: str) -> int:
        return await self._inner.impersonation_threshold(admdvs)

    async def wallet_limits(self, admdvs: str) -> WalletLimits:
        return await self._inner.wallet_limits(admdvs)


class _Reads:
    def __init__(self, directory: CachingBindingDirectory, epoch: int) -> None:
        self._directory = directory
        self.epoch = epoch
        self._used_kept = False

    async def payers(self, query: PayerQuery) -> Payers | DomainError:
        answer, kept = await self._directory._payers(query)
        self._used_kept = self._used_kept or kept
        return answer

    def still_current(self) -> bool:
        if self._directory.epoch != self.epoch:
            return False
        return not self._used_kept or self._directory.trusted()


class PayerWatch:
    """Holds WatchPayerChanges open, renews the lease, applies and acknowledges changes."""

    def __init__(self, stub: binding_grpc.BindingServiceStub, cache: CachingBindingDirectory) -> None:
        self._stub = stub
        self._cache = cache
        self._task: asyncio.Task[None] | None = None
        self.off = False  # the binding service announces no changes (PAYER_WATCH_OFF)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="payer-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._cache.distrust()

    async def apply_change(self) -> None:
        """Drops what is kept and waits for the settlement attempts that may have read it."""
        await self._cache.drained(self._cache.drop_all())

    async def _run(self) -> None:
        failures = 0
        while not self.off:
            try:
                await self._watch_once()
                failures = 0
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    self.off = True
                    log.info("the binding service announces no payer changes; asking it for every bill")
                    break
                log.warning("payer watch lost (%s); asking the binding service for every bill meanwhile",
                            error.code().name)  # fmt: skip
            except Exception:
                log.exception("payer watch failed; asking the binding service for every bill meanwhile")
            finally:
                self._cache.distrust()
            await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
            failures += 1

    async def _watch_once(self) -> None:
        # None ends the requests, so gRPC's task that reads them finishes with the call instead of
        # waiting on the queue until it is collected (asyncio logs such a task as an ERROR).
        outgoing: asyncio.Queue[bapi.WatchPayerChangesRequest | None] = asyncio.Queue()
        sent_at: dict[int, float] = {}
        keepalive = 0

        async def requests() -> AsyncIterator[bapi.WatchPayerChangesRequest]:
            while (request := await outgoing.get()) is not None:
                yield request

        def send_keepalive() -> None:
            nonlocal keepalive
            keepalive += 1
            sent_at[keepalive] = time.monotonic()
            outgoing.put_nowait(bapi.WatchPayerChangesRequest(keepalive=keepalive))

        call = self._stub.WatchPayerChanges(requests())
        applied = 0
        lease = 0.0
        renewing: asyncio.Task[None] | None = None
        acknowledging = BackgroundTasks()

        async def renew_forever() -> None:
            while True:
                send_keepalive()
                await asyncio.sleep(lease / 4)

        async def acknowledge(revision: int) -> None:
            await self.apply_change()
            outgoing.put_nowait(bapi.WatchPayerChangesRequest(applied_revision=revision))

        try:
            async for message in call:
                if message.lease.ToNanoseconds() and renewing is None:
                    # The first message: anything kept before this watch is stale.
                    lease = message.lease.ToNanoseconds() / 1e9
                    applied = message.revision
                    self._cache.drop_all()
                    renewing = asyncio.create_task(renew_forever())
                    continue
                if message.keepalive:
                    sent = sent_at.pop(message.keepalive, None)
                    for stale in [k for k in sent_at if k < message.keepalive]:
                        del sent_at[stale]
                    if sent is not None:
                        self._cache.renew(sent + lease)
                if message.revision > applied:
                    applied = message.revision
                    acknowledging.start(acknowledge(message.revision))
        finally:
            if renewing is not None:
                renewing.cancel()
            acknowledging.cancel_all()
            outgoing.put_nowait(None)
            call.cancel()
