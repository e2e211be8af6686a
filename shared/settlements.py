"""The settlement lifecycle: what may happen to a settlement in each state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.deduction import PaymentSource
from shared.errors import DomainError, Reason
from shared.payers import PayerMode
from shared.policy import UseCategory


class SettlementState(StrEnum):
    AUTHORIZED = "AUTHORIZED"
    CAPTURED = "CAPTURED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"
    REFUNDED = "REFUNDED"
    REVERSED = "REVERSED"


class CredentialType(StrEnum):
    CARD = "CARD"
    QR = "QR"  # 医保码
    FACE = "FACE"  # 刷脸


def settlement_not_found(settlement_id: str, field: str = "settlement_id") -> DomainError:
    """The refusal of a settlement id the caller may not act on: the same words whether no
    settlement has the id or another institution's does, so settlement ids cannot be probed."""
    return DomainError(Reason.SETTLEMENT_NOT_FOUND, f"no settlement {settlement_id}", field=field)


def check_capturable(state: SettlementState, expire_time: datetime | None, now: datetime) -> None:
    """Refuses a capture unless the holds are in place and not expired."""
    if state is SettlementState.CAPTURED:
        raise DomainError(Reason.ALREADY_CAPTURED, "the settlement was already captured")
    if state is SettlementState.REFUNDED:
        raise DomainError(Reason.ALREADY_REFUNDED, "the settlement was captured and then refunded")
    if state in (SettlementState.RELEASED, SettlementState.REVERSED):
        raise DomainError(Reason.ALREADY_RELEASED, "the settlement's holds were released")
    if state is SettlementState.EXPIRED or (expire_time is not None and now >= expire_time):
        raise DomainError(Reason.HOLD_EXPIRED, "the holds expired; authorize again")
    if state is not SettlementState.AUTHORIZED:
        raise DomainError(Reason.NOT_CAPTURED, f"a {state.value.lower()} settlement cannot be captured")


def check_releasable(state: SettlementState) -> None:
    if state is SettlementState.CAPTURED or state is SettlementState.REFUNDED:
        raise DomainError(Reason.ALREADY_CAPTURED, "the settlement was captured; refund it instead")
    if state in (SettlementState.RELEASED, SettlementState.EXPIRED, SettlementState.REVERSED):
        raise DomainError(Reason.ALREADY_RELEASED, f"the settlement is already {state.value.lower()}")


def check_refundable(state: SettlementState) -> None:
    if state is SettlementState.REFUNDED:
        raise DomainError(Reason.ALREADY_REFUNDED, "the settlement was already refunded")
    if state is not SettlementState.CAPTURED:
        raise DomainError(Reason.NOT_CAPTURED, f"a {state.value.lower()} settlement has nothing to refund")


def check_own_card(patient_id_number: str, holder_id_number: str) -> None:
    """The credential must be the patient's own (冒名就医 otherwise)."""
    if patient_id_number != holder_id_number:
        raise DomainError(
            Reason.IMPERSONATION,
            "the credential belongs to someone else than the patient (冒名就医); the violation is recorded",
            metadata={"holder_id_number": holder_id_number},
            keep_effects=True,
        )


@dataclass(frozen=True)
class Bill:
    """The patient's own share of one bill at a designated institution (个人负担)."""

    institution_code: str
    institution_admdvs: str
    patient_id_number: str
    credential_type: CredentialType
    credential_holder: str
    use_category: UseCategory
    self_pay_fen: int
    chronic_disease: bool = False
    use_own_account: bool = True
    institution_settlement_id: str = ""
    refuse_cash_part: bool = False


@dataclass
class SettlementLeg:
    leg_no: int
    payer_id_number: str
    account_id: str
    source: PaymentSource
    amount_fen: int
    binding_id: str = ""
    policy_version: str = ""
    payer_admdvs: str = ""
    payer_balance_after_fen: int = 0
    captured_fen: int = 0
    refunded_fen: int = 0
    # The payer's province when another payment node holds the account.
    province: str = ""

    @property
    def is_remote(self) -> bool:
        return bool(self.province)


@dataclass(frozen=True)
class PassedOver:
    """A relative bound to the patient who was not asked to pay this bill, and why
    (a reason of the binding service, e.g. CONTACT_CHANGE_OVERDUE)."""

    binding_id: str
    grantor_id_number: str
    reason: str


# A bill of an institution may have one settlement holding or having taken money at a time.
LIVE_STATES = ("AUTHORIZED", "CAPTURED")


@dataclass
class Settlement:
    settlement_id: str
    request_id: str
    bill: Bill
    state: SettlementState
    legs: list[SettlementLeg]
    cash_pay_fen: int
    policy_version: str
    create_time: datetime
    expire_time: datetime | None = None
    capture_time: datetime | None = None
    close_time: datetime | None = None
    captured_fen: int = 0
    refunded_fen: int = 0
    passed_over: tuple[PassedOver, ...] = ()
    # How the grantors shared the bill (ordered or even shares); a smaller capture keeps to it.
    payer_mode: PayerMode = PayerMode.SEQUENTIAL

    def paid_from(self, source: PaymentSource) -> int:
        """What this source pays: held or quoted before capture, captured after."""
        captured = self.state in (SettlementState.CAPTURED, SettlementState.REFUNDED)
        return sum((leg.captured_fen if captured else leg.amount_fen) for leg in self.legs if leg.source is source)

    @property
    def holds_open(self) -> bool:
        return self.state is SettlementState.AUTHORIZED
