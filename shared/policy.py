"""Regional mutual-aid policy as versioned data.

A policy applies to the national default ("000000"), a whole province
("PP0000") or one pooling region, from its effective date on. The most specific
policy in force at a moment governs; every decision records its version.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from importlib import resources
from typing import Any

from shared.china_time import CHINA_STANDARD_TIME, shown
from shared.errors import DomainError, Reason
from shared.money import MAX_BALANCE_FEN
from shared.regions import NATIONAL, PROVINCES, lookup_chain, province_of, validate_admdvs, validate_province
from shared.relationships import CORE_RELATIONSHIPS, Relationship, RelationshipScope


class GeographicScope(StrEnum):
    SAME_POOLING_REGION = "SAME_POOLING_REGION"
    SAME_PROVINCE = "SAME_PROVINCE"
    CROSS_PROVINCE = "CROSS_PROVINCE"


class UseCategory(StrEnum):
    OUTPATIENT = "OUTPATIENT"
    INPATIENT = "INPATIENT"
    CHRONIC_DISEASE_OUTPATIENT = "CHRONIC_DISEASE_OUTPATIENT"
    MATERNITY = "MATERNITY"
    PHARMACY = "PHARMACY"
    RESIDENT_CONTRIBUTION = "RESIDENT_CONTRIBUTION"
    COMMERCIAL_HEALTH_INSURANCE = "COMMERCIAL_HEALTH_INSURANCE"
    LONG_TERM_CARE_INSURANCE = "LONG_TERM_CARE_INSURANCE"


# Uses named nationally; commercial insurance is a regional option.
NATIONAL_USES: frozenset[UseCategory] = frozenset(UseCategory) - {UseCategory.COMMERCIAL_HEALTH_INSURANCE}


# Wallet transfer limits a region may set: a number, or NO_LIMIT. A policy that leaves one
# unset gets the national rule (3 transfers a day, 2,000 yuan each).
NO_LIMIT = -1
NATIONAL_WALLET_TRANSFERS_PER_DAY = 3
NATIONAL_WALLET_TRANSFER_MAX_FEN = 200_000
# Uses of someone else's medical credential (冒用) that suspend the holder's settlements.
NATIONAL_IMPERSONATION_THRESHOLD = 3
# Days a changed phone or address may stay unconfirmed before mutual aid is refused (seed 003).
NATIONAL_CONTACT_CHANGE_GRACE_DAYS = 15
# The most days a policy may count (ten years): a date that far on is still one a clock can hold.
MAX_POLICY_DAYS = 3650
# A policy's counts (transfers a day, uses of someone else's credential) above this limit
# nothing a person could reach: a larger number is a typing error, not a rule.
MAX_POLICY_COUNT = 1000


def wallet_limit(value: int, national: int) -> int | None:
    """The limit a stored or sent number means: 0 (unset) the national rule, NO_LIMIT none."""
    if value == NO_LIMIT:
        return None
    return value if value > 0 else national


MAX_NOTICE_VERSIONS = 20
MAX_NOTICE_VERSION_LENGTH = 64


@dataclass(frozen=True)
class RegionPolicy:
    admdvs: str
    effective_from: datetime
    relationship_scope: RelationshipScope = RelationshipScope.EXTENDED
    max_beneficiaries: int = 6
    geographic_scope: GeographicScope = GeographicScope.SAME_PROVINCE
    cross_province_provinces: frozenset[str] = frozenset()
    annual_share_ratio_percent: int = 0
    per_use_limit_fen: int = 0
    chronic_disease_per_use_limit_fen: int = 0
    allowed_uses: frozenset[UseCategory] = NATIONAL_USES
    auto_approve_relationships: frozenset[Relationship] = CORE_RELATIONSHIPS
    contact_change_grace_days: int = NATIONAL_CONTACT_CHANGE_GRACE_DAYS
    impersonation_suspension_threshold: int = NATIONAL_IMPERSONATION_THRESHOLD
    earmark_shared_amount: bool = False
    min_grantor_balance_fen: int = 0
    min_days_before_unbind: int = 0
    # Wallet transfers (national rules: 3 a day, 2,000 yuan each); NO_LIMIT for none.
    wallet_transfers_per_day: int = 3
    wallet_transfer_max_fen: int = 200_000
    description: str = ""
    # The notice versions (承诺书) a grantor acknowledges when binding here; empty: any.
    current_notice_versions: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def version(self) -> str:
        """The region and the moment the version takes effect, in China Standard Time as people
        read it: "320100@2024-07-01T00:00:00+08:00"."""
        return f"{self.admdvs}@{shown(self.effective_from)}"

    def per_use_limit(self, chronic_disease: bool) -> int:
        """The per-use limit in fen (0 = none); chronic and special diseases have their own."""
        return self.chronic_disease_per_use_limit_fen if chronic_disease else self.per_use_limit_fen

    def allows_use(self, use: UseCategory) -> bool:
        return use in self.allowed_uses

    def validated(self) -> RegionPolicy:
        """Returns the policy if every number is sane, else refuses it naming the field."""
        validate_admdvs(self.admdvs, "policy.admdvs", allow_national=True)
        if self.effective_from.tzinfo is None:
            raise DomainError(Reason.FIELD_INVALID, "effective_from needs a time zone", field="policy.effective_from")
        amount = f"must be 0–{MAX_BALANCE_FEN} fen"
        checks: list[tuple[bool, str, str]] = [
            (1 <= self.max_beneficiaries <= 20, "policy.max_beneficiaries", "must be between 1 and 20"),
            (0 <= self.annual_share_ratio_percent <= 100, "policy.annual_share_ratio_percent", "must be 0–100"),
            # No account holds more than MAX_BALANCE_FEN, so no limit or floor needs more; bounded,
            # every sum of them stays inside int64 in SQL as in Python.
            (0 <= self.per_use_limit_fen <= MAX_BALANCE_FEN, "policy.per_use_limit_fen", amount),
            (
                0 <= self.chronic_disease_per_use_limit_fen <= MAX_BALANCE_FEN,
                "policy.chronic_disease_per_use_limit_fen",
                amount,
            ),
            (
                0 <= self.contact_change_grace_days <= MAX_POLICY_DAYS,
                "policy.contact_change_grace_days",
                f"must be 0–{MAX_POLICY_DAYS}",
            ),
            (
                0 <= self.impersonation_suspension_threshold <= MAX_POLICY_COUNT,
                "policy.impersonation_suspension_threshold",
                f"must be 0–{MAX_POLICY_COUNT}",
            ),
            (0 <= self.min_grantor_balance_fen <= MAX_BALANCE_FEN, "policy.min_grantor_balance_fen", amount),
            (
                0 <= self.min_days_before_unbind <= MAX_POLICY_DAYS,
                "policy.min_days_before_unbind",
                f"must be 0–{MAX_POLICY_DAYS}",
            ),
            (
                1 <= self.wallet_transfers_per_day <= MAX_POLICY_COUNT or self.wallet_transfers_per_day == NO_LIMIT,
                "policy.wallet_transfers_per_day",
                f"must be 1–{MAX_POLICY_COUNT}, or -1 for no limit",
            ),
            (
                1 <= self.wallet_transfer_max_fen <= MAX_BALANCE_FEN or self.wallet_transfer_max_fen == NO_LIMIT,
                "policy.wallet_transfer_max_fen",
                f"must be 1–{MAX_BALANCE_FEN} fen, or -1 for no limit",
            ),
        ]
        for ok, field_name, problem in checks:
            if not ok:
                raise DomainError(Reason.FIELD_INVALID, f"{field_name} {problem}", field=field_name)
        for province in self.cross_province_provinces:
            validate_province(province, "policy.cross_province_provinces")
        if len(self.current_notice_versions) > MAX_NOTICE_VERSIONS or any(
            not version.strip() or len(version) > MAX_NOTICE_VERSION_LENGTH for version in self.current_notice_versions
        ):
            raise DomainError(
                Reason.FIELD_INVALID,
                f"policy.current_notice_versions holds at most {MAX_NOTICE_VERSIONS} versions of 1–"
                f"{MAX_NOTICE_VERSION_LENGTH} characters",
                field="policy.current_notice_versions",
            )
        return self

    def validated_as_new(self) -> RegionPolicy:
        """validated(), and the rules a version being put must keep besides (checked when it is
        put, not when it is read back, so a version stored before a rule came still reads)."""
        self.validated()
        chronic, ordinary = self.chronic_disease_per_use_limit_fen, self.per_use_limit_fen
        if chronic and (not ordinary or chronic < ordinary):
            # Chronic and special diseases (门诊慢特病) get the per-use limit raised or lifted, never lowered.
            raise DomainError(
                Reason.FIELD_INVALID,
                "policy.chronic_disease_per_use_limit_fen must be 0 (no limit) or at least policy.per_use_limit_fen "
                "(which must then be set): chronic and special diseases get the per-use limit raised or lifted",
                field="policy.chronic_disease_per_use_limit_fen",
            )
        return self

    def accepts_notice(self, version: str) -> bool:
        """Whether `version` is a current notice of this region (any, when it names none)."""
        return not self.current_notice_versions or version in self.current_notice_versions


NATIONAL_DEFAULT = RegionPolicy(
    admdvs=NATIONAL,
    effective_from=datetime(2024, 7, 1, tzinfo=CHINA_STANDARD_TIME),
    description="National default: close relatives (document No. 38, 2024), within one province.",
)


class PolicySource(StrEnum):
    """Whose policy governs a region (a region without one of its own inherits)."""

    OWN = "OWN"
    PROVINCE = "PROVINCE"
    NATIONAL = "NATIONAL"
    BUILT_IN = "BUILT_IN"


def policy_source(admdvs: str, governing: RegionPolicy) -> PolicySource:
    """Where the policy governing `admdvs` comes from: its own, its province's, the national one."""
    if governing is NATIONAL_DEFAULT:
        return PolicySource.BUILT_IN
    if governing.admdvs == admdvs:
        return PolicySource.OWN
    if governing.admdvs == NATIONAL:
        return PolicySource.NATIONAL
    return PolicySource.PROVINCE


class PolicyIndex:
    """Policy versions by region code, each region's in effective order: finding the one in
    force costs a few dictionary lookups and a bisection, however many versions exist."""

    def __init__(self, policies: Iterable[RegionPolicy]) -> None:
        by_code: dict[str, list[RegionPolicy]] = {}
        for policy in policies:
            by_code.setdefault(policy.admdvs, []).append(policy)
        self._versions = {code: sorted(found, key=lambda p: p.effective_from) for code, found in by_code.items()}
        self._starts = {code: [p.effective_from for p in found] for code, found in self._versions.items()}

    def for_region(self, admdvs: str, at: datetime) -> RegionPolicy:
        """The policy governing a region at a moment: most specific code first, latest version in force."""
        for code in lookup_chain(admdvs):
            starts = self._starts.get(code)
            if starts:
                position = bisect_right(starts, at)
                if position:
                    return self._versions[code][position - 1]
        return NATIONAL_DEFAULT

    def next_change_after(self, at: datetime) -> datetime | None:
        """The first instant after `at` at which any region's policy in force changes."""
        following = [starts[i] for starts in self._starts.values() if (i := bisect_right(starts, at)) < len(starts)]
        return min(following, default=None)


def select_policy(policies: Iterable[RegionPolicy], admdvs: str, at: datetime) -> RegionPolicy:
    """The policy governing a region at a moment: most specific code first, latest version in force."""
    return PolicyIndex(policies).for_region(admdvs, at)


def region_allows(
    grantor_policy: RegionPolicy, beneficiary_policy: RegionPolicy, grantor: str, beneficiary: str
) -> bool:
    """Whether two pooling regions may be bound.

    Each side's region sets a scope and the stricter holds: a region that keeps mutual aid
    within itself takes in no relative of another city, nor lends to one; across provinces both
    sides must run cross-province mutual aid and list each other.
    """
    if grantor == beneficiary:
        return True
    scope = grantor_policy.geographic_scope
    same_province = province_of(grantor) == province_of(beneficiary)
    if GeographicScope.SAME_POOLING_REGION in (scope, beneficiary_policy.geographic_scope):
        return False
    if same_province:
        return True
    if scope is not GeographicScope.CROSS_PROVINCE:
        return False
    return (
        beneficiary_policy.geographic_scope is GeographicScope.CROSS_PROVINCE
        and province_of(beneficiary) in grantor_policy.cross_province_provinces
        and province_of(grantor) in beneficiary_policy.cross_province_provinces
    )


def policy_from_dict(data: dict[str, Any]) -> RegionPolicy:
    """Reads a policy from plain data (JSON), refusing unknown keys."""
    known = {f for f in RegionPolicy.__dataclass_fields__ if f != "extra"}
    unknown = set(data) - known
    if unknown:
        raise DomainError(Reason.FIELD_INVALID, f"unknown policy fields: {sorted(unknown)}", field="policy")
    values: dict[str, Any] = dict(data)
    values["effective_from"] = datetime.fromisoformat(data["effective_from"])
    converters: dict[str, Any] = {
        "relationship_scope": RelationshipScope,
        "geographic_scope": GeographicScope,
        "cross_province_provinces": lambda items: frozenset(items),
        "allowed_uses": lambda items: frozenset(UseCategory(i) for i in items),
        "auto_approve_relationships": lambda items: frozenset(Relationship(i) for i in items),
        "current_notice_versions": lambda items: frozenset(items),
    }
    for name, convert in converters.items():
        if name in values:
            values[name] = convert(values[name])
    return RegionPolicy(**values).validated()


def policy_to_dict(policy: RegionPolicy) -> dict[str, Any]:
    """Plain data for storage or JSON; the inverse of policy_from_dict."""
    data: dict[str, Any] = {}
    for name in RegionPolicy.__dataclass_fields__:
        if name == "extra":
            continue
        value = getattr(policy, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, frozenset):
            value = sorted(str(item) for item in value)
        elif isinstance(value, StrEnum):
            value = value.value
        data[name] = value
    return data


def example_policies() -> list[RegionPolicy]:
    """The seeds' regional variants, shipped as examples (not official rules of those regions)."""
    text = resources.files("shared").joinpath("example_policies.json").read_text(encoding="utf-8")
    return [policy_from_dict(item) for item in json.loads(text)]


CROSS_PROVINCE_PILOTS: frozenset[str] = frozenset({"13", "32", "34", "37", "41", "42", "50", "51", "62"})
assert CROSS_PROVINCE_PILOTS <= PROVINCES
