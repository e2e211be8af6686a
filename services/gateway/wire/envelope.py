"""The national interface's envelope: the request a HIS sends and the answer it gets back.

A request is one JSON object: ``infno`` names the transaction, ``msgid`` (the institution
code, the time ``yyyyMMddHHmmss`` and a four-digit sequence: 30 characters) identifies the
message, ``input`` carries the transaction's fields (``{"data": {...}}`` or a named node), and
the rest say who sends it from where. The answer carries ``infcode`` ("0" success, "-1"
failure), ``inf_refmsgid`` (the answering region 6 + time 14 + serial 10), ``refmsg_time`` and
``respond_time`` (``yyyyMMddHHmmssSSS``), ``err_msg``, ``warn_msg`` and ``output``.

Refusal messages are read by HIS developers: each names the field and what was wrong, and
quotes at most 64 characters of what was sent, with anything shaped like an ID number or a
mobile number masked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from services.gateway.wire.money import AmountRefused, yuan_to_fen
from shared.china_time import CHINA_STANDARD_TIME
from shared.privacy import scrub

# Machine-readable reasons of EnvelopeRefused, written as err_msg "[REASON] message".
MALFORMED_REQUEST = "MALFORMED_REQUEST"
INVALID_MSGID = "INVALID_MSGID"
UNKNOWN_TRANSACTION = "UNKNOWN_TRANSACTION"
INVALID_AMOUNT = "INVALID_AMOUNT"

INSTITUTION_CODE_LENGTH = 12
MSGID_LENGTH = 30
# Most envelope fields are short codes and names; these carry more.
DEFAULT_MAX_LENGTH = 64
FIELD_MAX_LENGTHS: dict[str, int] = {
    "fixmedins_name": 200,  # a hospital's full name
    "dev_safe_info": 2000,  # device security information, free form
    "cainfo": 4096,  # a digital signature, base64
}
ENVELOPE_FIELDS = (
    "infno",
    "msgid",
    "mdtrtarea_admvs",
    "insuplc_admdvs",
    "recer_sys_code",
    "dev_no",
    "dev_safe_info",
    "cainfo",
    "signtype",
    "infver",
    "opter_type",
    "opter",
    "opter_name",
    "inf_time",
    "fixmedins_code",
    "fixmedins_name",
    "sign_no",
)
_SHOWN = 64
_INFNO = re.compile(r"[0-9]{4}")
_INSTITUTION_CODE = re.compile(r"[A-Za-z0-9]{12}")
_DIGITS = re.compile(r"[0-9]+")
_INF_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_ADMDVS = re.compile(r"[0-9]{6}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Control characters other than tab, line feed and carriage return: no field of the interface
# holds them, and PostgreSQL cannot store NUL in text at all.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CENT = Decimal("0.01")
_MAX_SERIAL = 10**10


class NotAnEnvelope(ValueError):
    """The body is not a JSON object with a string ``infno``: not the interface at all (HTTP 400)."""


class EnvelopeRefused(Exception):
    """An envelope that is the interface but cannot be served; answered with infcode "-1"."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"[{reason}] {message}")
        self.reason = reason
        self.message = message
        self.infno = ""  # the envelope's transaction code, once it is one (for the log and metrics)


@dataclass(frozen=True)
class Envelope:
    infno: str
    msgid: str
    mdtrtarea_admvs: str
    insuplc_admdvs: str
    recer_sys_code: str
    dev_no: str
    dev_safe_info: str
    cainfo: str
    signtype: str
    infver: str
    opter_type: str
    opter: str
    opter_name: str
    inf_time: str
    fixmedins_code: str
    fixmedins_name: str
    sign_no: str
    input: dict[str, Any]


def parse_envelope(body: bytes) -> Envelope:
    """The envelope in a request body, checked.

    JSON is read exactly: decimals as ``Decimal``, integers as ``int``. NotAnEnvelope when the
    body is not UTF-8 JSON (NaN and Infinity are not JSON), not an object, or has no string
    ``infno``, or holds a number too large to read (more than 4300 digits, an exponent beyond
    Decimal's range). EnvelopeRefused when: ``infno`` is not four digits; ``fixmedins_code`` is missing
    or not 12 letters and digits; ``msgid`` is not that code + a real ``yyyyMMddHHmmss`` + four
    digits; ``inf_time`` is not a real ``yyyy-MM-dd HH:mm:ss``; a field is not text or too long;
    ``input`` is not an object; a key appears twice in one object; text holds a lone surrogate;
    an envelope field holds a control character (``text``).
    Other envelope fields may be absent or null (read as ""); unknown top-level keys are ignored.
    """
    duplicates: list[str] = []
    document = _read_json(body, duplicates)
    if not isinstance(document, dict):
        raise NotAnEnvelope(f"the body is JSON but {_json_kind(document)}, not the envelope object")
    infno = document.get("infno")
    if not isinstance(infno, str):
        raise NotAnEnvelope('the body has no infno (the transaction code, text such as "2207")')
    if duplicates:
        raise EnvelopeRefused(MALFORMED_REQUEST, f"{_shown(duplicates[0])} appears twice in one object")
    _refuse_lone_surrogates(document)
    if _INFNO.fullmatch(infno) is None:
        raise EnvelopeRefused(UNKNOWN_TRANSACTION, f"infno: {_shown(infno)} is not a four-digit transaction code")
    try:
        return _checked_envelope(document)
    except EnvelopeRefused as refused:
        refused.infno = infno
        raise


def _checked_envelope(document: dict[str, Any]) -> Envelope:
    fields = {name: _envelope_text(document, name) for name in ENVELOPE_FIELDS}
    code = fields["fixmedins_code"]
    if not code:
        raise EnvelopeRefused(MALFORMED_REQUEST, "fixmedins_code: missing; send the institution code")
    if _INSTITUTION_CODE.fullmatch(code) is None:
        raise EnvelopeRefused(
            MALFORMED_REQUEST, f"fixmedins_code: {_shown(code)} is not a 12-character institution code"
        )
    _check_msgid(fields["msgid"], code)
    _inf_time_moment(fields["inf_time"])
    payload = document.get("input")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise EnvelopeRefused(MALFORMED_REQUEST, f"input: expected an object, got {_json_kind(payload)}")
    return Envelope(**fields, input=payload)


def sent_at(envelope: Envelope) -> datetime:
    """The envelope's ``inf_time`` as a moment in China Standard Time."""
    return _inf_time_moment(envelope.inf_time)


def input_node(envelope: Envelope, name: str = "data") -> dict[str, Any]:
    """``input[name]``: ``data`` for most transactions, or a named node (``mdtrtinfo``, ``setlinfo``)."""
    node = envelope.input.get(name)
    if node is None:
        raise EnvelopeRefused(MALFORMED_REQUEST, f"input.{name}: missing; this transaction sends input.{name}")
    if not isinstance(node, dict):
        raise EnvelopeRefused(MALFORMED_REQUEST, f"input.{name}: expected an object, got {_json_kind(node)}")
    return node


def input_rows(envelope: Envelope, name: str, *, required: bool = True) -> list[dict[str, Any]]:
    """``input[name]`` as a list of objects (``drugdetail``, ``feedetail``); absent is [] unless required."""
    rows = envelope.input.get(name)
    if rows is None:
        if required:
            raise EnvelopeRefused(MALFORMED_REQUEST, f"input.{name}: missing; this transaction sends input.{name}")
        return []
    if not isinstance(rows, list):
        raise EnvelopeRefused(MALFORMED_REQUEST, f"input.{name}: expected a list, got {_json_kind(rows)}")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise EnvelopeRefused(
                MALFORMED_REQUEST, f"input.{name}[{index}]: expected an object, got {_json_kind(row)}"
            )
    return rows


def text(node: dict[str, Any], key: str, *, required: bool = True, max_length: int = 64) -> str:
    """A text field of a node. A JSON number counts as its text (``"psn_no": 123`` → ``"123"``).

    Absent, null and "" are missing: refused when required, else "". Objects, lists and
    booleans are refused, and so are text longer than ``max_length`` characters, text with a
    control character other than tab, line feed and carriage return, and a node that is no
    object at all."""
    if not isinstance(node, dict):
        raise EnvelopeRefused(MALFORMED_REQUEST, f"{key}: its node is {_json_kind(node)}, not an object")
    value = node.get(key)
    if value is None or value == "":
        if required:
            raise EnvelopeRefused(MALFORMED_REQUEST, f"{key}: missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise EnvelopeRefused(MALFORMED_REQUEST, f"{key}: expected text, got {_json_kind(value)}")
    found = value if isinstance(value, str) else str(value)
    if len(found) > max_length:
        raise EnvelopeRefused(
            MALFORMED_REQUEST, f"{key}: {_shown(found)} is longer than {max_length} characters ({len(found)})"
        )
    control = _CONTROL.search(found)
    if control is not None:
        raise EnvelopeRefused(
            MALFORMED_REQUEST, f"{key}: holds the control character U+{ord(control.group()):04X} at {control.start()}"
        )
    return found


def id_number(node: dict[str, Any], key: str, *, required: bool = True, max_length: int = 18) -> str:
    """An ID number field (``psn_no``, ``certno``, ``mdtrt_cert_no``) as ``text``, with a small
    x check character made the capital X of GB 11643, so one person is one number in every message."""
    return same_person(text(node, key, required=required, max_length=max_length))


def same_person(number: str) -> str:
    """An ID number with its check character in the capital GB 11643 writes (x → X)."""
    return number[:-1] + "X" if number.endswith("x") else number


def amount(node: dict[str, Any], key: str, *, default: int | None = None, allow_negative: bool = False) -> int:
    """An amount field of a node in fen (money.yuan_to_fen); absent or null is ``default`` if
    given, else refused. Refusals are EnvelopeRefused ``INVALID_AMOUNT`` naming the field."""
    value = node.get(key)
    if value is None:
        if default is None:
            raise EnvelopeRefused(INVALID_AMOUNT, f"{key}: missing; send an amount in yuan such as 12.30")
        return default
    try:
        return yuan_to_fen(value, key, allow_negative=allow_negative)
    except AmountRefused as refused:
        raise EnvelopeRefused(INVALID_AMOUNT, str(refused)) from None


def ref_msgid(admdvs: str, at: datetime, serial: int) -> str:
    """The answer's ``inf_refmsgid``: region 6 digits + ``yyyyMMddHHmmss`` (China Standard Time) +
    serial, zero-padded to 10 digits. ValueError for another region shape, a serial outside
    0..9999999999 or a naive time: these come from the gateway, never from the caller."""
    if not isinstance(admdvs, str) or _ADMDVS.fullmatch(admdvs) is None:
        raise ValueError(f"admdvs must be six digits, not {admdvs!r}")
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 <= serial < _MAX_SERIAL:
        raise ValueError(f"serial must be an int in 0..{_MAX_SERIAL - 1}, not {serial!r}")
    return f"{admdvs}{_china(at).strftime('%Y%m%d%H%M%S')}{serial:010d}"


def stamp(at: datetime) -> str:
    """A moment as ``yyyyMMddHHmmssSSS`` in China Standard Time (``refmsg_time``, ``respond_time``)."""
    moment = _china(at)
    return f"{moment.strftime('%Y%m%d%H%M%S')}{moment.microsecond // 1000:03d}"


def success(
    output: dict[str, Any], *, refmsgid: str, received: datetime, responded: datetime, warn_msg: str = ""
) -> dict[str, Any]:
    """The answer to a served request: infcode "0" and the transaction's ``output``."""
    return {
        "infcode": "0",
        "inf_refmsgid": refmsgid,
        "refmsg_time": stamp(received),
        "respond_time": stamp(responded),
        "err_msg": "",
        "warn_msg": warn_msg,
        "output": output,
    }


def failure(reason: str, message: str, *, refmsgid: str, received: datetime, responded: datetime) -> dict[str, Any]:
    """The answer to a refused request: infcode "-1", err_msg ``"[REASON] message"``, empty output.

    The message is scrubbed of ID and mobile numbers, whoever wrote it."""
    return {
        "infcode": "-1",
        "inf_refmsgid": refmsgid,
        "refmsg_time": stamp(received),
        "respond_time": stamp(responded),
        "err_msg": f"[{reason}] {scrub(message)}",
        "warn_msg": "",
        "output": {},
    }


def render(answer: dict[str, Any]) -> bytes:
    """An answer as UTF-8 JSON, compact, non-ASCII text as itself (ensure_ascii=False).

    A Decimal is a JSON number with exactly two decimals (``12.30``, ``0.00``); one with more
    places is a ValueError, never rounded. Floats are a TypeError: money is never binary."""
    parts: list[str] = []
    _render(answer, parts)
    # A lone surrogate (legal as a JSON escape, not as UTF-8) is written back as its escape.
    return "".join(parts).encode("utf-8", "backslashreplace")


def _render(value: Any, parts: list[str]) -> None:
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        parts.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        parts.append(_two_places(value))
    elif isinstance(value, dict):
        parts.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"answer keys are text, not {type(key).__name__}: {key!r}")
            parts.append("," if index else "")
            parts.append(json.dumps(key, ensure_ascii=False))
            parts.append(":")
            _render(item, parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            parts.append("," if index else "")
            _render(item, parts)
        parts.append("]")
    elif isinstance(value, float):
        raise TypeError(f"a float ({value!r}) in an answer: money is Decimal with two places")
    else:
        raise TypeError(f"{type(value).__name__} cannot be written as JSON: {value!r}")


def _two_places(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} is not an amount")
    try:
        quantized = value.quantize(_CENT)
    except InvalidOperation:
        raise ValueError(f"{value} is too large to write with two decimals") from None
    if quantized != value:
        raise ValueError(f"{value} has more than two decimal places; convert with money.fen_to_yuan")
    return "0.00" if quantized.is_zero() else f"{quantized:f}"


def _read_json(body: bytes, duplicates: list[str]) -> Any:
    try:
        # utf-8-sig: some HIS systems on Windows put a byte-order mark before the JSON.
        decoded = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise NotAnEnvelope(f"the body is not UTF-8 text (byte {error.start})") from None

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in items:
            if key in found and not duplicates:
                duplicates.append(key)
            found[key] = value
        return found

    def constant(name: str) -> Any:
        raise NotAnEnvelope(f"the body is not JSON: {name} is not a JSON number")

    try:
        return json.loads(decoded, parse_float=Decimal, parse_constant=constant, object_pairs_hook=pairs)
    except json.JSONDecodeError as error:
        raise NotAnEnvelope(f"the body is not JSON: {error.msg} (line {error.lineno} column {error.colno})") from None
    except RecursionError:
        raise NotAnEnvelope("the body is not JSON this gateway reads: nested too deeply") from None
    except InvalidOperation:  # a number whose exponent Decimal cannot hold, such as 1e99999999999999999999
        raise NotAnEnvelope("the body is not JSON this gateway reads: a number's exponent is out of range") from None
    except ValueError as error:  # an integer of more digits than Python converts
        if isinstance(error, NotAnEnvelope):
            raise
        raise NotAnEnvelope(f"the body is not JSON this gateway reads: {str(error)[:_SHOWN]}") from None


def _refuse_lone_surrogates(document: Any) -> None:
    """Text must be Unicode: a ``\\ud800`` escape without its pair is not, and cannot be stored
    or answered as UTF-8."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise EnvelopeRefused(MALFORMED_REQUEST, "text holds a lone UTF-16 surrogate (\\ud800-\\udfff escape)")


def _envelope_text(document: dict[str, Any], name: str) -> str:
    try:
        return text(document, name, required=False, max_length=FIELD_MAX_LENGTHS.get(name, DEFAULT_MAX_LENGTH))
    except EnvelopeRefused as refused:
        if name != "msgid":
            raise
        # Every problem with msgid is INVALID_MSGID, whatever its shape.
        raise EnvelopeRefused(INVALID_MSGID, refused.message) from None


def _check_msgid(msgid: str, code: str, name: str = "msgid") -> None:
    if not msgid:
        raise EnvelopeRefused(
            INVALID_MSGID, f"{name}: missing; send fixmedins_code + yyyyMMddHHmmss + a four-digit sequence"
        )
    if len(msgid) != MSGID_LENGTH:
        raise EnvelopeRefused(
            INVALID_MSGID,
            f"{name}: {_shown(msgid)} has {len(msgid)} characters, not {MSGID_LENGTH} "
            "(fixmedins_code 12 + yyyyMMddHHmmss 14 + sequence 4)",
        )
    if msgid[:INSTITUTION_CODE_LENGTH] != code:
        raise EnvelopeRefused(INVALID_MSGID, f"{name}: {_shown(msgid)} does not begin with fixmedins_code {code}")
    moment, sequence = msgid[12:26], msgid[26:]
    if _DIGITS.fullmatch(moment) is None or _real_time(moment[:8], moment[8:]) is None:
        raise EnvelopeRefused(
            INVALID_MSGID, f"{name}: characters 13-26 ({_shown(moment)}) are not a real time yyyyMMddHHmmss"
        )
    if _DIGITS.fullmatch(sequence) is None:
        raise EnvelopeRefused(INVALID_MSGID, f"{name}: the last four characters ({_shown(sequence)}) are not digits")


def earlier_msgid(node: dict[str, Any], key: str, code: str) -> str:
    """A msgid this institution sent before, named in a node (2601's ``omsgid``). One of another
    shape than every msgid the gateway takes (fixmedins_code + a real time + four digits) names no
    request that could have arrived, so it is refused INVALID_MSGID rather than reversed as lost."""
    msgid = text(node, key)
    _check_msgid(msgid, code, key)
    return msgid


def _inf_time_moment(inf_time: str) -> datetime:
    match = _INF_TIME.fullmatch(inf_time)
    moment = _real_time("".join(match.groups()[:3]), "".join(match.groups()[3:])) if match else None
    if not inf_time:
        raise EnvelopeRefused(MALFORMED_REQUEST, "inf_time: missing; send the time sent as yyyy-MM-dd HH:mm:ss")
    if moment is None:
        raise EnvelopeRefused(MALFORMED_REQUEST, f"inf_time: {_shown(inf_time)} is not a real time yyyy-MM-dd HH:mm:ss")
    return moment


def _real_time(day: str, time: str) -> datetime | None:
    """yyyyMMdd and HHmmss (ASCII digits, checked by the caller) as a moment in China Standard Time."""
    try:
        return datetime(
            int(day[:4]),
            int(day[4:6]),
            int(day[6:8]),
            int(time[:2]),
            int(time[2:4]),
            int(time[4:6]),
            tzinfo=CHINA_STANDARD_TIME,
        )
    except ValueError:
        return None


def _china(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a naive datetime names no moment; give one with a time zone")
    return at.astimezone(CHINA_STANDARD_TIME)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "text"
    return "a number"


def _shown(value: str) -> str:
    """Caller input as quoted in a refusal: at most 64 characters, ID and mobile numbers masked."""
    # Scrubbed before it is cut, so no ID number is cut short of the shape scrub recognises.
    value = scrub(value)
    if len(value) > _SHOWN:
        value = value[: _SHOWN - 1] + "…"
    return repr(value)
