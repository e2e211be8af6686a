"""The binding service over gRPC, as the payment service's BindingDirectory port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import grpc
from grpc_status import rpc_status

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.common.v1 import common_pb2 as common
from services.common.converters import datetime_to_timestamp, enum_to_proto, timestamp_to_datetime
from services.common.grants import grants_from_proto
from services.common.status import error_info_of
from services.payment.service_layer.accounts import RegisteredPerson
from services.payment.service_layer.binding_directory import (
    AskEveryTime,
    BoundPair,
    PayerQuery,
    PayerReads,
    WalletLimits,
)
from services.payment.service_layer.settlements import Payers
from shared.errors import DomainError, Reason
from shared.payers import EarmarkedShare, PayerMode
from shared.policy import (
    NATIONAL_IMPERSONATION_THRESHOLD,
    NATIONAL_WALLET_TRANSFER_MAX_FEN,
    NATIONAL_WALLET_TRANSFERS_PER_DAY,
    wallet_limit,
)
from shared.settlements import PassedOver


def _unavailable(error: grpc.aio.AioRpcError, what: str) -> DomainError:
    return DomainError(
        Reason.BINDING_SERVICE_UNAVAILABLE,
        f"the binding service did not answer {what}: {error.code().name}; retry with the same request_id",
    )


# What the binding service may answer CheckWalletTransfer with, passed on to the transfer's caller.
_TRANSFER_REFUSALS = {
    Reason.BINDING_NOT_ACTIVE, Reason.CONTACT_CHANGE_OVERDUE, Reason.GRANTOR_NOT_IN_NORMAL_STATUS,
    Reason.BENEFICIARY_NOT_IN_NORMAL_STATUS,
}  # fmt: skip


def _no_active_binding() -> DomainError:
    return DomainError(
        Reason.BINDING_NOT_ACTIVE,
        "the grantor has no active binding with this beneficiary",
        field="beneficiary_id_number",
    )


def _transfer_refusal(error: grpc.aio.AioRpcError) -> DomainError | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    info = error_info_of(status) if status else None
    if info is None:
        return None
    if info.reason == Reason.PERSON_NOT_FOUND.value:
        return _no_active_binding()
    reason = next((r for r in _TRANSFER_REFUSALS if r.value == info.reason), None)
    if reason is None:
        return None
    field = "beneficiary_id_number" if reason is Reason.BINDING_NOT_ACTIVE else None
    return DomainError(reason, error.details() or reason.value, field=field)


def payers_from_proto(answer: bapi.ResolvePayersResponse) -> Payers:
    return Payers(
        grants=grants_from_proto(answer.grants),
        mode=PayerMode.PROPORTIONAL if answer.mode == bpb.PAYER_MODE_PROPORTIONAL else PayerMode.SEQUENTIAL,
        policy_version=answer.policy_version,
        earmarked=tuple(
            EarmarkedShare(e.binding_id, e.beneficiary_id_number, e.yearly_cap_fen, e.policy_version)
            for e in answer.earmarked_shares
        ),
        passed_over=tuple(PassedOver(e.binding_id, e.grantor_id_number, e.reason) for e in answer.excluded),
    )


class GrpcBindingDirectory:
    def __init__(self, stub: binding_grpc.BindingServiceStub, deadline: float = 2.0) -> None:
        self._stub = stub
        self._deadline = deadline

    @asynccontextmanager
    async def settlement_reads(self) -> AsyncIterator[PayerReads]:
        yield AskEveryTime(self)

    async def payers(self, query: PayerQuery) -> Payers | DomainError:
        answer, _ = await self.payers_until(query)
        return answer

    async def payers_until(self, query: PayerQuery) -> tuple[Payers | DomainError, datetime | None]:
        """The answer, and until when it holds by the clock alone (None: no end known)."""
        request = bapi.ResolvePayersRequest(
            beneficiary_id_number=query.patient_id_number,
            use_category=enum_to_proto(common.UseCategory, query.use_category),
            institution_admdvs=query.institution_admdvs,
            at_time=datetime_to_timestamp(query.at),
            chronic_disease=query.chronic_disease,
        )
        try:
            answer = await self._stub.ResolvePayers(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            info = error_info_of(status) if status else None
            if info is not None and info.reason == Reason.USE_NOT_ALLOWED.value:
                refusal = DomainError(
                    Reason.USE_NOT_ALLOWED, error.details() or "use not allowed", field="bill.use_category"
                )
                return refusal, None
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return Payers(), None  # not in the registry: no relatives may pay
            raise _unavailable(error, "who may pay") from None
        valid_until = timestamp_to_datetime(answer, "valid_until") if answer.HasField("valid_until") else None
        return payers_from_proto(answer), valid_until

    async def binding(self, binding_id: str) -> BoundPair | None:
        try:
            answer = await self._stub.GetBinding(bapi.GetBindingRequest(binding_id=binding_id), timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise _unavailable(error, "about the binding") from None
        found = answer.binding
        return BoundPair(
            found.binding_id, found.grantor_id_number, found.beneficiary_id_number,
            found.state == bpb.BINDING_STATE_ACTIVE, found.grantor_admdvs, found.beneficiary_admdvs,
        )  # fmt: skip

    async def active_binding_between(self, grantor_id_number: str, beneficiary_id_number: str) -> BoundPair:
        request = bapi.CheckWalletTransferRequest(
            grantor_id_number=grantor_id_number, beneficiary_id_number=beneficiary_id_number
        )
        try:
            found = await self._stub.CheckWalletTransfer(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                # A binding service of a version before CheckWalletTransfer, mid-upgrade.
                return await self._listed_binding_between(grantor_id_number, beneficiary_id_number)
            refusal = _transfer_refusal(error)
            if refusal is not None:
                raise refusal from None
            raise _unavailable(error, "about the grantor's bindings") from None
        return BoundPair(
            found.binding_id, grantor_id_number, beneficiary_id_number, True, found.grantor_admdvs,
            found.beneficiary_admdvs,
        )  # fmt: skip

    async def _listed_binding_between(self, grantor_id_number: str, beneficiary_id_number: str) -> BoundPair:
        """The active binding between the two, from ListBindings (no contact-change check)."""
        request = bapi.ListBindingsRequest(
            grantor_id_number=grantor_id_number, states=[bpb.BINDING_STATE_ACTIVE], page_size=50
        )
        try:
            listed = await self._stub.ListBindings(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            raise _unavailable(error, "about the grantor's bindings") from None
        for found in listed.bindings:
            if found.beneficiary_id_number == beneficiary_id_number:
                return BoundPair(
                    found.binding_id, found.grantor_id_number, found.beneficiary_id_number, True,
                    found.grantor_admdvs, found.beneficiary_admdvs,
                )  # fmt: skip
        raise _no_active_binding()

    async def person_region(self, id_number: str) -> str | None:
        """Where the registry says the person is insured; None when it does not know the person."""
        person = await self.registered_person(id_number)
        return person.admdvs if person is not None else None

    async def registered_person(self, id_number: str) -> RegisteredPerson | None:
        """What the registry says of the person; None when it does not know the person."""
        request = bapi.GetInsuredPersonRequest(id_number=id_number)
        try:
            answer = await self._stub.GetInsuredPerson(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise _unavailable(error, "about where the person is insured") from None
        found = answer.insured_person
        if not found.admdvs:
            return None
        employee = found.insurance_type == common.INSURANCE_TYPE_EMPLOYEE
        normal = found.status == common.INSURANCE_STATUS_NORMAL
        return RegisteredPerson(found.admdvs, employee and found.has_personal_account, normal)

    async def impersonation_threshold(self, admdvs: str) -> int:
        try:
            answer = await self._stub.GetRegionPolicy(
                bapi.GetRegionPolicyRequest(admdvs=admdvs), timeout=self._deadline
            )
        except grpc.aio.AioRpcError:
            return NATIONAL_IMPERSONATION_THRESHOLD  # refusing is what matters; the count can use the default
        return answer.policy.impersonation_suspension_threshold

    async def wallet_limits(self, admdvs: str) -> WalletLimits:
        try:
            answer = await self._stub.GetRegionPolicy(
                bapi.GetRegionPolicyRequest(admdvs=admdvs), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable(error, "with the region's policy") from None
        return WalletLimits(
            wallet_limit(answer.policy.wallet_transfers_per_day, NATIONAL_WALLET_TRANSFERS_PER_DAY),
            wallet_limit(answer.policy.wallet_transfer_max_fen, NATIONAL_WALLET_TRANSFER_MAX_FEN),
            max(0, answer.policy.min_grantor_balance_fen),
        )
