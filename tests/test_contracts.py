"""Contract tests: the protos declare what gongji promises other systems.

The agreed surface: service, RPC, enum and field names are the
contract. Money is int64 fen, no floats anywhere. Failures carry a
machine-readable reason in google.rpc.ErrorInfo.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor, MethodDescriptor
from google.rpc import error_details_pb2, status_pb2

from gongji.binding.v1 import binding_pb2, binding_service_pb2
from gongji.common.v1 import common_pb2
from gongji.payment.v1 import payment_pb2, payment_service_pb2
from services.common.status import CODE_OF_KIND, status_of
from shared.errors import DomainError, ErrorKind, Reason, kind_of
from shared.policy import GeographicScope
from shared.policy import UseCategory as DomainUseCategory
from shared.relationships import ProofType as DomainProofType
from shared.relationships import Relationship as DomainRelationship
from shared.relationships import RelationshipScope as DomainRelationshipScope

FILES: tuple[FileDescriptor, ...] = (
    common_pb2.DESCRIPTOR,
    binding_pb2.DESCRIPTOR,
    binding_service_pb2.DESCRIPTOR,
    payment_pb2.DESCRIPTOR,
    payment_service_pb2.DESCRIPTOR,
)

# The agreed RPCs of gongji.binding.v1.BindingService and gongji.payment.v1.PaymentService.
API_RPCS: dict[str, tuple[str, ...]] = {
    "BindingService": [
        "UpsertInsuredPerson",
        "GetInsuredPerson",
        "UpdateContactInfo",
        "ReportLifeEvent",
        "CreateBinding",
        "ReviewBinding",
        "EndBinding",
        "GetBinding",
        "ListBindings",
        "UpdateSharingLimit",
        "SetPayerOrder",
        "ResolvePayers",
        "PutRegionPolicy",
        "GetRegionPolicy",
        "ListRegionPolicies",
    ],
    "PaymentService": [
        "CreditAccount",
        "GetAccount",
        "ListStatement",
        "QuoteSettlement",
        "AuthorizeSettlement",
        "CaptureSettlement",
        "ReleaseSettlement",
        "Settle",
        "RefundSettlement",
        "ReverseRequest",
        "GetSettlement",
        "TransferToWallet",
        "GetTransfer",
        "SuspendSettlement",
        "LiftSuspension",
        "ListViolations",
        "ReconcileInstitution",
        "GetClearingReport",
        "CheckLedger",
    ],
}
SERVICE_FILES = {"BindingService": binding_service_pb2.DESCRIPTOR, "PaymentService": payment_service_pb2.DESCRIPTOR}
READ_ONLY_PREFIXES = ("Get", "List", "Quote", "Resolve", "Check", "Reconcile")

# The agreed failure reasons.
BINDING_REASONS = [
    "GRANTOR_NOT_EMPLOYEE",
    "GRANTOR_NOT_IN_NORMAL_STATUS",
    "BENEFICIARY_NOT_INSURED",
    "BENEFICIARY_NOT_IN_NORMAL_STATUS",
    "IDENTITY_MISMATCH",
    "SELF_BINDING",
    "RELATIONSHIP_NOT_ALLOWED",
    "PROOF_MISSING",
    "CONSENT_MISSING",
    "OUTSIDE_REGION",
    "CAP_REACHED",
    "ALREADY_BOUND",
    "CONTACT_CHANGE_OVERDUE",
    "BINDING_NOT_ACTIVE",
]
PAYMENT_REASONS = [
    "IMPERSONATION",
    "SETTLEMENT_SUSPENDED",
    "USE_NOT_ALLOWED",
    "INSUFFICIENT_FUNDS",
    "HOLD_EXPIRED",
    "AMOUNT_EXCEEDS_HOLD",
    "ALREADY_CAPTURED",
    "ALREADY_RELEASED",
    "IDEMPOTENCY_KEY_REUSED",
    "VERIFICATION_FAILED",
    "PROVINCE_UNREACHABLE",
]
API_REASONS = [("binding.gongji", r) for r in BINDING_REASONS] + [("payment.gongji", r) for r in PAYMENT_REASONS]


def all_rpcs() -> list[tuple[str, str]]:
    return [(service, rpc) for service, rpcs in API_RPCS.items() for rpc in rpcs]


def method(service: str, rpc: str) -> MethodDescriptor:
    return SERVICE_FILES[service].services_by_name[service].methods_by_name[rpc]


def messages_in(descriptors: tuple[Descriptor, ...] | list[Descriptor]) -> Iterator[Descriptor]:
    for message in descriptors:
        yield message
        yield from messages_in(list(message.nested_types))


def all_messages() -> list[Descriptor]:
    return [m for f in FILES for m in messages_in(list(f.message_types_by_name.values()))]


def all_enums() -> list[EnumDescriptor]:
    top = [e for f in FILES for e in f.enum_types_by_name.values()]
    nested = [e for m in all_messages() for e in m.enum_types]
    return top + nested


def message(full_name: str) -> Descriptor:
    (found,) = (m for m in all_messages() if m.full_name == full_name)
    return found


def upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def enum_values(enum: EnumDescriptor) -> set[str]:
    prefix = upper_snake(enum.name) + "_"
    return {v.name.removeprefix(prefix) for v in enum.values if v.number != 0}


def field(message_descriptor: Descriptor, name: str) -> FieldDescriptor:
    assert name in message_descriptor.fields_by_name, f"{message_descriptor.full_name} has no field {name}"
    return message_descriptor.fields_by_name[name]


def is_repeated(f: FieldDescriptor) -> bool:
    return bool(f.is_repeated)  # protobuf 7 dropped FieldDescriptor.label


# RPCs.


@pytest.mark.parametrize(("service", "rpc"), all_rpcs())
def test_every_rpc_named_in_the_api_is_declared(service: str, rpc: str) -> None:
    services = SERVICE_FILES[service].services_by_name
    assert service in services, f"{service} is not declared"
    assert rpc in services[service].methods_by_name, f"{service}.{rpc} is not declared"


def test_the_services_live_in_their_versioned_packages() -> None:
    assert binding_service_pb2.DESCRIPTOR.services_by_name["BindingService"].full_name == (
        "gongji.binding.v1.BindingService"
    )
    assert payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name == (
        "gongji.payment.v1.PaymentService"
    )


@pytest.mark.parametrize(("service", "rpc"), all_rpcs())
def test_every_rpc_has_its_own_request_and_response_messages(service: str, rpc: str) -> None:
    """AIP-style: one Request and one Response per RPC, so each can grow on its own."""
    declared = method(service, rpc)
    package = SERVICE_FILES[service].package
    assert declared.input_type.full_name == f"{package}.{rpc}Request"
    assert declared.output_type.full_name == f"{package}.{rpc}Response"
    assert not declared.client_streaming
    assert not declared.server_streaming


@pytest.mark.parametrize(("service", "rpc"), [(s, r) for s, r in all_rpcs() if not r.startswith(READ_ONLY_PREFIXES)])
def test_every_mutating_rpc_takes_a_request_id_as_its_first_field(service: str, rpc: str) -> None:
    """Every mutating request carries an idempotency key; a retry returns the first answer."""
    request_id = field(method(service, rpc).input_type, "request_id")
    assert request_id.number == 1
    assert request_id.type == FieldDescriptor.TYPE_STRING
    assert not is_repeated(request_id)


@pytest.mark.parametrize(("service", "rpc"), [(s, r) for s, r in all_rpcs() if r.startswith("List")])
def test_every_list_rpc_is_paged_with_a_size_and_tokens(service: str, rpc: str) -> None:
    """Lists take page_size/page_token and return next_page_token."""
    declared = method(service, rpc)
    assert field(declared.input_type, "page_size").type == FieldDescriptor.TYPE_INT32
    assert field(declared.input_type, "page_token").type == FieldDescriptor.TYPE_STRING
    assert field(declared.output_type, "next_page_token").type == FieldDescriptor.TYPE_STRING


# Enums and money.


@pytest.mark.parametrize("enum", all_enums(), ids=lambda e: e.full_name)
def test_every_enum_starts_with_an_unspecified_zero_and_prefixes_every_value(enum: EnumDescriptor) -> None:
    """Each enum has <ENUM>_UNSPECIFIED = 0, refused when sent."""
    prefix = upper_snake(enum.name)
    assert enum.values_by_number[0].name == f"{prefix}_UNSPECIFIED"
    unprefixed = [v.name for v in enum.values if not v.name.startswith(prefix + "_")]
    assert not unprefixed, f"{enum.full_name} values lack the {prefix}_ prefix: {unprefixed}"


def test_the_enums_checked_cover_all_three_packages() -> None:
    assert {e.file.package for e in all_enums()} == {"gongji.common.v1", "gongji.binding.v1", "gongji.payment.v1"}


def test_every_money_field_is_int64_fen_and_no_field_is_a_float() -> None:
    """Money is always an integer number of fen in int64. No floats anywhere."""
    fen_fields = [(m.full_name, f) for m in all_messages() for f in m.fields if f.name.endswith("_fen")]
    assert fen_fields
    wrong = [f"{owner}.{f.name}" for owner, f in fen_fields if f.type != FieldDescriptor.TYPE_INT64]
    assert not wrong, f"not int64: {wrong}"
    floats = [
        f"{m.full_name}.{f.name}"
        for m in all_messages()
        for f in m.fields
        if f.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)
    ]
    assert not floats, f"floating-point fields: {floats}"


@pytest.mark.parametrize(
    ("enum_name", "values"),
    [
        ("InsuranceType", {"EMPLOYEE", "RESIDENT"}),
        ("InsuranceStatus", {"NORMAL", "SUSPENDED", "TERMINATED", "DECEASED"}),
        (
            "Relationship",
            {
                "SPOUSE",
                "PARENT",
                "CHILD",
                "SIBLING",
                "PATERNAL_GRANDPARENT",
                "MATERNAL_GRANDPARENT",
                "PATERNAL_GRANDCHILD",
                "MATERNAL_GRANDCHILD",
            },
        ),
        ("Channel", {"NATIONAL_APP", "WECHAT", "ALIPAY", "WEB", "COUNTER"}),
        (
            "UseCategory",
            {
                "OUTPATIENT",
                "INPATIENT",
                "CHRONIC_DISEASE_OUTPATIENT",
                "MATERNITY",
                "PHARMACY",
                "RESIDENT_CONTRIBUTION",
                "COMMERCIAL_HEALTH_INSURANCE",
                "LONG_TERM_CARE_INSURANCE",
            },
        ),
    ],
)
def test_the_common_enums_carry_exactly_the_values_the_api_lists(enum_name: str, values: set[str]) -> None:
    assert enum_values(common_pb2.DESCRIPTOR.enum_types_by_name[enum_name]) == values


@pytest.mark.parametrize(
    ("enum", "domain_enum"),
    [
        (common_pb2.DESCRIPTOR.enum_types_by_name["Relationship"], DomainRelationship),
        (common_pb2.DESCRIPTOR.enum_types_by_name["UseCategory"], DomainUseCategory),
        (binding_pb2.DESCRIPTOR.enum_types_by_name["RelationshipScope"], DomainRelationshipScope),
        (binding_pb2.DESCRIPTOR.enum_types_by_name["GeographicScope"], GeographicScope),
        (binding_pb2.DESCRIPTOR.enum_types_by_name["ProofType"], DomainProofType),
    ],
    ids=lambda value: getattr(value, "full_name", getattr(value, "__name__", "")),
)
def test_the_domain_enums_match_the_proto_enums_by_name(enum: EnumDescriptor, domain_enum: type) -> None:
    """The servicers convert enums by name (services/common/converters.py); a mismatch would refuse valid input."""
    assert enum_values(enum) == {member.value for member in domain_enum}


@pytest.mark.parametrize(
    ("full_name", "values"),
    [
        ("gongji.binding.v1.BindingState", {"PENDING_REVIEW", "ACTIVE", "SUSPENDED", "ENDED", "REJECTED"}),
        ("gongji.binding.v1.RelationshipScope", {"CORE", "EXTENDED"}),
        ("gongji.binding.v1.GeographicScope", {"SAME_POOLING_REGION", "SAME_PROVINCE", "CROSS_PROVINCE"}),
        ("gongji.binding.v1.PayerMode", {"SEQUENTIAL", "PROPORTIONAL"}),
        ("gongji.payment.v1.PaymentSource", {"OWN_ACCOUNT", "MUTUAL_AID", "WALLET"}),
        ("gongji.payment.v1.CredentialType", {"CARD", "QR", "FACE"}),
        ("gongji.payment.v1.VerificationMethod", {"FACE", "QR_PASSWORD"}),
    ],
)
def test_the_service_enums_carry_the_values_the_api_lists(full_name: str, values: set[str]) -> None:
    (enum,) = (e for e in all_enums() if e.full_name == full_name)
    assert enum_values(enum) == values


@pytest.mark.parametrize(
    ("full_name", "values"),
    [
        ("gongji.binding.v1.Actor", {"GRANTOR", "BENEFICIARY", "OPERATOR"}),
        ("gongji.binding.v1.LifeEventType", {"DEATH", "DIVORCE", "INSURANCE_ENDED", "CONTACT_CHANGED"}),
    ],
)
def test_the_service_enums_include_the_values_the_api_names(full_name: str, values: set[str]) -> None:
    (enum,) = (e for e in all_enums() if e.full_name == full_name)
    assert values <= enum_values(enum)


# Messages.

TIMESTAMP = "google.protobuf.Timestamp"
STRING, INT32, INT64, BOOL = "string", "int32", "int64", "bool"


def type_of(f: FieldDescriptor) -> str:
    if f.message_type is not None:
        return f.message_type.full_name
    if f.enum_type is not None:
        return f.enum_type.full_name
    return {
        FieldDescriptor.TYPE_STRING: STRING,
        FieldDescriptor.TYPE_INT32: INT32,
        FieldDescriptor.TYPE_INT64: INT64,
        FieldDescriptor.TYPE_BOOL: BOOL,
    }.get(f.type, f"type {f.type}")


def assert_fields(full_name: str, expected: dict[str, str], repeated: frozenset[str] | set[str] = frozenset()) -> None:
    declared = message(full_name)
    for name, wanted in expected.items():
        actual = field(declared, name)
        assert type_of(actual) == wanted, f"{full_name}.{name} is {type_of(actual)}, the contract says {wanted}"
        assert is_repeated(actual) == (name in repeated), f"{full_name}.{name} repeated should be {name in repeated}"


def test_an_insured_person_has_the_fields_the_api_lists() -> None:
    assert_fields(
        "gongji.binding.v1.InsuredPerson",
        {
            "id_number": STRING,
            "name": STRING,
            "insurance_type": "gongji.common.v1.InsuranceType",
            "status": "gongji.common.v1.InsuranceStatus",
            "admdvs": STRING,
            "phone": STRING,
            "address": STRING,
            "has_personal_account": BOOL,
        },
    )


def test_a_binding_has_the_fields_the_api_lists() -> None:
    """Who grants to whom, as what relative, in which state, sharing how much, via which channel."""
    assert_fields(
        "gongji.binding.v1.Binding",
        {
            "binding_id": STRING,
            "grantor_id_number": STRING,
            "beneficiary_id_number": STRING,
            "relationship": "gongji.common.v1.Relationship",
            "state": "gongji.binding.v1.BindingState",
            "share_all": BOOL,
            "yearly_cap_fen": INT64,
            "channel": "gongji.common.v1.Channel",
            "consent_version": STRING,
            "create_time": TIMESTAMP,
            "end_time": TIMESTAMP,
            "end_reason": "gongji.binding.v1.EndReason",
        },
    )


def test_a_region_policy_has_the_fields_the_api_lists() -> None:
    """Every per-region rule is a field of the versioned policy."""
    assert_fields(
        "gongji.binding.v1.RegionPolicy",
        {
            "admdvs": STRING,
            "effective_from": TIMESTAMP,
            "relationship_scope": "gongji.binding.v1.RelationshipScope",
            "max_beneficiaries": INT32,
            "geographic_scope": "gongji.binding.v1.GeographicScope",
            "cross_province_provinces": STRING,
            "annual_share_ratio_percent": INT32,
            "per_use_limit_fen": INT64,
            "chronic_disease_per_use_limit_fen": INT64,
            "allowed_uses": "gongji.common.v1.UseCategory",
            "auto_approve_relationships": "gongji.common.v1.Relationship",
            "contact_change_grace_days": INT32,
            "impersonation_suspension_threshold": INT32,
        },
        repeated={"cross_province_provinces", "allowed_uses", "auto_approve_relationships"},
    )


def test_creating_a_binding_takes_both_identities_relationship_proofs_consent_and_channel() -> None:
    """Identity is checked against the registry; consent and channel are recorded."""
    assert_fields(
        "gongji.binding.v1.CreateBindingRequest",
        {
            "grantor": "gongji.binding.v1.PersonIdentity",
            "beneficiary": "gongji.binding.v1.PersonIdentity",
            "relationship": "gongji.common.v1.Relationship",
            "proofs": "gongji.binding.v1.Proof",
            "consent_version": STRING,
            "channel": "gongji.common.v1.Channel",
        },
        repeated={"proofs"},
    )
    assert_fields("gongji.binding.v1.PersonIdentity", {"id_number": STRING, "name": STRING})
    assert_fields("gongji.binding.v1.Proof", {"type": "gongji.binding.v1.ProofType", "document_ref": STRING})


def test_resolving_payers_takes_the_beneficiary_use_institution_region_and_time() -> None:
    assert_fields(
        "gongji.binding.v1.ResolvePayersRequest",
        {
            "beneficiary_id_number": STRING,
            "use_category": "gongji.common.v1.UseCategory",
            "institution_admdvs": STRING,
            "at_time": TIMESTAMP,
        },
    )


def test_a_settlement_request_carries_the_bill_the_api_lists() -> None:
    """The institution, the patient, the credential presented and the self-pay amount."""
    for request in ("QuoteSettlementRequest", "AuthorizeSettlementRequest", "SettleRequest"):
        assert_fields(f"gongji.payment.v1.{request}", {"bill": "gongji.payment.v1.Bill"})
    assert_fields(
        "gongji.payment.v1.Bill",
        {
            "institution_code": STRING,
            "institution_admdvs": STRING,
            "patient_id_number": STRING,
            "credential": "gongji.payment.v1.Credential",
            "use_category": "gongji.common.v1.UseCategory",
            "self_pay_fen": INT64,
            "chronic_disease": BOOL,
            "use_own_account": BOOL,
        },
    )
    assert_fields(
        "gongji.payment.v1.Credential",
        {"type": "gongji.payment.v1.CredentialType", "holder_id_number": STRING},
    )


def test_a_settlement_answer_carries_every_leg_and_the_national_interfaces_totals() -> None:
    """Each leg (payer, source, binding, amount, policy version) and the split
    acct_pay / acct_mulaid_pay / psn_cash_pay, with each payer's balance left (balc)."""
    assert_fields(
        "gongji.payment.v1.Settlement",
        {
            "legs": "gongji.payment.v1.Leg",
            "own_account_pay_fen": INT64,
            "mutual_aid_pay_fen": INT64,
            "wallet_pay_fen": INT64,
            "cash_pay_fen": INT64,
        },
        repeated={"legs"},
    )
    assert_fields(
        "gongji.payment.v1.Leg",
        {
            "payer_id_number": STRING,
            "source": "gongji.payment.v1.PaymentSource",
            "binding_id": STRING,
            "amount_fen": INT64,
            "policy_version": STRING,
        },
    )
    leg = message("gongji.payment.v1.Leg")
    balances = [f.name for f in leg.fields if "balance" in f.name and f.type == FieldDescriptor.TYPE_INT64]
    assert balances, "a leg reports the payer's remaining balance"
    for rpc in ("QuoteSettlement", "AuthorizeSettlement", "CaptureSettlement", "Settle", "RefundSettlement"):
        assert_fields(f"gongji.payment.v1.{rpc}Response", {"settlement": "gongji.payment.v1.Settlement"})


def test_an_account_reports_balance_held_and_available_amounts() -> None:
    """Balance (total, held, available) and this year's shared amount per binding."""
    assert_fields(
        "gongji.payment.v1.Account",
        {
            "balance_fen": INT64,
            "held_fen": INT64,
            "available_fen": INT64,
            "shared_this_year": "gongji.payment.v1.BindingShare",
        },
        repeated={"shared_this_year"},
    )


def test_reversal_names_the_original_request_and_wallet_transfers_carry_a_verification() -> None:
    """A reversal (冲正) names the original request id; a wallet transfer is confirmed by face or QR password."""
    assert_fields("gongji.payment.v1.ReverseRequestRequest", {"original_request_id": STRING})
    assert_fields("gongji.payment.v1.TransferToWalletRequest", {"verification": "gongji.payment.v1.Verification"})
    assert_fields("gongji.payment.v1.Verification", {"method": "gongji.payment.v1.VerificationMethod", "token": STRING})


def test_setting_the_payer_order_takes_ordered_binding_ids_and_a_mode() -> None:
    """The beneficiary's priority order, SEQUENTIAL or PROPORTIONAL."""
    assert_fields(
        "gongji.binding.v1.SetPayerOrderRequest",
        {"binding_ids": STRING, "mode": "gongji.binding.v1.PayerMode"},
        repeated={"binding_ids"},
    )


# Failure reasons and statuses.


@pytest.mark.parametrize(("domain", "reason"), API_REASONS)
def test_every_failure_reason_the_api_lists_exists(domain: str, reason: str) -> None:
    assert reason in Reason.__members__, f"{reason} ({domain}) is missing from shared.errors.Reason"
    assert Reason[reason].value == reason


def test_every_reason_has_a_kind_and_every_kind_has_a_grpc_code() -> None:
    assert {kind_of(reason) for reason in Reason} <= set(ErrorKind)
    assert set(CODE_OF_KIND) == set(ErrorKind)


@pytest.mark.parametrize(("domain", "reason"), API_REASONS)
def test_a_refusal_becomes_a_status_whose_error_info_names_the_reason_and_domain(domain: str, reason: str) -> None:
    error = DomainError(Reason[reason], f"refused: {reason}", metadata={"limit": "5"})
    status = status_of(error, domain)
    assert isinstance(status, status_pb2.Status)
    assert status.code == CODE_OF_KIND[kind_of(Reason[reason])].value[0]
    assert status.message == f"refused: {reason}"
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert info.reason == reason
    assert info.domain == domain
    assert dict(info.metadata) == {"limit": "5"}
    assert not any(d.Is(error_details_pb2.BadRequest.DESCRIPTOR) for d in status.details)


def test_a_refusal_naming_a_field_also_carries_a_bad_request_field_violation() -> None:
    error = DomainError(Reason.INVALID_ID_NUMBER, "grantor.id_number is not valid", field="grantor.id_number")
    status = status_of(error, "binding.gongji")
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    (packed,) = [d for d in status.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)]
    bad_request = error_details_pb2.BadRequest()
    packed.Unpack(bad_request)
    (violation,) = bad_request.field_violations
    assert violation.field == "grantor.id_number"
    assert violation.reason == "INVALID_ID_NUMBER"
    assert violation.description == "grantor.id_number is not valid"


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (ErrorKind.INVALID_INPUT, grpc.StatusCode.INVALID_ARGUMENT),
        (ErrorKind.NOT_FOUND, grpc.StatusCode.NOT_FOUND),
        (ErrorKind.ALREADY_EXISTS, grpc.StatusCode.ALREADY_EXISTS),
        (ErrorKind.PRECONDITION, grpc.StatusCode.FAILED_PRECONDITION),
        (ErrorKind.PERMISSION, grpc.StatusCode.PERMISSION_DENIED),
        (ErrorKind.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_each_kind_of_failure_maps_to_the_grpc_code_a_caller_expects(kind: ErrorKind, code: grpc.StatusCode) -> None:
    assert CODE_OF_KIND[kind] is code


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (Reason.FIELD_REQUIRED, grpc.StatusCode.INVALID_ARGUMENT),  # an UNSPECIFIED enum is INVALID_ARGUMENT
        (Reason.INVALID_ID_NUMBER, grpc.StatusCode.INVALID_ARGUMENT),
        (Reason.PERSON_NOT_FOUND, grpc.StatusCode.NOT_FOUND),
        (Reason.ALREADY_BOUND, grpc.StatusCode.ALREADY_EXISTS),
        (Reason.CAP_REACHED, grpc.StatusCode.FAILED_PRECONDITION),
        (Reason.OUTSIDE_REGION, grpc.StatusCode.FAILED_PRECONDITION),
        (Reason.INSUFFICIENT_FUNDS, grpc.StatusCode.FAILED_PRECONDITION),
        (Reason.HOLD_EXPIRED, grpc.StatusCode.FAILED_PRECONDITION),
        (Reason.IMPERSONATION, grpc.StatusCode.PERMISSION_DENIED),
        (Reason.SETTLEMENT_SUSPENDED, grpc.StatusCode.PERMISSION_DENIED),
        (Reason.VERIFICATION_FAILED, grpc.StatusCode.PERMISSION_DENIED),
        (Reason.PROVINCE_UNREACHABLE, grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_typical_refusals_reach_the_caller_with_the_expected_grpc_code(reason: Reason, code: grpc.StatusCode) -> None:
    """A hospital system retries UNAVAILABLE, fixes INVALID_ARGUMENT, and shows FAILED_PRECONDITION to the user."""
    assert status_of(DomainError(reason, "refused"), "payment.gongji").code == code.value[0]
