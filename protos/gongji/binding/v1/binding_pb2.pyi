import datetime

from gongji.common.v1 import common_pb2 as _common_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BindingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BINDING_STATE_UNSPECIFIED: _ClassVar[BindingState]
    BINDING_STATE_PENDING_REVIEW: _ClassVar[BindingState]
    BINDING_STATE_ACTIVE: _ClassVar[BindingState]
    BINDING_STATE_SUSPENDED: _ClassVar[BindingState]
    BINDING_STATE_ENDED: _ClassVar[BindingState]
    BINDING_STATE_REJECTED: _ClassVar[BindingState]

class Actor(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTOR_UNSPECIFIED: _ClassVar[Actor]
    ACTOR_GRANTOR: _ClassVar[Actor]
    ACTOR_BENEFICIARY: _ClassVar[Actor]
    ACTOR_OPERATOR: _ClassVar[Actor]
    ACTOR_SYSTEM: _ClassVar[Actor]

class EndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    END_REASON_UNSPECIFIED: _ClassVar[EndReason]
    END_REASON_GRANTOR_REQUEST: _ClassVar[EndReason]
    END_REASON_BENEFICIARY_REQUEST: _ClassVar[EndReason]
    END_REASON_OPERATOR_ACTION: _ClassVar[EndReason]
    END_REASON_DEATH: _ClassVar[EndReason]
    END_REASON_DIVORCE: _ClassVar[EndReason]
    END_REASON_INSURANCE_ENDED: _ClassVar[EndReason]

class ProofType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROOF_TYPE_UNSPECIFIED: _ClassVar[ProofType]
    PROOF_TYPE_MARRIAGE_CERTIFICATE: _ClassVar[ProofType]
    PROOF_TYPE_HOUSEHOLD_REGISTER: _ClassVar[ProofType]
    PROOF_TYPE_BIRTH_CERTIFICATE: _ClassVar[ProofType]
    PROOF_TYPE_KINSHIP_CERTIFICATE: _ClassVar[ProofType]

class RelationshipScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELATIONSHIP_SCOPE_UNSPECIFIED: _ClassVar[RelationshipScope]
    RELATIONSHIP_SCOPE_CORE: _ClassVar[RelationshipScope]
    RELATIONSHIP_SCOPE_EXTENDED: _ClassVar[RelationshipScope]

class GeographicScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GEOGRAPHIC_SCOPE_UNSPECIFIED: _ClassVar[GeographicScope]
    GEOGRAPHIC_SCOPE_SAME_POOLING_REGION: _ClassVar[GeographicScope]
    GEOGRAPHIC_SCOPE_SAME_PROVINCE: _ClassVar[GeographicScope]
    GEOGRAPHIC_SCOPE_CROSS_PROVINCE: _ClassVar[GeographicScope]

class PolicySource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_SOURCE_UNSPECIFIED: _ClassVar[PolicySource]
    POLICY_SOURCE_OWN: _ClassVar[PolicySource]
    POLICY_SOURCE_PROVINCE: _ClassVar[PolicySource]
    POLICY_SOURCE_NATIONAL: _ClassVar[PolicySource]
    POLICY_SOURCE_BUILT_IN: _ClassVar[PolicySource]

class PayerMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYER_MODE_UNSPECIFIED: _ClassVar[PayerMode]
    PAYER_MODE_SEQUENTIAL: _ClassVar[PayerMode]
    PAYER_MODE_PROPORTIONAL: _ClassVar[PayerMode]

class BindingEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BINDING_EVENT_TYPE_UNSPECIFIED: _ClassVar[BindingEventType]
    BINDING_EVENT_TYPE_CREATED: _ClassVar[BindingEventType]
    BINDING_EVENT_TYPE_APPROVED: _ClassVar[BindingEventType]
    BINDING_EVENT_TYPE_REJECTED: _ClassVar[BindingEventType]
    BINDING_EVENT_TYPE_ENDED: _ClassVar[BindingEventType]
    BINDING_EVENT_TYPE_SUSPENDED: _ClassVar[BindingEventType]
    BINDING_EVENT_TYPE_RESUMED: _ClassVar[BindingEventType]
    BINDING_EVENT_TYPE_SHARING_LIMIT_CHANGED: _ClassVar[BindingEventType]
BINDING_STATE_UNSPECIFIED: BindingState
BINDING_STATE_PENDING_REVIEW: BindingState
BINDING_STATE_ACTIVE: BindingState
BINDING_STATE_SUSPENDED: BindingState
BINDING_STATE_ENDED: BindingState
BINDING_STATE_REJECTED: BindingState
ACTOR_UNSPECIFIED: Actor
ACTOR_GRANTOR: Actor
ACTOR_BENEFICIARY: Actor
ACTOR_OPERATOR: Actor
ACTOR_SYSTEM: Actor
END_REASON_UNSPECIFIED: EndReason
END_REASON_GRANTOR_REQUEST: EndReason
END_REASON_BENEFICIARY_REQUEST: EndReason
END_REASON_OPERATOR_ACTION: EndReason
END_REASON_DEATH: EndReason
END_REASON_DIVORCE: EndReason
END_REASON_INSURANCE_ENDED: EndReason
PROOF_TYPE_UNSPECIFIED: ProofType
PROOF_TYPE_MARRIAGE_CERTIFICATE: ProofType
PROOF_TYPE_HOUSEHOLD_REGISTER: ProofType
PROOF_TYPE_BIRTH_CERTIFICATE: ProofType
PROOF_TYPE_KINSHIP_CERTIFICATE: ProofType
RELATIONSHIP_SCOPE_UNSPECIFIED: RelationshipScope
RELATIONSHIP_SCOPE_CORE: RelationshipScope
RELATIONSHIP_SCOPE_EXTENDED: RelationshipScope
GEOGRAPHIC_SCOPE_UNSPECIFIED: GeographicScope
GEOGRAPHIC_SCOPE_SAME_POOLING_REGION: GeographicScope
GEOGRAPHIC_SCOPE_SAME_PROVINCE: GeographicScope
GEOGRAPHIC_SCOPE_CROSS_PROVINCE: GeographicScope
POLICY_SOURCE_UNSPECIFIED: PolicySource
POLICY_SOURCE_OWN: PolicySource
POLICY_SOURCE_PROVINCE: PolicySource
POLICY_SOURCE_NATIONAL: PolicySource
POLICY_SOURCE_BUILT_IN: PolicySource
PAYER_MODE_UNSPECIFIED: PayerMode
PAYER_MODE_SEQUENTIAL: PayerMode
PAYER_MODE_PROPORTIONAL: PayerMode
BINDING_EVENT_TYPE_UNSPECIFIED: BindingEventType
BINDING_EVENT_TYPE_CREATED: BindingEventType
BINDING_EVENT_TYPE_APPROVED: BindingEventType
BINDING_EVENT_TYPE_REJECTED: BindingEventType
BINDING_EVENT_TYPE_ENDED: BindingEventType
BINDING_EVENT_TYPE_SUSPENDED: BindingEventType
BINDING_EVENT_TYPE_RESUMED: BindingEventType
BINDING_EVENT_TYPE_SHARING_LIMIT_CHANGED: BindingEventType

class InsuredPerson(_message.Message):
    __slots__ = ("id_number", "name", "insurance_type", "status", "admdvs", "phone", "address", "has_personal_account", "contact_change_time", "update_time")
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSURANCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ADMDVS_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HAS_PERSONAL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CONTACT_CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    name: str
    insurance_type: _common_pb2.InsuranceType
    status: _common_pb2.InsuranceStatus
    admdvs: str
    phone: str
    address: str
    has_personal_account: bool
    contact_change_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id_number: _Optional[str] = ..., name: _Optional[str] = ..., insurance_type: _Optional[_Union[_common_pb2.InsuranceType, str]] = ..., status: _Optional[_Union[_common_pb2.InsuranceStatus, str]] = ..., admdvs: _Optional[str] = ..., phone: _Optional[str] = ..., address: _Optional[str] = ..., has_personal_account: _Optional[bool] = ..., contact_change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Proof(_message.Message):
    __slots__ = ("type", "document_ref")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_REF_FIELD_NUMBER: _ClassVar[int]
    type: ProofType
    document_ref: str
    def __init__(self, type: _Optional[_Union[ProofType, str]] = ..., document_ref: _Optional[str] = ...) -> None: ...

class Binding(_message.Message):
    __slots__ = ("binding_id", "grantor_id_number", "beneficiary_id_number", "relationship", "state", "share_all", "yearly_cap_fen", "channel", "consent_version", "consent_time", "create_time", "end_time", "end_reason", "ended_by", "end_comment", "proofs", "grantor_admdvs", "beneficiary_admdvs", "policy_version", "update_time")
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SHARE_ALL_FIELD_NUMBER: _ClassVar[int]
    YEARLY_CAP_FEN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CONSENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    ENDED_BY_FIELD_NUMBER: _ClassVar[int]
    END_COMMENT_FIELD_NUMBER: _ClassVar[int]
    PROOFS_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    grantor_id_number: str
    beneficiary_id_number: str
    relationship: _common_pb2.Relationship
    state: BindingState
    share_all: bool
    yearly_cap_fen: int
    channel: _common_pb2.Channel
    consent_version: str
    consent_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    end_reason: EndReason
    ended_by: Actor
    end_comment: str
    proofs: _containers.RepeatedCompositeFieldContainer[Proof]
    grantor_admdvs: str
    beneficiary_admdvs: str
    policy_version: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, binding_id: _Optional[str] = ..., grantor_id_number: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ..., relationship: _Optional[_Union[_common_pb2.Relationship, str]] = ..., state: _Optional[_Union[BindingState, str]] = ..., share_all: _Optional[bool] = ..., yearly_cap_fen: _Optional[int] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., consent_version: _Optional[str] = ..., consent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_reason: _Optional[_Union[EndReason, str]] = ..., ended_by: _Optional[_Union[Actor, str]] = ..., end_comment: _Optional[str] = ..., proofs: _Optional[_Iterable[_Union[Proof, _Mapping]]] = ..., grantor_admdvs: _Optional[str] = ..., beneficiary_admdvs: _Optional[str] = ..., policy_version: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegionPolicy(_message.Message):
    __slots__ = ("admdvs", "effective_from", "version", "relationship_scope", "max_beneficiaries", "geographic_scope", "cross_province_provinces", "annual_share_ratio_percent", "per_use_limit_fen", "chronic_disease_per_use_limit_fen", "allowed_uses", "auto_approve_relationships", "contact_change_grace_days", "impersonation_suspension_threshold", "earmark_shared_amount", "min_grantor_balance_fen", "min_days_before_unbind", "wallet_transfers_per_day", "wallet_transfer_max_fen", "description", "current_notice_versions")
    ADMDVS_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FROM_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIP_SCOPE_FIELD_NUMBER: _ClassVar[int]
    MAX_BENEFICIARIES_FIELD_NUMBER: _ClassVar[int]
    GEOGRAPHIC_SCOPE_FIELD_NUMBER: _ClassVar[int]
    CROSS_PROVINCE_PROVINCES_FIELD_NUMBER: _ClassVar[int]
    ANNUAL_SHARE_RATIO_PERCENT_FIELD_NUMBER: _ClassVar[int]
    PER_USE_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    CHRONIC_DISEASE_PER_USE_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_USES_FIELD_NUMBER: _ClassVar[int]
    AUTO_APPROVE_RELATIONSHIPS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_CHANGE_GRACE_DAYS_FIELD_NUMBER: _ClassVar[int]
    IMPERSONATION_SUSPENSION_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    EARMARK_SHARED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_GRANTOR_BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    MIN_DAYS_BEFORE_UNBIND_FIELD_NUMBER: _ClassVar[int]
    WALLET_TRANSFERS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    WALLET_TRANSFER_MAX_FEN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_NOTICE_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    admdvs: str
    effective_from: _timestamp_pb2.Timestamp
    version: str
    relationship_scope: RelationshipScope
    max_beneficiaries: int
    geographic_scope: GeographicScope
    cross_province_provinces: _containers.RepeatedScalarFieldContainer[str]
    annual_share_ratio_percent: int
    per_use_limit_fen: int
    chronic_disease_per_use_limit_fen: int
    allowed_uses: _containers.RepeatedScalarFieldContainer[_common_pb2.UseCategory]
    auto_approve_relationships: _containers.RepeatedScalarFieldContainer[_common_pb2.Relationship]
    contact_change_grace_days: int
    impersonation_suspension_threshold: int
    earmark_shared_amount: bool
    min_grantor_balance_fen: int
    min_days_before_unbind: int
    wallet_transfers_per_day: int
    wallet_transfer_max_fen: int
    description: str
    current_notice_versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, admdvs: _Optional[str] = ..., effective_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[str] = ..., relationship_scope: _Optional[_Union[RelationshipScope, str]] = ..., max_beneficiaries: _Optional[int] = ..., geographic_scope: _Optional[_Union[GeographicScope, str]] = ..., cross_province_provinces: _Optional[_Iterable[str]] = ..., annual_share_ratio_percent: _Optional[int] = ..., per_use_limit_fen: _Optional[int] = ..., chronic_disease_per_use_limit_fen: _Optional[int] = ..., allowed_uses: _Optional[_Iterable[_Union[_common_pb2.UseCategory, str]]] = ..., auto_approve_relationships: _Optional[_Iterable[_Union[_common_pb2.Relationship, str]]] = ..., contact_change_grace_days: _Optional[int] = ..., impersonation_suspension_threshold: _Optional[int] = ..., earmark_shared_amount: _Optional[bool] = ..., min_grantor_balance_fen: _Optional[int] = ..., min_days_before_unbind: _Optional[int] = ..., wallet_transfers_per_day: _Optional[int] = ..., wallet_transfer_max_fen: _Optional[int] = ..., description: _Optional[str] = ..., current_notice_versions: _Optional[_Iterable[str]] = ...) -> None: ...

class BindingEvent(_message.Message):
    __slots__ = ("binding_id", "event_type", "actor", "actor_id", "channel", "time", "comment", "request_id", "state_after")
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_AFTER_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    event_type: BindingEventType
    actor: Actor
    actor_id: str
    channel: _common_pb2.Channel
    time: _timestamp_pb2.Timestamp
    comment: str
    request_id: str
    state_after: BindingState
    def __init__(self, binding_id: _Optional[str] = ..., event_type: _Optional[_Union[BindingEventType, str]] = ..., actor: _Optional[_Union[Actor, str]] = ..., actor_id: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ..., request_id: _Optional[str] = ..., state_after: _Optional[_Union[BindingState, str]] = ...) -> None: ...
