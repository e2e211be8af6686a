"""How a gongji process speaks on the network: mutual TLS, or plaintext on loopback.

With TLS every port requires a client certificate signed by the configured CA, and every
outgoing call presents the process's own certificate. The process's principal is the
SPIFFE ID in that certificate, which must be the one its role calls for.

`--insecure` is for development only: plaintext, allowed on a loopback address alone, with a
warning. There the caller's identity is read from an ``x-forwarded-client-cert`` header
(``URI=spiffe://…``), as a local TLS-terminating sidecar (Envoy) forwards it; gongji's own
processes send it for themselves.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from services.common.security.certificates import certificate_problem, spiffe_ids_in
from shared.principals import Principal

log = logging.getLogger(__name__)

FORWARDED_CLIENT_CERT = "x-forwarded-client-cert"


class TransportError(ValueError):
    """A TLS setting that cannot work; the message says what to change."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        try:
            return self.cert.read_bytes(), self.key.read_bytes(), self.ca.read_bytes()
        except OSError as error:
            raise TransportError(f"cannot read TLS file {error.filename}: {error.strerror}") from None

    def check(self) -> tuple[bytes, bytes, bytes]:
        """The files' bytes (as `read`), or a TransportError saying what to change when peers would
        refuse them at every handshake: a key of another certificate, an expired certificate,
        another CA's."""
        cert, key, ca = self.read()
        try:
            problem = certificate_problem(cert, key, ca, datetime.now(UTC))
        except ValueError:
            problem = "the certificate file holds no PEM certificate"
        if problem:
            raise TransportError(f"--tls-cert {self.cert}, --tls-key {self.key}, --tls-ca {self.ca}: {problem}")
        return cert, key, ca


def is_loopback(address: str) -> bool:
    """Whether HOST:PORT names this machine only (127.0.0.0/8, ::1 or localhost)."""
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Transport:
    """A process's identity and how it secures its ports and its calls."""

    identity: Principal
    tls: TlsFiles | None = None

    @classmethod
    def mutual_tls(cls, files: TlsFiles, expected: Principal) -> Transport:
        """Reads the files now, so a wrong path, a certificate of another principal, an expired
        one, one the CA did not sign or a key of another certificate stops the start."""
        cert, _, _ = files.check()
        found = spiffe_ids_in(cert)
        if found != [expected.spiffe_id]:
            shown = ", ".join(found) or "no SPIFFE ID"
            raise TransportError(f"{files.cert} names {shown}; this process must present {expected.spiffe_id}")
        return cls(expected, files)

    @classmethod
    def insecure(cls, identity: Principal) -> Transport:
        return cls(identity, None)

    @property
    def secure(self) -> bool:
        return self.tls is not None

    def check_listen_address(self, address: str) -> None:
        if self.tls is None:
            if not is_loopback(address):
                raise TransportError(
                    f"--insecure serves plaintext and is allowed only on a loopback address, not {address}; "
                    "give --tls-cert, --tls-key and --tls-ca"
                )
            log.warning("serving PLAINTEXT on %s without client certificates (--insecure): development only", address)

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if self.tls is None:
            return None
        cert, key, ca = self.tls.read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        if self.tls is None:
            return None
        cert, key, ca = self.tls.read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """On plaintext, the header that names this process to its loopback peers."""
        if self.tls is not None:
            return []
        return [ForwardedIdentity(self.identity), ForwardedIdentityOnStreams(self.identity)]

    def aio_channel(self, address: str, options: list[tuple[str, Any]], interceptors: list[Any]) -> grpc.aio.Channel:
        credentials = self.channel_credentials()
        interceptors = [*self.client_interceptors(), *interceptors]
        if credentials is None:
            return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
        return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors)


def forwarded_client_cert(principal: Principal) -> str:
    return f"URI={principal.spiffe_id}"


def spiffe_id_of_forwarded(header: str) -> str | None:
    """The URI of the nearest hop of an x-forwarded-client-cert header (Envoy's format); None
    when the hop names none, or more than one (Envoy writes a URI pair per URI SAN, and an X.509
    SVID carries exactly one), or the header is malformed.

    A value holding ``,``, ``;`` or ``=`` is double-quoted (``\\"`` for a quote inside), as a
    certificate's Subject often is: separators inside quotes split nothing, so a Subject the
    certificate's holder chose (``CN=x;URI=spiffe://…``) is never read as a URI of its own."""
    elements = _split_unquoted(header, ",")
    if elements is None:
        return None
    pairs = _split_unquoted(elements[-1], ";") or []
    uris = []
    for pair in pairs:
        key, _, value = pair.strip().partition("=")
        if key.strip().upper() == "URI":
            uris.append(_unquoted(value.strip()))
    return (uris[0] or None) if len(uris) == 1 else None


def _split_unquoted(text: str, separator: str) -> list[str] | None:
    """The parts of `text` between separators outside double quotes; None when a quote is left open."""
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for index, character in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and character == "\\":
            escaped = True
        elif character == '"':
            quoted = not quoted
        elif character == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    if quoted:
        return None
    parts.append(text[start:])
    return parts


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def _named(details: grpc.aio.ClientCallDetails, header: tuple[str, str]) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()), header)
    return details._replace(metadata=metadata)  # type: ignore[attr-defined, no-any-return]


class ForwardedIdentity(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds x-forwarded-client-cert naming this process (plaintext loopback only)."""

    def __init__(self, principal: Principal) -> None:
        self.header = (FORWARDED_CLIENT_CERT, forwarded_client_cert(principal))

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_named(client_call_details, self.header), request)


class ForwardedIdentityOnStreams(grpc.aio.StreamStreamClientInterceptor):
    """The same for streams both ways (the payer watch): grpc.aio gives an interceptor one kind of call."""

    def __init__(self, principal: Principal) -> None:
        self.header = (FORWARDED_CLIENT_CERT, forwarded_client_cert(principal))

    async def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await continuation(_named(client_call_details, self.header), request_iterator)
