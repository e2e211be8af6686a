"""The scopes an access-policy rule can name, each checked the same way everywhere.

A rule names scopes as ``name(request.field)``. A scope that names the caller itself
(``own_institution``, ``own_channel``, ``own_operator_id``) fills an empty field from the
certificate and refuses any other value. Scopes that need stored facts (a person's region, a
settlement's institution) ask the service's `ScopeFacts`; a fact unknown here lets the call
through to the handler, which then answers NOT_FOUND as it would for anyone.

A settlement of another institution is hidden (SETTLEMENT_NOT_FOUND), not refused, so an
institution cannot probe which settlement ids exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableSequence
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf.message import Message

from gongji.binding.v1 import binding_pb2
from gongji.common.v1 import common_pb2
from shared.bindings import Channel
from shared.errors import DomainError, Reason
from shared.principals import Principal, PrincipalKind
from shared.regions import NATIONAL, is_province_wide, province_of
from shared.settlements import settlement_not_found


@dataclass(frozen=True)
class SettlementOwner:
    institution_code: str
    institution_admdvs: str


class ScopeFacts(Protocol):
    """Stored facts a service offers to the scopes; `provided` names the methods it implements."""

    provided: frozenset[str]

    async def person_regions(self, id_number: str) -> frozenset[str]: ...
    async def binding_regions(self, binding_id: str) -> frozenset[str]: ...
    async def settlement_owner(self, settlement_id: str) -> SettlementOwner | None: ...
    async def participant_coordinator(self, transaction_id: str) -> str | None: ...


@dataclass(frozen=True)
class NodeDirectory:
    """The payment nodes of the routing file and their provinces (None: accept any node),
    and the provinces this process serves (None: not a payment node)."""

    provinces: Mapping[str, frozenset[str]] | None = None
    served: frozenset[str] | None = None

    def accepts(self, node: str) -> bool:
        return self.provinces is None or node in self.provinces

    def provinces_of(self, node: str) -> frozenset[str]:
        return frozenset() if self.provinces is None else self.provinces.get(node, frozenset())


@dataclass
class Asked:
    """One call as the scopes see it."""

    principal: Principal
    request: Message
    facts: ScopeFacts
    nodes: NodeDirectory


def read_field(message: Any, path: str) -> Any:
    for name in path.split("."):
        message = getattr(message, name)
    return message


def read_values(message: Any, path: str) -> list[tuple[str, Any]]:
    """The field's values, each with its own path: several when the path runs through a repeated
    message field (``requests[0].transaction_id``, ``requests[1].transaction_id``, …)."""
    found: list[tuple[str, Any]] = [("", message)]
    for name in path.split("."):
        step: list[tuple[str, Any]] = []
        for where, parent in found:
            value, here = getattr(parent, name), f"{where}.{name}" if where else name
            if isinstance(value, MutableSequence):
                step += [(f"{here}[{number}]", item) for number, item in enumerate(value)]
            else:
                step.append((here, value))
        found = step
    return found


def write_field(message: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for name in parents:
        message = getattr(message, name)
    setattr(message, last, value)


def out_of_scope(asked: Asked, why: str, field: str) -> DomainError:
    return DomainError(
        Reason.OUT_OF_SCOPE,
        f"{asked.principal.path} may not {why}",
        metadata={"principal": asked.principal.spiffe_id, "field": field},
    )


def _present(message: Any, path: str) -> bool:
    """Whether every message on the way to the field is set (an absent bill stays absent)."""
    for name in path.split(".")[:-1]:
        if not message.HasField(name):
            return False
        message = getattr(message, name)
    return True


def _fill_or_match(asked: Asked, field: str, own: Any, empty: Any, what: str) -> None:
    if not _present(asked.request, field):
        return  # nothing to act on: the handler refuses the missing message
    value = read_field(asked.request, field)
    if value == empty:
        write_field(asked.request, field, own)
    elif value != own:
        raise out_of_scope(asked, f"act with another {what}", field)


async def own_institution(asked: Asked, field: str) -> None:
    _fill_or_match(asked, field, asked.principal.institution_code, "", "institution's code")


_CHANNEL_VALUE = {channel: common_pb2.Channel.Value(f"CHANNEL_{channel.value}") for channel in Channel}


def _defined(asked: Asked, field: str, enum: Any) -> None:
    """Refuses an enum number the API does not define (proto3 enums are open: a client of newer
    protos may send one) as the malformed input it is, not as a value outside the caller's scope."""
    if not _present(asked.request, field):
        return
    value = read_field(asked.request, field)
    if value not in enum.values():
        raise DomainError(Reason.FIELD_INVALID, f"{field} has no value {value}", field=field)


async def own_channel(asked: Asked, field: str) -> None:
    assert asked.principal.channel is not None
    _defined(asked, field, common_pb2.Channel)
    _fill_or_match(asked, field, _CHANNEL_VALUE[asked.principal.channel], 0, "channel")


async def own_operator_id(asked: Asked, field: str) -> None:
    _fill_or_match(asked, field, asked.principal.operator_id, "", "operator's id")


async def person_actor(asked: Asked, field: str) -> None:
    _defined(asked, field, binding_pb2.Actor)
    if read_field(asked.request, field) not in (0, binding_pb2.ACTOR_GRANTOR, binding_pb2.ACTOR_BENEFICIARY):
        raise out_of_scope(
            asked, "act as an operator or the system; a channel acts for the grantor or beneficiary", field
        )


async def operator_actor(asked: Asked, field: str) -> None:
    _defined(asked, field, binding_pb2.Actor)
    if read_field(asked.request, field) not in (0, binding_pb2.ACTOR_OPERATOR):
        raise out_of_scope(asked, "act as a grantor or beneficiary; an operator acts as OPERATOR", field)


async def region(asked: Asked, field: str) -> None:
    value = read_field(asked.request, field)
    if value and not asked.principal.covers(value):
        raise out_of_scope(asked, f"act on region {value[:6]!r}, outside {asked.principal.admdvs}", field)


async def region_of_person(asked: Asked, field: str) -> None:
    value = read_field(asked.request, field)
    if not value:
        return
    regions = await asked.facts.person_regions(value)
    if not all(asked.principal.covers(admdvs) for admdvs in regions):
        raise out_of_scope(asked, f"act on a person insured outside {asked.principal.admdvs}", field)


async def region_of_binding(asked: Asked, field: str) -> None:
    value = read_field(asked.request, field)
    regions = await asked.facts.binding_regions(value) if value else frozenset()
    if regions and not any(asked.principal.covers(admdvs) for admdvs in regions):
        raise out_of_scope(asked, f"act on a binding of parties insured outside {asked.principal.admdvs}", field)


async def own_settlement(asked: Asked, field: str) -> None:
    value = read_field(asked.request, field)
    owner = await asked.facts.settlement_owner(value) if value else None
    if owner is not None and owner.institution_code != asked.principal.institution_code:
        raise settlement_not_found(value, field)


async def settlement_in_region(asked: Asked, field: str) -> None:
    value = read_field(asked.request, field)
    owner = await asked.facts.settlement_owner(value) if value else None
    if owner is not None and not asked.principal.covers(owner.institution_admdvs):
        raise out_of_scope(asked, f"read a settlement of an institution outside {asked.principal.admdvs}", field)


async def node_operator(asked: Asked, field: str) -> None:
    """National operators, and province-wide ones of a province this node serves."""
    admdvs, served = asked.principal.admdvs, asked.nodes.served or frozenset()
    if admdvs != NATIONAL and not (is_province_wide(admdvs) and province_of(admdvs) in served):
        raise out_of_scope(asked, "read this payment node's books; ask a national or province-wide operator", "")


async def own_province(asked: Asked, field: str) -> None:
    value = read_field(asked.request, field)
    if value not in asked.nodes.provinces_of(asked.principal.node):
        raise out_of_scope(
            asked, f"act for province {str(value)[:2]!r}, which the routing file does not give it", field
        )


async def coordinator_of(asked: Asked, field: str) -> None:
    for where, value in read_values(asked.request, field):
        province = await asked.facts.participant_coordinator(value) if value else None
        if province is not None and province not in asked.nodes.provinces_of(asked.principal.node):
            raise out_of_scope(asked, "act on a transaction another node coordinates", where)


Check = Callable[[Asked, str], Awaitable[None]]


@dataclass(frozen=True)
class Scope:
    check: Check
    # The principal kinds the scope makes sense for.
    kinds: frozenset[PrincipalKind]
    # What it means, for the README's table.
    about: str
    # The ScopeFacts method it reads, if any; the service must provide it.
    fact: str = ""
    needs_field: bool = True


def _scope(check: Check, about: str, *kinds: PrincipalKind, fact: str = "", needs_field: bool = True) -> Scope:
    return Scope(check, frozenset(kinds), about, fact, needs_field)


_I, _C, _O, _N = PrincipalKind.INSTITUTION, PrincipalKind.CHANNEL, PrincipalKind.OPERATOR, PrincipalKind.PAYMENT_NODE

SCOPES: dict[str, Scope] = {
    "own_institution": _scope(
        own_institution, "the field is the caller's institution code (empty: taken from the certificate)", _I
    ),
    "own_settlement": _scope(
        own_settlement, "the settlement is the caller's own; another's is NOT_FOUND to it", _I,
        fact="settlement_owner",
    ),
    "own_channel": _scope(own_channel, "the field is the caller's channel (unset: taken from the certificate)", _C),
    "person_actor": _scope(person_actor, "the actor is the grantor or the beneficiary, never an operator", _C),
    "own_operator_id": _scope(
        own_operator_id, "the field is the caller's operator id (empty: taken from the certificate)", _O
    ),
    "operator_actor": _scope(operator_actor, "the actor is OPERATOR", _O),
    "region": _scope(region, "the region code in the field is within the operator's region", _O),
    "region_of_person": _scope(
        region_of_person, "the person is insured within the operator's region", _O, fact="person_regions"
    ),
    "region_of_binding": _scope(
        region_of_binding, "a party of the binding is insured within the operator's region", _O,
        fact="binding_regions",
    ),
    "settlement_in_region": _scope(
        settlement_in_region, "the settlement's institution is within the operator's region", _O,
        fact="settlement_owner",
    ),
    "node_operator": _scope(
        node_operator, "a national operator, or a province-wide one of a province this node serves", _O,
        needs_field=False,
    ),
    "own_province": _scope(own_province, "the province is one the routing file gives the calling node", _N),
    "coordinator_of": _scope(
        coordinator_of, "the calling node coordinates the transaction", _N, fact="participant_coordinator"
    ),
}  # fmt: skip
