"""gongji.payment.v1.PaymentService over gRPC: convert the request, run the use case (or
the service-layer flow that settles a bill or transfers to a wallet), convert back.

Which node answers, and what the binding service says, is decided in the service layer
(node_routing, settling, wallet_transfers); the servicer passes it the caller's principal and
whether another node forwarded the call.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from gongji.payment.v1 import payment_pb2 as pb
from gongji.payment.v1 import payment_service_pb2 as api
from gongji.payment.v1 import payment_service_pb2_grpc as api_grpc
from services.common.clock import Clock
from services.common.converters import page_size, required_id, text_field, timestamp_to_datetime
from services.common.idempotency import check_request_id
from services.common.paging import decode_offset, decode_time_and_id, encode_page_token
from services.common.runner import UseCaseRunner
from services.common.security.callers import caller_id, forwarded
from services.common.status import status_of
from services.payment.entrypoints import converters as convert
from services.payment.service_layer import accounts, inquiries, settlements, suspensions, wallets
from services.payment.service_layer.binding_directory import BindingDirectory
from services.payment.service_layer.coordinator import Coordinator
from services.payment.service_layer.lapsed_holds import release_if_lapsed, release_lapsed_holds
from services.payment.service_layer.node_routing import NodeRouting
from services.payment.service_layer.settling import Settling
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from services.payment.service_layer.wallet_transfers import TransferAsked, WalletTransfers
from services.payment.verification import Verifier
from shared.errors import DomainError, Reason
from shared.identity import validate_id_number
from shared.ledger import AccountKind, account_id, month_bounds
from shared.money import DEFAULT_MAX_AMOUNT_FEN, within_limit
from shared.regions import validate_admdvs
from shared.settlements import Bill

R = TypeVar("R", bound=Message)
SERVICE = "gongji.payment.v1.PaymentService"
ERROR_DOMAIN = "payment.gongji"
# Responses that name the settlement a request created or changed (a reversal's: the one it reversed).
SETTLEMENT_RESPONSES = {
    "AuthorizeSettlement": api.AuthorizeSettlementResponse,
    "CaptureSettlement": api.CaptureSettlementResponse,
    "ReleaseSettlement": api.ReleaseSettlementResponse,
    "Settle": api.SettleResponse,
    "RefundSettlement": api.RefundSettlementResponse,
    "ReverseRequest": api.ReverseRequestResponse,
}


def _method(name: str) -> str:
    return f"/{SERVICE}/{name}"


def _settled(answer: Any) -> str:
    """The settlement a call's answer names ("" when none)."""
    return answer.settlement.settlement_id


def _encoded(error: DomainError) -> bytes:
    """A refusal as the runner stores it under a request id."""
    return status_of(error, ERROR_DOMAIN).SerializeToString()


def _settlement_of(method: str, payload: bytes) -> str | None:
    response = SETTLEMENT_RESPONSES.get(method.rsplit("/", 1)[-1])
    return None if response is None else response.FromString(payload).settlement.settlement_id


class PaymentServicer(api_grpc.PaymentServiceServicer):
    def __init__(
        self,
        runner: UseCaseRunner[PaymentUnitOfWork],
        clock: Clock,
        directory: BindingDirectory,
        coordinator: Coordinator,
        verifier: Verifier,
        default_hold: timedelta = timedelta(minutes=15),
        max_amount_fen: int = DEFAULT_MAX_AMOUNT_FEN,
    ) -> None:
        self._run = runner
        self._clock = clock
        self._directory = directory
        self._max_amount = max_amount_fen
        self._routing = NodeRouting(runner, coordinator)
        self._settling = Settling(runner, clock, directory, coordinator, default_hold)
        self._transfers = WalletTransfers(runner, clock, directory, self._routing, coordinator, verifier)
        self._local_provinces = coordinator.routing.me.provinces

    def _bill(self, request: api.QuoteSettlementRequest | api.AuthorizeSettlementRequest | api.SettleRequest) -> Bill:
        if not request.HasField("bill"):
            raise DomainError(Reason.FIELD_REQUIRED, "bill is required", field="bill")
        bill = convert.bill_from_proto(request.bill)
        within_limit(bill.self_pay_fen, "bill.self_pay_fen", self._max_amount)
        return bill

    async def _on_holder(
        self, name: str, request: Any, response_type: type[R], run: Callable[[PaymentUnitOfWork], R]
    ) -> R:
        """Runs a change of a settlement on the node that holds it (here, then following up what
        it decided, when that is this node). An empty settlement_id is refused as missing before
        any node is asked."""
        required_id(request.settlement_id, "settlement_id")
        return await self._routing.on_settlement_holder(
            name, request, request.settlement_id, caller_id(), forwarded(),
            self._mutate(name, request, response_type, run), _settled,
        )  # fmt: skip

    def _mutate(
        self, name: str, request: Any, response_type: type[R], run: Callable[[PaymentUnitOfWork], R]
    ) -> Callable[[], Awaitable[R]]:
        return lambda: self._run.mutate(_method(name), request.request_id, request, response_type, run)

    async def _as_registered(
        self,
        method: str,
        request: Any,
        response_type: type[R],
        id_number: str,
        check: Callable[[accounts.RegisteredPerson | None], str],
    ) -> tuple[R | None, str]:
        """Asks the registry about a person an account is about to be opened for, and `check`s the
        answer (which returns the account's region). Returns the answer to give instead, if any (a
        refusal, stored under the request's key as its transaction would have stored it; or, with
        the binding service down, an answer stored earlier, else that refusal unstored), and the region."""
        try:
            person = await self._directory.registered_person(id_number)
        except DomainError as error:  # the binding service is down
            return await self._run.replayed_or_raise(method, request.request_id, request, response_type, error), ""
        try:
            return None, check(person)
        except DomainError as refusal:
            return await self._run.refuse(method, request.request_id, request, response_type, refusal), ""

    async def _settle(
        self, name: str, request: api.AuthorizeSettlementRequest | api.SettleRequest, capture: bool
    ) -> Message:
        bill = self._bill(request)
        check_request_id(request.request_id, "request_id")  # before any node or the binding service is asked
        response_type = api.SettleResponse if capture else api.AuthorizeSettlementResponse

        async def here() -> Message:
            requested_expiry = None if capture else timestamp_to_datetime(request, "expire_time")
            return await self._settling.settle(
                _method(name), request, request.request_id, bill, requested_expiry, capture, response_type,
                lambda settlement: response_type(settlement=convert.settlement_to_proto(settlement)),
            )  # fmt: skip

        return await self._routing.on_bill_owner(name, request, bill.institution_admdvs, caller_id(), forwarded(), here)

    # Accounts ------------------------------------------------------------------------

    async def CreditAccount(
        self, request: api.CreditAccountRequest, context: grpc.aio.ServicerContext
    ) -> api.CreditAccountResponse:
        id_number = validate_id_number(request.id_number)
        kind = convert.account_kind_from_proto(request.account_kind)
        purpose = convert.credit_purpose(request.kind)
        amount = within_limit(accounts.check_credit_amount(request.amount_fen, purpose), "amount_fen", self._max_amount)
        admdvs = request.admdvs and validate_admdvs(request.admdvs, "admdvs")
        period = request.period
        # Exactly as documented, untrimmed and in ASCII digits (\d would take fullwidth ones too).
        if period and not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", period):
            raise DomainError(Reason.FIELD_INVALID, "period is the contribution month, YYYY-MM", field="period")
        memo = accounts.credit_memo(text_field(request.memo, "memo", 500), period)
        method = _method("CreditAccount")
        check_request_id(request.request_id, "request_id")  # before the binding service is asked
        if kind is AccountKind.PERSONAL_ACCOUNT and not await self._run.query(
            lambda uow: accounts.account_exists(uow, id_number, kind)
        ):
            # The credit opens the account: only as the registry has the person, and on its node.
            def kept_here(person: accounts.RegisteredPerson | None) -> str:
                region = accounts.opening_region(person, admdvs)
                self._routing.check_account_kept_here(region)
                return region

            instead, admdvs = await self._as_registered(
                method, request, api.CreditAccountResponse, id_number, kept_here
            )
            if instead is not None:
                return instead

        def run(uow: PaymentUnitOfWork) -> api.CreditAccountResponse:
            now = self._clock.now()
            account, entry_id = accounts.credit_account(
                uow, id_number, kind, amount, purpose, admdvs, memo, now, request.request_id
            )
            shares = accounts.shares_this_year(uow, id_number, kind, now)
            return api.CreditAccountResponse(account=convert.account_to_proto(account, shares), entry_id=entry_id)

        return await self._run.mutate(method, request.request_id, request, api.CreditAccountResponse, run)

    async def GetAccount(
        self, request: api.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> api.GetAccountResponse:
        id_number = validate_id_number(request.id_number)
        kind = convert.account_kind_to_read(request.account_kind)

        async def here() -> api.GetAccountResponse:
            await release_lapsed_holds(self._run, self._clock, [account_id(kind, id_number)])
            account, shares = await self._run.query(
                lambda uow: accounts.account_with_shares(uow, id_number, kind, self._clock.now())
            )
            return api.GetAccountResponse(account=convert.account_to_proto(account, shares))

        return await self._routing.on_account_keeper("GetAccount", request, caller_id(), forwarded(), here)

    async def ListStatement(
        self, request: api.ListStatementRequest, context: grpc.aio.ServicerContext
    ) -> api.ListStatementResponse:
        id_number = validate_id_number(request.id_number)
        kind = convert.account_kind_to_read(request.account_kind)
        start, end = month_bounds(request.month) if request.month else (None, None)
        limit = page_size(request.page_size)
        query = [id_number, kind.value, request.month]

        async def here() -> api.ListStatementResponse:
            try:
                before = decode_offset(request.page_token, query)
            except DomainError:
                if self._routing.distributed:
                    # A page token of the node that keeps the account is not this node's to read.
                    await self._run.query(lambda uow: accounts.get_account(uow, id_number, kind))
                raise
            rows = await self._run.query(
                lambda uow: accounts.statement(uow, id_number, kind, start, end, before, limit + 1)
            )
            page, more = rows[:limit], len(rows) > limit
            return api.ListStatementResponse(
                lines=[convert.statement_line(row) for row in page],
                next_page_token=encode_page_token(query, page[-1].posting_id) if more else "",
            )

        return await self._routing.on_account_keeper("ListStatement", request, caller_id(), forwarded(), here)

    # Settlements ---------------------------------------------------------------------

    async def QuoteSettlement(
        self, request: api.QuoteSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.QuoteSettlementResponse:
        bill = self._bill(request)

        async def here() -> api.QuoteSettlementResponse:
            at = timestamp_to_datetime(request, "at_time") or self._clock.now()
            settlement = await self._settling.quote(bill, at)
            return api.QuoteSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        return await self._routing.on_bill_owner(
            "QuoteSettlement", request, bill.institution_admdvs, caller_id(), forwarded(), here
        )

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
            settlement = settlements.capture(uow, request.settlement_id, request.amount_fen, self._clock.now())
            return api.CaptureSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        return await self._on_holder("CaptureSettlement", request, api.CaptureSettlementResponse, run)

    async def ReleaseSettlement(
        self, request: api.ReleaseSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.ReleaseSettlementResponse:
        def run(uow: PaymentUnitOfWork) -> api.ReleaseSettlementResponse:
            settlement = settlements.release(uow, request.settlement_id, self._clock.now())
            return api.ReleaseSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        return await self._on_holder("ReleaseSettlement", request, api.ReleaseSettlementResponse, run)

    async def RefundSettlement(
        self, request: api.RefundSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.RefundSettlementResponse:
        def run(uow: PaymentUnitOfWork) -> api.RefundSettlementResponse:
            settlement = settlements.refund(uow, request.settlement_id, self._clock.now(), request.request_id)
            return api.RefundSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        return await self._on_holder("RefundSettlement", request, api.RefundSettlementResponse, run)

    async def ReverseRequest(
        self, request: api.ReverseRequestRequest, context: grpc.aio.ServicerContext
    ) -> api.ReverseRequestResponse:
        original = check_request_id(request.original_request_id.strip(), "original_request_id")
        check_request_id(request.request_id, "request_id")  # before another node is asked
        settlements.check_reversal(original, request.request_id)
        principal = caller_id()

        async def here() -> api.ReverseRequestResponse:
            try:
                payers = await self._settling.payers_to_charge_again(principal, original, _settlement_of)
            except DomainError as error:  # the binding service is down
                return await self._run.replayed_or_raise(
                    _method("ReverseRequest"), request.request_id, request, api.ReverseRequestResponse, error
                )

            def run(uow: PaymentUnitOfWork) -> api.ReverseRequestResponse:
                outcome = settlements.reverse(
                    uow, principal, original, _encoded, _settlement_of, self._clock.now(), request.request_id, payers
                )
                return api.ReverseRequestResponse(
                    original_found=outcome.original_found,
                    original_method=outcome.original_method,
                    settlement=convert.settlement_to_proto(outcome.settlement) if outcome.settlement else None,
                )

            return await self._mutate("ReverseRequest", request, api.ReverseRequestResponse, run)()

        return await self._routing.on_original_holder(request, original, principal, forwarded(), here, _settled)

    async def GetSettlement(
        self, request: api.GetSettlementRequest, context: grpc.aio.ServicerContext
    ) -> api.GetSettlementResponse:
        async def here() -> api.GetSettlementResponse:
            settlement = await self._run.query(lambda uow: settlements.get_settlement(uow, request.settlement_id))
            if settlements.lapsed(settlement, self._clock.now()) and await release_if_lapsed(
                self._run, self._clock, settlement.settlement_id
            ):
                settlement = await self._run.query(lambda uow: settlements.get_settlement(uow, request.settlement_id))
            return api.GetSettlementResponse(settlement=convert.settlement_to_proto(settlement))

        required_id(request.settlement_id, "settlement_id")
        return await self._routing.on_settlement_holder(
            "GetSettlement", request, request.settlement_id, caller_id(), forwarded(), here
        )

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
            view = suspensions.suspend(uow, holder, reason, operator_id, self._clock.now())
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
            view = suspensions.lift(uow, holder, reason, operator_id, self._clock.now())
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

        rows, suspension = await self._run.query(lambda uow: suspensions.violations(uow, holder, after, limit + 1))
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

    # Wallets and clearing ----------------------------------------------------

    async def ActivateWallet(
        self, request: api.ActivateWalletRequest, context: grpc.aio.ServicerContext
    ) -> api.ActivateWalletResponse:
        id_number = validate_id_number(request.id_number)
        admdvs = validate_admdvs(request.admdvs, "admdvs")
        self._routing.check_wallet_kept_here(admdvs)
        method = _method("ActivateWallet")
        check_request_id(request.request_id, "request_id")  # before the binding service is asked
        if not await self._run.query(lambda uow: accounts.account_exists(uow, id_number, AccountKind.WALLET)):
            # Only as the registry has the person: known, insured in normal status, in that region.
            def registered(person: accounts.RegisteredPerson | None) -> str:
                return accounts.wallet_region(person, admdvs)

            instead, _ = await self._as_registered(method, request, api.ActivateWalletResponse, id_number, registered)
            if instead is not None:
                return instead

        def run(uow: PaymentUnitOfWork) -> api.ActivateWalletResponse:
            account = wallets.activate_wallet(uow, id_number, admdvs, self._clock.now())
            return api.ActivateWalletResponse(account=convert.account_to_proto(account, []))

        return await self._run.mutate(method, request.request_id, request, api.ActivateWalletResponse, run)

    async def TransferToWallet(
        self, request: api.TransferToWalletRequest, context: grpc.aio.ServicerContext
    ) -> api.TransferToWalletResponse:
        check_request_id(request.request_id, "request_id")  # before the binding service is asked
        asked = TransferAsked(
            grantor_id_number=validate_id_number(request.grantor_id_number, "grantor_id_number"),
            beneficiary_id_number=validate_id_number(request.beneficiary_id_number, "beneficiary_id_number"),
            amount_fen=within_limit(
                convert.require_positive(request.amount_fen, "amount_fen"), "amount_fen", self._max_amount
            ),
            verification_method=convert.verification_method(request.verification.method),
            verification_token=request.verification.token,
        )
        return await self._transfers.transfer(
            _method("TransferToWallet"), request, request.request_id, asked, api.TransferToWalletResponse,
            lambda row: api.TransferToWalletResponse(transfer=convert.transfer_to_proto(row)),
            lambda answer: answer.transfer.transfer_id if answer.transfer.state == convert.TRANSFER_PENDING else "",
        )  # fmt: skip

    async def GetTransfer(
        self, request: api.GetTransferRequest, context: grpc.aio.ServicerContext
    ) -> api.GetTransferResponse:
        transfer_id = required_id(request.transfer_id, "transfer_id")
        try:
            row = await self._run.query(lambda uow: wallets.get_transfer(uow, transfer_id))
        except DomainError as missing:
            if missing.reason is not Reason.TRANSFER_NOT_FOUND:
                raise
            raise await self._routing.transfer_held_elsewhere(missing, transfer_id) from None
        return api.GetTransferResponse(transfer=convert.transfer_to_proto(row))

    async def GetClearingReport(
        self, request: api.GetClearingReportRequest, context: grpc.aio.ServicerContext
    ) -> api.GetClearingReportResponse:
        local = self._local_provinces
        rows = await self._run.query(lambda uow: accounts.clearing_report(uow, request.date, local))
        return api.GetClearingReportResponse(
            date=request.date,
            balances=[
                pb.ProvinceBalance(debtor_province=debtor, creditor_province=creditor, amount_fen=amount)
                for debtor, creditor, amount in rows
            ],
        )
