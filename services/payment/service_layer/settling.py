"""Quoting (预结算) and settling a bill on the node that keeps the institution's province.

Who may pay is asked of the binding service before any transaction opens, so no lock is
held across the network. Payers kept by other nodes are held there first (the coordinator's
prepare), then the local settlement is recorded in one unit of work, and the other nodes are
told whether it was."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from google.protobuf.message import Message

from services.common.clock import Clock
from services.common.runner import UseCaseRunner
from services.payment.service_layer import settlements, suspensions
from services.payment.service_layer.binding_directory import (
    BindingDirectory,
    PayerQuery,
    PayerReads,
    on_current_payers,
    require_current,
)
from services.payment.service_layer.coordinator import AnsweredBefore, Coordinator
from services.payment.service_layer.lapsed_holds import release_lapsed_holds
from services.payment.service_layer.settlements import PlannedTooLittle
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason
from shared.settlements import Bill, Settlement

MAX_HOLD = timedelta(days=60)
# How often a bill is planned again when this node's payers gave less than planned.
REPLANS = 2
# How often a bill that found lapsed holds still taken releases them and draws again.
LAPSED_RELEASES = 2
log = logging.getLogger(__name__)


R = TypeVar("R", bound=Message)
T = TypeVar("T")


class Settling:
    def __init__(
        self,
        runner: UseCaseRunner[PaymentUnitOfWork],
        clock: Clock,
        directory: BindingDirectory,
        coordinator: Coordinator,
        default_hold: timedelta,
    ) -> None:
        self._run = runner
        self._clock = clock
        self._directory = directory
        self._coordinator = coordinator
        self._default_hold = default_hold

    @staticmethod
    def _query(bill: Bill, at: datetime) -> PayerQuery:
        return PayerQuery(bill.patient_id_number, bill.use_category, bill.institution_admdvs, bill.chronic_disease, at)

    async def payers(self, bill: Bill, at: datetime) -> settlements.Payers | DomainError:
        """The grants for this bill, or the refusal the binding service gave."""
        return await self._directory.payers(self._query(bill, at))

    async def quote(self, bill: Bill, at: datetime) -> Settlement:
        """What settling the bill at `at` would take from whom, payers on other nodes included."""
        payers = await self.payers(bill, at)
        if isinstance(payers, DomainError):
            raise payers
        remote, local = None, None
        if self._coordinator.needs_other_nodes(bill, payers):
            remote = await self._coordinator.remote_capacities(bill, payers)
            local = self._coordinator.routing.me.provinces
        return await self._past_lapsed_holds(
            lambda: self._run.query(
                lambda uow: settlements.quote(uow, bill, payers, at, remote, local, holds_at=self._clock.now())
            )
        )

    async def _past_lapsed_holds(self, draw: Callable[[], Awaitable[T]]) -> T:
        """`draw`, run again once the holds past their expiry that it found still taken on its
        accounts are released (the sweeper comes by only every few seconds)."""
        for tries_left in reversed(range(LAPSED_RELEASES + 1)):
            try:
                return await draw()
            except settlements.HoldsLapsed as lapsed:
                if not tries_left:
                    raise
                await release_lapsed_holds(self._run, self._clock, lapsed.account_ids)
        raise AssertionError("the last try raises")

    async def payers_to_charge_again(
        self, principal: str, original_request_id: str, settlement_of: Callable[[str, bytes], str | None]
    ) -> settlements.Payers | DomainError | None:
        """Who may pay now the bill whose undo (撤销) a reversal names, for the reversal to charge it
        again within their limits; None when the original is no undo to charge again. Asked of the
        binding service before the reversal's transaction opens, as for a bill."""
        bill = await self._run.query(
            lambda uow: settlements.undone_bill(uow, principal, original_request_id, settlement_of)
        )
        return None if bill is None else await self.payers(bill, self._clock.now())

    def expiry(self, requested: datetime | None, now: datetime) -> datetime:
        """When an authorised hold lapses: as requested, within the next 60 days, or the default."""
        expire = requested or now + self._default_hold
        if expire <= now or expire - now > MAX_HOLD:
            raise DomainError(Reason.FIELD_INVALID, "expire_time must lie in the next 60 days", field="expire_time")
        return expire

    async def settle(
        self,
        method: str,
        request: Message,
        request_id: str,
        bill: Bill,
        requested_expiry: datetime | None,
        capture: bool,
        response_type: type[R],
        respond: Callable[[Settlement], R],
    ) -> R:
        """Authorises (holds) or settles the bill once per request_id; a retry gets the stored answer."""
        now = self._clock.now()
        try:
            expire = now + self._default_hold if capture else self.expiry(requested_expiry, now)
        except DomainError as refusal:
            # Judged against the clock, so through the key: a retry sent after the expiry passed
            # gets the first answer, and a refused expiry stays refused once time would let it in.
            return await self._run.refuse(method, request_id, request, response_type, refusal)
        if bill.credential_holder != bill.patient_id_number:
            return await self._refuse_impersonation(method, request, request_id, bill, response_type)
        return await on_current_payers(
            self._directory,
            lambda reads: self._attempt(
                method, request, request_id, bill, now, expire, capture, response_type, respond, reads
            ),
        )

    async def _attempt(
        self,
        method: str,
        request: Message,
        request_id: str,
        bill: Bill,
        now: datetime,
        expire: datetime,
        capture: bool,
        response_type: type[R],
        respond: Callable[[Settlement], R],
        reads: PayerReads,
    ) -> R:
        try:
            payers = await reads.payers(self._query(bill, now))
        except DomainError as error:  # the binding service is down
            return await self._run.replayed_or_raise(method, request_id, request, response_type, error)
        # A bill whose payers here give less than when the other nodes were asked to hold (a
        # concurrent bill took it) is planned and held again, so the patient does not pay cash that
        # relatives could cover; the last try settles or authorises as it finds.
        for tries_left in reversed(range(REPLANS + 1)):
            try:
                return await self._past_lapsed_holds(
                    lambda replan=tries_left > 0: self._hold_and_record(
                        method, request, request_id, bill, expire, capture, response_type, respond, reads, payers,
                        replan=replan,
                    )
                )  # fmt: skip
            except PlannedTooLittle:
                log.info("request %s: this node's payers gave less than planned; holding on other nodes again",
                         request_id)  # fmt: skip
        raise AssertionError("the last try does not replan")

    async def _hold_and_record(
        self,
        method: str,
        request: Message,
        request_id: str,
        bill: Bill,
        expire: datetime,
        capture: bool,
        response_type: type[R],
        respond: Callable[[Settlement], R],
        reads: PayerReads,
        payers: settlements.Payers | DomainError,
        replan: bool,
    ) -> R:
        prepared = None
        if not isinstance(payers, DomainError) and self._coordinator.needs_other_nodes(bill, payers):
            # A retry is answered before anything is held on other nodes again, and also when
            # they cannot be reached (asked only then, so a first request reads nothing for it).
            try:
                # One round where it pays; never on the last try, whose settlement must stand
                # with what the other nodes give, which only a hold lets it plan with freely.
                prepared = await self._coordinator.prepare(
                    bill, payers, expire, lambda uow: self._run.answered(uow, request_id), exact=not capture,
                    one_round=replan,
                )  # fmt: skip
            except DomainError as refusal:
                # Another node's refusal, stored under the key unless transient, so a retry does not
                # hold anew once that node would agree; an answer stored already wins.
                return await self._run.refuse(method, request_id, request, response_type, refusal)
            except AnsweredBefore:
                replayed = await self._run.replay(method, request_id, request, response_type)
                if replayed is not None:
                    return replayed
                raise DomainError(
                    Reason.CONCURRENT_CHANGE,
                    "the request's earlier answer could not be read back; retry with the same request_id",
                ) from None

        written: list[Settlement] = []  # the settlement of this call's last attempt, once it ran

        def run(uow: PaymentUnitOfWork) -> R:
            if isinstance(payers, DomainError):
                raise payers
            settlement = settlements.authorize(
                uow, bill, payers, expire, self._clock.now(), request_id, capture=capture,
                prepared=prepared if prepared and prepared.capacities else None,
            )  # fmt: skip
            if replan and prepared is not None:
                settlements.check_planned_enough(settlement, prepared, payers)
            answer = respond(settlement)
            require_current(reads)
            written[:] = [settlement]
            return answer

        recorded: str | None = None
        try:
            answer = await self._run.mutate(method, request_id, request, response_type, run)
            recorded = answer.settlement.settlement_id  # type: ignore[attr-defined]
            return answer
        finally:
            if prepared is not None and prepared.capacities:
                # The answer is this saga's settlement only if an attempt of this call wrote it.
                ours = recorded == prepared.transaction_id and written
                await self._coordinator.settled(prepared, written[0] if ours else None)

    async def _refuse_impersonation(
        self, method: str, request: Message, request_id: str, bill: Bill, response_type: type[R]
    ) -> R:
        """Someone else's medical credential (冒用): refused, counted toward suspension, stored under the key."""
        threshold = await self._directory.impersonation_threshold(bill.institution_admdvs)

        def refuse(uow: PaymentUnitOfWork) -> R:
            suspensions.record_impersonation(uow, bill, threshold, self._clock.now())
            raise AssertionError("record_impersonation always refuses")

        return await self._run.mutate(method, request_id, request, response_type, refuse)
