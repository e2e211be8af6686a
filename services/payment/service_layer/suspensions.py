"""Use cases on suspensions of networked settlement: refusing a suspended
card, and recording an impersonation (冒名就医) against the card's holder, suspending at the
region's threshold. Each runs inside the unit of work it is given; the caller commits."""

from __future__ import annotations

from datetime import datetime

from services.payment.service_layer.ids import new_id
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason
from shared.settlements import Bill, check_own_card


def check_not_suspended(uow: PaymentUnitOfWork, holder: str) -> None:
    suspension = uow.violations.suspension(holder)
    if suspension is not None and suspension.active:
        raise DomainError(
            Reason.SETTLEMENT_SUSPENDED,
            "networked settlement (联网结算) of this card is suspended until an operator lifts it",
            metadata={"holder_id_number": holder},
        )


def record_impersonation(uow: PaymentUnitOfWork, bill: Bill, suspension_threshold: int, now: datetime) -> None:
    """Records the violation against the card's holder, suspends at the
    region's threshold, and refuses the settlement."""
    holder = bill.credential_holder
    count = uow.violations.add(new_id(), holder, bill.patient_id_number, bill.institution_code, now)
    if suspension_threshold and count >= suspension_threshold:
        current = uow.violations.suspension(holder, for_update=True)
        if current is None or not current.active:
            uow.violations.suspend(holder, f"{count} impersonations (冒名就医)", "system", now)
    check_own_card(bill.patient_id_number, holder)
