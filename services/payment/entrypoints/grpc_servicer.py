"""gongji.payment.v1.PaymentService over gRPC: convert, ask the binding service
who may pay, run the use case in its unit of work, convert back.

ResolvePayers is called before the database transaction opens, so no lock is
held across the network.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc
from google.protobuf.message import Message

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_pb2 as pb
from gongji.payment.v1 import payment_service_pb2 as api
from gongji.payment.v1 import payment_service_pb2_grpc as api_grpc
from services.common.clock import Clock
from services.common.converters import page_size, text_field, timestamp_to_datetime
from services.common.idempotency import check_request_id
from services.common.paging import decode_offset, decode_time_and_id, encode_page_token
from services.common.runner import UseCaseRunner
from services.common.security.callers import caller_id, forwarded
from services.common.status import status_of
from services.payment.entrypoints import converters as convert
from services.payment.service_layer import inquiries, use_cases
from services.payment.service_layer.binding_directory import BindingDirectory, PayerQuery
from services.payment.service_layer.coordinator import Coordinator
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from services.payment.verification import Verifier
from shared.errors import DomainError, Reason
from shared.identity import validate_id_number
from shared.ledger import AccountKind, account_id, month_bounds, year_of
from shared.money import DEFAULT_MAX_AMOUNT_FEN, within_limit
from shared.regions import validate_admdvs
from shared.settlements import Bill

SERVICE = "gongji.payment.v1.PaymentService"
ERROR_DOMAIN = "payment.gongji"
MAX_HOLD = timedelta(days=60)
# Responses that name the settlement a reversed request created or changed.
SETTLEMENT_RESPONSES = {
    "AuthorizeSettlement": api.AuthorizeSettlementResponse,
    "CaptureSettlement": api.CaptureSettlementResponse,
    "ReleaseSettlement": api.ReleaseSettlementResponse,
    "Settle": api.SettleResponse,
    "RefundSettlement": api.RefundSettlementResponse,
}


def _method(name: str) -> str:
    return f"/{SERVICE}/{name}"


def _settlement_of(method: str, payload: bytes) -> str | None:
    response = SETTLEMENT_RESPONSES.get(method.rsplit("/", 1)[-1])
    return None if response is None else response.FromString(payload).settlement.settlement_id


def _raise(error: DomainError) -> None:
    raise error


class PaymentServicer(api_grpc.PaymentServiceServicer):
    def __init__(
        self,
        runner: UseCaseRunner[PaymentUnitOfWork],
        clock: Clock,
        binding: binding_grpc.BindingServiceStub,
        directory: BindingDirectory,
        coordinator: Coordinator,
        verifier: Verifier,
        default_hold: timedelta = timedelta(minutes=15),
        binding_deadline: float = 2.0,
        max_amount_fen: int = DEFAULT_MAX_AMOUNT_FEN,
    ) -> None:
        self._run = runner
        self._clock = clock
        self._binding = binding
        self._directory = directory
        self._coordinator = coordinator
        self._verifier = verifier
        self._default_hold = default_hold
        self._binding_deadline = binding_deadline
        self._max_amount = max_amount_fen

    def _bill(self, request: api.QuoteSettlementRequest | api.AuthorizeSettlementRequest | api.SettleRequest) -> Bill:
        if not request.HasField("bill"):
            raise DomainError(Reason.FIELD_REQUIRED, "bill is required", field="bill")
        bill = convert.bill_from_proto(request.bill)
        within_limit(bill.self_pay_fen, "bill.self_pay_fen", self._max_amount)
        return bill

    async def _elsewhere(self, method: str, request: Message, settlement_id: str) -> Message | None:
        """The answer of the node holding a settlement this node does not know, if there is one.

        A call another node forwarded here is answered here: forwarding it on would send it
        back and forth between nodes that both do not know the settlement."""
        if not self._coordinator.routing.distributed or forwarded():
            return None
        here = await self._run.query(lambda uow: uow.settlements.get(settlement_id))
        if here is not None:
            return None
        return await self._coordinator.forward_to_holder(method, request, settlement_id, caller_id())

    async def _forward_bill(self, name: str, request: Message, bill: Bill) -> Message:
        """Passes a bill of another province's institution to that province's node, in the
        caller's name; one that another node forwarded here already is refused instead."""
        owner = self._coordinator.routing.owner_of(bill.institution_admdvs)
        if forwarded():
            raise DomainError(
                Reason.PROVINCE_UNREACHABLE,
                f"a forwarded bill of province {bill.institution_admdvs[:2]} belongs to node {owner.name}; "
                "the routing files of the nodes disagree",
                metadata={"node": owner.name},
            )
        return await self._coordinator.forward(owner, name, request, caller_id())

    async def _follow_up(self, settlement_id: str) -> None:
        """Applies a cross-node decision made by the last request (no-op on a single node)."""
        if self._coordinator.routing.distributed and settlement_id:
            await self._coordinator.finish(settlement_id)

    # Who may pay ---------------------------------------------------------------------

    async def _payers(self, bill: Bill, at: datetime) -> use_cases.Payers | DomainError:
        """The grants for this bill, or the refusal the binding service gave."""
        return await self._directory.payers(
            PayerQuery(bill.patient_id_number, bill.use_category, bill.institution_admdvs, bill.chronic_disease, at)
        )

    async def _impersonation_threshold(self, bill: Bill) -> int:
        try:
            answer = await self._binding.GetRegionPolicy(
                bapi.GetRegionPolicyRequest(admdvs=bill.institution_admdvs), timeout=self._binding_deadline
            )
        except grpc.aio.AioRpcError:
            return 3  # the national default, when the policy cannot be read
        return answer.policy.impersonation_suspension_threshold

    def _expire_time(self, request: api.AuthorizeSettlementRequest, now: datetime) -> datetime:
        expire = timestamp_to_datetime(request, "expire_time") or now + self._default_hold
        if expire <= now or expire - now > MAX_HOLD:
            raise DomainError(Reason.FIELD_INVALID, "expire_time must lie in the next 60 days", field="expire_time")
        return expire

    async def _settle(
        self, name: str, request: api.AuthorizeSettlementRequest | api.SettleRequest, capture: bool
    ) -> Message:
        bill = self._bill(request)
        routing = self._coordinator.routing
        if not routing.is_local(bill.institution_admdvs):
            return await self._forward_bill(name, request, bill)
        response_type = api.SettleResponse if capture else api.AuthorizeSettlementResponse
        now = self._clock.now()
        expire = now + self._default_hold if capture else self._expire_time(request, now)  # type: ignore[arg-type]
        if bill.credential_holder != bill.patient_id_number:
            threshold = await self._impersonation_threshold(bill)

            def refuse(uow: PaymentUnitOfWork) -> Message:
                use_cases.record_impersonation(uow, bill, threshold, self._clock.now())
                raise AssertionError("record_impersonation always refuses")

            return await self._run.mutate(_method(name), request.request_id, request, response_type, refuse)
        try:
            payers = await self._payers(bill, now)
        except DomainError:
            # The binding service is down: a retry of a request already answered still gets its answer.
            replayed = await self._run.replay(_method(name), request.request_id, request, response_type)
            if replayed is not None:
                return replayed
            raise
        prepared = None
        if not isinstance(payers, DomainError) and self._coordinator.needs_other_nodes(bill, payers):
            # Answer a retry before holding anything on other nodes again.
            replayed = await self._run.replay(_method(name), request.request_id, request, response_type)
            if replayed is not None:
                return replayed
            prepared = await self._coordinator.prepare(bill, payers, expire)

        def run(uow: PaymentUnitOfWork) -> Message:
            if isinstance(payers, DomainError):
                _raise(payers)
            settlement = use_cases.authorize(
                uow, bill, payers, expire, self._clock.now(), request.request_id, capture=capture,  # type: ignore[arg-type]
                prepared=prepared if prepared and prepared.capacities else None,
            )  # fmt: skip
            return response_type(settlement=convert.settlement_to_proto(settlement))

        answer: Message | None = None
        try:
            answer = await self._run.mutate(_method(name), request.request_id, request, response_type, run)
            return answer
        finally:
            if prepared is not None and prepared.capacities:
                recorded = answer is not None and answer.settlement.settlement_id == prepared.transaction_id  # type: ignore[attr-defined]
                await self._coordinator.settled(prepared.transaction_id, recorded)

    # Accounts ------------------------------------------------------------------------

    async def CreditAccount(
        self, request: api.CreditAccountRequest, context: grpc.aio.ServicerContext
    ) -> api.CreditAccountResponse:
        id_number = validate_id_number(request.id_number)
        kind = convert.account_kind_from_proto(request.account_kind)
        purpose = convert.credit_purpose(request.kind)
        if request.amount_fen == 0 or (request.amount_fen < 0 and request.kind != api.CREDIT_KIND_ADJUSTMENT):
            raise DomainError(
                Reason.INVALID_AMOUNT,
                "amount_fen must be positive (negative only for an ADJUSTMENT)",
                field="amount_fen",
            )
        within_limit(request.amount_fen, "amount_fen", self._max_amount)
        admdvs = request.admdvs and validate_admdvs(request.admdvs, "admdvs")
        period = text_field(request.period, "period", 7)
        memo = text_field(request.memo, "memo", 500) or (f"contribution {period}" if period else "")

        def run(uow: PaymentUnitOfWork) -> api.CreditAccountResponse:
            now = self._clock.now()
            account, entry_id = use_cases.credit_account(
                uow, id_number, kind, request.amount_fen, purpose, admdvs, memo, now, request.request_id
            )
            shares = uow.usage.shares_of(id_number, year_of(now)) if kind is AccountKind.PERSONAL_ACCOUNT else []
            return api.CreditAccountResponse(account=convert.account_to_proto(account, shares), entry_id=entry_id)

        return await self._run.mutate(
            _method("CreditAccount"), request.request_id, request, api.CreditAccountResponse, run
        )

    async def GetAccount(
        self, request: api.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> api.GetAccountResponse:
        id_number = validate_id_number(request.id_number)
        kind = convert.account_kind_to_read(request.account_kind)

        def read(uow: PaymentUnitOfWork) -> api.GetAccountResponse:
            account = use_cases.get_account(uow, id_number, kind)
            shares = (
                uow.usage.shares_of(id_number, year_of(self._clock.now()))
                if kind is AccountKind.PERSONAL_ACCOUNT
                else []
            )
            return api.GetAccountResponse(account=convert.account_to_proto(account, shares))

        return await self._run.query(read)

    async def ListStatement(
        self, request: api.ListStatementRequest, context: grpc.aio.ServicerContext
    ) -> api.ListStatementResponse:
        id_number = validate_id_number(request.id_number)
        kind = convert.account_kind_to_read(request.account_kind)
        start, end = month_bounds(request.month) if request.month else (None, None)
        limit = page_size(request.page_size)
        query = [id_number, kind.value, request.month]
        before = decode_offset(request.page_token, query)

        def read(uow: PaymentUnitOfWork) -> list:
            use_cases.get_account(uow, id_number, kind)
            return uow.journal.statement(account_id(kind, id_number), start, end, before, limit + 1)

        rows = await self._run.query(read)
        page, more = rows[:limit], len(rows) > limit
        return api.ListStatementResponse(
            lines=[convert.statement_line(row) for row in page],
            next_page_token=encode_page_token(query, page[-1].posting_id) if more else "",
        )

    # Settlements ---------------------------------------------------------------------

    async def QuoteSettlement(
        self, request: api.QuoteSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.QuoteSettlementResponse:
        bill = self._bill(request)
        if not self._coordinator.routing.is_local(bill.institution_admdvs):
            return await self._forward_bill("QuoteSettlement", request, bill)
        at = timestamp_to_datetime(request, "at_time") or self._clock.now()
        payers = await self._payers(bill, at)
        if isinstance(payers, DomainError):
            raise payers
        remote, local = None, None
        if self._coordinator.needs_other_nodes(bill, payers):
            remote, local = (
                await self._coordinator.remote_capacities(bill, payers),
                self._coordinator.routing.me.provinces,
            )
        settlement = await self._run.query(lambda uow: use_cases.quote(uow, bill, payers, at, remote, local))
        return api.QuoteSettlementResponse(settlement=convert.settlement_to_proto(settlement))

    async def AuthorizeSettlement(
        self, request: api.AuthorizeSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.AuthorizeSettlementResponse:
        return await self._settle("AuthorizeSettlement", request, capture=False)

    async def Settle(self, request: api.SettleRequest, context: grpc.aio.ServicerContext) -> api.SettleResponse:
        return await self._settle("Settle", request, capture=True)

    async def CaptureSettlement(
        self, request: api.CaptureSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.CaptureSettlementResponse:
        if request.amount_fen < 0:
            raise DomainError(Reason.INVALID_AMOUNT, "amount_fen must not be negative", field="amount_fen")
        within_limit(request.amount_fen, "amount_fen", self._max_amount)

        def run(uow: PaymentUnitOfWork) -> api.CaptureSettlementResponse:
            settlement = use_cases.capture(uow, request.settlement_id, request.amount_fen, self._clock.now())
            return api.CaptureSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        forwarded = await self._elsewhere("CaptureSettlement", request, request.settlement_id)
        if forwarded is not None:
            return forwarded
        answer = await self._run.mutate(
            _method("CaptureSettlement"), request.request_id, request, api.CaptureSettlementResponse, run
        )
        await self._follow_up(answer.settlement.settlement_id)
        return answer

    async def ReleaseSettlement(
        self, request: api.ReleaseSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.ReleaseSettlementResponse:
        def run(uow: PaymentUnitOfWork) -> api.ReleaseSettlementResponse:
            settlement = use_cases.release(uow, request.settlement_id, self._clock.now())
            return api.ReleaseSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        forwarded = await self._elsewhere("ReleaseSettlement", request, request.settlement_id)
        if forwarded is not None:
            return forwarded
        answer = await self._run.mutate(
            _method("ReleaseSettlement"), request.request_id, request, api.ReleaseSettlementResponse, run
        )
        await self._follow_up(answer.settlement.settlement_id)
        return answer

    async def RefundSettlement(
        self, request: api.RefundSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.RefundSettlementResponse:
        def run(uow: PaymentUnitOfWork) -> api.RefundSettlementResponse:
            settlement = use_cases.refund(uow, request.settlement_id, self._clock.now(), request.request_id)
            return api.RefundSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        forwarded = await self._elsewhere("RefundSettlement", request, request.settlement_id)
        if forwarded is not None:
            return forwarded
        answer = await self._run.mutate(
            _method("RefundSettlement"), request.request_id, request, api.RefundSettlementResponse, run
        )
        await self._follow_up(answer.settlement.settlement_id)
        return answer

    async def ReverseRequest(
        self, request: api.ReverseRequestRequest, context: grpc.aio.ServicerContext
    ) -> api.ReverseRequestResponse:
        original = check_request_id(request.original_request_id.strip(), "original_request_id")
        if original == request.request_id:
            raise DomainError(Reason.FIELD_INVALID, "a reversal cannot reverse itself", field="original_request_id")
        refusal = status_of(
            DomainError(Reason.REQUEST_REVERSED, f"request {original} was reversed (冲正) by {request.request_id}"),
            ERROR_DOMAIN,
        ).SerializeToString()
        principal = caller_id()
        if self._coordinator.routing.distributed and not forwarded():
            # The original may have been forwarded to, and settled by, another node.
            known = await self._run.query(lambda uow: uow.idempotency.get(principal, original))
            if known is None:
                elsewhere = await self._coordinator.reverse_elsewhere(request, principal)
                if elsewhere is not None:
                    return elsewhere

        def run(uow: PaymentUnitOfWork) -> api.ReverseRequestResponse:
            outcome = use_cases.reverse(
                uow, principal, original, refusal, _settlement_of, self._clock.now(), request.request_id
            )
            return api.ReverseRequestResponse(
                original_found=outcome.original_found,
                original_method=outcome.original_method,
                settlement=convert.settlement_to_proto(outcome.settlement) if outcome.settlement else None,
            )

        answer = await self._run.mutate(
            _method("ReverseRequest"), request.request_id, request, api.ReverseRequestResponse, run
        )
        await self._follow_up(answer.settlement.settlement_id)
        return answer

    async def GetSettlement(
        self, request: api.GetSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.GetSettlementResponse:
        forwarded = await self._elsewhere("GetSettlement", request, request.settlement_id)
        if forwarded is not None:
            return forwarded
        settlement = await self._run.query(lambda uow: use_cases.get_settlement(uow, request.settlement_id))
        return api.GetSettlementResponse(settlement=convert.settlement_to_proto(settlement))

    # Violations, reconciliation, audit ---------------------------------------------------

    async def SuspendSettlement(
        self, request: api.SuspendSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.SuspendSettlementResponse:
        holder = validate_id_number(request.holder_id_number, "holder_id_number")
        reason, operator_id = (
            text_field(request.reason, "reason", 500),
            text_field(request.operator_id, "operator_id", 64),
        )

        def run(uow: PaymentUnitOfWork) -> api.SuspendSettlementResponse:
            view = inquiries.suspend(uow, holder, reason, operator_id, self._clock.now())
            return api.SuspendSettlementResponse(suspension=convert.suspension_to_proto(view))

        return await self._run.mutate(
            _method("SuspendSettlement"), request.request_id, request, api.SuspendSettlementResponse, run
        )

    async def LiftSuspension(
        self, request: api.LiftSuspensionRequest, context: grpc.aio.ServicerContext
    ) -> api.LiftSuspensionResponse:
        holder = validate_id_number(request.holder_id_number, "holder_id_number")
        reason, operator_id = (
            text_field(request.reason, "reason", 500),
            text_field(request.operator_id, "operator_id", 64),
        )

        def run(uow: PaymentUnitOfWork) -> api.LiftSuspensionResponse:
            view = inquiries.lift(uow, holder, reason, operator_id, self._clock.now())
            return api.LiftSuspensionResponse(suspension=convert.suspension_to_proto(view))

        return await self._run.mutate(
            _method("LiftSuspension"), request.request_id, request, api.LiftSuspensionResponse, run
        )

    async def ListViolations(
        self, request: api.ListViolationsRequest, context: grpc.aio.ServicerContext
    ) -> api.ListViolationsResponse:
        holder = validate_id_number(request.holder_id_number, "holder_id_number")
        limit = page_size(request.page_size)
        after = decode_time_and_id(request.page_token, [holder])

        def read(uow: PaymentUnitOfWork) -> tuple[list, inquiries.SuspensionView | None]:
            return uow.violations.page(holder, after, limit + 1), inquiries.suspension_of(uow, holder)

        rows, suspension = await self._run.query(read)
        page, more = rows[:limit], len(rows) > limit
        token = encode_page_token([holder], [page[-1].time.isoformat(), page[-1].violation_id]) if more else ""
        return api.ListViolationsResponse(
            violations=[convert.violation_to_proto(row) for row in page],
            next_page_token=token,
            suspension=convert.suspension_to_proto(suspension),
        )

    async def ReconcileInstitution(
        self, request: api.ReconcileInstitutionRequest, context: grpc.aio.ServicerContext
    ) -> api.ReconcileInstitutionResponse:
        code = request.institution_code.strip()
        if not code:
            raise DomainError(Reason.FIELD_REQUIRED, "institution_code is required", field="institution_code")
        result = await self._run.query(lambda uow: inquiries.reconcile(uow, code, request.date))
        return convert.reconciliation_to_proto(result)

    async def CheckLedger(
        self, request: api.CheckLedgerRequest, context: grpc.aio.ServicerContext
    ) -> api.CheckLedgerResponse:
        audit = await self._run.query(lambda uow: inquiries.check_ledger(uow, self._clock.now()))
        return api.CheckLedgerResponse(
            balanced=audit.balanced,
            entry_count=audit.entry_count,
            account_count=audit.account_count,
            problems=list(audit.problems),
        )

    # Wallets and clearing (DOMAIN §3.5) ----------------------------------------------------

    async def ActivateWallet(
        self, request: api.ActivateWalletRequest, context: grpc.aio.ServicerContext
    ) -> api.ActivateWalletResponse:
        id_number = validate_id_number(request.id_number)
        admdvs = validate_admdvs(request.admdvs, "admdvs")
        if not self._coordinator.routing.is_local(admdvs):
            peer = self._coordinator.routing.owner_of(admdvs)
            raise DomainError(
                Reason.FIELD_INVALID,
                f"wallets of province {admdvs[:2]} are kept by payment node {peer.name} at {peer.address}",
                field="admdvs",
            )

        def run(uow: PaymentUnitOfWork) -> api.ActivateWalletResponse:
            account = use_cases.activate_wallet(uow, id_number, admdvs, self._clock.now())
            return api.ActivateWalletResponse(account=convert.account_to_proto(account, []))

        return await self._run.mutate(
            _method("ActivateWallet"), request.request_id, request, api.ActivateWalletResponse, run
        )

    async def TransferToWallet(
        self, request: api.TransferToWalletRequest, context: grpc.aio.ServicerContext
    ) -> api.TransferToWalletResponse:
        grantor = validate_id_number(request.grantor_id_number, "grantor_id_number")
        beneficiary = validate_id_number(request.beneficiary_id_number, "beneficiary_id_number")
        amount = within_limit(
            convert.require_positive(request.amount_fen, "amount_fen"), "amount_fen", self._max_amount
        )
        method = convert.verification_method(request.verification.method)
        name = _method("TransferToWallet")
        replayed = await self._run.replay(name, request.request_id, request, api.TransferToWalletResponse)
        if replayed is not None:
            return replayed  # answered before: the verifier is not asked again
        binding_id, beneficiary_admdvs, grantor_admdvs = await self._bound_pair(grantor, beneficiary)
        routing = self._coordinator.routing
        if not routing.is_local(grantor_admdvs):
            raise DomainError(
                Reason.FIELD_INVALID,
                f"send the transfer to payment node {routing.owner_of(grantor_admdvs).name}, "
                "which keeps the grantor's account",
                field="grantor_id_number",
            )
        limits = await self._directory.wallet_limits(grantor_admdvs)
        order = use_cases.TransferOrder(
            transfer_id=use_cases.new_id(), request_id=request.request_id, grantor_id_number=grantor,
            beneficiary_id_number=beneficiary, beneficiary_province=beneficiary_admdvs[:2], binding_id=binding_id,
            amount_fen=amount, verification_method=method,
            transfers_per_day=limits.transfers_per_day, max_fen=limits.max_fen,
        )  # fmt: skip
        wallet_is_local = routing.is_local(beneficiary_admdvs)
        verified = await self._run.in_thread(lambda: self._verifier.verify(method, request.verification.token, grantor))

        def run(uow: PaymentUnitOfWork) -> api.TransferToWalletResponse:
            if not verified:  # refused under the key, so a retry gets the same answer
                raise DomainError(
                    Reason.VERIFICATION_FAILED,
                    "the face or QR-code password verification did not confirm the grantor",
                    field="verification.token",
                )
            row = use_cases.transfer_to_wallet(uow, order, wallet_is_local, self._clock.now())
            return api.TransferToWalletResponse(transfer=convert.transfer_to_proto(row))

        answer = await self._run.mutate(name, request.request_id, request, api.TransferToWalletResponse, run)
        if answer.transfer.state == convert.TRANSFER_PENDING:
            await self._coordinator.finish(answer.transfer.transfer_id)
            row = await self._run.query(lambda uow: use_cases.get_transfer(uow, answer.transfer.transfer_id))
            return api.TransferToWalletResponse(transfer=convert.transfer_to_proto(row))
        return answer

    async def _bound_pair(self, grantor: str, beneficiary: str) -> tuple[str, str, str]:
        """The active binding between the two, and both parties' regions, from the binding service."""
        try:
            listed = await self._binding.ListBindings(
                bapi.ListBindingsRequest(grantor_id_number=grantor, states=[bpb.BINDING_STATE_ACTIVE], page_size=50),
                timeout=self._binding_deadline,
            )
        except grpc.aio.AioRpcError as error:
            raise DomainError(
                Reason.BINDING_SERVICE_UNAVAILABLE, f"the binding service did not answer: {error.code().name}"
            ) from None
        for binding in listed.bindings:
            if binding.beneficiary_id_number == beneficiary:
                return binding.binding_id, binding.beneficiary_admdvs, binding.grantor_admdvs
        raise DomainError(
            Reason.BINDING_NOT_ACTIVE,
            "the grantor has no active binding with this beneficiary",
            field="beneficiary_id_number",
        )

    async def GetTransfer(
        self, request: api.GetTransferRequest, context: grpc.aio.ServicerContext
    ) -> api.GetTransferResponse:
        row = await self._run.query(lambda uow: use_cases.get_transfer(uow, request.transfer_id))
        return api.GetTransferResponse(transfer=convert.transfer_to_proto(row))

    async def GetClearingReport(
        self, request: api.GetClearingReportRequest, context: grpc.aio.ServicerContext
    ) -> api.GetClearingReportResponse:
        local = self._coordinator.routing.me.provinces
        rows = await self._run.query(lambda uow: use_cases.clearing_report(uow, request.date, local))
        return api.GetClearingReportResponse(
            date=request.date,
            balances=[
                pb.ProvinceBalance(debtor_province=debtor, creditor_province=creditor, amount_fen=amount)
                for debtor, creditor, amount in rows
            ],
        )
