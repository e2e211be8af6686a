"""Who is calling: the principal named by the peer's certificate, or, for a call a payment
node or the gateway forwards for someone else, the principal it acts for.

The call guard records the caller for the handler's task; servicers read it with
`current_caller()` (for instance to key idempotency by principal, or to forward a bill in
the original caller's name).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

import grpc

from services.common.security.transport import FORWARDED_CLIENT_CERT, spiffe_id_of_forwarded
from shared.errors import DomainError, Reason
from shared.principals import NotAPrincipal, Principal, PrincipalKind, parse_spiffe_id

# Metadata a payment node (or the gateway) adds when it forwards a call on behalf of its caller.
ACTING_FOR = "gongji-acting-for"


@dataclass(frozen=True)
class Caller:
    """The principal a call is judged as, and the node that forwarded it, if one did."""

    principal: Principal
    via: Principal | None = None

    def describe(self) -> str:
        return f"{self.principal.spiffe_id} via {self.via.spiffe_id}" if self.via else self.principal.spiffe_id


_CURRENT: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("gongji_caller", default=None)


def current_caller() -> Caller | None:
    return _CURRENT.get()


def set_current_caller(caller: Caller | None) -> contextvars.Token[Caller | None]:
    return _CURRENT.set(caller)


def forwarded() -> bool:
    """Whether the current call was forwarded here by another payment node for its caller.

    A call the gateway makes for an institution is not: it arrives as if the institution had
    sent it, and this node passes it on to the node of the institution's province like any
    other (only a node-to-node forward is never passed on again)."""
    caller = _CURRENT.get()
    return caller is not None and caller.via is not None and caller.via.kind is PrincipalKind.PAYMENT_NODE


def reset_current_caller(token: contextvars.Token[Caller | None]) -> None:
    _CURRENT.reset(token)


def caller_id() -> str:
    """The SPIFFE ID of the principal the current call is judged as ("" outside a call):
    the owner of its idempotency keys, and the name a forwarded call is made in."""
    caller = _CURRENT.get()
    return caller.principal.spiffe_id if caller is not None else ""


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    """The one value of an identity header. Sent twice it names two principals, and reading the
    first (as the call was judged before) would let whatever sent it first decide: refused."""
    values = [item.value for item in context.invocation_metadata() or () if item.key == key]
    if len(values) > 1:
        raise DomainError(Reason.UNAUTHENTICATED_CALLER, f"the {key} header is sent {len(values)} times; send it once")
    if not values:
        return None
    (value,) = values
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _parse(uri: str, source: str) -> Principal:
    try:
        return parse_spiffe_id(uri)
    except NotAPrincipal as problem:
        raise DomainError(Reason.UNAUTHENTICATED_CALLER, f"the {source} names no gongji principal: {problem}") from None


def direct_principal(context: grpc.aio.ServicerContext, secure: bool) -> Principal | None:
    """The peer's principal; None when the call carries no identity at all."""
    if secure:
        # URI SANs only ("x509_subject_alternative_name" mixes in DNS names and e-mail addresses,
        # which a CA may issue to whoever asks), and exactly one, as X.509 SVIDs carry it.
        uris = context.auth_context().get("peer_uri", [])
        if len(uris) != 1 or not uris[0].startswith(b"spiffe://"):
            raise DomainError(
                Reason.UNAUTHENTICATED_CALLER,
                "a client certificate must carry exactly one URI SAN, its SPIFFE ID",
            )
        return _parse(uris[0].decode("utf-8", "replace"), "client certificate")
    forwarded = _metadata(context, FORWARDED_CLIENT_CERT)
    if forwarded is None:
        return None
    uri = spiffe_id_of_forwarded(forwarded)
    if uri is None:
        raise DomainError(Reason.UNAUTHENTICATED_CALLER, f"{FORWARDED_CLIENT_CERT} names no URI")
    return _parse(uri, FORWARDED_CLIENT_CERT + " header")


def acting_for(context: grpc.aio.ServicerContext) -> Principal | None:
    """The principal a forwarding node or the gateway says it acts for, if it says so."""
    value = _metadata(context, ACTING_FOR)
    return None if value is None else _parse(value, ACTING_FOR + " header")
