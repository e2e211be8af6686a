"""Who is calling the gateway: an institution, by its client certificate
(spiffe://gongji/institution/<code>) or, where access keys are configured, by signed headers
(_api_access_key, _api_timestamp, _api_signature). A call with neither is refused."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from services.common.security.transport import FORWARDED_CLIENT_CERT, spiffe_id_of_forwarded
from services.gateway.wire.signatures import AccessKey, SignatureRefused, verify
from shared.principals import NotAPrincipal, PrincipalKind, parse_spiffe_id

UNAUTHENTICATED_CALLER = "UNAUTHENTICATED_CALLER"


class NotAuthenticated(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"[{reason}] {message}")
        self.reason = reason
        self.message = message


def _certificate_uris(peercert: Mapping[str, Any] | None) -> list[str]:
    if not peercert:
        return []
    return [value for kind, value in peercert.get("subjectAltName", ()) if kind == "URI"]


def _institution_of(uri: str, source: str) -> str:
    try:
        principal = parse_spiffe_id(uri)
    except NotAPrincipal as problem:
        raise NotAuthenticated(UNAUTHENTICATED_CALLER, f"the {source} names no gongji principal: {problem}") from None
    if principal.kind is not PrincipalKind.INSTITUTION:
        raise NotAuthenticated(
            UNAUTHENTICATED_CALLER, f"the {source} names {principal.spiffe_id}; only institutions call the gateway"
        )
    return principal.institution_code


def institution_of_request(
    request: web.Request, body: bytes, secure: bool, keys: Mapping[str, AccessKey] | None, now: datetime
) -> str:
    """The institution code the request proved; NotAuthenticated otherwise."""
    if secure:
        transport = request.transport
        uris = _certificate_uris(transport.get_extra_info("peercert") if transport is not None else None)
        if len(uris) > 1:
            raise NotAuthenticated(UNAUTHENTICATED_CALLER, "a client certificate must carry exactly one URI SAN")
        if uris:
            return _institution_of(uris[0], "client certificate")
    else:
        # Sent twice it names two callers; reading the first would let whatever sent it first decide.
        forwarded_headers = request.headers.getall(FORWARDED_CLIENT_CERT, [])
        if len(forwarded_headers) > 1:
            raise NotAuthenticated(
                UNAUTHENTICATED_CALLER, f"the {FORWARDED_CLIENT_CERT} header is sent {len(forwarded_headers)} times"
            )
        forwarded = forwarded_headers[0] if forwarded_headers else None
        uri = spiffe_id_of_forwarded(forwarded) if forwarded else None
        if uri:
            return _institution_of(uri, FORWARDED_CLIENT_CERT + " header")
    if keys is None:
        raise NotAuthenticated(
            UNAUTHENTICATED_CALLER, "present a client certificate naming spiffe://gongji/institution/<code>"
        )
    try:
        return verify(request.headers, body, keys, now)
    except SignatureRefused as refused:
        raise NotAuthenticated(refused.reason, refused.message) from None
