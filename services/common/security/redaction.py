"""What a caller may see of the answers (最小必要).

An institution sees its patient's own legs whole, but a relative who pays through mutual aid
(or is passed over) only as a masked ID number, without the balance left in the relative's
account. Reading a person's account (GetAccount, for the counter's 1101 look-up), it sees the
relatives that person shared with this year (``shared_this_year``) only as masked ID numbers.
Reading an insured person (GetInsuredPerson), it sees what a counter needs to identify and
settle for the patient: ID number, name, insurance type and status, region, whether there is a
personal account; the mobile number only masked (enough to ask "the number ending 5678?") and
the address not at all. Every ID number or mobile number in an error it receives is masked.
A payment node reads an insured person only for the region (no name, phone or address).
Operators, and the channels acting for the person, see everything. The gateway, acting for an
institution, is judged as that institution and sees what it sees. Answers are stored whole
under the caller's key and masked on the way out, so a replayed answer is masked the same way.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from gongji.binding.v1 import binding_pb2
from gongji.payment.v1 import payment_pb2
from shared.principals import Principal, PrincipalKind
from shared.privacy import mask_id_number, mask_phone, scrub

_LEG = payment_pb2.Leg.DESCRIPTOR
_PASSED_OVER = payment_pb2.PassedOverPayer.DESCRIPTOR
_SHARE = payment_pb2.BindingShare.DESCRIPTOR
_INSURED_PERSON = binding_pb2.InsuredPerson.DESCRIPTOR


def sees_relatives_masked(principal: Principal | None) -> bool:
    return principal is not None and principal.kind is PrincipalKind.INSTITUTION


def redact_response(principal: Principal | None, response: Any) -> Any:
    if sees_relatives_masked(principal) and isinstance(response, Message):
        _mask_relatives(response)
    elif principal is not None and principal.kind is PrincipalKind.PAYMENT_NODE and isinstance(response, Message):
        _person_for_a_node(response)
    return response


def _person_for_a_node(message: Message) -> None:
    """A payment node reads an insured person only for the region an operator's scope is judged
    by: no name, phone or address."""
    if message.DESCRIPTOR is _INSURED_PERSON:
        person: Any = message
        for name in ("name", "phone", "address"):
            person.ClearField(name)
        return
    for field, value in message.ListFields():
        if field.message_type is not None and not field.is_repeated and field.message_type is _INSURED_PERSON:
            _person_for_a_node(value)


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
    if message.DESCRIPTOR is _SHARE:
        share: Any = message
        share.beneficiary_id_number = mask_id_number(share.beneficiary_id_number)
        return
    if message.DESCRIPTOR is _INSURED_PERSON:
        person: Any = message
        person.phone = mask_phone(person.phone)
        person.ClearField("address")
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
