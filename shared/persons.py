"""Insured persons (参保人) as the registry knows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class InsuranceType(StrEnum):
    EMPLOYEE = "EMPLOYEE"  # 职工医保, code 310
    RESIDENT = "RESIDENT"  # 城乡居民医保, code 390


class InsuranceStatus(StrEnum):
    NORMAL = "NORMAL"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"
    DECEASED = "DECEASED"


@dataclass
class InsuredPerson:
    id_number: str
    name: str
    insurance_type: InsuranceType
    status: InsuranceStatus
    admdvs: str
    phone: str = ""
    address: str = ""
    has_personal_account: bool = False
    # When a contact change awaits the person's confirmation.
    contact_change_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def is_normal(self) -> bool:
        return self.status is InsuranceStatus.NORMAL

    def contact_change_overdue(self, now: datetime, grace_days: int) -> bool:
        """True once an unconfirmed contact change is older than the grace period."""
        if self.contact_change_time is None:
            return False
        return now - self.contact_change_time > timedelta(days=grace_days)

    def contact_change_deadline(self, grace_days: int) -> datetime | None:
        """The last instant an unconfirmed contact change is not yet overdue; None without one."""
        if self.contact_change_time is None:
            return None
        return self.contact_change_time + timedelta(days=grace_days)


def contact_changed(before: InsuredPerson, after: InsuredPerson) -> bool:
    """Whether `after` gives a phone or address other than the one `before` has on record (an
    empty field gives none)."""
    return any(new and new != old for old, new in ((before.phone, after.phone), (before.address, after.address)))
