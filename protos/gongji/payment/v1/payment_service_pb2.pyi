import datetime

from gongji.payment.v1 import payment_pb2 as _payment_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreditKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDIT_KIND_UNSPECIFIED: _ClassVar[CreditKind]
    CREDIT_KIND_MONTHLY_CONTRIBUTION: _ClassVar[CreditKind]
    CREDIT_KIND_ADJUSTMENT: _ClassVar[CreditKind]
CREDIT_KIND_UNSPECIFIED: CreditKind
CREDIT_KIND_MONTHLY_CONTRIBUTION: CreditKind
CREDIT_KIND_ADJUSTMENT: CreditKind

class CreditAccountRequest(_message.Message):
    __slots__ = ("request_id", "id_number", "account_kind", "amount_fen", "kind", "period", "admdvs", "memo")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    ADMDVS_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    id_number: str
    account_kind: _payment_pb2.AccountKind
    amount_fen: int
    kind: CreditKind
    period: str
    admdvs: str
    memo: str
    def __init__(self, request_id: _Optional[str] = ..., id_number: _Optional[str] = ..., account_kind: _Optional[_Union[_payment_pb2.AccountKind, str]] = ..., amount_fen: _Optional[int] = ..., kind: _Optional[_Union[CreditKind, str]] = ..., period: _Optional[str] = ..., admdvs: _Optional[str] = ..., memo: _Optional[str] = ...) -> None: ...

class CreditAccountResponse(_message.Message):
    __slots__ = ("account", "entry_id")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    account: _payment_pb2.Account
    entry_id: str
    def __init__(self, account: _Optional[_Union[_payment_pb2.Account, _Mapping]] = ..., entry_id: _Optional[str] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("id_number", "account_kind")
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_KIND_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    account_kind: _payment_pb2.AccountKind
    def __init__(self, id_number: _Optional[str] = ..., account_kind: _Optional[_Union[_payment_pb2.AccountKind, str]] = ...) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: _payment_pb2.Account
    def __init__(self, account: _Optional[_Union[_payment_pb2.Account, _Mapping]] = ...) -> None: ...

class ListStatementRequest(_message.Message):
    __slots__ = ("id_number", "account_kind", "month", "page_size", "page_token")
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_KIND_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    account_kind: _payment_pb2.AccountKind
    month: str
    page_size: int
    page_token: str
    def __init__(self, id_number: _Optional[str] = ..., account_kind: _Optional[_Union[_payment_pb2.AccountKind, str]] = ..., month: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStatementResponse(_message.Message):
    __slots__ = ("lines", "next_page_token")
    LINES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[_payment_pb2.StatementLine]
    next_page_token: str
    def __init__(self, lines: _Optional[_Iterable[_Union[_payment_pb2.StatementLine, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class QuoteSettlementRequest(_message.Message):
    __slots__ = ("bill", "at_time")
    BILL_FIELD_NUMBER: _ClassVar[int]
    AT_TIME_FIELD_NUMBER: _ClassVar[int]
    bill: _payment_pb2.Bill
    at_time: _timestamp_pb2.Timestamp
    def __init__(self, bill: _Optional[_Union[_payment_pb2.Bill, _Mapping]] = ..., at_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QuoteSettlementResponse(_message.Message):
    __slots__ = ("settlement",)
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    settlement: _payment_pb2.Settlement
    def __init__(self, settlement: _Optional[_Union[_payment_pb2.Settlement, _Mapping]] = ...) -> None: ...

class AuthorizeSettlementRequest(_message.Message):
    __slots__ = ("request_id", "bill", "expire_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BILL_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    bill: _payment_pb2.Bill
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., bill: _Optional[_Union[_payment_pb2.Bill, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuthorizeSettlementResponse(_message.Message):
    __slots__ = ("settlement",)
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    settlement: _payment_pb2.Settlement
    def __init__(self, settlement: _Optional[_Union[_payment_pb2.Settlement, _Mapping]] = ...) -> None: ...

class CaptureSettlementRequest(_message.Message):
    __slots__ = ("request_id", "settlement_id", "amount_fen")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    settlement_id: str
    amount_fen: int
    def __init__(self, request_id: _Optional[str] = ..., settlement_id: _Optional[str] = ..., amount_fen: _Optional[int] = ...) -> None: ...

class CaptureSettlementResponse(_message.Message):
    __slots__ = ("settlement",)
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    settlement: _payment_pb2.Settlement
    def __init__(self, settlement: _Optional[_Union[_payment_pb2.Settlement, _Mapping]] = ...) -> None: ...

class ReleaseSettlementRequest(_message.Message):
    __slots__ = ("request_id", "settlement_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    settlement_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., settlement_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReleaseSettlementResponse(_message.Message):
    __slots__ = ("settlement",)
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    settlement: _payment_pb2.Settlement
    def __init__(self, settlement: _Optional[_Union[_payment_pb2.Settlement, _Mapping]] = ...) -> None: ...

class SettleRequest(_message.Message):
    __slots__ = ("request_id", "bill")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BILL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    bill: _payment_pb2.Bill
    def __init__(self, request_id: _Optional[str] = ..., bill: _Optional[_Union[_payment_pb2.Bill, _Mapping]] = ...) -> None: ...

class SettleResponse(_message.Message):
    __slots__ = ("settlement",)
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    settlement: _payment_pb2.Settlement
    def __init__(self, settlement: _Optional[_Union[_payment_pb2.Settlement, _Mapping]] = ...) -> None: ...

class RefundSettlementRequest(_message.Message):
    __slots__ = ("request_id", "settlement_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    settlement_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., settlement_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RefundSettlementResponse(_message.Message):
    __slots__ = ("settlement",)
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    settlement: _payment_pb2.Settlement
    def __init__(self, settlement: _Optional[_Union[_payment_pb2.Settlement, _Mapping]] = ...) -> None: ...

class ReverseRequestRequest(_message.Message):
    __slots__ = ("request_id", "original_request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    original_request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., original_request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReverseRequestResponse(_message.Message):
    __slots__ = ("original_found", "original_method", "settlement", "transfer")
    ORIGINAL_FOUND_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_METHOD_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    original_found: bool
    original_method: str
    settlement: _payment_pb2.Settlement
    transfer: _payment_pb2.Transfer
    def __init__(self, original_found: _Optional[bool] = ..., original_method: _Optional[str] = ..., settlement: _Optional[_Union[_payment_pb2.Settlement, _Mapping]] = ..., transfer: _Optional[_Union[_payment_pb2.Transfer, _Mapping]] = ...) -> None: ...

class GetSettlementRequest(_message.Message):
    __slots__ = ("settlement_id",)
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    settlement_id: str
    def __init__(self, settlement_id: _Optional[str] = ...) -> None: ...

class GetSettlementResponse(_message.Message):
    __slots__ = ("settlement",)
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    settlement: _payment_pb2.Settlement
    def __init__(self, settlement: _Optional[_Union[_payment_pb2.Settlement, _Mapping]] = ...) -> None: ...

class ActivateWalletRequest(_message.Message):
    __slots__ = ("request_id", "id_number", "admdvs")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ADMDVS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    id_number: str
    admdvs: str
    def __init__(self, request_id: _Optional[str] = ..., id_number: _Optional[str] = ..., admdvs: _Optional[str] = ...) -> None: ...

class ActivateWalletResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: _payment_pb2.Account
    def __init__(self, account: _Optional[_Union[_payment_pb2.Account, _Mapping]] = ...) -> None: ...

class TransferToWalletRequest(_message.Message):
    __slots__ = ("request_id", "grantor_id_number", "beneficiary_id_number", "amount_fen", "verification")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    grantor_id_number: str
    beneficiary_id_number: str
    amount_fen: int
    verification: _payment_pb2.Verification
    def __init__(self, request_id: _Optional[str] = ..., grantor_id_number: _Optional[str] = ..., beneficiary_id_number: _Optional[str] = ..., amount_fen: _Optional[int] = ..., verification: _Optional[_Union[_payment_pb2.Verification, _Mapping]] = ...) -> None: ...

class TransferToWalletResponse(_message.Message):
    __slots__ = ("transfer",)
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    transfer: _payment_pb2.Transfer
    def __init__(self, transfer: _Optional[_Union[_payment_pb2.Transfer, _Mapping]] = ...) -> None: ...

class GetTransferRequest(_message.Message):
    __slots__ = ("transfer_id",)
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    transfer_id: str
    def __init__(self, transfer_id: _Optional[str] = ...) -> None: ...

class GetTransferResponse(_message.Message):
    __slots__ = ("transfer",)
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    transfer: _payment_pb2.Transfer
    def __init__(self, transfer: _Optional[_Union[_payment_pb2.Transfer, _Mapping]] = ...) -> None: ...

class SuspendSettlementRequest(_message.Message):
    __slots__ = ("request_id", "holder_id_number", "reason", "operator_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    holder_id_number: str
    reason: str
    operator_id: str
    def __init__(self, request_id: _Optional[str] = ..., holder_id_number: _Optional[str] = ..., reason: _Optional[str] = ..., operator_id: _Optional[str] = ...) -> None: ...

class SuspendSettlementResponse(_message.Message):
    __slots__ = ("suspension",)
    SUSPENSION_FIELD_NUMBER: _ClassVar[int]
    suspension: _payment_pb2.Suspension
    def __init__(self, suspension: _Optional[_Union[_payment_pb2.Suspension, _Mapping]] = ...) -> None: ...

class LiftSuspensionRequest(_message.Message):
    __slots__ = ("request_id", "holder_id_number", "reason", "operator_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    holder_id_number: str
    reason: str
    operator_id: str
    def __init__(self, request_id: _Optional[str] = ..., holder_id_number: _Optional[str] = ..., reason: _Optional[str] = ..., operator_id: _Optional[str] = ...) -> None: ...

class LiftSuspensionResponse(_message.Message):
    __slots__ = ("suspension",)
    SUSPENSION_FIELD_NUMBER: _ClassVar[int]
    suspension: _payment_pb2.Suspension
    def __init__(self, suspension: _Optional[_Union[_payment_pb2.Suspension, _Mapping]] = ...) -> None: ...

class ListViolationsRequest(_message.Message):
    __slots__ = ("holder_id_number", "page_size", "page_token")
    HOLDER_ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    holder_id_number: str
    page_size: int
    page_token: str
    def __init__(self, holder_id_number: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListViolationsResponse(_message.Message):
    __slots__ = ("violations", "next_page_token", "suspension")
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUSPENSION_FIELD_NUMBER: _ClassVar[int]
    violations: _containers.RepeatedCompositeFieldContainer[_payment_pb2.Violation]
    next_page_token: str
    suspension: _payment_pb2.Suspension
    def __init__(self, violations: _Optional[_Iterable[_Union[_payment_pb2.Violation, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., suspension: _Optional[_Union[_payment_pb2.Suspension, _Mapping]] = ...) -> None: ...

class ReconcileInstitutionRequest(_message.Message):
    __slots__ = ("institution_code", "date")
    INSTITUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    institution_code: str
    date: str
    def __init__(self, institution_code: _Optional[str] = ..., date: _Optional[str] = ...) -> None: ...

class ReconcileInstitutionResponse(_message.Message):
    __slots__ = ("institution_code", "date", "settlement_count", "refund_count", "settled", "refunded", "net_fen", "reversal_count", "reversed", "settled_cash_fen")
    INSTITUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    REFUND_COUNT_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FIELD_NUMBER: _ClassVar[int]
    NET_FEN_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    REVERSED_FIELD_NUMBER: _ClassVar[int]
    SETTLED_CASH_FEN_FIELD_NUMBER: _ClassVar[int]
    institution_code: str
    date: str
    settlement_count: int
    refund_count: int
    settled: _containers.RepeatedCompositeFieldContainer[_payment_pb2.SourceTotal]
    refunded: _containers.RepeatedCompositeFieldContainer[_payment_pb2.SourceTotal]
    net_fen: int
    reversal_count: int
    reversed: _containers.RepeatedCompositeFieldContainer[_payment_pb2.SourceTotal]
    settled_cash_fen: int
    def __init__(self, institution_code: _Optional[str] = ..., date: _Optional[str] = ..., settlement_count: _Optional[int] = ..., refund_count: _Optional[int] = ..., settled: _Optional[_Iterable[_Union[_payment_pb2.SourceTotal, _Mapping]]] = ..., refunded: _Optional[_Iterable[_Union[_payment_pb2.SourceTotal, _Mapping]]] = ..., net_fen: _Optional[int] = ..., reversal_count: _Optional[int] = ..., reversed: _Optional[_Iterable[_Union[_payment_pb2.SourceTotal, _Mapping]]] = ..., settled_cash_fen: _Optional[int] = ...) -> None: ...

class GetClearingReportRequest(_message.Message):
    __slots__ = ("date",)
    DATE_FIELD_NUMBER: _ClassVar[int]
    date: str
    def __init__(self, date: _Optional[str] = ...) -> None: ...

class GetClearingReportResponse(_message.Message):
    __slots__ = ("date", "balances")
    DATE_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    date: str
    balances: _containers.RepeatedCompositeFieldContainer[_payment_pb2.ProvinceBalance]
    def __init__(self, date: _Optional[str] = ..., balances: _Optional[_Iterable[_Union[_payment_pb2.ProvinceBalance, _Mapping]]] = ...) -> None: ...

class CheckLedgerRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckLedgerResponse(_message.Message):
    __slots__ = ("balanced", "entry_count", "account_count", "problems")
    BALANCED_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    balanced: bool
    entry_count: int
    account_count: int
    problems: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, balanced: _Optional[bool] = ..., entry_count: _Optional[int] = ..., account_count: _Optional[int] = ..., problems: _Optional[_Iterable[str]] = ...) -> None: ...
