"""Messages of gongji.binding.v1 to domain values and back. Every field is
validated here, so use cases only ever see well-formed values."""

from __future__ import annotations

from datetime import datetime

from gongji.binding.v1 import binding_pb2 as pb
from gongji.binding.v1 import binding_service_pb2 as api
from gongji.common.v1 import common_pb2 as common
from services.common.converters import (
    datetime_to_timestamp,
    enum_to_domain,
    enum_to_proto,
    text_field,
    timestamp_to_datetime,
)
from services.common.grants import grant_to_proto
from shared.bindings import (
    Actor,
    Binding,
    BindingApplication,
    BindingEvent,
    BindingState,
    Channel,
    Identity,
    LifeEvent,
    Proof,
)
from shared.errors import DomainError, Reason
from shared.identity import validate_id_number
from shared.payers import PayerMode, PayerOrder, PayerResolution
from shared.persons import InsuranceStatus, InsuranceType, InsuredPerson
from shared.policy import (
    MAX_NOTICE_VERSION_LENGTH,
    NATIONAL_CONTACT_CHANGE_GRACE_DAYS,
    NATIONAL_USES,
    NATIONAL_WALLET_TRANSFER_MAX_FEN,
    NATIONAL_WALLET_TRANSFERS_PER_DAY,
    GeographicScope,
    RegionPolicy,
    UseCategory,
    policy_source,
)
from shared.regions import validate_admdvs, validate_province
from shared.relationships import ProofType, Relationship, RelationshipScope

# A relationship is shown by a document or two (household register, marriage certificate); every
# proof is kept with the binding and sent with it in every list, so their number is bounded.
MAX_PROOFS = 10


def _name(value: str, field: str) -> str:
    return text_field(value, field, 100, required=True)


def person_from_proto(message: pb.InsuredPerson, field: str = "insured_person") -> InsuredPerson:
    return InsuredPerson(
        id_number=validate_id_number(message.id_number, f"{field}.id_number"),
        name=_name(message.name, f"{field}.name"),
        insurance_type=enum_to_domain(
            InsuranceType, common.InsuranceType, message.insurance_type, f"{field}.insurance_type"
        ),
        status=enum_to_domain(InsuranceStatus, common.InsuranceStatus, message.status, f"{field}.status"),
        admdvs=validate_admdvs(message.admdvs, f"{field}.admdvs"),
        phone=text_field(message.phone, f"{field}.phone", 32),
        address=text_field(message.address, f"{field}.address", 256),
        has_personal_account=message.has_personal_account,
    )


def person_to_proto(person: InsuredPerson) -> pb.InsuredPerson:
    return pb.InsuredPerson(
        id_number=person.id_number,
        name=person.name,
        insurance_type=enum_to_proto(common.InsuranceType, person.insurance_type),
        status=enum_to_proto(common.InsuranceStatus, person.status),
        admdvs=person.admdvs,
        phone=person.phone,
        address=person.address,
        has_personal_account=person.has_personal_account,
        contact_change_time=datetime_to_timestamp(person.contact_change_time),
        update_time=datetime_to_timestamp(person.update_time),
    )


def binding_to_proto(binding: Binding) -> pb.Binding:
    return pb.Binding(
        binding_id=binding.binding_id,
        grantor_id_number=binding.grantor_id_number,
        beneficiary_id_number=binding.beneficiary_id_number,
        relationship=enum_to_proto(common.Relationship, binding.relationship),
        state=enum_to_proto(pb.BindingState, binding.state),
        share_all=binding.share_all,
        yearly_cap_fen=binding.yearly_cap_fen,
        channel=enum_to_proto(common.Channel, binding.channel),
        consent_version=binding.consent_version,
        consent_time=datetime_to_timestamp(binding.consent_time),
        create_time=datetime_to_timestamp(binding.create_time),
        end_time=datetime_to_timestamp(binding.end_time),
        end_reason=enum_to_proto(pb.EndReason, binding.end_reason),
        ended_by=enum_to_proto(pb.Actor, binding.ended_by),
        end_comment=binding.end_comment,
        proofs=[
            pb.Proof(type=enum_to_proto(pb.ProofType, p.type), document_ref=p.document_ref) for p in binding.proofs
        ],
        grantor_admdvs=binding.grantor_admdvs,
        beneficiary_admdvs=binding.beneficiary_admdvs,
        policy_version=binding.policy_version,
        update_time=datetime_to_timestamp(binding.update_time),
    )


def event_to_proto(event: BindingEvent) -> pb.BindingEvent:
    return pb.BindingEvent(
        binding_id=event.binding_id,
        event_type=enum_to_proto(pb.BindingEventType, event.event_type),
        actor=enum_to_proto(pb.Actor, event.actor),
        actor_id=event.actor_id,
        channel=enum_to_proto(common.Channel, event.channel),
        time=datetime_to_timestamp(event.time),
        comment=event.comment,
        request_id=event.request_id,
        state_after=enum_to_proto(pb.BindingState, event.state_after),
    )


def _identity(message: api.PersonIdentity, field: str) -> Identity:
    return Identity(
        id_number=validate_id_number(message.id_number, f"{field}.id_number"),
        name=_name(message.name, f"{field}.name"),
    )


def application_from_request(request: api.CreateBindingRequest) -> BindingApplication:
    if len(request.proofs) > MAX_PROOFS:
        raise DomainError(Reason.FIELD_INVALID, f"a binding carries at most {MAX_PROOFS} proofs", field="proofs")
    proofs = tuple(
        Proof(
            enum_to_domain(ProofType, pb.ProofType, proof.type, f"proofs[{i}].type"),
            text_field(proof.document_ref, f"proofs[{i}].document_ref", 128),
        )
        for i, proof in enumerate(request.proofs)
    )
    return BindingApplication(
        grantor=_identity(request.grantor, "grantor"),
        beneficiary=_identity(request.beneficiary, "beneficiary"),
        relationship=enum_to_domain(Relationship, common.Relationship, request.relationship, "relationship"),
        proofs=proofs,
        consent_version=text_field(request.consent_version, "consent_version", 64),
        channel=enum_to_domain(Channel, common.Channel, request.channel, "channel"),
        yearly_cap_fen=request.yearly_cap_fen,
    )


def life_event_from_proto(value: int) -> LifeEvent:
    return enum_to_domain(LifeEvent, api.LifeEventType, value, "event_type")


def actor_from_proto(value: int) -> Actor:
    return enum_to_domain(Actor, pb.Actor, value, "actor")


def states_from_proto(values: list[int]) -> list[BindingState]:
    """The states asked for, each once in the order first asked: a state repeated any number of
    times filters as once, and never becomes that many SQL parameters (PostgreSQL takes 65,535)."""
    states = (enum_to_domain(BindingState, pb.BindingState, v, f"states[{i}]") for i, v in enumerate(values))
    return list(dict.fromkeys(states))


def payer_mode_from_proto(value: int) -> PayerMode:
    return enum_to_domain(PayerMode, pb.PayerMode, value, "mode")


def use_from_proto(value: int, field: str = "use_category") -> UseCategory:
    return enum_to_domain(UseCategory, common.UseCategory, value, field)


def payer_order_to_proto(order: PayerOrder) -> api.SetPayerOrderResponse:
    return api.SetPayerOrderResponse(binding_ids=list(order.binding_ids), mode=enum_to_proto(pb.PayerMode, order.mode))


def resolution_to_proto(resolution: PayerResolution) -> api.ResolvePayersResponse:
    return api.ResolvePayersResponse(
        grants=[grant_to_proto(g) for g in resolution.grants],
        mode=enum_to_proto(pb.PayerMode, resolution.mode),
        excluded=[
            api.ExcludedPayer(binding_id=e.binding_id, grantor_id_number=e.grantor_id_number, reason=e.reason.value)
            for e in resolution.excluded
        ],
        policy_version=resolution.policy_version,
        beneficiary_admdvs=resolution.beneficiary_admdvs,
        earmarked_shares=[
            api.EarmarkedShare(
                binding_id=e.binding_id,
                beneficiary_id_number=e.beneficiary_id_number,
                yearly_cap_fen=e.yearly_cap_fen,
                policy_version=e.policy_version,
            )
            for e in resolution.earmarked
        ],
        valid_until=datetime_to_timestamp(resolution.valid_until),
    )


def policy_from_proto(message: pb.RegionPolicy) -> RegionPolicy:
    effective_from = timestamp_to_datetime(message, "effective_from", prefix="policy.")
    if effective_from is None:
        raise DomainError(Reason.FIELD_REQUIRED, "policy.effective_from is required", field="policy.effective_from")
    return RegionPolicy(
        admdvs=validate_admdvs(message.admdvs, "policy.admdvs", allow_national=True),
        effective_from=effective_from,
        relationship_scope=enum_to_domain(
            RelationshipScope, pb.RelationshipScope, message.relationship_scope, "policy.relationship_scope"
        ),
        max_beneficiaries=message.max_beneficiaries,
        geographic_scope=enum_to_domain(
            GeographicScope, pb.GeographicScope, message.geographic_scope, "policy.geographic_scope"
        ),
        cross_province_provinces=frozenset(
            validate_province(p, f"policy.cross_province_provinces[{i}]")
            for i, p in enumerate(message.cross_province_provinces)
        ),
        annual_share_ratio_percent=message.annual_share_ratio_percent,
        per_use_limit_fen=message.per_use_limit_fen,
        chronic_disease_per_use_limit_fen=message.chronic_disease_per_use_limit_fen,
        # A region that names no use allows the national ones: proto3 cannot tell an empty list
        # from one left out, and a policy under which mutual aid pays for nothing is no policy.
        allowed_uses=frozenset(
            use_from_proto(u, f"policy.allowed_uses[{i}]") for i, u in enumerate(message.allowed_uses)
        )
        or NATIONAL_USES,
        auto_approve_relationships=frozenset(
            enum_to_domain(Relationship, common.Relationship, r, f"policy.auto_approve_relationships[{i}]")
            for i, r in enumerate(message.auto_approve_relationships)
        ),
        contact_change_grace_days=message.contact_change_grace_days or NATIONAL_CONTACT_CHANGE_GRACE_DAYS,
        impersonation_suspension_threshold=message.impersonation_suspension_threshold,
        earmark_shared_amount=message.earmark_shared_amount,
        min_grantor_balance_fen=message.min_grantor_balance_fen,
        min_days_before_unbind=message.min_days_before_unbind,
        wallet_transfers_per_day=message.wallet_transfers_per_day or NATIONAL_WALLET_TRANSFERS_PER_DAY,
        wallet_transfer_max_fen=message.wallet_transfer_max_fen or NATIONAL_WALLET_TRANSFER_MAX_FEN,
        description=text_field(message.description, "policy.description", 500),
        current_notice_versions=frozenset(
            text_field(v, f"policy.current_notice_versions[{i}]", MAX_NOTICE_VERSION_LENGTH)
            for i, v in enumerate(message.current_notice_versions)
        ),
    ).validated()


def policy_in_force_to_proto(admdvs: str, policy: RegionPolicy) -> api.GetRegionPolicyResponse:
    """The policy governing `admdvs`, saying whether the region has its own or inherits one."""
    return api.GetRegionPolicyResponse(
        policy=policy_to_proto(policy), source=enum_to_proto(pb.PolicySource, policy_source(admdvs, policy))
    )


def policy_to_proto(policy: RegionPolicy) -> pb.RegionPolicy:
    return pb.RegionPolicy(
        admdvs=policy.admdvs,
        effective_from=datetime_to_timestamp(policy.effective_from),
        version=policy.version,
        relationship_scope=enum_to_proto(pb.RelationshipScope, policy.relationship_scope),
        max_beneficiaries=policy.max_beneficiaries,
        geographic_scope=enum_to_proto(pb.GeographicScope, policy.geographic_scope),
        cross_province_provinces=sorted(policy.cross_province_provinces),
        annual_share_ratio_percent=policy.annual_share_ratio_percent,
        per_use_limit_fen=policy.per_use_limit_fen,
        chronic_disease_per_use_limit_fen=policy.chronic_disease_per_use_limit_fen,
        allowed_uses=sorted(enum_to_proto(common.UseCategory, u) for u in policy.allowed_uses),
        auto_approve_relationships=sorted(
            enum_to_proto(common.Relationship, r) for r in policy.auto_approve_relationships
        ),
        contact_change_grace_days=policy.contact_change_grace_days,
        impersonation_suspension_threshold=policy.impersonation_suspension_threshold,
        earmark_shared_amount=policy.earmark_shared_amount,
        min_grantor_balance_fen=policy.min_grantor_balance_fen,
        min_days_before_unbind=policy.min_days_before_unbind,
        wallet_transfers_per_day=policy.wallet_transfers_per_day,
        wallet_transfer_max_fen=policy.wallet_transfer_max_fen,
        description=policy.description,
        current_notice_versions=sorted(policy.current_notice_versions),
    )


def optional_time(message: object, field: str, default: datetime) -> datetime:
    return timestamp_to_datetime(message, field) or default


def optional_channel(value: int) -> Channel | None:
    return None if value == 0 else enum_to_domain(Channel, common.Channel, value, "channel")
