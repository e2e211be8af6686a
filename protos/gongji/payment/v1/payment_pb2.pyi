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

class AccountKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_KIND_UNSPECIFIED: _ClassVar[AccountKind]
    ACCOUNT_KIND_PERSONAL_ACCOUNT: _ClassVar[AccountKind]
    ACCOUNT_KIND_WALLET: _ClassVar[AccountKind]

class MovementPurpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MOVEMENT_PURPOSE_UNSPECIFIED: _ClassVar[MovementPurpose]
    MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION: _ClassVar[MovementPurpose]
    MOVEMENT_PURPOSE_ADJUSTMENT: _ClassVar[MovementPurpose]
    MOVEMENT_PURPOSE_SETTLEMENT: _ClassVar[MovementPurpose]
    MOVEMENT_PURPOSE_REFUND: _ClassVar[MovementPurpose]
    MOVEMENT_PURPOSE_WALLET_TRANSFER_OUT: _ClassVar[MovementPurpose]
    MOVEMENT_PURPOSE_WALLET_TRANSFER_IN: _ClassVar[MovementPurpose]
    MOVEMENT_PURPOSE_REVERSAL: _ClassVar[MovementPurpose]

class CredentialType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDENTIAL_TYPE_UNSPECIFIED: _ClassVar[CredentialType]
    CREDENTIAL_TYPE_CARD: _ClassVar[CredentialType]
    CREDENTIAL_TYPE_QR: _ClassVar[CredentialType]
    CREDENTIAL_TYPE_FACE: _ClassVar[CredentialType]

class PaymentSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_SOURCE_UNSPECIFIED: _ClassVar[PaymentSource]
    PAYMENT_SOURCE_OWN_ACCOUNT: _ClassVar[PaymentSource]
    PAYMENT_SOURCE_MUTUAL_AID: _ClassVar[PaymentSource]
    PAYMENT_SOURCE_WALLET: _ClassVar[PaymentSource]

class SettlementState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SETTLEMENT_STATE_UNSPECIFIED: _ClassVar[SettlementState]
    SETTLEMENT_STATE_AUTHORIZED: _ClassVar[SettlementState]
    SETTLEMENT_STATE_CAPTURED: _ClassVar[SettlementState]
    SETTLEMENT_STATE_RELEASED: _ClassVar[SettlementState]
    SETTLEMENT_STATE_EXPIRED: _ClassVar[SettlementState]
    SETTLEMENT_STATE_REFUNDED: _ClassVar[SettlementState]
    SETTLEMENT_STATE_REVERSED: _ClassVar[SettlementState]

class VerificationMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_METHOD_UNSPECIFIED: _ClassVar[VerificationMethod]
    VERIFICATION_METHOD_FACE: _ClassVar[VerificationMethod]
    VERIFICATION_METHOD_QR_PASSWORD: _ClassVar[VerificationMethod]

class TransferState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSFER_STATE_UNSPECIFIED: _ClassVar[TransferState]
    TRANSFER_STATE_PENDING: _ClassVar[TransferState]
    TRANSFER_STATE_COMPLETED: _ClassVar[TransferState]
    TRANSFER_STATE_REFUNDED: _ClassVar[TransferState]
    TRANSFER_STATE_FAILED: _ClassVar[TransferState]

class ViolationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIOLATION_KIND_UNSPECIFIED: _ClassVar[ViolationKind]
    VIOLATION_KIND_IMPERSONATION: _ClassVar[ViolationKind]
ACCOUNT_KIND_UNSPECIFIED: AccountKind
ACCOUNT_KIND_PERSONAL_ACCOUNT: AccountKind
ACCOUNT_KIND_WALLET: AccountKind
MOVEMENT_PURPOSE_UNSPECIFIED: MovementPurpose
MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION: MovementPurpose
MOVEMENT_PURPOSE_ADJUSTMENT: MovementPurpose
MOVEMENT_PURPOSE_SETTLEMENT: MovementPurpose
MOVEMENT_PURPOSE_REFUND: MovementPurpose
MOVEMENT_PURPOSE_WALLET_TRANSFER_OUT: MovementPurpose
MOVEMENT_PURPOSE_WALLET_TRANSFER_IN: MovementPurpose
MOVEMENT_PURPOSE_REVERSAL: MovementPurpose
CREDENTIAL_TYPE_UNSPECIFIED: CredentialType
CREDENTIAL_TYPE_CARD: CredentialType
CREDENTIAL_TYPE_QR: CredentialType
CREDENTIAL_TYPE_FACE: CredentialType
PAYMENT_SOURCE_UNSPECIFIED: PaymentSource
PAYMENT_SOURCE_OWN_ACCOUNT: PaymentSource
PAYMENT_SOURCE_MUTUAL_AID: PaymentSource
PAYMENT_SOURCE_WALLET: PaymentSource
SETTLEMENT_STATE_UNSPECIFIED: SettlementState
SETTLEMENT_STATE_AUTHORIZED: SettlementState
SETTLEMENT_STATE_CAPTURED: SettlementState
SETTLEMENT_STATE_RELEASED: SettlementState
SETTLEMENT_STATE_EXPIRED: SettlementState
SETTLEMENT_STATE_REFUNDED: SettlementState
SETTLEMENT_STATE_REVERSED: SettlementState
VERIFICATION_METHOD_UNSPECIFIED: VerificationMethod
VERIFICATION_METHOD_FACE: VerificationMethod
VERIFICATION_METHOD_QR_PASSWORD: VerificationMethod
TRANSFER_STATE_UNSPECIFIED: TransferState
TRANSFER_STATE_PENDING: TransferState
TRANSFER_STATE_COMPLETED: TransferState
TRANSFER_STATE_REFUNDED: TransferState
TRANSFER_STATE_FAILED: TransferState
VIOLATION_KIND_UNSPECIFIED: ViolationKind
VIOLATION_KIND_IMPERSONATION: ViolationKind

class BindingShare(_message.Message):
    __slots__ = ("binding_id", "beneficiary_id_number", "shared_fen", "year")
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SHARED_FEN_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    beneficiary_id_number: str
    shared_fen: int
    year: int
    def __init__(self, binding_id: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ..., shared_fen: _Optional[int] = ..., year: _Optional[int] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("id_number", "kind", "balance_fen", "held_fen", "available_fen", "shared_this_year", "admdvs")
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    HELD_FEN_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FEN_FIELD_NUMBER: _ClassVar[int]
    SHARED_THIS_YEAR_FIELD_NUMBER: _ClassVar[int]
    ADMDVS_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    kind: AccountKind
    balance_fen: int
    held_fen: int
    available_fen: int
    shared_this_year: _containers.RepeatedCompositeFieldContainer[BindingShare]
    admdvs: str
    def __init__(self, id_number: _Optional[str] = ..., kind: _Optional[_Union[AccountKind, str]] = ..., balance_fen: _Optional[int] = ..., held_fen: _Optional[int] = ..., available_fen: _Optional[int] = ..., shared_this_year: _Optional[_Iterable[_Union[BindingShare, _Mapping]]] = ..., admdvs: _Optional[str] = ...) -> None: ...

class StatementLine(_message.Message):
    __slots__ = ("entry_id", "time", "amount_fen", "balance_after_fen", "purpose", "counterpart_id_number", "settlement_id", "transfer_id", "binding_id", "institution_code", "memo")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FEN_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    COUNTERPART_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    time: _timestamp_pb2.Timestamp
    amount_fen: int
    balance_after_fen: int
    purpose: MovementPurpose
    counterpart_id_number: str
    settlement_id: str
    transfer_id: str
    binding_id: str
    institution_code: str
    memo: str
    def __init__(self, entry_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount_fen: _Optional[int] = ..., balance_after_fen: _Optional[int] = ..., purpose: _Optional[_Union[MovementPurpose, str]] = ..., counterpart_id_number: _Optional[str] = ..., settlement_id: _Optional[str] = ..., transfer_id: _Optional[str] = ..., binding_id: _Optional[str] = ..., institution_code: _Optional[str] = ..., memo: _Optional[str] = ...) -> None: ...

class Credential(_message.Message):
    __slots__ = ("type", "holder_id_number")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    type: CredentialType
    holder_id_number: str
    def __init__(self, type: _Optional[_Union[CredentialType, str]] = ..., holder_id_number: _Optional[str] = ...) -> None: ...

class Bill(_message.Message):
    __slots__ = ("institution_code", "institution_admdvs", "patient_id_number", "credential", "use_category", "self_pay_fen", "chronic_disease", "use_own_account", "institution_settlement_id", "refuse_cash_part")
    INSTITUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    USE_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SELF_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    CHRONIC_DISEASE_FIELD_NUMBER: _ClassVar[int]
    USE_OWN_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REFUSE_CASH_PART_FIELD_NUMBER: _ClassVar[int]
    institution_code: str
    institution_admdvs: str
    patient_id_number: str
    credential: Credential
    use_category: _common_pb2.UseCategory
    self_pay_fen: int
    chronic_disease: bool
    use_own_account: bool
    institution_settlement_id: str
    refuse_cash_part: bool
    def __init__(self, institution_code: _Optional[str] = ..., institution_admdvs: _Optional[str] = ..., patient_id_number: _Optional[str] = ..., credential: _Optional[_Union[Credential, _Mapping]] = ..., use_category: _Optional[_Union[_common_pb2.UseCategory, str]] = ..., self_pay_fen: _Optional[int] = ..., chronic_disease: _Optional[bool] = ..., use_own_account: _Optional[bool] = ..., institution_settlement_id: _Optional[str] = ..., refuse_cash_part: _Optional[bool] = ...) -> None: ...

class Leg(_message.Message):
    __slots__ = ("payer_id_number", "source", "binding_id", "amount_fen", "policy_version", "payer_balance_after_fen", "payer_admdvs", "captured_fen", "refunded_fen")
    PAYER_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PAYER_BALANCE_AFTER_FEN_FIELD_NUMBER: _ClassVar[int]
    PAYER_ADMDVS_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    payer_id_number: str
    source: PaymentSource
    binding_id: str
    amount_fen: int
    policy_version: str
    payer_balance_after_fen: int
    payer_admdvs: str
    captured_fen: int
    refunded_fen: int
    def __init__(self, payer_id_number: _Optional[str] = ..., source: _Optional[_Union[PaymentSource, str]] = ..., binding_id: _Optional[str] = ..., amount_fen: _Optional[int] = ..., policy_version: _Optional[str] = ..., payer_balance_after_fen: _Optional[int] = ..., payer_admdvs: _Optional[str] = ..., captured_fen: _Optional[int] = ..., refunded_fen: _Optional[int] = ...) -> None: ...

class Settlement(_message.Message):
    __slots__ = ("settlement_id", "bill", "state", "legs", "own_account_pay_fen", "mutual_aid_pay_fen", "wallet_pay_fen", "cash_pay_fen", "create_time", "expire_time", "capture_time", "captured_fen", "refunded_fen", "policy_version", "passed_over")
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BILL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LEGS_FIELD_NUMBER: _ClassVar[int]
    OWN_ACCOUNT_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    MUTUAL_AID_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    WALLET_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    CASH_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PASSED_OVER_FIELD_NUMBER: _ClassVar[int]
    settlement_id: str
    bill: Bill
    state: SettlementState
    legs: _containers.RepeatedCompositeFieldContainer[Leg]
    own_account_pay_fen: int
    mutual_aid_pay_fen: int
    wallet_pay_fen: int
    cash_pay_fen: int
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    capture_time: _timestamp_pb2.Timestamp
    captured_fen: int
    refunded_fen: int
    policy_version: str
    passed_over: _containers.RepeatedCompositeFieldContainer[PassedOverPayer]
    def __init__(self, settlement_id: _Optional[str] = ..., bill: _Optional[_Union[Bill, _Mapping]] = ..., state: _Optional[_Union[SettlementState, str]] = ..., legs: _Optional[_Iterable[_Union[Leg, _Mapping]]] = ..., own_account_pay_fen: _Optional[int] = ..., mutual_aid_pay_fen: _Optional[int] = ..., wallet_pay_fen: _Optional[int] = ..., cash_pay_fen: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., capture_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., captured_fen: _Optional[int] = ..., refunded_fen: _Optional[int] = ..., policy_version: _Optional[str] = ..., passed_over: _Optional[_Iterable[_Union[PassedOverPayer, _Mapping]]] = ...) -> None: ...

class PassedOverPayer(_message.Message):
    __slots__ = ("binding_id", "grantor_id_number", "reason")
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    binding_id: str
    grantor_id_number: str
    reason: str
    def __init__(self, binding_id: _Optional[str] = ..., grantor_id_number: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Verification(_message.Message):
    __slots__ = ("method", "token")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    method: VerificationMethod
    token: str
    def __init__(self, method: _Optional[_Union[VerificationMethod, str]] = ..., token: _Optional[str] = ...) -> None: ...

class Transfer(_message.Message):
    __slots__ = ("transfer_id", "grantor_id_number", "beneficiary_id_number", "amount_fen", "state", "binding_id", "create_time", "complete_time", "source_province", "target_province")
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BINDING_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    transfer_id: str
    grantor_id_number: str
    beneficiary_id_number: str
    amount_fen: int
    state: TransferState
    binding_id: str
    create_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    source_province: str
    target_province: str
    def __init__(self, transfer_id: _Optional[str] = ..., grantor_id_number: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ..., amount_fen: _Optional[int] = ..., state: _Optional[_Union[TransferState, str]] = ..., binding_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_province: _Optional[str] = ..., target_province: _Optional[str] = ...) -> None: ...

class Violation(_message.Message):
    __slots__ = ("violation_id", "kind", "holder_id_number", "patient_id_number", "institution_code", "time")
    VIOLATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    violation_id: str
    kind: ViolationKind
    holder_id_number: str
    patient_id_number: str
    institution_code: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, violation_id: _Optional[str] = ..., kind: _Optional[_Union[ViolationKind, str]] = ..., holder_id_number: _Optional[str] = ..., patient_id_number: _Optional[str] = ..., institution_code: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Suspension(_message.Message):
    __slots__ = ("holder_id_number", "active", "reason", "suspend_time", "lift_time", "operator_id")
    HOLDER_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_TIME_FIELD_NUMBER: _ClassVar[int]
    LIFT_TIME_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    holder_id_number: str
    active: bool
    reason: str
    suspend_time: _timestamp_pb2.Timestamp
    lift_time: _timestamp_pb2.Timestamp
    operator_id: str
    def __init__(self, holder_id_number: _Optional[str] = ..., active: _Optional[bool] = ..., reason: _Optional[str] = ..., suspend_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lift_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., operator_id: _Optional[str] = ...) -> None: ...

class SourceTotal(_message.Message):
    __slots__ = ("source", "count", "amount_fen")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    source: PaymentSource
    count: int
    amount_fen: int
    def __init__(self, source: _Optional[_Union[PaymentSource, str]] = ..., count: _Optional[int] = ..., amount_fen: _Optional[int] = ...) -> None: ...

class ProvinceBalance(_message.Message):
    __slots__ = ("debtor_province", "creditor_province", "amount_fen")
    DEBTOR_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    CREDITOR_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    debtor_province: str
    creditor_province: str
    amount_fen: int
    def __init__(self, debtor_province: _Optional[str] = ..., creditor_province: _Optional[str] = ..., amount_fen: _Optional[int] = ...) -> None: ...
