"""Conversions every servicer needs: proto enums to domain enums by name, and
Timestamps to aware datetimes. Unknown or UNSPECIFIED values are refused with
the field named, never passed on."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from shared.errors import DomainError, Reason

E = TypeVar("E", bound=StrEnum)


def _prefix(proto_enum: Any) -> str:
    return str(proto_enum.Name(0)).removesuffix("UNSPECIFIED")


def enum_to_domain(domain_enum: type[E], proto_enum: Any, value: int, field: str) -> E:
    if value == 0:
        raise DomainError(Reason.FIELD_REQUIRED, f"{field} must be specified", field=field)
    try:
        name = str(proto_enum.Name(value)).removeprefix(_prefix(proto_enum))
        return domain_enum(name)
    except ValueError:
        raise DomainError(Reason.FIELD_INVALID, f"{field} has no value {value}", field=field) from None


def enum_to_proto(proto_enum: Any, member: StrEnum | None) -> int:
    if member is None:
        return 0
    return int(proto_enum.Value(_prefix(proto_enum) + member.value))


# Times the services compute with: wide enough for any real date, narrow enough that adding a
# hold, a grace period or a year to one never leaves what datetime can hold.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def timestamp_to_datetime(message: Any, field: str, prefix: str = "") -> datetime | None:
    """The Timestamp field's value, or None when it is unset; a malformed one or one outside
    1900–9000 is refused naming the field by its path in the request (`prefix` + field, for a
    field of a nested message such as "policy.")."""
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    path = prefix + field
    if not 0 <= stamp.nanos < 1_000_000_000:
        raise DomainError(Reason.FIELD_INVALID, f"{path}.nanos must be 0 to 999,999,999", field=path)
    if not EARLIEST.timestamp() <= stamp.seconds < LATEST.timestamp():
        raise DomainError(Reason.FIELD_INVALID, f"{path} must lie between the years 1900 and 9000", field=path)
    return stamp.ToDatetime(tzinfo=UTC)


def datetime_to_timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC))
    return stamp


def page_size(requested: int, default: int = 50, maximum: int = 500) -> int:
    """AIP-158: 0 means the default; larger than the maximum is coerced down."""
    if requested < 0:
        raise DomainError(Reason.FIELD_INVALID, "page_size must not be negative", field="page_size")
    return min(requested or default, maximum)


def required_id(value: str, field: str) -> str:
    """The id of what a call acts on (a binding, a settlement, a transfer). An empty one is
    refused as missing (INVALID_ARGUMENT naming the field), not looked up and reported as
    NOT_FOUND; so is one holding a character no id is made of (a control or invisible one, which
    PostgreSQL would refuse to compare); any other value is looked up as given."""
    if not value:
        raise DomainError(Reason.FIELD_REQUIRED, f"{field} is required", field=field)
    return printable(value, field)


def printable(value: str, field: str) -> str:
    """A key or id whose every character is printable (str.isprintable): no control or invisible
    character; FIELD_INVALID naming the field otherwise."""
    if not value.isprintable():
        raise DomainError(
            Reason.FIELD_INVALID,
            f"{field} contains a character that is not printable (a control or invisible character)",
            field=field,
        )
    return value


def text_field(value: str, field: str, max_length: int, required: bool = False) -> str:
    """Free text as stored: trimmed, at most max_length characters, no control characters
    (PostgreSQL refuses NUL; none of them belongs in a name, code or comment)."""
    value = value.strip()
    if required and not value:
        raise DomainError(Reason.FIELD_REQUIRED, f"{field} is required", field=field)
    if len(value) > max_length:
        raise DomainError(Reason.FIELD_INVALID, f"{field} is longer than {max_length} characters", field=field)
    if any(ord(character) < 32 and character not in "\t\n" for character in value):
        raise DomainError(Reason.FIELD_INVALID, f"{field} contains a control character", field=field)
    return value
