"""The demo's cross-province chapter: a grandfather insured in
Lanzhou (payment node west) helps pay the Nanjing child's bill (node east), then
moves money into the child's wallet; both nodes' clearing reports agree."""

from __future__ import annotations

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.clock import Clock
from services.demo.family import HOSPITAL, NANJING, PHARMACY, labels
from services.demo.report import Report
from services.payment.verification import stand_in_token
from shared.ledger import CHINA_STANDARD_TIME
from shared.money import format_yuan

LANZHOU = "620100"


def walk_cross_province(
    binding: binding_grpc.BindingServiceStub,
    east: payment_grpc.PaymentServiceStub,
    west: payment_grpc.PaymentServiceStub,
    report: Report,
    persons: dict[str, bpb.InsuredPerson],
    clock: Clock,
) -> None:
    child, father = persons["child"], persons["grantor"]
    report.section("Cross-province mutual aid (跨省共济): a grandfather in Lanzhou, payment node west")
    grandfather = bpb.InsuredPerson(
        id_number="620102194803020139", name="王爷爷", insurance_type=common.INSURANCE_TYPE_EMPLOYEE,
        status=common.INSURANCE_STATUS_NORMAL, admdvs=LANZHOU, phone="13900000001", has_personal_account=True,
    )  # fmt: skip
    binding.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=report.key(), insured_person=grandfather))
    created = binding.CreateBinding(
        bapi.CreateBindingRequest(
            request_id=report.key(),
            grantor=bapi.PersonIdentity(id_number=grandfather.id_number, name=grandfather.name),
            beneficiary=bapi.PersonIdentity(id_number=child.id_number, name=child.name),
            relationship=common.RELATIONSHIP_PATERNAL_GRANDCHILD,
            proofs=[bpb.Proof(type=bpb.PROOF_TYPE_HOUSEHOLD_REGISTER, document_ref="hukou-1948")],
            consent_version="notice-2025-01",
            channel=common.CHANNEL_COUNTER,
        )
    ).binding
    report.ok(f"grandfather binds the child across provinces: {bpb.BindingState.Name(created.state)}")
    if created.state == bpb.BINDING_STATE_PENDING_REVIEW:
        approved = binding.ReviewBinding(
            bapi.ReviewBindingRequest(
                request_id=report.key(), binding_id=created.binding_id, decision=bapi.REVIEW_DECISION_APPROVE,
                operator_id="counter-07", comment="household register checked",
            )
        ).binding  # fmt: skip
        report.ok(f"an operator checks the household register: {bpb.BindingState.Name(approved.state)}")
    west.CreditAccount(
        papi.CreditAccountRequest(
            request_id=report.key(), id_number=grandfather.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
            amount_fen=150_000, kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, period="2026-11", admdvs=LANZHOU,
        )
    )  # fmt: skip
    report.ok("grandfather's monthly credit of 1500.00 yuan lands on node west")

    names = labels(
        {father.id_number: "father", grandfather.id_number: "grandfather", child.id_number: "child (wallet)"}
    )
    bill = ppb.Bill(
        institution_code=HOSPITAL, institution_admdvs=NANJING, patient_id_number=child.id_number,
        credential=ppb.Credential(type=ppb.CREDENTIAL_TYPE_CARD, holder_id_number=child.id_number),
        use_category=common.USE_CATEGORY_OUTPATIENT, self_pay_fen=80_000,
    )  # fmt: skip
    settled = east.Settle(papi.SettleRequest(request_id=report.key(), bill=bill)).settlement
    legs = ", ".join(
        f"{names.get(leg.payer_id_number, '?')} {format_yuan(leg.amount_fen)} ({leg.payer_admdvs})"
        for leg in settled.legs
    )
    report.ok(f"the child's 800.00 yuan bill in Nanjing, settled by node east: [{legs}]")
    left = west.GetAccount(
        papi.GetAccountRequest(id_number=grandfather.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT)
    ).account
    report.ok(f"node west debited the grandfather's leg: balance now {format_yuan(left.balance_fen)}")

    report.section("Wallet transfer (医保钱包) from Gansu to Jiangsu")
    east.ActivateWallet(papi.ActivateWalletRequest(request_id=report.key(), id_number=child.id_number, admdvs=NANJING))
    moved = west.TransferToWallet(
        papi.TransferToWalletRequest(
            request_id=report.key(), grantor_id_number=grandfather.id_number, beneficiary_id_number=child.id_number,
            amount_fen=30_000,
            verification=ppb.Verification(
                method=ppb.VERIFICATION_METHOD_FACE, token=stand_in_token(grandfather.id_number, "FACE")
            ),
        )
    ).transfer  # fmt: skip
    report.ok(
        f"grandfather moves 300.00 yuan after face verification: {ppb.TransferState.Name(moved.state)} "
        f"({moved.source_province} → {moved.target_province})"
    )
    drugs = east.Settle(
        papi.SettleRequest(
            request_id=report.key(),
            bill=ppb.Bill(
                institution_code=PHARMACY, institution_admdvs=NANJING, patient_id_number=child.id_number,
                credential=ppb.Credential(type=ppb.CREDENTIAL_TYPE_QR, holder_id_number=child.id_number),
                use_category=common.USE_CATEGORY_PHARMACY, self_pay_fen=4_500,
            ),
        )
    ).settlement  # fmt: skip
    report.ok(f"a 45.00 yuan pharmacy purchase is paid from the wallet: wallet_pay {format_yuan(drugs.wallet_pay_fen)}")

    report.section("Clearing (清算): what each province owes another today")
    today = clock.now().astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d")
    for name, stub in (("east", east), ("west", west)):
        lines = stub.GetClearingReport(papi.GetClearingReportRequest(date=today)).balances
        owed = "; ".join(f"{b.debtor_province} owes {b.creditor_province} {format_yuan(b.amount_fen)}" for b in lines)
        audit = stub.CheckLedger(papi.CheckLedgerRequest())
        report.ok(f"node {name}: {owed or 'nothing'}; ledger balanced={audit.balanced}")
