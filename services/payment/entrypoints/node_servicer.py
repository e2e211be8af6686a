"""gongji.node.v1.PaymentNodeService: this node's side of other nodes' work.

Only payment nodes of the routing file reach it (the access policy), each only for its
own provinces; what they ask is checked before it is applied (peer_claims)."""

from __future__ import annotations

from datetime import timedelta

import grpc

from gongji.common.v1 import common_pb2 as common
from gongji.node.v1 import node_service_pb2 as node
from gongji.node.v1 import node_service_pb2_grpc as node_grpc
from services.common.clock import Clock
from services.common.converters import enum_to_domain, text_field, timestamp_to_datetime
from services.common.grants import grants_from_proto
from services.common.idempotency import check_printable_key
from services.common.runner import UseCaseRunner
from services.payment.routing import RoutingTable
from services.payment.service_layer import coordination, participant, peer_claims
from services.payment.service_layer.binding_directory import BindingDirectory
from services.payment.service_layer.coordinator import FailPoint, no_failpoint
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason
from shared.identity import validate_id_number
from shared.ledger import wallet
from shared.money import DEFAULT_MAX_AMOUNT_FEN, require_positive, within_limit
from shared.policy import UseCategory
from shared.regions import province_of, validate_admdvs, validate_province

SERVICE = "gongji.node.v1.PaymentNodeService"
# A coordinator's hold (at most 60 days) plus its grace: no peer holds money here for longer.
MAX_PREPARED_HOLD = timedelta(days=61)
# What one BatchCommitLegs may carry: one transaction's worth of locks stays short.
MAX_BATCHED_COMMITS = 100
# A bill's payers on one node: a beneficiary's grantors are a family's few, and each becomes an SQL
# parameter (PostgreSQL takes at most 65,535 in one statement).
MAX_PAYERS = 100
OUTCOME_OF = {
    "PENDING": node.TRANSACTION_OUTCOME_PENDING,
    "COMMITTED": node.TRANSACTION_OUTCOME_COMMITTED,
    "ABORTED": node.TRANSACTION_OUTCOME_ABORTED,
}


def _transaction_id(value: str, field: str = "transaction_id") -> str:
    """A node call's idempotency key: a coordinator's settlement or transfer id (a UUID), so one
    that is blank, padded with whitespace or holds a character that is not printable is a peer's
    bug, refused before anything is read."""
    if not value or len(value) > 36:
        raise DomainError(Reason.FIELD_INVALID, f"{field} must be a settlement or transfer id", field=field)
    return check_printable_key(value, field)


def _at_most_payers(count: int, field: str) -> None:
    if count > MAX_PAYERS:
        raise DomainError(Reason.FIELD_INVALID, f"{field} lists at most {MAX_PAYERS} payers", field=field)


class PaymentNodeServicer(node_grpc.PaymentNodeServiceServicer):
    def __init__(
        self,
        runner: UseCaseRunner[PaymentUnitOfWork],
        clock: Clock,
        directory: BindingDirectory,
        routing: RoutingTable,
        nodes: peer_claims.OutcomeSource,
        max_amount_fen: int = DEFAULT_MAX_AMOUNT_FEN,
        failpoint: FailPoint = no_failpoint,
    ) -> None:
        self._run = runner
        self._clock = clock
        self._directory = directory
        self._routing = routing
        self._nodes = nodes
        self._max_amount = max_amount_fen
        self._failpoint = failpoint

    def _amount(self, value: int, field: str) -> int:
        return within_limit(require_positive(value, field), field, self._max_amount)

    async def GetPayerCapacity(
        self, request: node.GetPayerCapacityRequest, context: grpc.aio.ServicerContext
    ) -> node.GetPayerCapacityResponse:
        _at_most_payers(len(request.grants), "grants")
        grants = list(grants_from_proto(request.grants))
        at = timestamp_to_datetime(request, "at_time") or self._clock.now()
        if request.ceiling_fen < 0:
            raise DomainError(Reason.INVALID_AMOUNT, "ceiling_fen must not be negative", field="ceiling_fen")
        # The peer says what its bill needs; unset (an earlier version) or more than one call may
        # move, it is told no more than one call may move (least data: the balance stays here).
        ceiling = min(request.ceiling_fen or self._max_amount, self._max_amount)
        # Not marked required: unset, no grant is confirmed for anyone and the answer is empty.
        beneficiary = request.beneficiary_id_number
        if beneficiary:
            beneficiary = validate_id_number(beneficiary, "beneficiary_id_number")
        confirmed = await peer_claims.confirmed_grants(self._directory, beneficiary, grants)
        # Not a snapshot: what a grantor can give is advice the prepare checks again under its locks.
        found = await self._run.query(
            lambda uow: participant.capacities(uow, grants, at, confirmed, ceiling), snapshot=False
        )
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
        _at_most_payers(len(request.legs), "legs")
        province = validate_province(request.coordinator_province, "coordinator_province")
        expire = timestamp_to_datetime(request, "expire_time")
        if expire is None:
            raise DomainError(Reason.FIELD_REQUIRED, "expire_time is required", field="expire_time")
        now = self._clock.now()
        if not now < expire <= now + MAX_PREPARED_HOLD:
            raise DomainError(
                Reason.FIELD_INVALID, "expire_time must lie after now and within 61 days", field="expire_time"
            )
        beneficiary = validate_id_number(request.beneficiary_id_number, "beneficiary_id_number")
        use = enum_to_domain(UseCategory, common.UseCategory, request.use_category, "use_category")
        institution_admdvs = validate_admdvs(request.institution_admdvs, "institution_admdvs")
        # Checked as the public API checks a bill's: a peer's text is stored here too.
        institution = text_field(request.institution_code, "institution_code", 32)
        legs = [
            participant.LegRequest(leg.leg_no, validate_id_number(leg.payer_id_number, "legs.payer_id_number"),
                                   leg.binding_id, self._amount(leg.amount_fen, "legs.amount_fen"))
            for leg in request.legs
        ]  # fmt: skip
        # capture_now goes with ceilings only; without them the legs are held, as a node that
        # knows neither would (captured stays unset, and the coordinator commits as usual).
        capture_at_most = None
        if request.capture_now and request.hold_up_to_amount:
            capture_at_most = self._amount(request.capture_at_most_fen, "capture_at_most_fen")
        prepared = await peer_claims.prepare_on_own_grants(
            self._run, self._directory, self._clock, transaction_id, province, beneficiary, institution,
            use, institution_admdvs, request.chronic_disease, legs, expire, request.hold_up_to_amount,
            capture_at_most,
        )  # fmt: skip
        self._failpoint("participant_after_prepare")
        return node.PrepareLegsResponse(
            legs=[
                node.NodeLeg(leg_no=held.leg.leg_no, payer_id_number=held.leg.payer_id_number,
                             binding_id=held.leg.binding_id, amount_fen=held.leg.amount_fen)
                for held in prepared
            ],
            payer_available_after_fen=[held.available_after_fen for held in prepared],
            payer_admdvs=[held.admdvs for held in prepared],
            captured=capture_at_most is not None,
        )  # fmt: skip

    def _captures(self, request: node.CommitLegsRequest, prefix: str = "") -> dict[int, int]:
        """Captured fen per leg_no, each between nothing and the largest amount, no leg twice."""
        captures: dict[int, int] = {}
        for leg in request.captures:
            if leg.leg_no in captures:
                raise DomainError(
                    Reason.FIELD_INVALID, f"leg {leg.leg_no} is captured twice", field=f"{prefix}captures"
                )
            if leg.amount_fen < 0:
                raise DomainError(
                    Reason.INVALID_AMOUNT, "a capture is never negative", field=f"{prefix}captures.amount_fen"
                )
            captures[leg.leg_no] = within_limit(leg.amount_fen, f"{prefix}captures.amount_fen", self._max_amount)
        return captures

    async def CommitLegs(
        self, request: node.CommitLegsRequest, context: grpc.aio.ServicerContext
    ) -> node.CommitLegsResponse:
        transaction_id = _transaction_id(request.transaction_id)
        captures = self._captures(request)
        applied = await self._run.transact(
            lambda uow: participant.commit(uow, transaction_id, captures, self._clock.now())
        )
        return node.CommitLegsResponse(applied=applied)

    async def BatchCommitLegs(
        self, request: node.BatchCommitLegsRequest, context: grpc.aio.ServicerContext
    ) -> node.BatchCommitLegsResponse:
        if not request.requests:
            raise DomainError(Reason.FIELD_REQUIRED, "requests is required", field="requests")
        if len(request.requests) > MAX_BATCHED_COMMITS:
            raise DomainError(
                Reason.FIELD_INVALID, f"a batch holds 1 to {MAX_BATCHED_COMMITS} commits", field="requests"
            )
        commits: dict[str, dict[int, int]] = {}
        for number, one in enumerate(request.requests):
            where = f"requests[{number}]."
            transaction_id = _transaction_id(one.transaction_id, f"{where}transaction_id")
            if transaction_id in commits:
                raise DomainError(
                    Reason.FIELD_INVALID, f"transaction {transaction_id} is committed twice in one batch",
                    field=f"{where}transaction_id",
                )  # fmt: skip
            commits[transaction_id] = self._captures(one, where)

        applied = await self._run.transact(lambda uow: participant.commit_many(uow, commits, self._clock.now()))
        return node.BatchCommitLegsResponse(responses=[node.CommitLegsResponse(applied=applied[t]) for t in commits])

    async def AbortLegs(
        self, request: node.AbortLegsRequest, context: grpc.aio.ServicerContext
    ) -> node.AbortLegsResponse:
        transaction_id = _transaction_id(request.transaction_id)
        province = validate_province(request.coordinator_province, "coordinator_province")
        applied = await peer_claims.abort(self._run, self._clock, transaction_id, province)
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
        found = await self._run.query(
            lambda uow: coordination.outcome(uow, transaction_id, request.participant_province)
        )
        return node.GetTransactionOutcomeResponse(
            outcome=OUTCOME_OF[found.state],
            captures=[
                node.NodeLeg(leg_no=leg.leg_no, payer_id_number=leg.payer_id_number, binding_id=leg.binding_id,
                             amount_fen=leg.amount_fen)
                for leg in sorted(found.legs, key=lambda leg: leg.leg_no)
            ],
            beneficiary_id_number=found.beneficiary_id_number,
        )  # fmt: skip

    async def CreditWallet(
        self, request: node.CreditWalletRequest, context: grpc.aio.ServicerContext
    ) -> node.CreditWalletResponse:
        transfer_id, beneficiary, amount, source = self._received_transfer(request)
        grantor = validate_id_number(request.grantor_id_number, "grantor_id_number")
        if not request.binding_id:
            raise DomainError(Reason.FIELD_REQUIRED, "binding_id is required", field="binding_id")

        def known(uow: PaymentUnitOfWork) -> tuple[bool, str | None]:
            account = uow.accounts.get(wallet(beneficiary))
            return uow.transfers.credited(transfer_id, source) is not None, account.admdvs if account else None

        answered, wallet_admdvs = await self._run.query(known)
        per_day = None
        if not answered:
            if wallet_admdvs is None:
                # Refused here, not in the credit: a wallet activated meanwhile must not take a
                # credit that was never confirmed with its sender.
                raise DomainError(
                    Reason.WALLET_NOT_ACTIVATED, f"the wallet of {beneficiary} is not activated",
                    field="beneficiary_id_number",
                )  # fmt: skip
            claim = peer_claims.TransferClaim(
                transfer_id, beneficiary, grantor, request.binding_id, amount, source, province_of(wallet_admdvs)
            )
            per_day = await peer_claims.confirm_transfer(claim, self._routing, self._nodes, self._directory)
        applied = await self._run.transact(
            lambda uow: participant.credit_wallet(uow, transfer_id, beneficiary, grantor, amount, source,
                                                  self._clock.now(), per_day)
        )  # fmt: skip
        self._failpoint("participant_after_credit")
        # wallet_balance_fen stays 0: the beneficiary's balance is no business of the grantor's node.
        return node.CreditWalletResponse(applied=applied)

    async def DeclineWalletCredit(
        self, request: node.DeclineWalletCreditRequest, context: grpc.aio.ServicerContext
    ) -> node.DeclineWalletCreditResponse:
        # The amount is only a marker that the credit must never land, but a peer's number all the same.
        transfer_id, beneficiary, amount, source = self._received_transfer(request)
        credited = await self._run.transact(
            lambda uow: participant.decline_wallet_credit(
                uow, transfer_id, beneficiary, amount, source, self._clock.now()
            )
        )
        return node.DeclineWalletCreditResponse(credited=credited)

    def _received_transfer(
        self, request: node.CreditWalletRequest | node.DeclineWalletCreditRequest
    ) -> tuple[str, str, int, str]:
        """The transfer id, beneficiary, amount and source province of a transfer sent here,
        validated; the amount positive and within what one call may move."""
        transfer_id = _transaction_id(request.transfer_id, "transfer_id")
        beneficiary = validate_id_number(request.beneficiary_id_number, "beneficiary_id_number")
        amount = require_positive(request.amount_fen, "amount_fen")
        source = validate_province(request.source_province, "source_province")
        return transfer_id, beneficiary, within_limit(amount, "amount_fen", self._max_amount), source
