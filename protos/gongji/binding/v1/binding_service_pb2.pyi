import datetime

from gongji.binding.v1 import binding_pb2 as _binding_pb2
from gongji.common.v1 import common_pb2 as _common_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LifeEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIFE_EVENT_TYPE_UNSPECIFIED: _ClassVar[LifeEventType]
    LIFE_EVENT_TYPE_DEATH: _ClassVar[LifeEventType]
    LIFE_EVENT_TYPE_DIVORCE: _ClassVar[LifeEventType]
    LIFE_EVENT_TYPE_INSURANCE_ENDED: _ClassVar[LifeEventType]
    LIFE_EVENT_TYPE_CONTACT_CHANGED: _ClassVar[LifeEventType]

class ReviewDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_DECISION_UNSPECIFIED: _ClassVar[ReviewDecision]
    REVIEW_DECISION_APPROVE: _ClassVar[ReviewDecision]
    REVIEW_DECISION_REJECT: _ClassVar[ReviewDecision]
LIFE_EVENT_TYPE_UNSPECIFIED: LifeEventType
LIFE_EVENT_TYPE_DEATH: LifeEventType
LIFE_EVENT_TYPE_DIVORCE: LifeEventType
LIFE_EVENT_TYPE_INSURANCE_ENDED: LifeEventType
LIFE_EVENT_TYPE_CONTACT_CHANGED: LifeEventType
REVIEW_DECISION_UNSPECIFIED: ReviewDecision
REVIEW_DECISION_APPROVE: ReviewDecision
REVIEW_DECISION_REJECT: ReviewDecision

class UpsertInsuredPersonRequest(_message.Message):
    __slots__ = ("request_id", "insured_person")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INSURED_PERSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    insured_person: _binding_pb2.InsuredPerson
    def __init__(self, request_id: _Optional[str] = ..., insured_person: _Optional[_Union[_binding_pb2.InsuredPerson, _Mapping]] = ...) -> None: ...

class UpsertInsuredPersonResponse(_message.Message):
    __slots__ = ("insured_person", "created")
    INSURED_PERSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    insured_person: _binding_pb2.InsuredPerson
    created: bool
    def __init__(self, insured_person: _Optional[_Union[_binding_pb2.InsuredPerson, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetInsuredPersonRequest(_message.Message):
    __slots__ = ("id_number",)
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    def __init__(self, id_number: _Optional[str] = ...) -> None: ...

class GetInsuredPersonResponse(_message.Message):
    __slots__ = ("insured_person",)
    INSURED_PERSON_FIELD_NUMBER: _ClassVar[int]
    insured_person: _binding_pb2.InsuredPerson
    def __init__(self, insured_person: _Optional[_Union[_binding_pb2.InsuredPerson, _Mapping]] = ...) -> None: ...

class UpdateContactInfoRequest(_message.Message):
    __slots__ = ("request_id", "id_number", "phone", "address")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    id_number: str
    phone: str
    address: str
    def __init__(self, request_id: _Optional[str] = ..., id_number: _Optional[str] = ..., phone: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class UpdateContactInfoResponse(_message.Message):
    __slots__ = ("insured_person",)
    INSURED_PERSON_FIELD_NUMBER: _ClassVar[int]
    insured_person: _binding_pb2.InsuredPerson
    def __init__(self, insured_person: _Optional[_Union[_binding_pb2.InsuredPerson, _Mapping]] = ...) -> None: ...

class ReportLifeEventRequest(_message.Message):
    __slots__ = ("request_id", "id_number", "event_type", "other_id_number", "event_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OTHER_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    id_number: str
    event_type: LifeEventType
    other_id_number: str
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., id_number: _Optional[str] = ..., event_type: _Optional[_Union[LifeEventType, str]] = ..., other_id_number: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReportLifeEventResponse(_message.Message):
    __slots__ = ("ended_bindings", "suspended_bindings", "insured_person")
    ENDED_BINDINGS_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_BINDINGS_FIELD_NUMBER: _ClassVar[int]
    INSURED_PERSON_FIELD_NUMBER: _ClassVar[int]
    ended_bindings: _containers.RepeatedCompositeFieldContainer[_binding_pb2.Binding]
    suspended_bindings: _containers.RepeatedCompositeFieldContainer[_binding_pb2.Binding]
    insured_person: _binding_pb2.InsuredPerson
    def __init__(self, ended_bindings: _Optional[_Iterable[_Union[_binding_pb2.Binding, _Mapping]]] = ..., suspended_bindings: _Optional[_Iterable[_Union[_binding_pb2.Binding, _Mapping]]] = ..., insured_person: _Optional[_Union[_binding_pb2.InsuredPerson, _Mapping]] = ...) -> None: ...

class PersonIdentity(_message.Message):
    __slots__ = ("id_number", "name")
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    name: str
    def __init__(self, id_number: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CreateBindingRequest(_message.Message):
    __slots__ = ("request_id", "grantor", "beneficiary", "relationship", "proofs", "consent_version", "channel", "consent_time", "yearly_cap_fen")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIP_FIELD_NUMBER: _ClassVar[int]
    PROOFS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TIME_FIELD_NUMBER: _ClassVar[int]
    YEARLY_CAP_FEN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    grantor: PersonIdentity
    beneficiary: PersonIdentity
    relationship: _common_pb2.Relationship
    proofs: _containers.RepeatedCompositeFieldContainer[_binding_pb2.Proof]
    consent_version: str
    channel: _common_pb2.Channel
    consent_time: _timestamp_pb2.Timestamp
    yearly_cap_fen: int
    def __init__(self, request_id: _Optional[str] = ..., grantor: _Optional[_Union[PersonIdentity, _Mapping]] = ..., beneficiary: _Optional[_Union[PersonIdentity, _Mapping]] = ..., relationship: _Optional[_Union[_common_pb2.Relationship, str]] = ..., proofs: _Optional[_Iterable[_Union[_binding_pb2.Proof, _Mapping]]] = ..., consent_version: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., consent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., yearly_cap_fen: _Optional[int] = ...) -> None: ...

class CreateBindingResponse(_message.Message):
    __slots__ = ("binding",)
    BINDING_FIELD_NUMBER: _ClassVar[int]
    binding: _binding_pb2.Binding
    def __init__(self, binding: _Optional[_Union[_binding_pb2.Binding, _Mapping]] = ...) -> None: ...

class ReviewBindingRequest(_message.Message):
    __slots__ = ("request_id", "binding_id", "decision", "operator_id", "comment")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    binding_id: str
    decision: ReviewDecision
    operator_id: str
    comment: str
    def __init__(self, request_id: _Optional[str] = ..., binding_id: _Optional[str] = ..., decision: _Optional[_Union[ReviewDecision, str]] = ..., operator_id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class ReviewBindingResponse(_message.Message):
    __slots__ = ("binding",)
    BINDING_FIELD_NUMBER: _ClassVar[int]
    binding: _binding_pb2.Binding
    def __init__(self, binding: _Optional[_Union[_binding_pb2.Binding, _Mapping]] = ...) -> None: ...

class EndBindingRequest(_message.Message):
    __slots__ = ("request_id", "binding_id", "actor", "actor_id", "comment", "channel")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    binding_id: str
    actor: _binding_pb2.Actor
    actor_id: str
    comment: str
    channel: _common_pb2.Channel
    def __init__(self, request_id: _Optional[str] = ..., binding_id: _Optional[str] = ..., actor: _Optional[_Union[_binding_pb2.Actor, str]] = ..., actor_id: _Optional[str] = ..., comment: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ...) -> None: ...

class EndBindingResponse(_message.Message):
    __slots__ = ("binding",)
    BINDING_FIELD_NUMBER: _ClassVar[int]
    binding: _binding_pb2.Binding
    def __init__(self, binding: _Optional[_Union[_binding_pb2.Binding, _Mapping]] = ...) -> None: ...

class GetBindingRequest(_message.Message):
    __slots__ = ("binding_id",)
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    def __init__(self, binding_id: _Optional[str] = ...) -> None: ...

class GetBindingResponse(_message.Message):
    __slots__ = ("binding",)
    BINDING_FIELD_NUMBER: _ClassVar[int]
    binding: _binding_pb2.Binding
    def __init__(self, binding: _Optional[_Union[_binding_pb2.Binding, _Mapping]] = ...) -> None: ...

class ListBindingsRequest(_message.Message):
    __slots__ = ("grantor_id_number", "beneficiary_id_number", "states", "page_size", "page_token")
    GRANTOR_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    grantor_id_number: str
    beneficiary_id_number: str
    states: _containers.RepeatedScalarFieldContainer[_binding_pb2.BindingState]
    page_size: int
    page_token: str
    def __init__(self, grantor_id_number: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_binding_pb2.BindingState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBindingsResponse(_message.Message):
    __slots__ = ("bindings", "next_page_token")
    BINDINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    bindings: _containers.RepeatedCompositeFieldContainer[_binding_pb2.Binding]
    next_page_token: str
    def __init__(self, bindings: _Optional[_Iterable[_Union[_binding_pb2.Binding, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListBindingEventsRequest(_message.Message):
    __slots__ = ("binding_id", "page_size", "page_token")
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    page_size: int
    page_token: str
    def __init__(self, binding_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBindingEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_binding_pb2.BindingEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_binding_pb2.BindingEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSharingLimitRequest(_message.Message):
    __slots__ = ("request_id", "binding_id", "share_all", "yearly_cap_fen")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    SHARE_ALL_FIELD_NUMBER: _ClassVar[int]
    YEARLY_CAP_FEN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    binding_id: str
    share_all: bool
    yearly_cap_fen: int
    def __init__(self, request_id: _Optional[str] = ..., binding_id: _Optional[str] = ..., share_all: _Optional[bool] = ..., yearly_cap_fen: _Optional[int] = ...) -> None: ...

class UpdateSharingLimitResponse(_message.Message):
    __slots__ = ("binding",)
    BINDING_FIELD_NUMBER: _ClassVar[int]
    binding: _binding_pb2.Binding
    def __init__(self, binding: _Optional[_Union[_binding_pb2.Binding, _Mapping]] = ...) -> None: ...

class SetPayerOrderRequest(_message.Message):
    __slots__ = ("request_id", "beneficiary_id_number", "binding_ids", "mode")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BINDING_IDS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    beneficiary_id_number: str
    binding_ids: _containers.RepeatedScalarFieldContainer[str]
    mode: _binding_pb2.PayerMode
    def __init__(self, request_id: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ..., binding_ids: _Optional[_Iterable[str]] = ..., mode: _Optional[_Union[_binding_pb2.PayerMode, str]] = ...) -> None: ...

class SetPayerOrderResponse(_message.Message):
    __slots__ = ("binding_ids", "mode")
    BINDING_IDS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    binding_ids: _containers.RepeatedScalarFieldContainer[str]
    mode: _binding_pb2.PayerMode
    def __init__(self, binding_ids: _Optional[_Iterable[str]] = ..., mode: _Optional[_Union[_binding_pb2.PayerMode, str]] = ...) -> None: ...

class ResolvePayersRequest(_message.Message):
    __slots__ = ("beneficiary_id_number", "use_category", "institution_admdvs", "at_time", "chronic_disease")
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    USE_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    AT_TIME_FIELD_NUMBER: _ClassVar[int]
    CHRONIC_DISEASE_FIELD_NUMBER: _ClassVar[int]
    beneficiary_id_number: str
    use_category: _common_pb2.UseCategory
    institution_admdvs: str
    at_time: _timestamp_pb2.Timestamp
    chronic_disease: bool
    def __init__(self, beneficiary_id_number: _Optional[str] = ..., use_category: _Optional[_Union[_common_pb2.UseCategory, str]] = ..., institution_admdvs: _Optional[str] = ..., at_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., chronic_disease: _Optional[bool] = ...) -> None: ...

class CheckWalletTransferRequest(_message.Message):
    __slots__ = ("grantor_id_number", "beneficiary_id_number")
    GRANTOR_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    grantor_id_number: str
    beneficiary_id_number: str
    def __init__(self, grantor_id_number: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ...) -> None: ...

class CheckWalletTransferResponse(_message.Message):
    __slots__ = ("binding_id", "grantor_admdvs", "beneficiary_admdvs")
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    grantor_admdvs: str
    beneficiary_admdvs: str
    def __init__(self, binding_id: _Optional[str] = ..., grantor_admdvs: _Optional[str] = ..., beneficiary_admdvs: _Optional[str] = ...) -> None: ...

class PayerGrant(_message.Message):
    __slots__ = ("binding_id", "grantor_id_number", "grantor_admdvs", "relationship", "priority", "share_all", "yearly_cap_fen", "annual_share_ratio_percent", "per_use_limit_fen", "earmark_shared_amount", "min_grantor_balance_fen", "policy_version")
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIP_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SHARE_ALL_FIELD_NUMBER: _ClassVar[int]
    YEARLY_CAP_FEN_FIELD_NUMBER: _ClassVar[int]
    ANNUAL_SHARE_RATIO_PERCENT_FIELD_NUMBER: _ClassVar[int]
    PER_USE_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    EARMARK_SHARED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_GRANTOR_BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    grantor_id_number: str
    grantor_admdvs: str
    relationship: _common_pb2.Relationship
    priority: int
    share_all: bool
    yearly_cap_fen: int
    annual_share_ratio_percent: int
    per_use_limit_fen: int
    earmark_shared_amount: bool
    min_grantor_balance_fen: int
    policy_version: str
    def __init__(self, binding_id: _Optional[str] = ..., grantor_id_number: _Optional[str] = ..., grantor_admdvs: _Optional[str] = ..., relationship: _Optional[_Union[_common_pb2.Relationship, str]] = ..., priority: _Optional[int] = ..., share_all: _Optional[bool] = ..., yearly_cap_fen: _Optional[int] = ..., annual_share_ratio_percent: _Optional[int] = ..., per_use_limit_fen: _Optional[int] = ..., earmark_shared_amount: _Optional[bool] = ..., min_grantor_balance_fen: _Optional[int] = ..., policy_version: _Optional[str] = ...) -> None: ...

class ExcludedPayer(_message.Message):
    __slots__ = ("binding_id", "grantor_id_number", "reason")
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    grantor_id_number: str
    reason: str
    def __init__(self, binding_id: _Optional[str] = ..., grantor_id_number: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EarmarkedShare(_message.Message):
    __slots__ = ("binding_id", "beneficiary_id_number", "yearly_cap_fen", "policy_version")
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    YEARLY_CAP_FEN_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    beneficiary_id_number: str
    yearly_cap_fen: int
    policy_version: str
    def __init__(self, binding_id: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ..., yearly_cap_fen: _Optional[int] = ..., policy_version: _Optional[str] = ...) -> None: ...

class ResolvePayersResponse(_message.Message):
    __slots__ = ("grants", "mode", "excluded", "policy_version", "beneficiary_admdvs", "earmarked_shares", "valid_until")
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    EARMARKED_SHARES_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[PayerGrant]
    mode: _binding_pb2.PayerMode
    excluded: _containers.RepeatedCompositeFieldContainer[ExcludedPayer]
    policy_version: str
    beneficiary_admdvs: str
    earmarked_shares: _containers.RepeatedCompositeFieldContainer[EarmarkedShare]
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, grants: _Optional[_Iterable[_Union[PayerGrant, _Mapping]]] = ..., mode: _Optional[_Union[_binding_pb2.PayerMode, str]] = ..., excluded: _Optional[_Iterable[_Union[ExcludedPayer, _Mapping]]] = ..., policy_version: _Optional[str] = ..., beneficiary_admdvs: _Optional[str] = ..., earmarked_shares: _Optional[_Iterable[_Union[EarmarkedShare, _Mapping]]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PutRegionPolicyRequest(_message.Message):
    __slots__ = ("request_id", "policy")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    policy: _binding_pb2.RegionPolicy
    def __init__(self, request_id: _Optional[str] = ..., policy: _Optional[_Union[_binding_pb2.RegionPolicy, _Mapping]] = ...) -> None: ...

class PutRegionPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: _binding_pb2.RegionPolicy
    def __init__(self, policy: _Optional[_Union[_binding_pb2.RegionPolicy, _Mapping]] = ...) -> None: ...

class GetRegionPolicyRequest(_message.Message):
    __slots__ = ("admdvs", "at_time")
    ADMDVS_FIELD_NUMBER: _ClassVar[int]
    AT_TIME_FIELD_NUMBER: _ClassVar[int]
    admdvs: str
    at_time: _timestamp_pb2.Timestamp
    def __init__(self, admdvs: _Optional[str] = ..., at_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetRegionPolicyResponse(_message.Message):
    __slots__ = ("policy", "source")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    policy: _binding_pb2.RegionPolicy
    source: _binding_pb2.PolicySource
    def __init__(self, policy: _Optional[_Union[_binding_pb2.RegionPolicy, _Mapping]] = ..., source: _Optional[_Union[_binding_pb2.PolicySource, str]] = ...) -> None: ...

class ListRegionPoliciesRequest(_message.Message):
    __slots__ = ("admdvs", "page_size", "page_token")
    ADMDVS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    admdvs: str
    page_size: int
    page_token: str
    def __init__(self, admdvs: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRegionPoliciesResponse(_message.Message):
    __slots__ = ("policies", "next_page_token")
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[_binding_pb2.RegionPolicy]
    next_page_token: str
    def __init__(self, policies: _Optional[_Iterable[_Union[_binding_pb2.RegionPolicy, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchPayerChangesRequest(_message.Message):
    __slots__ = ("applied_revision", "keepalive")
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    applied_revision: int
    keepalive: int
    def __init__(self, applied_revision: _Optional[int] = ..., keepalive: _Optional[int] = ...) -> None: ...

class WatchPayerChangesResponse(_message.Message):
    __slots__ = ("revision", "keepalive", "lease")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    keepalive: int
    lease: _duration_pb2.Duration
    def __init__(self, revision: _Optional[int] = ..., keepalive: _Optional[int] = ..., lease: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
