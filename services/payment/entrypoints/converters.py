"""Messages of gongji.payment.v1 to domain values and back; every field is
validated here so use cases see only well-formed values."""

from __future__ import annotations

from typing import Any

from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as pb
from gongji.payment.v1 import payment_service_pb2 as api
from services.common.converters import datetime_to_timestamp, enum_to_domain, enum_to_proto, text_field
from services.payment.service_layer.inquiries import Reconciliation
from services.payment.service_layer.suspensions import SuspensionView
from shared.deduction import PaymentSource
from shared.errors import DomainError, Reason
from shared.identity import validate_id_number
from shared.ledger import Account, AccountKind, Purpose, purpose_seen_by_account
from shared.money import require_positive
from shared.policy import UseCategory
from shared.regions import validate_admdvs
from shared.settlements import Bill, CredentialType, Settlement, SettlementState


def _code(value: str, field: str) -> str:
    return text_field(value, field, 32, required=True)


def bill_from_proto(message: pb.Bill) -> Bill:
    if not message.HasField("credential"):
        raise DomainError(Reason.FIELD_REQUIRED, "bill.credential is required", field="bill.credential")
    return Bill(
        institution_code=_code(message.institution_code, "bill.institution_code"),
        institution_admdvs=validate_admdvs(message.institution_admdvs, "bill.institution_admdvs"),
        patient_id_number=validate_id_number(message.patient_id_number, "bill.patient_id_number"),
        credential_type=enum_to_domain(
            CredentialType, pb.CredentialType, message.credential.type, "bill.credential.type"
        ),
        credential_holder=validate_id_number(message.credential.holder_id_number, "bill.credential.holder_id_number"),
        use_category=enum_to_domain(UseCategory, common.UseCategory, message.use_category, "bill.use_category"),
        self_pay_fen=require_positive(message.self_pay_fen, "bill.self_pay_fen"),
        chronic_disease=message.chronic_disease,
        use_own_account=message.use_own_account,
        institution_settlement_id=text_field(message.institution_settlement_id, "bill.institution_settlement_id", 64),
        refuse_cash_part=message.refuse_cash_part,
    )


def bill_to_proto(bill: Bill) -> pb.Bill:
    return pb.Bill(
        institution_code=bill.institution_code,
        institution_admdvs=bill.institution_admdvs,
        patient_id_number=bill.patient_id_number,
        credential=pb.Credential(
            type=enum_to_proto(pb.CredentialType, bill.credential_type), holder_id_number=bill.credential_holder
        ),
        use_category=enum_to_proto(common.UseCategory, bill.use_category),
        self_pay_fen=bill.self_pay_fen,
        chronic_disease=bill.chronic_disease,
        use_own_account=bill.use_own_account,
        institution_settlement_id=bill.institution_settlement_id,
        refuse_cash_part=bill.refuse_cash_part,
    )


def settlement_to_proto(settlement: Settlement) -> pb.Settlement:
    captured = settlement.state in (SettlementState.CAPTURED, SettlementState.REFUNDED) or (
        settlement.state is SettlementState.REVERSED and settlement.captured_fen > 0
    )
    return pb.Settlement(
        settlement_id=settlement.settlement_id,
        bill=bill_to_proto(settlement.bill),
        state=enum_to_proto(pb.SettlementState, settlement.state) if settlement.settlement_id else 0,
        legs=[
            pb.Leg(
                payer_id_number=leg.payer_id_number,
                source=enum_to_proto(pb.PaymentSource, leg.source),
                binding_id=leg.binding_id,
                amount_fen=leg.amount_fen,
                policy_version=leg.policy_version,
                payer_balance_after_fen=leg.payer_balance_after_fen,
                payer_admdvs=leg.payer_admdvs,
                captured_fen=leg.captured_fen,
                refunded_fen=leg.refunded_fen,
            )
            for leg in settlement.legs
        ],
        own_account_pay_fen=_paid(settlement, PaymentSource.OWN_ACCOUNT, captured),
        mutual_aid_pay_fen=_paid(settlement, PaymentSource.MUTUAL_AID, captured),
        wallet_pay_fen=_paid(settlement, PaymentSource.WALLET, captured),
        cash_pay_fen=settlement.cash_pay_fen,
        create_time=datetime_to_timestamp(settlement.create_time) if settlement.settlement_id else None,
        expire_time=datetime_to_timestamp(settlement.expire_time),
        capture_time=datetime_to_timestamp(settlement.capture_time),
        captured_fen=settlement.captured_fen,
        refunded_fen=settlement.refunded_fen,
        policy_version=settlement.policy_version,
        passed_over=[
            pb.PassedOverPayer(binding_id=p.binding_id, grantor_id_number=p.grantor_id_number, reason=p.reason)
            for p in settlement.passed_over
        ],
    )


def _paid(settlement: Settlement, source: PaymentSource, captured: bool) -> int:
    return sum((leg.captured_fen if captured else leg.amount_fen) for leg in settlement.legs if leg.source is source)


def account_kind_from_proto(value: int) -> AccountKind:
    return enum_to_domain(AccountKind, pb.AccountKind, value, "account_kind")


def account_kind_to_read(value: int) -> AccountKind:
    """For reads, an unspecified kind is the personal account (个人账户), what people ask about."""
    return AccountKind.PERSONAL_ACCOUNT if value == pb.ACCOUNT_KIND_UNSPECIFIED else account_kind_from_proto(value)


def account_to_proto(account: Account, shares: list[Any]) -> pb.Account:
    return pb.Account(
        id_number=account.owner,
        kind=enum_to_proto(pb.AccountKind, account.kind),
        balance_fen=account.balance_fen,
        held_fen=account.held_fen,
        available_fen=account.available_fen,
        admdvs=account.admdvs,
        shared_this_year=[
            pb.BindingShare(
                binding_id=row.binding_id,
                beneficiary_id_number=row.beneficiary_id_number,
                shared_fen=row.shared_fen,
                year=row.year,
            )
            for row in shares
        ],
    )


def credit_purpose(value: int) -> Purpose:
    if value == api.CREDIT_KIND_MONTHLY_CONTRIBUTION:
        return Purpose.MONTHLY_CONTRIBUTION
    if value == api.CREDIT_KIND_ADJUSTMENT:
        return Purpose.ADJUSTMENT
    # Unset is a field missing; a number the API does not define is one given wrongly.
    reason = Reason.FIELD_REQUIRED if value == api.CREDIT_KIND_UNSPECIFIED else Reason.FIELD_INVALID
    raise DomainError(reason, "kind must be MONTHLY_CONTRIBUTION or ADJUSTMENT", field="kind")


def statement_line(row: Any) -> pb.StatementLine:
    return pb.StatementLine(
        entry_id=row.entry_id,
        time=datetime_to_timestamp(row.time),
        amount_fen=row.amount_fen,
        balance_after_fen=row.balance_after_fen,
        purpose=enum_to_proto(pb.MovementPurpose, purpose_seen_by_account(Purpose(row.purpose), row.amount_fen)),
        counterpart_id_number=row.counterpart_id_number,
        settlement_id=row.settlement_id,
        transfer_id=row.transfer_id,
        binding_id=row.binding_id,
        institution_code=row.institution_code,
        memo=row.memo,
    )


def suspension_to_proto(view: SuspensionView | None) -> pb.Suspension | None:
    if view is None:
        return None
    return pb.Suspension(
        holder_id_number=view.holder_id_number,
        active=view.active,
        reason=view.reason,
        suspend_time=datetime_to_timestamp(view.suspend_time),
        lift_time=datetime_to_timestamp(view.lift_time),
        operator_id=view.operator_id,
    )


def violation_to_proto(row: Any) -> pb.Violation:
    return pb.Violation(
        violation_id=row.violation_id,
        kind=pb.VIOLATION_KIND_IMPERSONATION,
        holder_id_number=row.holder_id_number,
        patient_id_number=row.patient_id_number,
        institution_code=row.institution_code,
        time=datetime_to_timestamp(row.time),
    )


def reconciliation_to_proto(result: Reconciliation) -> api.ReconcileInstitutionResponse:
    def totals(table: dict) -> list[pb.SourceTotal]:
        return [
            pb.SourceTotal(source=enum_to_proto(pb.PaymentSource, source), count=t.count, amount_fen=t.amount_fen)
            for source, t in sorted(table.items())
        ]

    return api.ReconcileInstitutionResponse(
        institution_code=result.institution_code,
        date=result.date,
        settlement_count=result.settlement_count,
        refund_count=result.refund_count,
        settled=totals(result.settled),
        refunded=totals(result.refunded),
        net_fen=result.net_fen,
        reversal_count=result.reversal_count,
        reversed=totals(result.reversed),
        settled_cash_fen=result.settled_cash_fen,
    )


TRANSFER_PENDING = pb.TRANSFER_STATE_PENDING


def verification_method(value: int) -> str:
    if value == pb.VERIFICATION_METHOD_FACE:
        return "FACE"
    if value == pb.VERIFICATION_METHOD_QR_PASSWORD:
        return "QR_PASSWORD"
    reason = Reason.FIELD_REQUIRED if value == pb.VERIFICATION_METHOD_UNSPECIFIED else Reason.FIELD_INVALID
    raise DomainError(reason, "verification.method must be FACE or QR_PASSWORD", field="verification.method")


def transfer_to_proto(row: Any) -> pb.Transfer:
    return pb.Transfer(
        transfer_id=row.transfer_id,
        grantor_id_number=row.grantor_id_number,
        beneficiary_id_number=row.beneficiary_id_number,
        amount_fen=row.amount_fen,
        state=pb.TransferState.Value(f"TRANSFER_STATE_{row.state}"),
        binding_id=row.binding_id,
        create_time=datetime_to_timestamp(row.create_time),
        complete_time=datetime_to_timestamp(row.complete_time),
        source_province=row.source_province,
        target_province=row.target_province,
    )
