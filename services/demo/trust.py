"""The demo's trust chapter: who may do what. A caller without a certificate is turned away
before any call exists; a hospital acts only for itself and cannot see another's
settlements; a hospital sees a relative who paid only masked, an operator sees all; a
front end cannot approve reviews, and an operator acts only within its region."""

from __future__ import annotations

import grpc

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.clock import Clock
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import ActingStub
from services.demo.family import HOSPITAL, NANJING, labels
from services.demo.report import Report
from shared.money import format_yuan
from shared.principals import institution, operator
from shared.privacy import mask_id_number

OTHER_HOSPITAL = "H320100-099"


def _legs(settlement: ppb.Settlement, names: dict[str, str]) -> str:
    """Each leg's payer as the answer named it (printed masked here) and the balance left (balc)."""
    return ", ".join(
        f"{names.get(leg.payer_id_number, 'a relative')} {mask_id_number(leg.payer_id_number)}"
        f"{' (masked by the server)' if '*' in leg.payer_id_number else ''}"
        f" balc {format_yuan(leg.payer_balance_after_fen)}"
        for leg in settlement.legs
    )


def walk_trust_boundaries(
    pki: DevelopmentPKI, east: ActingStub, report: Report, persons: dict[str, bpb.InsuredPerson], clock: Clock
) -> None:
    father, mother, child = persons["grantor"], persons["spouse"], persons["child"]
    names = labels({father.id_number: "father", mother.id_number: "mother", child.id_number: "child"})

    def bill(code: str) -> ppb.Bill:
        return ppb.Bill(
            institution_code=code, institution_admdvs=NANJING, patient_id_number=child.id_number,
            credential=ppb.Credential(type=ppb.CREDENTIAL_TYPE_CARD, holder_id_number=child.id_number),
            use_category=common.USE_CATEGORY_OUTPATIENT, self_pay_fen=40_000,
        )  # fmt: skip

    report.section("Trust boundaries: every caller is a principal, every call is judged")
    hospital = east.as_principal(institution(HOSPITAL))
    other = east.as_principal(institution(OTHER_HOSPITAL))
    national = east.as_principal(operator("000000", "audit-01"))
    gansu = east.as_principal(operator("620000", "op-lz"))

    east.roles.last = None  # nobody: no certificate
    with grpc.secure_channel(
        east.address, grpc.ssl_channel_credentials(pki.ca_file.read_bytes())
    ) as anonymous:  # fmt: skip
        report.expect_refusal(
            "a caller without a client certificate asks to settle",
            lambda: payment_grpc.PaymentServiceStub(anonymous).Settle(
                papi.SettleRequest(request_id=report.key(), bill=bill(HOSPITAL)), timeout=5
            ),
        )
    report.expect_refusal(
        f"hospital {HOSPITAL} settles a bill in the name of {OTHER_HOSPITAL}",
        lambda: hospital.Settle(papi.SettleRequest(request_id=report.key(), bill=bill(OTHER_HOSPITAL))),
    )
    visit = hospital.Settle(papi.SettleRequest(request_id=report.key(), bill=bill(HOSPITAL))).settlement
    report.ok(f"the hospital settles 400.00 yuan and sees: [{_legs(visit, names)}]")
    audited = national.GetSettlement(papi.GetSettlementRequest(settlement_id=visit.settlement_id)).settlement
    report.ok(f"a national operator reads the same settlement: [{_legs(audited, names)}]")
    report.expect_refusal(
        f"hospital {OTHER_HOSPITAL} asks for that settlement (it does not learn that it exists)",
        lambda: other.GetSettlement(papi.GetSettlementRequest(settlement_id=visit.settlement_id)),
    )
    key = report.key()
    for code, stub in ((HOSPITAL, hospital), (OTHER_HOSPITAL, other)):
        paid = stub.Settle(papi.SettleRequest(request_id=key, bill=bill(code))).settlement
        report.ok(
            f"hospital {code} settles with request_id {key}: {paid.settlement_id[:8]} (keys are each caller's own)"
        )

    def credit(who: bpb.InsuredPerson, amount_fen: int) -> papi.CreditAccountRequest:
        return papi.CreditAccountRequest(
            request_id=report.key(), id_number=who.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
            amount_fen=amount_fen, kind=papi.CREDIT_KIND_ADJUSTMENT, admdvs=NANJING,
        )  # fmt: skip

    for text, stub, request in (
        ("a Gansu operator credits a Nanjing account", gansu, credit(mother, 100)),
        ("a national operator credits 100,000,000.00 yuan to an account (one call moves at most 100,000.00)",
         national, credit(child, 10**10)),
        ("the hospital credits 100,000,000.00 yuan to an account", hospital, credit(child, 10**10)),
    ):  # fmt: skip
        report.expect_refusal(text, lambda stub=stub, request=request: stub.CreditAccount(request))
