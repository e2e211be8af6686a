"""The access policy: which kinds of principal may call which RPC, within what scope.

It is data (`access_policy.json` is the shipped default; `--access-policy FILE` replaces it)::

    {"services": {"gongji.payment.v1.PaymentService": {
        "Settle": [{"principal": "institution", "scopes": ["own_institution(bill.institution_code)"]}],
        ...}},
     "acting_for_others": {"gongji.payment.v1.PaymentService": {
         "service/payment": ["Settle", "GetAccount", ...], "service/gateway": ["*"]}},
     "may_represent": {"service/payment": ["*"], "service/gateway": ["institution"]}}

A method maps to rules, one per principal kind; a call is allowed when the caller's kind
has a rule and every scope of it holds. Anything without a rule is denied. ``"*"`` is any
authenticated principal; ``"anyone"`` also admits a caller without one (health checks on a
plaintext loopback port). ``acting_for_others`` names who may forward a call for another
principal on which service, and which of its methods (a payment node passing a bill, a
settlement's follow-up or an account read to the node that keeps it; the gateway passing an
institution's transaction on); ``["*"]``, or a bare list of kinds, is every method. A payment
node's list is short on purpose: a node acting for an operator could otherwise credit accounts
or suspend persons on another province's node, which no forwarding ever needs.
``may_represent`` says whom each of those forwarders may act for (``"*"``: any principal);
every forwarder needs an entry. Anything
else sent with ``gongji-acting-for`` is refused as CALLER_NOT_ALLOWED. An admitted call is
judged as the original caller's, by that caller's rules and scopes.

The file is checked when it is loaded: unknown services, methods, kinds, scopes and request
fields are errors, so a typo cannot open or close a door unnoticed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor

from services.common.security.scopes import SCOPES, Asked
from shared.errors import DomainError, Reason
from shared.principals import Principal, PrincipalKind

ANY_AUTHENTICATED = "*"
ANYONE = "anyone"
_SCOPE_TEXT = re.compile(r"(?P<name>[a-z_]+)(?:\((?P<field>[a-z_.]+)\))?")


class AccessPolicyError(ValueError):
    """The policy file is malformed; the message names the place."""


@dataclass(frozen=True)
class Rule:
    principal: str  # a PrincipalKind value, "*" or "anyone"
    scopes: tuple[tuple[str, str], ...] = ()

    async def check(self, asked: Asked) -> None:
        for name, field in self.scopes:
            await SCOPES[name].check(asked, field)

    def describe(self) -> str:
        scopes = ", ".join(f"{name}({field})" if field else name for name, field in self.scopes)
        return f"{self.principal} [{scopes}]" if scopes else self.principal


@dataclass(frozen=True)
class AccessPolicy:
    # "/package.Service/Method" → rules
    rules: Mapping[str, tuple[Rule, ...]]
    # service full name → principal kinds that may act for other principals there → the method
    # names they may forward ("*": all)
    acting_for_others: Mapping[str, Mapping[PrincipalKind, frozenset[str]]]
    # forwarder kind → the kinds of principal it may act for
    represents: Mapping[PrincipalKind, frozenset[PrincipalKind]]

    @classmethod
    def shipped(cls) -> AccessPolicy:
        return cls.parse(json.loads(resources.files(__package__).joinpath("access_policy.json").read_text("utf-8")))

    @classmethod
    def load(cls, path: Path) -> AccessPolicy:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise AccessPolicyError(f"cannot read access policy {path}: {error}") from None
        return cls.parse(data)

    @classmethod
    def parse(cls, data: Any) -> AccessPolicy:
        if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
            raise AccessPolicyError('an access policy is an object with a "services" object')
        rules: dict[str, tuple[Rule, ...]] = {}
        for service, methods in data["services"].items():
            if not isinstance(methods, dict):
                raise AccessPolicyError(f"{service}: expected an object of methods")
            for method, entries in methods.items():
                rules[f"/{service}/{method}"] = tuple(_rule(f"{service}/{method}", entry) for entry in entries)
        acting = _forwarding(data.get("acting_for_others") or {})
        return cls(rules, acting, _represents(data.get("may_represent") or {}, acting))

    def rule_for(self, method: str, principal: Principal | None) -> Rule | None:
        """The rule that lets this caller call this method, if any (default deny)."""
        for rule in self.rules.get(method, ()):
            if rule.principal == ANYONE or (
                principal is not None and rule.principal in (ANY_AUTHENTICATED, principal.kind.value)
            ):
                return rule
        return None

    def may_act_for_others(self, method: str, principal: Principal) -> bool:
        """Whether this principal may forward calls of this method for others."""
        _, service, name = method.split("/", 2)
        methods = self.acting_for_others.get(service, {}).get(principal.kind, frozenset())
        return ANY_AUTHENTICATED in methods or name in methods

    def may_represent(self, forwarder: Principal, represented: Principal) -> bool:
        """Whether this forwarder may act for that principal (the gateway: institutions only)."""
        return represented.kind in self.represents.get(forwarder.kind, frozenset())

    def check_against(self, services: Iterable[ServiceDescriptor], provided_facts: frozenset[str]) -> list[str]:
        """Problems of this policy for a server of these services: methods it does not know,
        request fields that do not exist, facts the server cannot give. RPCs without a rule
        are listed too; they are denied, which a shipped policy should say explicitly."""
        problems: list[str] = []
        served: dict[str, Descriptor] = {}
        for service in services:
            for method in service.methods:
                served[f"/{service.full_name}/{method.name}"] = method.input_type
        for method, rules in self.rules.items():
            request = served.get(method)
            if request is None:
                continue  # a rule for another server's service
            for rule in rules:
                for name, field in rule.scopes:
                    scope = SCOPES[name]
                    if scope.fact and scope.fact not in provided_facts:
                        problems.append(f"{method}: scope {name} needs {scope.fact}, which this server cannot tell")
                    if field and not _has_field(request, field):
                        problems.append(f"{method}: scope {name} names {field}, which {request.name} does not have")
        problems += [f"{method}: no rule, so nobody may call it" for method in served if method not in self.rules]
        for service, forwarders in self.acting_for_others.items():
            known = {method.split("/")[2] for method in served if method.split("/")[1] == service}
            if not known:
                continue  # another server's service
            for kind, methods in forwarders.items():
                problems += [
                    f"acting_for_others.{service}.{kind.value}: {name} is no method of the service"
                    for name in sorted(methods - known - {ANY_AUTHENTICATED})
                ]
        return problems

    def table(self) -> list[tuple[str, str]]:
        """(method, who may call it) for every method with rules, for the README."""
        return [
            (method.lstrip("/"), "; ".join(rule.describe() for rule in rules) or "nobody")
            for method, rules in sorted(self.rules.items())
        ]


def _kind(where: str, value: Any) -> PrincipalKind:
    try:
        return PrincipalKind(value)
    except ValueError:
        kinds = ", ".join(kind.value for kind in PrincipalKind)
        raise AccessPolicyError(f"{where}: unknown principal kind {value!r} (one of {kinds})") from None


def _forwarding(data: Any) -> dict[str, dict[PrincipalKind, frozenset[str]]]:
    """``acting_for_others``: per service, the forwarder kinds and the methods each may forward;
    a bare list of kinds lets them forward every method."""
    if not isinstance(data, dict):
        raise AccessPolicyError("acting_for_others: expected an object of service → forwarders")
    acting: dict[str, dict[PrincipalKind, frozenset[str]]] = {}
    for service, forwarders in data.items():
        where = f"acting_for_others.{service}"
        if isinstance(forwarders, list):
            forwarders = {kind: [ANY_AUTHENTICATED] for kind in forwarders}
        if not isinstance(forwarders, dict):
            raise AccessPolicyError(f"{where}: expected forwarder kinds, or an object of kind → method names")
        acting[service] = {}
        for kind, methods in forwarders.items():
            if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
                raise AccessPolicyError(f'{where}.{kind}: expected a list of method names (or ["*"])')
            acting[service][_kind(where, kind)] = frozenset(methods)
    return acting


def _represents(
    data: Any, acting: Mapping[str, Mapping[PrincipalKind, frozenset[str]]]
) -> dict[PrincipalKind, frozenset[PrincipalKind]]:
    """``may_represent``: for each forwarder, the kinds it may act for ("*": all). Every kind
    that ``acting_for_others`` lets forward needs an entry, and every entry a forwarder, so
    a forgotten or misspelt line is an error and never a door left open."""
    if not isinstance(data, dict):
        raise AccessPolicyError("may_represent: expected an object of forwarder kind → principal kinds")
    represents: dict[PrincipalKind, frozenset[PrincipalKind]] = {}
    for forwarder, kinds in data.items():
        where = f"may_represent.{forwarder}"
        if not isinstance(kinds, list):
            raise AccessPolicyError(f"{where}: expected a list of principal kinds")
        represents[_kind(where, forwarder)] = (
            frozenset(PrincipalKind) if ANY_AUTHENTICATED in kinds else frozenset(_kind(where, kind) for kind in kinds)
        )
    forwarders: frozenset[PrincipalKind] = frozenset().union(*(kinds.keys() for kinds in acting.values()))
    unsaid = sorted(kind.value for kind in forwarders - represents.keys())
    if unsaid:
        raise AccessPolicyError(
            f"may_represent: {', '.join(unsaid)} may act for others (acting_for_others) but no entry says for whom"
        )
    idle = sorted(kind.value for kind in represents.keys() - forwarders)
    if idle:
        raise AccessPolicyError(f"may_represent.{idle[0]}: acting_for_others lets it act for others nowhere")
    return represents


def _rule(where: str, entry: Any) -> Rule:
    if not isinstance(entry, dict) or "principal" not in entry:
        raise AccessPolicyError(f'{where}: a rule is an object with "principal" and optional "scopes"')
    principal = entry["principal"]
    if principal not in (ANY_AUTHENTICATED, ANYONE):
        principal = _kind(where, principal).value
    scopes = []
    for text in entry.get("scopes", []):
        match = _SCOPE_TEXT.fullmatch(str(text))
        if match is None or match["name"] not in SCOPES:
            raise AccessPolicyError(f"{where}: unknown scope {text!r} (one of {', '.join(sorted(SCOPES))})")
        scope = SCOPES[match["name"]]
        if principal in (ANY_AUTHENTICATED, ANYONE) or PrincipalKind(principal) not in scope.kinds:
            raise AccessPolicyError(f"{where}: scope {match['name']} does not apply to principal {principal!r}")
        if scope.needs_field != bool(match["field"]):
            raise AccessPolicyError(
                f"{where}: scope {match['name']} {'needs' if scope.needs_field else 'takes no'} field"
            )
        scopes.append((match["name"], match["field"] or ""))
    return Rule(principal, tuple(scopes))


def _has_field(message: Descriptor, path: str) -> bool:
    for name in path.split("."):
        field = message.fields_by_name.get(name)
        if field is None:
            return False
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            message = field.message_type
    return True


def denied(principal: Principal | None, method: str) -> DomainError:
    if principal is None:
        return DomainError(
            Reason.UNAUTHENTICATED_CALLER, "this call needs a client certificate that names a gongji principal"
        )
    return DomainError(
        Reason.CALLER_NOT_ALLOWED,
        f"{principal.path} may not call {method.rsplit('/', 1)[-1]}",
        metadata={"principal": principal.spiffe_id},
    )
