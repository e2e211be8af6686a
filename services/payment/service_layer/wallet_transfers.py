"""Transfers from a grantor's personal account to a relative's wallet (the
grantor confirms each by face or QR-code password, within the region's daily limits).

The binding and the region's limits come from the binding service, the confirmation from
the verifier, both before the transaction opens; a refusal of theirs is stored under the
request's key all the same. A wallet kept by another node is credited there once the debit
here is recorded."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message

from services.common.clock import Clock
from services.common.runner import UseCaseRunner
from services.payment.service_layer import ids, wallets
from services.payment.service_layer.binding_directory import BindingDirectory
from services.payment.service_layer.coordinator import Coordinator
from services.payment.service_layer.lapsed_holds import release_lapsed_holds
from services.payment.service_layer.node_routing import NodeRouting
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from services.payment.verification import Verifier
from shared.errors import DomainError, Reason
from shared.ledger import personal_account

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Message)


@dataclass(frozen=True)
class TransferAsked:
    grantor_id_number: str
    beneficiary_id_number: str
    amount_fen: int
    verification_method: str
    verification_token: str


class WalletTransfers:
    def __init__(
        self,
        runner: UseCaseRunner[PaymentUnitOfWork],
        clock: Clock,
        directory: BindingDirectory,
        routing: NodeRouting,
        coordinator: Coordinator,
        verifier: Verifier,
    ) -> None:
        self._run = runner
        self._clock = clock
        self._directory = directory
        self._routing = routing
        self._coordinator = coordinator
        self._verifier = verifier

    async def transfer(
        self,
        method: str,
        request: Message,
        request_id: str,
        asked: TransferAsked,
        response_type: type[R],
        respond: Callable[[Any], R],  # a transfer row
        pending_transfer_id: Callable[[R], str],
    ) -> R:
        """Debits the grantor and credits the wallet once per request_id; a retry gets the stored
        answer, refusals included, without the binding service or the verifier being asked again."""
        replayed = await self._run.replay(method, request_id, request, response_type)
        if replayed is not None:
            return await self._as_it_stands(replayed, pending_transfer_id, respond)
        try:
            pair = await self._directory.active_binding_between(asked.grantor_id_number, asked.beneficiary_id_number)
            self._routing.check_grantor_account_kept_here(pair.grantor_admdvs)
            limits = await self._directory.wallet_limits(pair.grantor_admdvs)
        except DomainError as refusal:
            # Stored under the key: once the pair is bound, a retry must not move the money.
            return await self._run.refuse(method, request_id, request, response_type, refusal)
        order = wallets.TransferOrder(
            transfer_id=ids.new_id(), request_id=request_id, grantor_id_number=asked.grantor_id_number,
            beneficiary_id_number=asked.beneficiary_id_number, beneficiary_province=pair.beneficiary_admdvs[:2],
            binding_id=pair.binding_id, amount_fen=asked.amount_fen, verification_method=asked.verification_method,
            transfers_per_day=limits.transfers_per_day, max_fen=limits.max_fen,
            min_grantor_balance_fen=limits.min_grantor_balance_fen,
        )  # fmt: skip
        wallet_is_local = self._routing.is_local(pair.beneficiary_admdvs)
        self._routing.check_wallet_node_known(pair.beneficiary_admdvs)  # not stored: a retry may run
        await self._give_back_due(asked.grantor_id_number)
        # Holds that lapsed are given back before the grantor's balance is judged.
        await release_lapsed_holds(self._run, self._clock, [personal_account(asked.grantor_id_number)])
        try:
            verified = await self._run.in_thread(
                lambda: self._verifier.verify(
                    asked.verification_method, asked.verification_token, asked.grantor_id_number
                )
            )
        except DomainError:
            raise  # the service's own refusal (SERVER_BUSY)
        except Exception as error:  # a verifier must answer False, not raise: its service is failing
            log.warning("the verifier failed (%s); the transfer is refused VERIFIER_UNAVAILABLE", type(error).__name__)
            unavailable = DomainError(
                Reason.VERIFIER_UNAVAILABLE,
                "the face or QR-code password verification service did not answer; nothing was done, "
                "retry with the same request_id",
            )
            return await self._run.replayed_or_raise(method, request_id, request, response_type, unavailable)

        def run(uow: PaymentUnitOfWork) -> R:
            if not verified:  # refused under the key, so a retry gets the same answer
                raise DomainError(
                    Reason.VERIFICATION_FAILED,
                    "the face or QR-code password verification did not confirm the grantor",
                    field="verification.token",
                )
            return respond(wallets.transfer_to_wallet(uow, order, wallet_is_local, self._clock.now()))

        answer = await self._run.mutate(method, request_id, request, response_type, run)
        return await self._as_it_stands(answer, pending_transfer_id, respond)

    async def _give_back_due(self, grantor_id_number: str) -> None:
        """Gives the grantor back a transfer of theirs still unaccepted at 06:00 the day after it was
        made (or completes it, found credited), so it keeps no new transfer waiting for the sweeper."""
        now = self._clock.now()
        pending = await self._run.query(lambda uow: uow.transfers.pending_of_grantor(grantor_id_number))
        for row in pending:
            if wallets.is_due_back(row.create_time, now):
                await self._coordinator.finish(row.transfer_id)

    async def _as_it_stands(self, answer: R, pending_transfer_id: Callable[[R], str], respond: Callable[[Any], R]) -> R:
        """The answer with a transfer to another node's wallet as it stands once its credit was
        sent (stored PENDING, it may be COMPLETED by now), so a first call and its retries answer
        alike."""
        transfer_id = pending_transfer_id(answer)
        if not transfer_id:
            return answer
        await self._coordinator.finish(transfer_id)
        return respond(await self._run.query(lambda uow: wallets.get_transfer(uow, transfer_id)))
