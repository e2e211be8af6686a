import datetime

from gongji.binding.v1 import binding_service_pb2 as _binding_service_pb2
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

class TransactionOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_OUTCOME_UNSPECIFIED: _ClassVar[TransactionOutcome]
    TRANSACTION_OUTCOME_PENDING: _ClassVar[TransactionOutcome]
    TRANSACTION_OUTCOME_COMMITTED: _ClassVar[TransactionOutcome]
    TRANSACTION_OUTCOME_ABORTED: _ClassVar[TransactionOutcome]
    TRANSACTION_OUTCOME_REFUNDED: _ClassVar[TransactionOutcome]
TRANSACTION_OUTCOME_UNSPECIFIED: TransactionOutcome
TRANSACTION_OUTCOME_PENDING: TransactionOutcome
TRANSACTION_OUTCOME_COMMITTED: TransactionOutcome
TRANSACTION_OUTCOME_ABORTED: TransactionOutcome
TRANSACTION_OUTCOME_REFUNDED: TransactionOutcome

class GetPayerCapacityRequest(_message.Message):
    __slots__ = ("beneficiary_id_number", "grants", "at_time", "ceiling_fen")
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    AT_TIME_FIELD_NUMBER: _ClassVar[int]
    CEILING_FEN_FIELD_NUMBER: _ClassVar[int]
    beneficiary_id_number: str
    grants: _containers.RepeatedCompositeFieldContainer[_binding_service_pb2.PayerGrant]
    at_time: _timestamp_pb2.Timestamp
    ceiling_fen: int
    def __init__(self, beneficiary_id_number: _Optional[str] = ..., grants: _Optional[_Iterable[_Union[_binding_service_pb2.PayerGrant, _Mapping]]] = ..., at_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ceiling_fen: _Optional[int] = ...) -> None: ...

class PayerCapacity(_message.Message):
    __slots__ = ("binding_id", "grantor_id_number", "limit_fen", "available_fen", "admdvs", "has_account")
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FEN_FIELD_NUMBER: _ClassVar[int]
    ADMDVS_FIELD_NUMBER: _ClassVar[int]
    HAS_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    grantor_id_number: str
    limit_fen: int
    available_fen: int
    admdvs: str
    has_account: bool
    def __init__(self, binding_id: _Optional[str] = ..., grantor_id_number: _Optional[str] = ..., limit_fen: _Optional[int] = ..., available_fen: _Optional[int] = ..., admdvs: _Optional[str] = ..., has_account: _Optional[bool] = ...) -> None: ...

class GetPayerCapacityResponse(_message.Message):
    __slots__ = ("capacities",)
    CAPACITIES_FIELD_NUMBER: _ClassVar[int]
    capacities: _containers.RepeatedCompositeFieldContainer[PayerCapacity]
    def __init__(self, capacities: _Optional[_Iterable[_Union[PayerCapacity, _Mapping]]] = ...) -> None: ...

class NodeLeg(_message.Message):
    __slots__ = ("leg_no", "payer_id_number", "binding_id", "amount_fen")
    LEG_NO_FIELD_NUMBER: _ClassVar[int]
    PAYER_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    leg_no: int
    payer_id_number: str
    binding_id: str
    amount_fen: int
    def __init__(self, leg_no: _Optional[int] = ..., payer_id_number: _Optional[str] = ..., binding_id: _Optional[str] = ..., amount_fen: _Optional[int] = ...) -> None: ...

class PrepareLegsRequest(_message.Message):
    __slots__ = ("transaction_id", "coordinator_province", "beneficiary_id_number", "institution_code", "legs", "expire_time", "grants", "use_category", "institution_admdvs", "chronic_disease", "hold_up_to_amount", "capture_now", "capture_at_most_fen")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    LEGS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    USE_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    CHRONIC_DISEASE_FIELD_NUMBER: _ClassVar[int]
    HOLD_UP_TO_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_NOW_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_AT_MOST_FEN_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    coordinator_province: str
    beneficiary_id_number: str
    institution_code: str
    legs: _containers.RepeatedCompositeFieldContainer[NodeLeg]
    expire_time: _timestamp_pb2.Timestamp
    grants: _containers.RepeatedCompositeFieldContainer[_binding_service_pb2.PayerGrant]
    use_category: _common_pb2.UseCategory
    institution_admdvs: str
    chronic_disease: bool
    hold_up_to_amount: bool
    capture_now: bool
    capture_at_most_fen: int
    def __init__(self, transaction_id: _Optional[str] = ..., coordinator_province: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ..., institution_code: _Optional[str] = ..., legs: _Optional[_Iterable[_Union[NodeLeg, _Mapping]]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., grants: _Optional[_Iterable[_Union[_binding_service_pb2.PayerGrant, _Mapping]]] = ..., use_category: _Optional[_Union[_common_pb2.UseCategory, str]] = ..., institution_admdvs: _Optional[str] = ..., chronic_disease: _Optional[bool] = ..., hold_up_to_amount: _Optional[bool] = ..., capture_now: _Optional[bool] = ..., capture_at_most_fen: _Optional[int] = ...) -> None: ...

class PrepareLegsResponse(_message.Message):
    __slots__ = ("legs", "payer_available_after_fen", "payer_admdvs", "captured")
    LEGS_FIELD_NUMBER: _ClassVar[int]
    PAYER_AVAILABLE_AFTER_FEN_FIELD_NUMBER: _ClassVar[int]
    PAYER_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_FIELD_NUMBER: _ClassVar[int]
    legs: _containers.RepeatedCompositeFieldContainer[NodeLeg]
    payer_available_after_fen: _containers.RepeatedScalarFieldContainer[int]
    payer_admdvs: _containers.RepeatedScalarFieldContainer[str]
    captured: bool
    def __init__(self, legs: _Optional[_Iterable[_Union[NodeLeg, _Mapping]]] = ..., payer_available_after_fen: _Optional[_Iterable[int]] = ..., payer_admdvs: _Optional[_Iterable[str]] = ..., captured: _Optional[bool] = ...) -> None: ...

class CommitLegsRequest(_message.Message):
    __slots__ = ("transaction_id", "captures")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURES_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    captures: _containers.RepeatedCompositeFieldContainer[NodeLeg]
    def __init__(self, transaction_id: _Optional[str] = ..., captures: _Optional[_Iterable[_Union[NodeLeg, _Mapping]]] = ...) -> None: ...

class CommitLegsResponse(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    def __init__(self, applied: _Optional[bool] = ...) -> None: ...

class BatchCommitLegsRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CommitLegsRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[CommitLegsRequest, _Mapping]]] = ...) -> None: ...

class BatchCommitLegsResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[CommitLegsResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[CommitLegsResponse, _Mapping]]] = ...) -> None: ...

class AbortLegsRequest(_message.Message):
    __slots__ = ("transaction_id", "coordinator_province")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    coordinator_province: str
    def __init__(self, transaction_id: _Optional[str] = ..., coordinator_province: _Optional[str] = ...) -> None: ...

class AbortLegsResponse(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    def __init__(self, applied: _Optional[bool] = ...) -> None: ...

class RefundLegsRequest(_message.Message):
    __slots__ = ("transaction_id",)
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    def __init__(self, transaction_id: _Optional[str] = ...) -> None: ...

class RefundLegsResponse(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    def __init__(self, applied: _Optional[bool] = ...) -> None: ...

class GetTransactionOutcomeRequest(_message.Message):
    __slots__ = ("transaction_id", "participant_province")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    participant_province: str
    def __init__(self, transaction_id: _Optional[str] = ..., participant_province: _Optional[str] = ...) -> None: ...

class GetTransactionOutcomeResponse(_message.Message):
    __slots__ = ("outcome", "captures", "beneficiary_id_number")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CAPTURES_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    outcome: TransactionOutcome
    captures: _containers.RepeatedCompositeFieldContainer[NodeLeg]
    beneficiary_id_number: str
    def __init__(self, outcome: _Optional[_Union[TransactionOutcome, str]] = ..., captures: _Optional[_Iterable[_Union[NodeLeg, _Mapping]]] = ..., beneficiary_id_number: _Optional[str] = ...) -> None: ...

class CreditWalletRequest(_message.Message):
    __slots__ = ("transfer_id", "beneficiary_id_number", "amount_fen", "source_province", "grantor_id_number", "binding_id")
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    transfer_id: str
    beneficiary_id_number: str
    amount_fen: int
    source_province: str
    grantor_id_number: str
    binding_id: str
    def __init__(self, transfer_id: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ..., amount_fen: _Optional[int] = ..., source_province: _Optional[str] = ..., grantor_id_number: _Optional[str] = ..., binding_id: _Optional[str] = ...) -> None: ...

class CreditWalletResponse(_message.Message):
    __slots__ = ("applied", "wallet_balance_fen")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    WALLET_BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    wallet_balance_fen: int
    def __init__(self, applied: _Optional[bool] = ..., wallet_balance_fen: _Optional[int] = ...) -> None: ...

class DeclineWalletCreditRequest(_message.Message):
    __slots__ = ("transfer_id", "beneficiary_id_number", "amount_fen", "source_province")
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    transfer_id: str
    beneficiary_id_number: str
    amount_fen: int
    source_province: str
    def __init__(self, transfer_id: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ..., amount_fen: _Optional[int] = ..., source_province: _Optional[str] = ...) -> None: ...

class DeclineWalletCreditResponse(_message.Message):
    __slots__ = ("credited",)
    CREDITED_FIELD_NUMBER: _ClassVar[int]
    credited: bool
    def __init__(self, credited: _Optional[bool] = ...) -> None: ...
