"""gongji.node.v1.PaymentNodeService: this node's side of other nodes' work."""

from __future__ import annotations

import grpc

from gongji.node.v1 import node_service_pb2 as node
from gongji.node.v1 import node_service_pb2_grpc as node_grpc
from services.common.clock import Clock
from services.common.converters import timestamp_to_datetime
from services.common.grants import grants_from_proto
from services.common.runner import UseCaseRunner
from services.payment.service_layer import coordination, participant
from services.payment.service_layer.coordinator import FailPoint, no_failpoint
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason
from shared.identity import validate_id_number
from shared.money import require_positive
from shared.regions import validate_province

SERVICE = "gongji.node.v1.PaymentNodeService"
OUTCOME_OF = {
    "PENDING": node.TRANSACTION_OUTCOME_PENDING,
    "COMMITTED": node.TRANSACTION_OUTCOME_COMMITTED,
    "ABORTED": node.TRANSACTION_OUTCOME_ABORTED,
}


def _transaction_id(value: str) -> str:
    if not value or len(value) > 36:
        raise DomainError(
            Reason.FIELD_INVALID, "transaction_id must be a settlement or transfer id", field="transaction_id"
        )
    return value


class PaymentNodeServicer(node_grpc.PaymentNodeServiceServicer):
    def __init__(
        self, runner: UseCaseRunner[PaymentUnitOfWork], clock: Clock, failpoint: FailPoint = no_failpoint
    ) -> None:
        self._run = runner
        self._clock = clock
        self._failpoint = failpoint

    async def GetPayerCapacity(
        self, request: node.GetPayerCapacityRequest, context: grpc.aio.ServicerContext
    ) -> node.GetPayerCapacityResponse:
        grants = list(grants_from_proto(request.grants))
        at = timestamp_to_datetime(request, "at_time") or self._clock.now()
        found = await self._run.query(lambda uow: participant.capacities(uow, grants, at))
        return node.GetPayerCapacityResponse(
            capacities=[
                node.PayerCapacity(
                    binding_id=c.binding_id, grantor_id_number=c.grantor_id_number, limit_fen=c.limit_fen,
                    available_fen=c.available_fen, admdvs=c.admdvs, has_account=c.has_account,
                )
                for c in found
            ]
        )  # fmt: skip

    async def PrepareLegs(
        self, request: node.PrepareLegsRequest, context: grpc.aio.ServicerContext
    ) -> node.PrepareLegsResponse:
        transaction_id = _transaction_id(request.transaction_id)
        province = validate_province(request.coordinator_province, "coordinator_province")
        expire = timestamp_to_datetime(request, "expire_time")
        if expire is None:
            raise DomainError(Reason.FIELD_REQUIRED, "expire_time is required", field="expire_time")
        legs = [
            participant.LegRequest(leg.leg_no, validate_id_number(leg.payer_id_number, "legs.payer_id_number"),
                                   leg.binding_id, require_positive(leg.amount_fen, "legs.amount_fen"))
            for leg in request.legs
        ]  # fmt: skip
        grants = list(grants_from_proto(request.grants))
        prepared = await self._run.transact(
            lambda uow: participant.prepare(
                uow, transaction_id, province, request.beneficiary_id_number, request.institution_code, legs, grants,
                expire, self._clock.now(),
            )
        )  # fmt: skip
        self._failpoint("participant_after_prepare")
        return node.PrepareLegsResponse(
            legs=[
                node.NodeLeg(leg_no=leg.leg_no, payer_id_number=leg.payer_id_number, binding_id=leg.binding_id,
                             amount_fen=leg.amount_fen)
                for leg, _ in prepared
            ],
            payer_available_after_fen=[available for _, available in prepared],
        )  # fmt: skip

    async def CommitLegs(
        self, request: node.CommitLegsRequest, context: grpc.aio.ServicerContext
    ) -> node.CommitLegsResponse:
        transaction_id = _transaction_id(request.transaction_id)
        captures = {leg.leg_no: leg.amount_fen for leg in request.captures}
        applied = await self._run.transact(
            lambda uow: participant.commit(uow, transaction_id, captures, self._clock.now())
        )
        return node.CommitLegsResponse(applied=applied)

    async def AbortLegs(
        self, request: node.AbortLegsRequest, context: grpc.aio.ServicerContext
    ) -> node.AbortLegsResponse:
        transaction_id = _transaction_id(request.transaction_id)
        province = validate_province(request.coordinator_province, "coordinator_province")
        applied = await self._run.transact(
            lambda uow: participant.abort(uow, transaction_id, province, self._clock.now())
        )
        return node.AbortLegsResponse(applied=applied)

    async def RefundLegs(
        self, request: node.RefundLegsRequest, context: grpc.aio.ServicerContext
    ) -> node.RefundLegsResponse:
        transaction_id = _transaction_id(request.transaction_id)
        applied = await self._run.transact(lambda uow: participant.refund(uow, transaction_id, self._clock.now()))
        return node.RefundLegsResponse(applied=applied)

    async def GetTransactionOutcome(
        self, request: node.GetTransactionOutcomeRequest, context: grpc.aio.ServicerContext
    ) -> node.GetTransactionOutcomeResponse:
        transaction_id = _transaction_id(request.transaction_id)
        outcome, captures = await self._run.query(
            lambda uow: coordination.outcome(uow, transaction_id, request.participant_province)
        )
        return node.GetTransactionOutcomeResponse(
            outcome=OUTCOME_OF[outcome],
            captures=[node.NodeLeg(leg_no=n, amount_fen=a) for n, a in sorted(captures.items())],
        )

    async def CreditWallet(
        self, request: node.CreditWalletRequest, context: grpc.aio.ServicerContext
    ) -> node.CreditWalletResponse:
        transfer_id, beneficiary, amount, source = _received_transfer(request)
        applied, balance = await self._run.transact(
            lambda uow: participant.credit_wallet(
                uow, transfer_id, beneficiary, request.grantor_id_number, amount, source, self._clock.now()
            )
        )
        return node.CreditWalletResponse(applied=applied, wallet_balance_fen=balance)

    async def DeclineWalletCredit(
        self, request: node.DeclineWalletCreditRequest, context: grpc.aio.ServicerContext
    ) -> node.DeclineWalletCreditResponse:
        transfer_id, beneficiary, amount, source = _received_transfer(request)
        credited = await self._run.transact(
            lambda uow: participant.decline_wallet_credit(
                uow, transfer_id, beneficiary, amount, source, self._clock.now()
            )
        )
        return node.DeclineWalletCreditResponse(credited=credited)


def _received_transfer(
    request: node.CreditWalletRequest | node.DeclineWalletCreditRequest,
) -> tuple[str, str, int, str]:
    """The transfer id, beneficiary, amount and source province of a transfer sent here, validated."""
    return (
        _transaction_id(request.transfer_id),
        validate_id_number(request.beneficiary_id_number, "beneficiary_id_number"),
        require_positive(request.amount_fen, "amount_fen"),
        validate_province(request.source_province, "source_province"),
    )
