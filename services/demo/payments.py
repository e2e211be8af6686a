"""The demo's payment chapter: a child's bills paid by mother then father, a
pharmacy purchase, an undo, reversals, an impersonation refused, balances,
statements, reconciliation and the ledger audit."""

from __future__ import annotations

from datetime import timedelta

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.clock import Clock
from services.common.converters import datetime_to_timestamp
from services.demo.family import HOSPITAL, NANJING, PHARMACY, labels
from services.demo.report import Report
from shared.ledger import CHINA_STANDARD_TIME
from shared.money import format_yuan

PERSONAL = ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT


def _split(settlement: ppb.Settlement, names: dict[str, str]) -> str:
    legs = ", ".join(f"{names.get(leg.payer_id_number, '?')} {format_yuan(leg.amount_fen)}" for leg in settlement.legs)
    return (
        f"[{legs}] acct_pay {format_yuan(settlement.own_account_pay_fen)}, "
        f"acct_mulaid_pay {format_yuan(settlement.mutual_aid_pay_fen)}, "
        f"psn_cash_pay {format_yuan(settlement.cash_pay_fen)}"
    )


def walk_payments(
    binding: binding_grpc.BindingServiceStub,
    payment: payment_grpc.PaymentServiceStub,
    report: Report,
    persons: dict[str, bpb.InsuredPerson],
    clock: Clock,
) -> None:
    father, mother, child = persons["grantor"], persons["spouse"], persons["child"]
    names = labels({father.id_number: "father", mother.id_number: "mother", child.id_number: "child"})

    report.section("Monthly credits (每月到账) and a second grantor")
    for who, amount in ((father, 80_000), (mother, 30_000)):
        account = payment.CreditAccount(
            papi.CreditAccountRequest(
                request_id=report.key(),
                id_number=who.id_number,
                account_kind=PERSONAL,
                amount_fen=amount,
                kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION,
                period="2026-11",
                admdvs=NANJING,
            )
        ).account
        report.ok(
            f"{names[who.id_number]} receives {format_yuan(amount)} yuan; balance {format_yuan(account.balance_fen)}"
        )
    by_mother = binding.CreateBinding(
        bapi.CreateBindingRequest(
            request_id=report.key(),
            grantor=bapi.PersonIdentity(id_number=mother.id_number, name=mother.name),
            beneficiary=bapi.PersonIdentity(id_number=child.id_number, name=child.name),
            relationship=common.RELATIONSHIP_CHILD,
            proofs=[bpb.Proof(type=bpb.PROOF_TYPE_BIRTH_CERTIFICATE, document_ref="child-birth")],
            consent_version="notice-2025-01",
            channel=common.CHANNEL_ALIPAY,
        )
    ).binding
    payers = binding.ResolvePayers(
        bapi.ResolvePayersRequest(beneficiary_id_number=child.id_number, use_category=common.USE_CATEGORY_OUTPATIENT)
    )
    order = [by_mother.binding_id, *(g.binding_id for g in payers.grants if g.binding_id != by_mother.binding_id)]
    binding.SetPayerOrder(
        bapi.SetPayerOrderRequest(
            request_id=report.key(),
            beneficiary_id_number=child.id_number,
            binding_ids=order,
            mode=bpb.PAYER_MODE_SEQUENTIAL,
        )
    )
    report.ok("mother binds the child too; the child's payer order: mother, then father")

    def bill(
        amount: int, use: int = common.USE_CATEGORY_OUTPATIENT, holder: str = "", where: str = HOSPITAL
    ) -> ppb.Bill:
        return ppb.Bill(
            institution_code=where,
            institution_admdvs=NANJING,
            patient_id_number=child.id_number,
            credential=ppb.Credential(type=ppb.CREDENTIAL_TYPE_QR, holder_id_number=holder or child.id_number),
            use_category=use,
            self_pay_fen=amount,
        )

    report.section("The child's outpatient bill: mother first, then father")
    quote = payment.QuoteSettlement(papi.QuoteSettlementRequest(bill=bill(50_000))).settlement
    report.ok(f"pre-settlement (预结算) of 500.00 yuan, nothing moves: {_split(quote, names)}")
    visit = payment.Settle(papi.SettleRequest(request_id=report.key(), bill=bill(50_000))).settlement
    report.ok(f"settlement (结算) {visit.settlement_id[:8]}: {_split(visit, names)}")

    report.section("A pharmacy purchase, then its undo (撤销)")
    drugs = payment.Settle(
        papi.SettleRequest(request_id=report.key(), bill=bill(8_000, common.USE_CATEGORY_PHARMACY, where=PHARMACY))
    ).settlement
    report.ok(f"pharmacy 80.00 yuan: {_split(drugs, names)}")
    undone = payment.RefundSettlement(
        papi.RefundSettlementRequest(request_id=report.key(), settlement_id=drugs.settlement_id, reason="returned")
    ).settlement
    refunds = ", ".join(f"{names[leg.payer_id_number]} +{format_yuan(leg.refunded_fen)}" for leg in undone.legs)
    report.ok(f"undo: {ppb.SettlementState.Name(undone.state)}, refunded leg by leg ({refunds})")

    report.section("Reversal (冲正) by message id")
    held = payment.AuthorizeSettlement(
        papi.AuthorizeSettlementRequest(request_id="hospital-msg-7001", bill=bill(12_000))
    ).settlement
    reversal = payment.ReverseRequest(
        papi.ReverseRequestRequest(request_id=report.key(), original_request_id="hospital-msg-7001")
    )
    report.ok(
        f"authorization of 120.00 yuan ({ppb.SettlementState.Name(held.state)}) reversed: "
        f"{ppb.SettlementState.Name(reversal.settlement.state)}, holds released"
    )
    lost = payment.ReverseRequest(
        papi.ReverseRequestRequest(request_id=report.key(), original_request_id="hospital-msg-7002")
    )
    report.ok(f"a message that never arrived is reversed too (original_found={lost.original_found})")
    report.expect_refusal(
        "the lost message arrives late",
        lambda: payment.Settle(papi.SettleRequest(request_id="hospital-msg-7002", bill=bill(9_900))),
    )

    report.section("A payer passed over, and why")
    changed = datetime_to_timestamp(clock.now() - timedelta(days=16))
    binding.ReportLifeEvent(
        bapi.ReportLifeEventRequest(
            request_id=report.key(), id_number=father.id_number, event_type=bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED,
            event_time=changed,
        )
    )  # fmt: skip
    quoted = payment.QuoteSettlement(papi.QuoteSettlementRequest(bill=bill(3_000))).settlement
    passed = ", ".join(f"{names.get(p.grantor_id_number, '?')} ({p.reason})" for p in quoted.passed_over)
    report.ok(f"the father's new phone of 16 days ago is unconfirmed; passed over: {passed}; {_split(quoted, names)}")
    binding.UpdateContactInfo(
        bapi.UpdateContactInfoRequest(request_id=report.key(), id_number=father.id_number, phone="13800000011")
    )
    quoted = payment.QuoteSettlement(papi.QuoteSettlementRequest(bill=bill(3_000))).settlement
    report.ok(f"he confirms it through the app; the same bill again: {_split(quoted, names)}")

    report.section("Impersonation (冒名就医)")
    report.expect_refusal(
        "the child's bill presented with the father's QR code",
        lambda: payment.Settle(papi.SettleRequest(request_id=report.key(), bill=bill(3_000, holder=father.id_number))),
    )
    violations = payment.ListViolations(papi.ListViolationsRequest(holder_id_number=father.id_number)).violations
    report.ok(f"{len(violations)} violation recorded against the father's card")

    report.section("Balances, statements, reconciliation (对账), audit")
    for who in (mother, father):
        account = payment.GetAccount(papi.GetAccountRequest(id_number=who.id_number, account_kind=PERSONAL)).account
        shared = sum(share.shared_fen for share in account.shared_this_year)
        report.ok(
            f"{names[who.id_number]}: balance {format_yuan(account.balance_fen)}, "
            f"held {format_yuan(account.held_fen)}, available {format_yuan(account.available_fen)}, "
            f"shared this year {format_yuan(shared)}"
        )
    lines = payment.ListStatement(
        papi.ListStatementRequest(id_number=father.id_number, account_kind=PERSONAL, page_size=10)
    ).lines
    for line in lines:
        purpose = ppb.MovementPurpose.Name(line.purpose).removeprefix("MOVEMENT_PURPOSE_")
        report.ok(
            f"father's statement: {format_yuan(line.amount_fen):>8} {purpose:<20} "
            f"balance {format_yuan(line.balance_after_fen)} {line.institution_code}"
        )
    today = clock.now().astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d")
    day = payment.ReconcileInstitution(papi.ReconcileInstitutionRequest(institution_code=PHARMACY, date=today))
    report.ok(
        f"pharmacy {today}: {day.settlement_count} settled, {day.refund_count} refunded, net {format_yuan(day.net_fen)}"
    )
    audit = payment.CheckLedger(papi.CheckLedgerRequest())
    report.ok(
        f"ledger audit: balanced={audit.balanced}, {audit.entry_count} journal entries, {audit.account_count} accounts"
    )
