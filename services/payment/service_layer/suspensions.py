"""Use cases on suspensions of networked settlement: refusing a suspended
card, recording an impersonation (冒名就医) against the card's holder and suspending at the
region's threshold, an operator suspending or lifting by hand, and reading a holder's
violations with the suspension they led to. Each runs inside the unit of work it is given;
the caller commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.payment.service_layer.ids import new_id
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason
from shared.settlements import Bill, check_own_card


def check_not_suspended(uow: PaymentUnitOfWork, holder: str, suspended: bool | None = None) -> None:
    """Refuses a card whose networked settlement is suspended; `suspended` when read already
    (with the accounts a settlement locks), else it is read here."""
    if suspended is None:
        suspension = uow.violations.suspension(holder)
        suspended = suspension is not None and bool(suspension.active)
    if suspended:
        raise DomainError(
            Reason.SETTLEMENT_SUSPENDED,
            "networked settlement (联网结算) of this card is suspended until an operator lifts it",
            metadata={"holder_id_number": holder},
        )


def record_impersonation(uow: PaymentUnitOfWork, bill: Bill, suspension_threshold: int, now: datetime) -> None:
    """Records the violation against the card's holder, suspends at the region's threshold, and
    refuses the settlement. An operator's lift starts the count again: only violations after the
    last lift count toward the threshold."""
    holder = bill.credential_holder
    current = uow.violations.suspension(holder, for_update=True)
    since = current.lift_time if current is not None and not current.active else None
    count = uow.violations.add(new_id(), holder, bill.patient_id_number, bill.institution_code, now, since)
    suspended = current is not None and current.active
    if suspension_threshold and count >= suspension_threshold and not suspended:
        uow.violations.suspend(holder, f"{count} impersonations (冒名就医)", "system", now)
    check_own_card(bill.patient_id_number, holder)


@dataclass(frozen=True)
class SuspensionView:
    holder_id_number: str
    active: bool
    reason: str
    operator_id: str
    suspend_time: datetime | None
    lift_time: datetime | None


def _view(row: Any) -> SuspensionView:
    return SuspensionView(
        row.holder_id_number, row.active, row.reason, row.operator_id, row.suspend_time, row.lift_time
    )


def suspend(uow: PaymentUnitOfWork, holder: str, reason: str, operator_id: str, now: datetime) -> SuspensionView:
    if not operator_id.strip():
        raise DomainError(Reason.FIELD_REQUIRED, "operator_id is required", field="operator_id")
    uow.violations.suspend(holder, reason, operator_id, now)
    return _view(uow.violations.suspension(holder))


def lift(uow: PaymentUnitOfWork, holder: str, reason: str, operator_id: str, now: datetime) -> SuspensionView:
    if not operator_id.strip():
        raise DomainError(Reason.FIELD_REQUIRED, "operator_id is required", field="operator_id")
    current = uow.violations.suspension(holder, for_update=True)
    if current is None or not current.active:
        raise DomainError(Reason.NOT_SUSPENDED, f"{holder} has no active suspension to lift", field="holder_id_number")
    uow.violations.lift(holder, operator_id, reason, now)
    return _view(uow.violations.suspension(holder))


def suspension_of(uow: PaymentUnitOfWork, holder: str) -> SuspensionView | None:
    row = uow.violations.suspension(holder)
    return None if row is None else _view(row)


def violations(
    uow: PaymentUnitOfWork, holder: str, after: tuple[datetime, str] | None, limit: int
) -> tuple[list[Any], SuspensionView | None]:
    """Up to `limit` of the holder's violations after the `after` (time, id), oldest first, and
    the holder's suspension (None when there never was one)."""
    return uow.violations.page(holder, after, limit), suspension_of(uow, holder)
