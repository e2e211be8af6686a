"""gongji.payment.v1.PaymentService over gRPC: convert, ask the binding service
who may pay, run the use case in its unit of work, convert back.

ResolvePayers is called before the database transaction opens, so no lock is
held across the network.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc
from google.protobuf.message import Message
from grpc_status import rpc_status

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2 as api
from gongji.payment.v1 import payment_service_pb2_grpc as api_grpc
from services.common.clock import Clock
from services.common.converters import page_size, timestamp_to_datetime
from services.common.paging import decode_page_token, encode_page_token
from services.common.runner import UseCaseRunner
from services.common.status import error_info_of, status_of
from services.payment.entrypoints import converters as convert
from services.payment.service_layer import inquiries, use_cases
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason
from shared.identity import validate_id_number
from shared.ledger import AccountKind, account_id, month_bounds, year_of
from shared.money import INT64_MAX
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
        default_hold: timedelta = timedelta(minutes=15),
        binding_deadline: float = 2.0,
    ) -> None:
        self._run = runner
        self._clock = clock
        self._binding = binding
        self._default_hold = default_hold
        self._binding_deadline = binding_deadline

    # Who may pay ---------------------------------------------------------------------

    async def _payers(self, bill: Bill, at: datetime) -> use_cases.Payers | DomainError:
        """The grants for this bill, or the refusal the binding service gave."""
        try:
            answer = await self._binding.ResolvePayers(
                convert.resolve_request(bill, at), timeout=self._binding_deadline
            )
        except grpc.aio.AioRpcError as error:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            info = error_info_of(status) if status else None
            if info is not None and info.reason == Reason.USE_NOT_ALLOWED.value:
                return DomainError(
                    Reason.USE_NOT_ALLOWED, error.details() or "use not allowed", field="bill.use_category"
                )
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return use_cases.Payers()  # not in the registry: no relatives may pay
            raise DomainError(
                Reason.BINDING_SERVICE_UNAVAILABLE,
                f"the binding service did not answer who may pay: {error.code().name}; retry with the same request_id",
            ) from None
        return convert.payers_from_proto(answer)

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
        if not request.HasField("bill"):
            raise DomainError(Reason.FIELD_REQUIRED, "bill is required", field="bill")
        bill = convert.bill_from_proto(request.bill)
        now = self._clock.now()
        response_type = api.SettleResponse if capture else api.AuthorizeSettlementResponse
        expire = now + self._default_hold if capture else self._expire_time(request, now)  # type: ignore[arg-type]
        if bill.credential_holder != bill.patient_id_number:
            threshold = await self._impersonation_threshold(bill)

            def refuse(uow: PaymentUnitOfWork) -> Message:
                use_cases.record_impersonation(uow, bill, threshold, self._clock.now())
                raise AssertionError("record_impersonation always refuses")

            return await self._run.mutate(_method(name), request.request_id, request, response_type, refuse)
        payers = await self._payers(bill, now)

        def run(uow: PaymentUnitOfWork) -> Message:
            if isinstance(payers, DomainError):
                _raise(payers)
            settlement = use_cases.authorize(
                uow,
                bill,
                payers,
                expire,
                self._clock.now(),
                request.request_id,
                capture=capture,  # type: ignore[arg-type]
            )
            return response_type(settlement=convert.settlement_to_proto(settlement))

        return await self._run.mutate(_method(name), request.request_id, request, response_type, run)

    # Accounts ------------------------------------------------------------------------

    async def CreditAccount(
        self, request: api.CreditAccountRequest, context: grpc.aio.ServicerContext
    ) -> api.CreditAccountResponse:
        id_number = validate_id_number(request.id_number)
        kind = convert.account_kind_from_proto(request.account_kind)
        purpose = convert.credit_purpose(request.kind)
        if (
            request.amount_fen == 0
            or abs(request.amount_fen) > INT64_MAX
            or (request.amount_fen < 0 and request.kind != api.CREDIT_KIND_ADJUSTMENT)
        ):
            raise DomainError(
                Reason.INVALID_AMOUNT,
                "amount_fen must be positive (negative only for an ADJUSTMENT)",
                field="amount_fen",
            )
        admdvs = request.admdvs and validate_admdvs(request.admdvs, "admdvs")

        def run(uow: PaymentUnitOfWork) -> api.CreditAccountResponse:
            now = self._clock.now()
            memo = request.memo or (f"contribution {request.period}" if request.period else "")
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
        kind = convert.account_kind_from_proto(request.account_kind)

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
        kind = convert.account_kind_from_proto(request.account_kind)
        start, end = month_bounds(request.month) if request.month else (None, None)
        limit = page_size(request.page_size)
        query = [id_number, kind.value, request.month]
        before = decode_page_token(request.page_token, query)

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
        if not request.HasField("bill"):
            raise DomainError(Reason.FIELD_REQUIRED, "bill is required", field="bill")
        bill = convert.bill_from_proto(request.bill)
        at = timestamp_to_datetime(request, "at_time") or self._clock.now()
        payers = await self._payers(bill, at)
        if isinstance(payers, DomainError):
            raise payers
        settlement = await self._run.query(lambda uow: use_cases.quote(uow, bill, payers, at))
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

        def run(uow: PaymentUnitOfWork) -> api.CaptureSettlementResponse:
            settlement = use_cases.capture(uow, request.settlement_id, request.amount_fen, self._clock.now())
            return api.CaptureSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        return await self._run.mutate(
            _method("CaptureSettlement"), request.request_id, request, api.CaptureSettlementResponse, run
        )

    async def ReleaseSettlement(
        self, request: api.ReleaseSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.ReleaseSettlementResponse:
        def run(uow: PaymentUnitOfWork) -> api.ReleaseSettlementResponse:
            settlement = use_cases.release(uow, request.settlement_id, self._clock.now())
            return api.ReleaseSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        return await self._run.mutate(
            _method("ReleaseSettlement"), request.request_id, request, api.ReleaseSettlementResponse, run
        )

    async def RefundSettlement(
        self, request: api.RefundSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.RefundSettlementResponse:
        def run(uow: PaymentUnitOfWork) -> api.RefundSettlementResponse:
            settlement = use_cases.refund(uow, request.settlement_id, self._clock.now(), request.request_id)
            return api.RefundSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        return await self._run.mutate(
            _method("RefundSettlement"), request.request_id, request, api.RefundSettlementResponse, run
        )

    async def ReverseRequest(
        self, request: api.ReverseRequestRequest, context: grpc.aio.ServicerContext
    ) -> api.ReverseRequestResponse:
        original = request.original_request_id.strip()
        if not original:
            raise DomainError(Reason.FIELD_REQUIRED, "original_request_id is required", field="original_request_id")
        if original == request.request_id:
            raise DomainError(Reason.FIELD_INVALID, "a reversal cannot reverse itself", field="original_request_id")
        refusal = status_of(
            DomainError(Reason.REQUEST_REVERSED, f"request {original} was reversed (冲正) by {request.request_id}"),
            ERROR_DOMAIN,
        ).SerializeToString()

        def run(uow: PaymentUnitOfWork) -> api.ReverseRequestResponse:
            outcome = use_cases.reverse(uow, original, refusal, _settlement_of, self._clock.now(), request.request_id)
            return api.ReverseRequestResponse(
                original_found=outcome.original_found,
                original_method=outcome.original_method,
                settlement=convert.settlement_to_proto(outcome.settlement) if outcome.settlement else None,
            )

        return await self._run.mutate(
            _method("ReverseRequest"), request.request_id, request, api.ReverseRequestResponse, run
        )

    async def GetSettlement(
        self, request: api.GetSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.GetSettlementResponse:
        settlement = await self._run.query(lambda uow: use_cases.get_settlement(uow, request.settlement_id))
        return api.GetSettlementResponse(settlement=convert.settlement_to_proto(settlement))

    # Violations, reconciliation, audit ---------------------------------------------------

    async def SuspendSettlement(
        self, request: api.SuspendSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.SuspendSettlementResponse:
        holder = validate_id_number(request.holder_id_number, "holder_id_number")

        def run(uow: PaymentUnitOfWork) -> api.SuspendSettlementResponse:
            view = inquiries.suspend(uow, holder, request.reason, request.operator_id, self._clock.now())
            return api.SuspendSettlementResponse(suspension=convert.suspension_to_proto(view))

        return await self._run.mutate(
            _method("SuspendSettlement"), request.request_id, request, api.SuspendSettlementResponse, run
        )

    async def LiftSuspension(
        self, request: api.LiftSuspensionRequest, context: grpc.aio.ServicerContext
    ) -> api.LiftSuspensionResponse:
        holder = validate_id_number(request.holder_id_number, "holder_id_number")

        def run(uow: PaymentUnitOfWork) -> api.LiftSuspensionResponse:
            view = inquiries.lift(uow, holder, request.reason, request.operator_id, self._clock.now())
            return api.LiftSuspensionResponse(suspension=convert.suspension_to_proto(view))

        return await self._run.mutate(
            _method("LiftSuspension"), request.request_id, request, api.LiftSuspensionResponse, run
        )

    async def ListViolations(
        self, request: api.ListViolationsRequest, context: grpc.aio.ServicerContext
    ) -> api.ListViolationsResponse:
        holder = validate_id_number(request.holder_id_number, "holder_id_number")
        limit = page_size(request.page_size)
        after = decode_page_token(request.page_token, [holder])

        def read(uow: PaymentUnitOfWork) -> tuple[list, inquiries.SuspensionView | None]:
            return uow.violations.page(holder, tuple(after) if after else None, limit + 1), inquiries.suspension_of(
                uow, holder
            )

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
