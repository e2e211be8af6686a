"""Domain failures as rich gRPC statuses: a code, ErrorInfo on every error, and
BadRequest naming the field where the input was at fault."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from shared.errors import DomainError, ErrorKind

CODE_OF_KIND: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.INVALID_INPUT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.PERMISSION: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.CONFLICT: grpc.StatusCode.ABORTED,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.DEADLINE: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def _packed(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


# A refusal may quote what the caller sent; it quotes a short prefix at most, so a status
# stays far below any client's header limit (a 64 KiB id once made grpc-js drop the channel).
MAX_MESSAGE = 400
MAX_METADATA_VALUE = 200


_NUMBER_CHARACTERS = frozenset("0123456789Xx")
_LONGEST_NUMBER = 18  # an ID number; a mobile number is shorter


def short(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut with "…", never inside a number up to an ID
    number's length: an ID or mobile number cut short keeps its birth date or middle digits
    without the shape the masking of other parties' texts looks for."""
    if len(text) <= limit:
        return text
    cut = limit - 1
    if text[cut] in _NUMBER_CHARACTERS:
        start = cut
        while start > 0 and text[start - 1] in _NUMBER_CHARACTERS and cut - start < _LONGEST_NUMBER:
            start -= 1
        cut = start
    return text[:cut] + "…"


def header_safe(message: str) -> str:
    """`message` without spaces at its ends. The status message travels in the grpc-message
    header, where gRPC leaves spaces as they are, and an HTTP/2 field value may not start or
    end with one (RFC 9113, section 8.2.1): nghttp2 (Node.js's grpc-js, Envoy) drops such a
    header, so its caller saw no message at all when a refusal ended by echoing a
    space-padded id. Other whitespace travels percent-encoded and needs nothing."""
    return message.strip(" ")


def status_of(error: DomainError, domain: str) -> status_pb2.Status:
    code: grpc.StatusCode = CODE_OF_KIND[error.kind]
    message = header_safe(short(error.message, MAX_MESSAGE))
    metadata = {short(key, 64): short(value, MAX_METADATA_VALUE) for key, value in error.metadata.items()}
    details = [_packed(error_details_pb2.ErrorInfo(reason=error.reason.value, domain=domain, metadata=metadata))]
    if error.field:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=short(error.field, 128), description=message, reason=error.reason.value
        )
        details.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
    return status_pb2.Status(code=code.value[0], message=message, details=details)


def internal_status(domain: str, message: str = "internal error; it was logged") -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=domain)
    return status_pb2.Status(code=code_pb2.INTERNAL, message=message, details=[_packed(info)])


def plain_status(code: grpc.StatusCode, reason: str, domain: str, message: str) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=domain)
    return status_pb2.Status(code=code.value[0], message=message, details=[_packed(info)])


def error_info_of(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
