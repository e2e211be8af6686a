"""AIP-203: the protos mark every request field a server cannot do without as
`[(google.api.field_behavior) = REQUIRED]`, and the three servers agree with the marks.

The marks are read from the descriptors of gongji.binding.v1.BindingService,
gongji.payment.v1.PaymentService and gongji.node.v1.PaymentNodeService. The servers are the
two payment nodes and the binding service of `two_nodes`, called over mutual TLS, each call
by its natural caller as in tests/test_fuzz.py (a bill by its hospital, a node call by node
west). The well-formed request of each RPC is the authorization matrix's
(tests/test_authorization_matrix.py); the fuzzer's plausible requests are random and often
malformed, so they serve the third check only.

- Without any one REQUIRED field, a well-formed request is refused as INVALID_ARGUMENT naming
  that field (BadRequest's field violation next to the ErrorInfo). The servers check input
  before they read any state, so the refusal names the field even where the whole request
  would fail later (NOT_FOUND, FAILED_PRECONDITION). The exception is a field an access-policy
  scope of the caller's rule reads first (a node's own province): the policy refuses the empty
  value as PERMISSION_DENIED OUT_OF_SCOPE, naming the field in ErrorInfo's metadata. Without
  every field of an alternative (ALTERNATIVES), a request is refused naming one of them.
- With only its REQUIRED fields set, the same request passes the input checks: no unmarked
  field is needed. Fields filled from the caller's certificate (a bill's institution_code, a
  channel, an operator_id) are not marked, as no caller has to send them.
- Every FIELD_REQUIRED refusal the fuzzer provokes names a marked field, or one of the few
  whose need depends on another field's value or on the RPC (CONDITIONALLY_NEEDED).
- An OUTPUT_ONLY field in a request is ignored, whatever it holds.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gongji.binding.v1 import binding_pb2, binding_service_pb2
from gongji.node.v1 import node_service_pb2
from gongji.payment.v1 import payment_pb2, payment_service_pb2
from services.codegen import GOOGLEAPIS_IMPORTS, THIRD_PARTY_ROOT, installed_googleapis_root
from services.common.security.access_policy import AccessPolicy
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import Roles
from shared.principals import Principal, payment_node
from tests.test_authorization_matrix import REQUESTS, World
from tests.test_cross_province import CrossFamily
from tests.test_fuzz import Fuzzer

REQUIRED = field_behavior_pb2.REQUIRED
OUTPUT_ONLY = field_behavior_pb2.OUTPUT_ONLY
SERVICES = [
    binding_service_pb2.DESCRIPTOR.services_by_name["BindingService"],
    payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"],
    node_service_pb2.DESCRIPTOR.services_by_name["PaymentNodeService"],
]
METHODS: list[MethodDescriptor] = [method for service in SERVICES for method in service.methods]
FILES = (binding_pb2, binding_service_pb2, payment_pb2, payment_service_pb2, node_service_pb2)
# The idempotency key of each mutating RPC (AIP-155); node calls are keyed by their transaction.
IDEMPOTENCY_KEYS = ("request_id", "transaction_id", "transfer_id")

# Fields of which at least one must be set (so none of them alone is REQUIRED), as the protos'
# comments say: "Exactly one of grantor_id_number and beneficiary_id_number"; "yearly_cap_fen:
# Required when share_all is false".
ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "gongji.binding.v1.ListBindingsRequest": ("grantor_id_number", "beneficiary_id_number"),
    "gongji.binding.v1.UpdateSharingLimitRequest": ("share_all", "yearly_cap_fen"),
}
# Unmarked fields a server may still refuse as FIELD_REQUIRED, and why they carry no mark.
CONDITIONALLY_NEEDED: dict[tuple[str, str], str] = {
    ("gongji.binding.v1.ListBindingsRequest", "grantor_id_number"): "one of an alternative (ALTERNATIVES)",
    ("gongji.binding.v1.ListBindingsRequest", "beneficiary_id_number"): "one of an alternative (ALTERNATIVES)",
    ("gongji.binding.v1.ReportLifeEventRequest", "other_id_number"): "needed for a DIVORCE only",
    ("gongji.payment.v1.CreditAccountRequest", "admdvs"): "needed to open a new account only",
    # NodeLeg is also CommitLegs' captures (leg_no and amount) and the answers' legs.
    ("gongji.node.v1.PrepareLegsRequest", "legs.payer_id_number"): "NodeLeg needs it in PrepareLegs only",
    # PayerGrant is ResolvePayers' answer, passed on as is; PrepareLegs does not read grants.
    ("gongji.node.v1.GetPayerCapacityRequest", "grants.relationship"): "PayerGrant needs it in GetPayerCapacity only",
}
# Unmarked fields a value of another field makes needed, refused when missing as FIELD_INVALID
# (FIELD_REQUIRED is for marked fields): a request with only its REQUIRED fields keeps them.
NEEDED_FOR_A_VALUE: dict[tuple[str, str], str] = {
    ("gongji.binding.v1.EndBindingRequest", "actor_id"): (
        "needed when the actor is GRANTOR or BENEFICIARY; an operator's comes from the certificate"
    ),
}
POLICY = AccessPolicy.shipped()
_INDEX = re.compile(r"\[\d+\]")


def behaviors(field: FieldDescriptor) -> list[int]:
    return list(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


def is_required(field: FieldDescriptor) -> bool:
    return REQUIRED in behaviors(field)


def _ours(descriptor: Descriptor) -> bool:
    """Messages of gongji's packages; google.protobuf.Timestamp and the like are values."""
    return descriptor.full_name.startswith("gongji.")


def all_fields() -> Iterator[FieldDescriptor]:
    for module in FILES:
        pending = list(module.DESCRIPTOR.message_types_by_name.values())
        while pending:
            message = pending.pop()
            pending += message.nested_types
            yield from message.fields


# Field paths, as the servers name fields: "bill.credential.type", "proofs[0].type".


def marked_paths(message: Message, behavior: int, prefix: str = "") -> Iterator[str]:
    """The fields of message marked with behavior, and those of the messages set within it: a
    nested field's mark applies when its parent is present (AIP-203)."""
    for field in message.DESCRIPTOR.fields:
        path = prefix + field.name
        if behavior in behaviors(field):
            yield path
        if field.message_type is None or not _ours(field.message_type):
            continue
        if field.is_repeated:
            for index, element in enumerate(getattr(message, field.name)):
                yield from marked_paths(element, behavior, f"{path}[{index}].")
        elif message.HasField(field.name):
            yield from marked_paths(getattr(message, field.name), behavior, f"{path}.")


def required_paths(message: Message) -> list[str]:
    return list(marked_paths(message, REQUIRED))


def _parent(message: Message, path: str) -> tuple[Message, str]:
    *parents, last = path.split(".")
    for part in parents:
        name, _, index = part.partition("[")
        message = getattr(message, name)[int(index[:-1])] if index else getattr(message, name)
    return message, last


def is_set(message: Message, path: str) -> bool:
    parent, name = _parent(message, path)
    field = parent.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        return len(getattr(parent, name)) > 0
    if field.message_type is not None:
        return parent.HasField(name)
    return getattr(parent, name) != field.default_value


def without(message: Message, *paths: str) -> Message:
    """A copy of message with these fields cleared, under a fresh request_id unless that is
    one of them, so no variant meets an answer stored for another."""
    copy = type(message)()
    copy.CopyFrom(message)
    for path in paths:
        parent, name = _parent(copy, path)
        parent.ClearField(name)
    if "request_id" in copy.DESCRIPTOR.fields_by_name and "request_id" not in paths:
        copy.request_id = str(uuid.uuid4())  # type: ignore[attr-defined]
    return copy


def only_required(message: Message, keep: tuple[str, ...] = ()) -> Message:
    """A copy of message with only its REQUIRED fields (and those named in keep) set, within
    set messages too; message values of other packages (Timestamps) are kept whole."""
    copy = type(message)()
    for field in message.DESCRIPTOR.fields:
        if not (is_required(field) or field.name in keep):
            continue
        value = getattr(message, field.name)
        if field.message_type is not None and _ours(field.message_type):
            if field.is_repeated:
                getattr(copy, field.name).extend(only_required(element) for element in value)
            elif message.HasField(field.name):
                getattr(copy, field.name).CopyFrom(only_required(value))
        elif field.message_type is not None:
            if field.is_repeated:
                getattr(copy, field.name).extend(value)
            elif message.HasField(field.name):
                getattr(copy, field.name).CopyFrom(value)
        elif field.is_repeated:
            getattr(copy, field.name).extend(value)
        else:
            setattr(copy, field.name, value)
    return copy


def resolve(request: Descriptor, path: str) -> FieldDescriptor | None:
    """The field a server names ("proofs[0].type", "legs.payer_id_number"), or None when the
    request has no such field."""
    message: Descriptor | None = request
    field = None
    for name in _INDEX.sub("", path).split("."):
        if message is None or name not in message.fields_by_name:
            return None
        field = message.fields_by_name[name]
        message = field.message_type
    return field


# Calls ---------------------------------------------------------------------------------------


class Refusal:
    """A refusal's code, its ErrorInfo reason and the field it names: a refusal of input names
    it in BadRequest's field violation, an access-policy scope in ErrorInfo's metadata."""

    def __init__(self, error: grpc.RpcError) -> None:
        self.code = error.code()
        self.reason, self.field = "", ""
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                self.reason, self.field = info.reason, self.field or info.metadata.get("field", "")
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                self.field = next((violation.field for violation in bad.field_violations), self.field)
        self.details = error.details() or ""

    def names(self, path: str) -> bool:
        return self.field == path or self.field.startswith((f"{path}.", f"{path}["))

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason} field={self.field!r} ({self.details[:120]})"


class Caller:
    """Sends requests to the servers of two_nodes as each RPC's natural caller."""

    def __init__(self, nodes: Any, pki: DevelopmentPKI) -> None:
        self.nodes = nodes
        self.pki = pki
        # The roles the family's stubs recorded: which hospital placed each settlement.
        self.roles: Roles = nodes.east.binding.roles
        self._channels: dict[tuple[str, Principal], grpc.Channel] = {}

    def principal(self, method: MethodDescriptor, request: Message) -> Principal:
        if method.containing_service.name == "PaymentNodeService" or method.name == "ResolvePayers":
            return payment_node("west")  # the fuzzer's node caller; east holds the Nanjing family
        return self.roles.principal_for(method.name, request)

    def answer(self, method: MethodDescriptor, request: Message, principal: Principal) -> Message | Refusal:
        service = method.containing_service.name
        address = (self.nodes.east.binding if service == "BindingService" else self.nodes.east).server.address
        key = (address, principal)
        if key not in self._channels:
            self._channels[key] = self.pki.channel(address, principal)
        call = self._channels[key].unary_unary(f"/{method.containing_service.full_name}/{method.name}")
        try:
            return GetMessageClass(method.output_type).FromString(call(request.SerializeToString(), timeout=30))
        except grpc.RpcError as error:
            return Refusal(error)

    def send(self, method: MethodDescriptor, request: Message, principal: Principal) -> Refusal | None:
        """The refusal, or None when the call succeeded."""
        answer = self.answer(method, request, principal)
        return answer if isinstance(answer, Refusal) else None

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


def scoped_fields(method: MethodDescriptor, principal: Principal) -> set[str]:
    """Request fields the caller's access-policy rule reads before the handler runs."""
    rule = POLICY.rule_for(f"/{method.containing_service.full_name}/{method.name}", principal)
    return {field for _, field in rule.scopes if field} if rule else set()


def refused_for_missing(refusal: Refusal, cleared: tuple[str, ...], scoped: set[str]) -> bool:
    """INVALID_ARGUMENT naming a cleared field; or, for a field a scope of the caller's rule
    reads before the handler runs, that scope's OUT_OF_SCOPE naming it."""
    if not any(refusal.names(path) for path in cleared):
        return False
    if refusal.code == grpc.StatusCode.INVALID_ARGUMENT:
        return True
    scope_first = (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OUT_OF_SCOPE")
    return scope_first and set(cleared) <= scoped


@pytest.fixture
def world(two_nodes: Any) -> World:
    pki = two_nodes.east.binding.pki
    return World(CrossFamily(two_nodes), two_nodes, pki, pki)


@pytest.fixture
def caller(two_nodes: Any) -> Iterator[Caller]:
    sender = Caller(two_nodes, two_nodes.east.binding.pki)
    try:
        yield sender
    finally:
        sender.close()


def well_formed(world: World, method: MethodDescriptor) -> Message:
    """The authorization matrix's request for the RPC, as a channel would send it (EndBinding)."""
    return REQUESTS[f"{method.containing_service.name}/{method.name}"](world, "channel")


# The marks ----------------------------------------------------------------------------------


def test_every_mutating_rpc_marks_its_idempotency_key_required() -> None:
    for method in METHODS:
        for name in IDEMPOTENCY_KEYS:
            field = method.input_type.fields_by_name.get(name)
            if field is not None:
                assert is_required(field), f"{method.full_name}: {name} is the idempotency key (AIP-155)"


def test_the_marks_are_google_api_field_behavior_of_googleapis_common_protos() -> None:
    """The stubs import google/api/field_behavior.proto from the installed package; buf reads
    the committed copy under protos/third_party/googleapis/, which must be the package's file."""
    marked_files = {field.file.name for field in all_fields() if behaviors(field)}
    assert marked_files == {module.DESCRIPTOR.name for module in FILES}
    for module in FILES:
        assert field_behavior_pb2.DESCRIPTOR in module.DESCRIPTOR.dependencies
    for name in GOOGLEAPIS_IMPORTS:
        committed, installed = THIRD_PARTY_ROOT / name, installed_googleapis_root() / name
        assert committed.read_bytes() == installed.read_bytes(), (
            f"{committed} differs from googleapis-common-protos' {installed}; run `python -m services.codegen`"
        )


def test_no_field_is_marked_both_required_and_output_only() -> None:
    both = [field.full_name for field in all_fields() if {REQUIRED, OUTPUT_ONLY} <= set(behaviors(field))]
    assert both == []


def test_the_alternatives_and_conditionally_needed_fields_are_fields_left_unmarked() -> None:
    """The three tables may only excuse fields that exist and carry no REQUIRED mark."""
    requests = {method.input_type.full_name: method.input_type for method in METHODS}
    named = [(message, field) for message, fields in ALTERNATIVES.items() for field in fields]
    for message, path in [*named, *CONDITIONALLY_NEEDED, *NEEDED_FOR_A_VALUE]:
        field = resolve(requests[message], path)
        assert field is not None, f"{message} has no field {path}"
        assert not is_required(field), f"{message}.{path} is marked REQUIRED; drop it from the table"


def test_every_rpc_has_a_well_formed_request_that_sets_all_its_required_fields(world: World) -> None:
    unset = [
        f"{method.full_name}: {path}"
        for method in METHODS
        for request in [well_formed(world, method)]
        for path in required_paths(request)
        if not is_set(request, path)
    ]
    assert unset == [], "the matrix's requests should set every REQUIRED field:\n" + "\n".join(unset)


# The servers --------------------------------------------------------------------------------


def test_a_request_without_one_required_field_is_refused_as_invalid_naming_that_field(
    world: World, caller: Caller
) -> None:
    """And without every field of an alternative, it is refused naming one of them."""
    wrong: list[str] = []
    tried = 0
    for method in METHODS:
        request = well_formed(world, method)
        principal = caller.principal(method, request)
        scoped = scoped_fields(method, principal)
        cases = [(path, (path,)) for path in required_paths(request)]
        alternative = ALTERNATIVES.get(method.input_type.full_name)
        if alternative:
            cases.append((" or ".join(alternative), alternative))
        for label, cleared in cases:
            tried += 1
            refusal = caller.send(method, without(request, *cleared), principal)
            if refusal is None or not refused_for_missing(refusal, cleared, scoped):
                wrong.append(f"{method.full_name} without {label}: {refusal or 'accepted'}")
    assert wrong == [], "\n".join(wrong)
    assert tried > 100


def test_a_request_with_only_its_required_fields_set_passes_the_input_checks(world: World, caller: Caller) -> None:
    """A refusal for state (NOT_FOUND, FAILED_PRECONDITION, …) is fine; INVALID_ARGUMENT would
    mean the server needs a field the proto does not mark (beyond an alternative, or a field the
    request's other values make needed: NEEDED_FOR_A_VALUE)."""
    wrong: list[str] = []
    for method in METHODS:
        request = well_formed(world, method)
        name = method.input_type.full_name
        needed = tuple(field for message, field in NEEDED_FOR_A_VALUE if message == name)
        minimal = only_required(request, keep=(*ALTERNATIVES.get(name, ()), *needed))
        if "request_id" in minimal.DESCRIPTOR.fields_by_name:
            minimal.request_id = str(uuid.uuid4())  # type: ignore[attr-defined]
        refusal = caller.send(method, minimal, caller.principal(method, request))
        if refusal is not None and refusal.code == grpc.StatusCode.INVALID_ARGUMENT:
            wrong.append(f"{method.full_name} with only {sorted(required_paths(minimal))}: {refusal}")
    assert wrong == [], "\n".join(wrong)


def test_a_request_carrying_output_only_fields_succeeds_and_the_server_ignores_them(
    world: World, caller: Caller
) -> None:
    """OUTPUT_ONLY (an insured person's update_time, a policy's version): whatever a request
    puts there, the answer holds the server's value."""
    forged_time, forged_text = -(2**62), "forged"
    checked = []
    for method in METHODS:
        request = well_formed(world, method)
        paths = list(marked_paths(request, OUTPUT_ONLY))
        if not paths:
            continue
        filled = without(request)
        for path in paths:
            parent, name = _parent(filled, path)
            if parent.DESCRIPTOR.fields_by_name[name].message_type is not None:  # a Timestamp
                getattr(parent, name).seconds = forged_time
            else:
                setattr(parent, name, forged_text)
        answer = caller.answer(method, filled, caller.principal(method, request))
        assert not isinstance(answer, Refusal), f"{method.full_name}: {answer}"
        for path in paths:  # the answer carries the resource under the request's field name
            parent, name = _parent(answer, path)
            value = getattr(parent, name)
            assert getattr(value, "seconds", value) not in (forged_time, forged_text), f"{method.name}: {path}"
            checked.append(f"{method.name}: {path}")
    assert checked == [
        "UpsertInsuredPerson: insured_person.contact_change_time",
        "UpsertInsuredPerson: insured_person.update_time",
        "PutRegionPolicy: policy.version",
    ]


def test_every_field_required_refusal_of_fuzzed_requests_names_a_marked_field(two_nodes: Any) -> None:
    family = CrossFamily(two_nodes, mother_fen=500_000, father_fen=500_000)
    fuzzer = Fuzzer(two_nodes, family, two_nodes.east.binding.pki, seed=20260203)
    unmarked: dict[str, str] = {}
    seen = 0
    try:
        for _ in range(1_500):
            method = fuzzer.random.choice(METHODS)
            request_class = GetMessageClass(method.input_type)
            shape = fuzzer.random.choices(["empty", "plausible", "mutated"], weights=[1, 4, 5])[0]
            request = (
                request_class()
                if shape == "empty"
                else fuzzer.maker.plausible(request_class)
                if shape == "plausible"
                else fuzzer.maker.mutated(request_class)
            )
            path = f"/{method.containing_service.full_name}/{method.name}"
            call = fuzzer._channel(fuzzer._address(method), fuzzer.roles.principal_for(method.name, request))
            try:
                call.unary_unary(path)(request.SerializeToString(), timeout=30)
                continue
            except grpc.RpcError as error:
                refusal = Refusal(error)
            if refusal.reason != "FIELD_REQUIRED":
                continue
            seen += 1
            field = resolve(method.input_type, refusal.field)
            if field is not None and field.is_repeated and field.message_type is None and refusal.field.endswith("]"):
                continue  # an UNSPECIFIED element of a repeated enum: a bad value, not a missing field
            named = _INDEX.sub("", refusal.field)
            if field is not None and is_required(field):
                continue
            if (method.input_type.full_name, named) not in CONDITIONALLY_NEEDED:
                unmarked[f"{method.full_name}: {refusal.field or '(no field)'}"] = str(refusal)
    finally:
        fuzzer.close()
    assert unmarked == {}, "FIELD_REQUIRED for fields not marked REQUIRED:\n" + "\n".join(
        f"{where}: {what}" for where, what in sorted(unmarked.items())
    )
    assert seen > 50, "the fuzzer should provoke FIELD_REQUIRED refusals"
