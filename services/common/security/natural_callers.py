"""Stubs that make every call as the principal a real deployment would make it as, for the
demo and the test suite.

`ActingStub` lets a walk-through write `payment.Settle(request)` while each call travels over
mutual TLS with the certificate of its natural caller: a bill goes out as the hospital named
in it, a binding application as the channel named in it, a registry sync as a national
operator, ResolvePayers as a payment node. `Roles` remembers which institution made each
settlement and who sent each request_id, so a later capture or reversal comes from the same
institution. Nothing here widens what a principal may do: the servers judge every call by
the access policy as they would any other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.common.v1 import common_pb2 as common
from services.common.security.development_pki import DevelopmentPKI
from shared.bindings import Channel
from shared.principals import (
    NotAPrincipal,
    Principal,
    PrincipalKind,
    channel_principal,
    institution,
    operator,
    payment_node,
)

DEFAULT_INSTITUTION = "H32010001"
DEFAULT_OPERATOR = "ops"
NATIONAL = "000000"

_OPERATOR_METHODS = {
    "UpsertInsuredPerson", "ReportLifeEvent", "PutRegionPolicy", "ReviewBinding", "GetRegionPolicy",
    "ListRegionPolicies", "CreditAccount", "SuspendSettlement", "LiftSuspension", "ListViolations", "CheckLedger",
    "GetClearingReport",
}  # fmt: skip
_INSTITUTION_BY_BILL = {"QuoteSettlement", "AuthorizeSettlement", "Settle"}
_INSTITUTION_BY_SETTLEMENT = {"CaptureSettlement", "ReleaseSettlement", "RefundSettlement", "GetSettlement"}


def _national_operator(operator_id: str) -> Principal:
    try:
        return operator(NATIONAL, operator_id or DEFAULT_OPERATOR)
    except NotAPrincipal:
        return operator(NATIONAL, DEFAULT_OPERATOR)


def _institution(code: str) -> Principal:
    try:
        return institution(code or DEFAULT_INSTITUTION)
    except NotAPrincipal:
        return institution(DEFAULT_INSTITUTION)


def _channel(value: int) -> Principal:
    if value == common.CHANNEL_UNSPECIFIED or value not in common.Channel.values():
        return channel_principal(Channel.NATIONAL_APP)
    return channel_principal(Channel(common.Channel.Name(value).removeprefix("CHANNEL_")))


class Roles:
    """Who makes which call, and the memory that keeps follow-up calls with their first caller."""

    def __init__(self, node_caller: str = "local") -> None:
        self.node_caller = node_caller
        # Who made the latest call (the demo prints it).
        self.last: Principal | None = None
        self._institution_of_settlement: dict[str, str] = {}
        self._principal_of_request: dict[str, Principal] = {}
        self._last_institution: Principal | None = None
        self._lock = threading.Lock()

    def principal_for(self, method: str, request: Any) -> Principal:
        if method in _OPERATOR_METHODS:
            return _national_operator(getattr(request, "operator_id", ""))
        if method in _INSTITUTION_BY_BILL:
            return _institution(request.bill.institution_code)
        if method in _INSTITUTION_BY_SETTLEMENT:
            with self._lock:
                return _institution(self._institution_of_settlement.get(request.settlement_id, ""))
        if method == "ReconcileInstitution":
            return _institution(request.institution_code)
        if method == "ReverseRequest":
            # The sender of the original; for one that never arrived, the institution heard from last.
            with self._lock:
                known = self._principal_of_request.get(request.original_request_id)
                return known or self._last_institution or _institution("")
        if method == "CreateBinding":
            return _channel(request.channel)
        if method == "EndBinding":
            if request.actor == bpb.ACTOR_OPERATOR:
                return _national_operator(request.actor_id)
            return _channel(request.channel)
        if method in ("ResolvePayers", "CheckWalletTransfer") or method in _NODE_METHODS:
            return payment_node(self.node_caller)
        return channel_principal(Channel.NATIONAL_APP)

    def remember(self, request: Any, principal: Principal, response: Any) -> None:
        with self._lock:
            if principal.kind is PrincipalKind.INSTITUTION:
                self._last_institution = principal
            if getattr(request, "request_id", ""):
                self._principal_of_request[request.request_id] = principal
            settlement = getattr(response, "settlement", None)
            if settlement is not None and settlement.settlement_id:
                self._institution_of_settlement[settlement.settlement_id] = settlement.bill.institution_code


_NODE_METHODS = {
    "GetPayerCapacity", "PrepareLegs", "CommitLegs", "BatchCommitLegs", "AbortLegs", "RefundLegs",
    "GetTransactionOutcome", "CreditWallet", "DeclineWalletCredit",
}  # fmt: skip


class ActingStub:
    """A service stub whose every call goes out over a channel of its natural caller."""

    def __init__(
        self, stub_class: Callable[[grpc.Channel], Any], address: str, pki: DevelopmentPKI, roles: Roles
    ) -> None:
        self._stub_class = stub_class
        self._address = address
        self._pki = pki
        self._roles = roles
        self._stubs: dict[Principal, Any] = {}
        self._channels: dict[Principal, grpc.Channel] = {}
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return self._address

    @property
    def roles(self) -> Roles:
        return self._roles

    def stub_as(self, principal: Principal) -> Any:
        """The plain stub of one principal (its channel is kept open with this stub)."""
        with self._lock:
            if principal not in self._stubs:
                self._channels[principal] = self._pki.channel(self._address, principal)
                self._stubs[principal] = self._stub_class(self._channels[principal])
            return self._stubs[principal]

    def as_principal(self, principal: Principal) -> Any:
        """A stub whose every call is made as this principal, whatever the call."""
        return _Pinned(self, principal)

    def prepare(self, method: str, request: Any, timeout: float = 30) -> None:
        """Opens the channel the call would use now, so a race starts with connected callers."""
        principal = self._roles.principal_for(method, request)
        self.stub_as(principal)
        grpc.channel_ready_future(self._channels[principal]).result(timeout=timeout)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(request: Any, *args: Any, **kwargs: Any) -> Any:
            principal = self._roles.principal_for(method, request)
            self._roles.last = principal
            response = getattr(self.stub_as(principal), method)(request, *args, **kwargs)
            self._roles.remember(request, principal, response)
            return response

        return call

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
            self._stubs.clear()


class _Pinned:
    def __init__(self, acting: ActingStub, principal: Principal) -> None:
        self._acting = acting
        self._principal = principal

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(request: Any, *args: Any, **kwargs: Any) -> Any:
            self._acting._roles.last = self._principal
            return getattr(self._acting.stub_as(self._principal), method)(request, *args, **kwargs)

        return call
