"""What a caller may see of the answers (最小必要).

An institution sees its patient's own legs whole, but a relative who pays through mutual aid
(or is passed over) only as a masked ID number, without the balance left in the relative's
account; and every ID number or mobile number in an error it receives is masked. Operators, and the channels
acting for the person, see everything. Answers are stored whole under the caller's key and
masked on the way out, so a replayed answer is masked the same way.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from gongji.payment.v1 import payment_pb2
from shared.principals import Principal, PrincipalKind
from shared.privacy import mask_id_number, scrub

_LEG = payment_pb2.Leg.DESCRIPTOR
_PASSED_OVER = payment_pb2.PassedOverPayer.DESCRIPTOR


def sees_relatives_masked(principal: Principal | None) -> bool:
    return principal is not None and principal.kind is PrincipalKind.INSTITUTION


def redact_response(principal: Principal | None, response: Any) -> Any:
    if sees_relatives_masked(principal) and isinstance(response, Message):
        _mask_relatives(response)
    return response


def _mask_relatives(message: Message) -> None:
    if message.DESCRIPTOR is _LEG:
        leg: Any = message
        if leg.source == payment_pb2.PAYMENT_SOURCE_MUTUAL_AID:
            leg.payer_id_number = mask_id_number(leg.payer_id_number)
            leg.payer_balance_after_fen = 0
        return
    if message.DESCRIPTOR is _PASSED_OVER:
        passed: Any = message
        passed.grantor_id_number = mask_id_number(passed.grantor_id_number)
        return
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        for item in value if field.is_repeated else (value,):
            _mask_relatives(item)


def redact_status(principal: Principal | None, status: status_pb2.Status) -> status_pb2.Status:
    if not sees_relatives_masked(principal):
        return status
    masked = status_pb2.Status(code=status.code, message=scrub(status.message))
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            for key in list(info.metadata):
                info.metadata[key] = scrub(info.metadata[key])
            masked.details.add().Pack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for violation in bad.field_violations:
                violation.description = scrub(violation.description)
            masked.details.add().Pack(bad)
        else:
            masked.details.append(detail)
    return masked
