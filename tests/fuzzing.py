"""A request generator built from the proto descriptors, for fuzzing every RPC.

It makes four kinds of request for a method: an empty one; one filled from a pool of
plausible values chosen by field name (the family's ID numbers, its binding and settlement
ids, real region codes …); that one with a few fields mutated into edge values (huge and
negative numbers, unknown enum values, out-of-range timestamps, long, control-character and
non-BMP strings, forged page tokens); and raw bytes that are no message at all (random,
truncated, invalid UTF-8 in a string field). Seeded, so a failure can be replayed.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)
INT32_MAX, INT32_MIN = 2**31 - 1, -(2**31)
EDGE_INTS = (0, 1, -1, 7, 10_000_000, 10_000_001, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, 2**62)
EDGE_STRINGS = (
    "", " ", "x" * 70_000, "\x00", "a\nb", "\x7f", "王" * 300, "😀", "'; DROP TABLE accounts; --", "%s%n",
    "../../etc/passwd", "320102198001010118", "0" * 19, "spiffe://gongji/institution/H1",
)  # fmt: skip
EDGE_SECONDS = (0, -1, -62_135_596_800, -62_135_596_801, 253_402_300_799, 253_402_300_800, 2**62, -(2**62))


@dataclass
class Pool:
    """Plausible values the generator draws on, by what a field names."""

    id_numbers: list[str] = field(default_factory=list)
    binding_ids: list[str] = field(default_factory=list)
    settlement_ids: list[str] = field(default_factory=list)
    transfer_ids: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    institutions: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=lambda: ["320100", "620100", "000000", "320000", "110101"])
    provinces: list[str] = field(default_factory=lambda: ["32", "62", "11", "99", ""])
    days: list[str] = field(default_factory=lambda: ["2026-03-02", "9999-12-31", "0001-01-01", "2026-02-30", "x"])
    now_seconds: int = 1_772_413_200


class RequestMaker:
    def __init__(self, seed: int, pool: Pool) -> None:
        self.random = random.Random(seed)
        self.pool = pool

    # Choosing values --------------------------------------------------------------------

    def _pick(self, values: list[str], fallback: Callable[[], str]) -> str:
        return self.random.choice(values) if values and self.random.random() < 0.85 else fallback()

    def _plausible_string(self, name: str) -> str:
        pool, r = self.pool, self.random
        if name.endswith("id_number") or name == "actor_id":
            return self._pick(pool.id_numbers, lambda: r.choice(EDGE_STRINGS))
        if name in ("binding_id", "binding_ids"):
            return self._pick(pool.binding_ids, lambda: str(uuid.uuid4()))
        if name in ("settlement_id", "transaction_id"):
            return self._pick(pool.settlement_ids, lambda: str(uuid.uuid4()))
        if name == "transfer_id":
            return self._pick(pool.transfer_ids, lambda: str(uuid.uuid4()))
        if name in ("request_id", "original_request_id"):
            if pool.request_ids and r.random() < 0.3:
                return r.choice(pool.request_ids)
            value = str(uuid.uuid4())
            pool.request_ids.append(value)
            return value
        if name == "institution_code":
            return self._pick(pool.institutions, lambda: "H" + str(r.randrange(10**8)))
        if name.endswith("admdvs"):
            return r.choice(pool.regions)
        if name.endswith("province") or name == "cross_province_provinces":
            return r.choice(pool.provinces)
        if name == "date":
            return r.choice(pool.days)
        if name in ("month", "period"):
            return r.choice(["2026-03", "9999-12", "0001-01", "2026-13", ""])
        if name == "page_token":
            forged = base64.urlsafe_b64encode(b'{"p": -5, "s": "0"}').decode()
            return r.choice(["", forged, "!!!", base64.urlsafe_b64encode(b'{"q": 1, "p": [1, 2]}').decode()])
        if name in ("name",):
            return r.choice(["王建国", "李秀英", "王小明"])
        return r.choice(["ok", "notice-2025-01", "demo", "x" * 10])

    def _value(self, descriptor: FieldDescriptor, plausible: bool) -> Any:
        r = self.random
        kind = descriptor.type
        if kind == FieldDescriptor.TYPE_STRING:
            return self._plausible_string(descriptor.name) if plausible else r.choice(EDGE_STRINGS)
        if kind == FieldDescriptor.TYPE_BOOL:
            return r.random() < 0.5
        if kind == FieldDescriptor.TYPE_ENUM:
            values = [v.number for v in descriptor.enum_type.values]
            if plausible:
                return r.choice([v for v in values if v] or values)
            return r.choice([*values, 0, 99, -1, INT32_MAX])
        if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
            if plausible:
                return (
                    r.choice([100, 1_000, 5_000, 30_000, 200_000])
                    if descriptor.name.endswith("fen")
                    else r.randrange(1, 100)
                )
            return r.choice(EDGE_INTS)
        if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
            if plausible:
                return r.randrange(0, 60)
            return r.choice([v for v in EDGE_INTS if INT32_MIN <= v <= INT32_MAX])
        if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            return r.randrange(0, 2**32)
        if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            return r.randrange(0, 2**64)
        if kind == FieldDescriptor.TYPE_BYTES:
            return r.randbytes(r.randrange(0, 64))
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return r.choice([0.0, -1.5, 1e300])
        raise AssertionError(f"no value for field type {kind}")

    # Building messages ------------------------------------------------------------------

    def _fill(self, message: Message, plausible: bool, depth: int) -> None:
        descriptor: Descriptor = message.DESCRIPTOR
        if descriptor.full_name == "google.protobuf.Timestamp":
            message.seconds = (  # type: ignore[attr-defined]
                self.pool.now_seconds + self.random.randrange(-86_400 * 30, 86_400 * 30)
                if plausible
                else self.random.choice(EDGE_SECONDS)
            )
            message.nanos = 0 if plausible else self.random.choice([0, -1, 999_999_999, 1_000_000_000])  # type: ignore[attr-defined]
            return
        for child in descriptor.fields:
            if self.random.random() < (0.15 if plausible else 0.4):
                continue  # left unset
            repeated = child.is_repeated
            count = self.random.choice([1, 1, 2, 3]) if repeated else 1
            if repeated and not plausible and self.random.random() < 0.05:
                count = self.random.choice([50, 200])
            target = getattr(message, child.name)
            for _ in range(count):
                if child.type == FieldDescriptor.TYPE_MESSAGE:
                    if depth > 4:
                        break
                    sub = target.add() if repeated else target
                    self._fill(sub, plausible, depth + 1)
                    if not repeated:
                        sub.SetInParent()
                else:
                    value = self._value(child, plausible)
                    if repeated:
                        target.append(value)
                    else:
                        setattr(message, child.name, value)

    def plausible(self, request_class: type[Message]) -> Message:
        request = request_class()
        self._fill(request, plausible=True, depth=0)
        return request

    def mutated(self, request_class: type[Message]) -> Message:
        """A plausible request with one to three fields turned into edge values (or unset)."""
        request = self.plausible(request_class)
        fields = list(request.DESCRIPTOR.fields)
        for child in self.random.sample(fields, k=min(len(fields), self.random.randint(1, 3))):
            request.ClearField(child.name)
            if self.random.random() < 0.2:
                continue
            target = getattr(request, child.name)
            if child.type == FieldDescriptor.TYPE_MESSAGE:
                sub = target.add() if child.is_repeated else target
                self._fill(sub, plausible=False, depth=1)
                sub.SetInParent()
            elif child.is_repeated:
                target.append(self._value(child, plausible=False))
            else:
                setattr(request, child.name, self._value(child, plausible=False))
        return request

    def raw(self, request_class: type[Message]) -> bytes:
        """Bytes that should not parse as the request (or parse into something odd)."""
        r = self.random
        valid = self.plausible(request_class).SerializeToString()
        choice = r.randrange(4)
        if choice == 0:
            return r.randbytes(r.randrange(1, 200))
        if choice == 1 and len(valid) > 1:
            return valid[: r.randrange(1, len(valid))]
        string_fields = [f for f in request_class.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING]
        if choice == 2 and string_fields:
            number = r.choice(string_fields).number
            return bytes([(number << 3) | 2, 3]) + b"\xff\xfe\xc3" + valid
        return valid + bytes([0x7A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])  # field 15, length far beyond the end


# One field at a time ----------------------------------------------------------------------

HOSTILE_STRINGS = ("\x00", "a\x00b", "\x01\x1b[31m", "x" * 900_000, "王" * 5_000, " 320102198001010118 ", "１２３")
HOSTILE_INT64 = (INT64_MAX, INT64_MIN, 2**62, -1, 0, 2**31, 10_000_001)
HOSTILE_INT32 = (INT32_MAX, INT32_MIN, -1)
HOSTILE_ENUMS = (99, -1, INT32_MAX)
HOSTILE_SECONDS = (-(2**62), 2**62, -62_135_596_801, 253_402_300_800, -2_208_988_801)
MANY = 10_000


def _hostile_values(descriptor: FieldDescriptor) -> tuple[Any, ...]:
    kind = descriptor.type
    if kind == FieldDescriptor.TYPE_STRING:
        return HOSTILE_STRINGS
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return HOSTILE_INT64
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return HOSTILE_INT32
    if kind == FieldDescriptor.TYPE_ENUM:
        return HOSTILE_ENUMS
    return ()


def _with(path: list[str], change: Callable[[Message, FieldDescriptor], None]) -> Callable[[Message], Message]:
    def hostile(request: Message) -> Message:
        copy = type(request)()
        copy.CopyFrom(request)
        holder = copy
        for name in path[:-1]:
            holder = getattr(holder, name)
        change(holder, holder.DESCRIPTOR.fields_by_name[path[-1]])
        return copy

    return hostile


def _set(value: Any) -> Callable[[Message, FieldDescriptor], None]:
    def change(holder: Message, descriptor: FieldDescriptor) -> None:
        if descriptor.type == FieldDescriptor.TYPE_MESSAGE:  # a Timestamp
            getattr(holder, descriptor.name).seconds = value
        elif descriptor.is_repeated:
            target = getattr(holder, descriptor.name)
            del target[:]
            target.append(value)
        else:
            setattr(holder, descriptor.name, value)

    return change


def _many(holder: Message, descriptor: FieldDescriptor) -> None:
    target = getattr(holder, descriptor.name)
    del target[:]
    if descriptor.type == FieldDescriptor.TYPE_MESSAGE:
        for _ in range(MANY):
            target.add()
    else:
        target.extend([_hostile_values(descriptor)[0] if _hostile_values(descriptor) else 1] * MANY)


def one_field_hostile(request: Message, depth: int = 2) -> list[tuple[str, Callable[[Message], Message]]]:
    """Ways to make one field of a request like `request` hostile, each a label
    (`field.path=value`) and what makes a copy so: each string, number and enum (also inside
    messages, `depth` levels down) set to each edge value, each timestamp out of range, and
    each repeated field given 10,000 items."""
    found: list[tuple[str, Callable[[Message], Message]]] = []

    def walk(message: Message, path: list[str], level: int) -> None:
        for descriptor in message.DESCRIPTOR.fields:
            where = [*path, descriptor.name]
            label = ".".join(where)
            if descriptor.is_repeated:
                found.append((f"{label}=[{MANY} items]", _with(where, _many)))
            if descriptor.type == FieldDescriptor.TYPE_MESSAGE:
                if descriptor.message_type.full_name == "google.protobuf.Timestamp" and not descriptor.is_repeated:
                    found.extend((f"{label}.seconds={s}", _with(where, _set(s))) for s in HOSTILE_SECONDS)
                elif not descriptor.is_repeated and level < depth:
                    walk(getattr(message, descriptor.name), where, level + 1)
                continue
            for value in _hostile_values(descriptor):
                found.append((f"{label}={str(value)[:24]!r}", _with(where, _set(value))))

    walk(request, [], 0)
    return found
