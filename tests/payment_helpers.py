"""A family with bindings and funded accounts, for payment tests over gRPC."""

from __future__ import annotations

import grpc
import pytest

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from shared.principals import operator
from tests.helpers import binding_request, make_id_number, person, refusal_of, request_id

INSTITUTION = "H32010001"
NATIONAL_OPERATOR = operator("000000", "ops")


class PaymentFamily:
    """Mother and father (employees, grantors) and their child (resident), all in Nanjing 320100."""

    def __init__(self, harness, admdvs: str = "320100", mother_fen: int = 100_000, father_fen: int = 100_000) -> None:
        self.payment = harness.stub
        self.binding = harness.binding.stub
        self.clock = harness.binding.clock
        self.admdvs = admdvs
        self.mother = self.register("李妈妈")
        self.father = self.register("王爸爸")
        self.child = self.register("王小宝", resident=True)
        self.mother_binding = self.binding.CreateBinding(binding_request(self.mother, self.child)).binding
        self.father_binding = self.binding.CreateBinding(binding_request(self.father, self.child)).binding
        if mother_fen:
            self.credit(self.mother, mother_fen)
        if father_fen:
            self.credit(self.father, father_fen)

    def register(self, name: str, resident: bool = False):
        message = person(
            make_id_number("320102"),
            name,
            admdvs=self.admdvs,
            insurance_type=common.INSURANCE_TYPE_RESIDENT if resident else common.INSURANCE_TYPE_EMPLOYEE,
            has_personal_account=not resident,
        )
        self.binding.UpsertInsuredPerson(
            bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=message)
        )
        return message

    def credit(self, who, amount_fen: int, kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT) -> ppb.Account:
        return self.payment.CreditAccount(
            papi.CreditAccountRequest(
                request_id=request_id(),
                id_number=who.id_number,
                account_kind=kind,
                amount_fen=amount_fen,
                kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION,
                period="2026-03",
                admdvs=self.admdvs,
            )
        ).account

    def bill(
        self, self_pay_fen: int, patient=None, holder=None, use=common.USE_CATEGORY_OUTPATIENT, **extra
    ) -> ppb.Bill:
        patient = patient or self.child
        return ppb.Bill(
            institution_code=INSTITUTION,
            institution_admdvs=self.admdvs,
            patient_id_number=patient.id_number,
            credential=ppb.Credential(type=ppb.CREDENTIAL_TYPE_CARD, holder_id_number=(holder or patient).id_number),
            use_category=use,
            self_pay_fen=self_pay_fen,
            **extra,
        )

    def account(self, who, kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT) -> ppb.Account:
        return self.payment.GetAccount(papi.GetAccountRequest(id_number=who.id_number, account_kind=kind)).account

    def settle(self, self_pay_fen: int, **bill) -> ppb.Settlement:
        return self.payment.Settle(
            papi.SettleRequest(request_id=request_id(), bill=self.bill(self_pay_fen, **bill))
        ).settlement

    def authorize(self, self_pay_fen: int, expire_time=None, **bill) -> ppb.Settlement:
        request = papi.AuthorizeSettlementRequest(request_id=request_id(), bill=self.bill(self_pay_fen, **bill))
        if expire_time is not None:
            request.expire_time.FromDatetime(expire_time)
        return self.payment.AuthorizeSettlement(request).settlement

    def capture(self, settlement_id: str, amount_fen: int = 0) -> ppb.Settlement:
        return self.payment.CaptureSettlement(
            papi.CaptureSettlementRequest(request_id=request_id(), settlement_id=settlement_id, amount_fen=amount_fen)
        ).settlement

    def release(self, settlement_id: str) -> ppb.Settlement:
        return self.payment.ReleaseSettlement(
            papi.ReleaseSettlementRequest(request_id=request_id(), settlement_id=settlement_id)
        ).settlement

    def refund(self, settlement_id: str) -> ppb.Settlement:
        return self.payment.RefundSettlement(
            papi.RefundSettlementRequest(request_id=request_id(), settlement_id=settlement_id)
        ).settlement

    def operator_view(self, settlement: ppb.Settlement) -> ppb.Settlement:
        """The settlement as a national operator reads it: every payer whole, with its balance left."""
        return (
            self.payment.stub_as(NATIONAL_OPERATOR)
            .GetSettlement(papi.GetSettlementRequest(settlement_id=settlement.settlement_id))
            .settlement
        )

    def ledger(self) -> papi.CheckLedgerResponse:
        return self.payment.CheckLedger(papi.CheckLedgerRequest())


def refused(call, request):
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=10)
    refusal = refusal_of(raised.value)
    assert refusal.domain == "payment.gongji"
    return refusal
