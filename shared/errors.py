"""Failure reasons as data: every refusal names a machine-readable reason.

The services map each reason's kind to a transport status (gRPC's
FAILED_PRECONDITION and so on) and put the reason into google.rpc.ErrorInfo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import StrEnum


class ErrorKind(StrEnum):
    """What the caller can do about a failure."""

    INVALID_INPUT = "INVALID_INPUT"  # fix the request; state was not consulted
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PRECONDITION = "PRECONDITION"  # the system's state does not allow it now
    PERMISSION = "PERMISSION"  # this caller or credential may not do it
    UNAVAILABLE = "UNAVAILABLE"  # try again later
    CONFLICT = "CONFLICT"  # a concurrent change got in the way; retry with the same key
    UNAUTHENTICATED = "UNAUTHENTICATED"  # the caller did not say who it is
    OVERLOADED = "OVERLOADED"  # too much at once; retry later with the same key
    DEADLINE = "DEADLINE"  # the caller's deadline passed before the work was done


class Reason(StrEnum):
    """The ErrorInfo.reason of a refusal: each value is a value of gongji.common.v1.ErrorReason.

    protos/gongji/common/v1/error_reason.proto documents each reason with the gRPC code it
    travels with (CODE_OF_KIND in services/common/status.py, by its kind below). Adding,
    renaming or re-kinding a reason means editing that enum and README.md's Errors table too;
    tests/test_error_reasons.py fails until they agree.
    """

    # Malformed input.
    FIELD_REQUIRED = "FIELD_REQUIRED"
    FIELD_INVALID = "FIELD_INVALID"
    INVALID_ID_NUMBER = "INVALID_ID_NUMBER"
    INVALID_ADMDVS = "INVALID_ADMDVS"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    SELF_BINDING = "SELF_BINDING"
    CONSENT_MISSING = "CONSENT_MISSING"
    # Idempotency (AIP-155).
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    # Binding.
    PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
    BINDING_NOT_FOUND = "BINDING_NOT_FOUND"
    POLICY_NOT_FOUND = "POLICY_NOT_FOUND"
    POLICY_VERSION_EXISTS = "POLICY_VERSION_EXISTS"
    GRANTOR_NOT_EMPLOYEE = "GRANTOR_NOT_EMPLOYEE"
    GRANTOR_NOT_IN_NORMAL_STATUS = "GRANTOR_NOT_IN_NORMAL_STATUS"
    BENEFICIARY_NOT_INSURED = "BENEFICIARY_NOT_INSURED"
    BENEFICIARY_NOT_IN_NORMAL_STATUS = "BENEFICIARY_NOT_IN_NORMAL_STATUS"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
    RELATIONSHIP_NOT_ALLOWED = "RELATIONSHIP_NOT_ALLOWED"
    PROOF_MISSING = "PROOF_MISSING"
    OUTSIDE_REGION = "OUTSIDE_REGION"
    CAP_REACHED = "CAP_REACHED"
    ALREADY_BOUND = "ALREADY_BOUND"
    CONTACT_CHANGE_OVERDUE = "CONTACT_CHANGE_OVERDUE"
    BINDING_NOT_ACTIVE = "BINDING_NOT_ACTIVE"
    BINDING_NOT_PENDING_REVIEW = "BINDING_NOT_PENDING_REVIEW"
    NOT_PARTY_TO_BINDING = "NOT_PARTY_TO_BINDING"
    UNBIND_TOO_EARLY = "UNBIND_TOO_EARLY"
    PAYER_WATCH_OFF = "PAYER_WATCH_OFF"
    # Payment.
    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
    SETTLEMENT_NOT_FOUND = "SETTLEMENT_NOT_FOUND"
    TRANSFER_NOT_FOUND = "TRANSFER_NOT_FOUND"
    SERVICE_NOT_FOUND = "SERVICE_NOT_FOUND"
    IMPERSONATION = "IMPERSONATION"
    SETTLEMENT_SUSPENDED = "SETTLEMENT_SUSPENDED"
    USE_NOT_ALLOWED = "USE_NOT_ALLOWED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    AMOUNT_EXCEEDS_HOLD = "AMOUNT_EXCEEDS_HOLD"
    ALREADY_CAPTURED = "ALREADY_CAPTURED"
    ALREADY_RELEASED = "ALREADY_RELEASED"
    NOT_CAPTURED = "NOT_CAPTURED"
    ALREADY_REFUNDED = "ALREADY_REFUNDED"
    REQUEST_REVERSED = "REQUEST_REVERSED"
    DUPLICATE_BILL = "DUPLICATE_BILL"
    VERIFICATION_FAILED = "VERIFICATION_FAILED"
    PROVINCE_UNREACHABLE = "PROVINCE_UNREACHABLE"
    BINDING_SERVICE_UNAVAILABLE = "BINDING_SERVICE_UNAVAILABLE"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    VERIFIER_UNAVAILABLE = "VERIFIER_UNAVAILABLE"
    WALLET_NOT_ACTIVATED = "WALLET_NOT_ACTIVATED"
    NO_PERSONAL_ACCOUNT = "NO_PERSONAL_ACCOUNT"
    TRANSFER_LIMIT_REACHED = "TRANSFER_LIMIT_REACHED"
    TRANSFER_NOT_ALLOWED_NOW = "TRANSFER_NOT_ALLOWED_NOW"
    TRANSFER_PENDING = "TRANSFER_PENDING"
    TRANSFER_REFUNDED = "TRANSFER_REFUNDED"
    CONCURRENT_CHANGE = "CONCURRENT_CHANGE"
    NOT_SUSPENDED = "NOT_SUSPENDED"
    AMOUNT_LIMIT_EXCEEDED = "AMOUNT_LIMIT_EXCEEDED"
    SERVER_BUSY = "SERVER_BUSY"
    TOO_MANY_CALLS = "TOO_MANY_CALLS"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    # Trust boundaries: who calls, and what it may do.
    UNAUTHENTICATED_CALLER = "UNAUTHENTICATED_CALLER"
    CALLER_NOT_ALLOWED = "CALLER_NOT_ALLOWED"
    OUT_OF_SCOPE = "OUT_OF_SCOPE"
    PEER_CLAIM_REJECTED = "PEER_CLAIM_REJECTED"


_KIND_OF_REASON: Mapping[Reason, ErrorKind] = {
    Reason.FIELD_REQUIRED: ErrorKind.INVALID_INPUT,
    Reason.FIELD_INVALID: ErrorKind.INVALID_INPUT,
    Reason.INVALID_ID_NUMBER: ErrorKind.INVALID_INPUT,
    Reason.INVALID_ADMDVS: ErrorKind.INVALID_INPUT,
    Reason.INVALID_AMOUNT: ErrorKind.INVALID_INPUT,
    Reason.INVALID_PAGE_TOKEN: ErrorKind.INVALID_INPUT,
    Reason.MALFORMED_REQUEST: ErrorKind.INVALID_INPUT,
    Reason.SELF_BINDING: ErrorKind.INVALID_INPUT,
    Reason.CONSENT_MISSING: ErrorKind.INVALID_INPUT,
    Reason.IDEMPOTENCY_KEY_REUSED: ErrorKind.ALREADY_EXISTS,
    Reason.PERSON_NOT_FOUND: ErrorKind.NOT_FOUND,
    Reason.BINDING_NOT_FOUND: ErrorKind.NOT_FOUND,
    Reason.POLICY_NOT_FOUND: ErrorKind.NOT_FOUND,
    Reason.POLICY_VERSION_EXISTS: ErrorKind.ALREADY_EXISTS,
    Reason.GRANTOR_NOT_EMPLOYEE: ErrorKind.PRECONDITION,
    Reason.GRANTOR_NOT_IN_NORMAL_STATUS: ErrorKind.PRECONDITION,
    Reason.BENEFICIARY_NOT_INSURED: ErrorKind.PRECONDITION,
    Reason.BENEFICIARY_NOT_IN_NORMAL_STATUS: ErrorKind.PRECONDITION,
    Reason.IDENTITY_MISMATCH: ErrorKind.PRECONDITION,
    Reason.RELATIONSHIP_NOT_ALLOWED: ErrorKind.PRECONDITION,
    Reason.PROOF_MISSING: ErrorKind.PRECONDITION,
    Reason.OUTSIDE_REGION: ErrorKind.PRECONDITION,
    Reason.CAP_REACHED: ErrorKind.PRECONDITION,
    Reason.ALREADY_BOUND: ErrorKind.ALREADY_EXISTS,
    Reason.CONTACT_CHANGE_OVERDUE: ErrorKind.PRECONDITION,
    Reason.BINDING_NOT_ACTIVE: ErrorKind.PRECONDITION,
    Reason.BINDING_NOT_PENDING_REVIEW: ErrorKind.PRECONDITION,
    Reason.NOT_PARTY_TO_BINDING: ErrorKind.PERMISSION,
    Reason.UNBIND_TOO_EARLY: ErrorKind.PRECONDITION,
    Reason.PAYER_WATCH_OFF: ErrorKind.PRECONDITION,
    Reason.ACCOUNT_NOT_FOUND: ErrorKind.NOT_FOUND,
    Reason.SETTLEMENT_NOT_FOUND: ErrorKind.NOT_FOUND,
    Reason.TRANSFER_NOT_FOUND: ErrorKind.NOT_FOUND,
    Reason.SERVICE_NOT_FOUND: ErrorKind.NOT_FOUND,
    Reason.IMPERSONATION: ErrorKind.PERMISSION,
    Reason.SETTLEMENT_SUSPENDED: ErrorKind.PERMISSION,
    Reason.USE_NOT_ALLOWED: ErrorKind.PRECONDITION,
    Reason.INSUFFICIENT_FUNDS: ErrorKind.PRECONDITION,
    Reason.HOLD_EXPIRED: ErrorKind.PRECONDITION,
    Reason.AMOUNT_EXCEEDS_HOLD: ErrorKind.PRECONDITION,
    Reason.ALREADY_CAPTURED: ErrorKind.PRECONDITION,
    Reason.ALREADY_RELEASED: ErrorKind.PRECONDITION,
    Reason.NOT_CAPTURED: ErrorKind.PRECONDITION,
    Reason.ALREADY_REFUNDED: ErrorKind.PRECONDITION,
    Reason.REQUEST_REVERSED: ErrorKind.PRECONDITION,
    Reason.DUPLICATE_BILL: ErrorKind.ALREADY_EXISTS,
    Reason.VERIFICATION_FAILED: ErrorKind.PERMISSION,
    Reason.PROVINCE_UNREACHABLE: ErrorKind.UNAVAILABLE,
    Reason.BINDING_SERVICE_UNAVAILABLE: ErrorKind.UNAVAILABLE,
    Reason.DATABASE_UNAVAILABLE: ErrorKind.UNAVAILABLE,
    Reason.VERIFIER_UNAVAILABLE: ErrorKind.UNAVAILABLE,
    Reason.WALLET_NOT_ACTIVATED: ErrorKind.PRECONDITION,
    Reason.NO_PERSONAL_ACCOUNT: ErrorKind.PRECONDITION,
    Reason.TRANSFER_LIMIT_REACHED: ErrorKind.PRECONDITION,
    Reason.TRANSFER_NOT_ALLOWED_NOW: ErrorKind.PRECONDITION,
    Reason.TRANSFER_PENDING: ErrorKind.PRECONDITION,
    Reason.TRANSFER_REFUNDED: ErrorKind.PRECONDITION,
    Reason.CONCURRENT_CHANGE: ErrorKind.CONFLICT,
    Reason.NOT_SUSPENDED: ErrorKind.PRECONDITION,
    Reason.AMOUNT_LIMIT_EXCEEDED: ErrorKind.INVALID_INPUT,
    Reason.SERVER_BUSY: ErrorKind.OVERLOADED,
    Reason.TOO_MANY_CALLS: ErrorKind.OVERLOADED,
    Reason.DEADLINE_EXCEEDED: ErrorKind.DEADLINE,
    Reason.UNAUTHENTICATED_CALLER: ErrorKind.UNAUTHENTICATED,
    Reason.CALLER_NOT_ALLOWED: ErrorKind.PERMISSION,
    Reason.OUT_OF_SCOPE: ErrorKind.PERMISSION,
    Reason.PEER_CLAIM_REJECTED: ErrorKind.PERMISSION,
}


# Refusals that say "not now" rather than "no": never stored under a request_id, so a retry
# with the same key runs again.
TRANSIENT_KINDS = frozenset({ErrorKind.UNAVAILABLE, ErrorKind.CONFLICT, ErrorKind.OVERLOADED, ErrorKind.DEADLINE})


def kind_of(reason: Reason) -> ErrorKind:
    return _KIND_OF_REASON[reason]


@dataclass
class DomainError(Exception):
    """A refusal with a reason the caller's program can act on.

    `field` names the offending request field (for BadRequest details);
    `metadata` carries facts such as the cap that was reached; `keep_effects`
    asks that what the request recorded before the refusal be kept (a violation,
    an expired hold released) while its answer is still the refusal.
    """

    reason: Reason
    message: str
    field: str | None = None
    metadata: dict[str, str] = dataclass_field(default_factory=dict)
    keep_effects: bool = False

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def kind(self) -> ErrorKind:
        return kind_of(self.reason)


def require(value: object, field_name: str) -> None:
    """Refuses a missing (empty, zero or unspecified) required field."""
    if not value:
        raise DomainError(Reason.FIELD_REQUIRED, f"{field_name} is required", field=field_name)
