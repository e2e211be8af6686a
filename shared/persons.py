"""Insured persons (参保人) as the registry knows them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.errors import DomainError, Reason

# A mainland mobile number (11 digits: 1, then 3 to 9, then nine more), or a landline with its
# area code (0 and two or three digits, an optional hyphen, then a local number of seven or eight).
_PHONE = re.compile(r"1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8}")


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


def validate_phone(value: str, field: str = "phone") -> str:
    """A phone number the person can be reached at, or "" (none given). The refusal never
    quotes the number: an error text may be logged or shown to someone else."""
    if value and not _PHONE.fullmatch(value):
        raise DomainError(
            Reason.FIELD_INVALID,
            f"{field} must be a mobile number (11 digits starting 13 to 19) or a landline with its area code",
            field=field,
        )
    return value
