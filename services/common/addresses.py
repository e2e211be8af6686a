"""HOST:PORT addresses as the command line, the environment and the routing file give them,
checked before anything starts. Unchecked, a mistake did not stop the start: gRPC listens on a
port above 65535 modulo 65536 (127.0.0.1:70000 served on 4464), a name without a port is dialled
on 443 (gRPC's default), and the HTTP listeners failed with a traceback."""

from __future__ import annotations

import socket

# gRPC name-resolver schemes a dialled address may start with; what follows is the resolver's.
_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:", "xds:")
_HIGHEST_PORT = 65535


def host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT with a port of 0 to 65535 ([::1]:50051 gives "::1"), or None."""
    host, colon, port = address.rpartition(":")
    if not colon or not (port.isascii() and port.isdigit()) or int(port) > _HIGHEST_PORT:
        return None
    return host.strip("[]"), int(port)


def check_listen_address(address: str, name: str) -> tuple[str, int]:
    """The host and port to listen on, or a ValueError whose message starts with `name` (the flag)."""
    parsed = host_and_port(address)
    if parsed is None:
        raise ValueError(f"{name} {address!r} is not HOST:PORT with a port from 0 to {_HIGHEST_PORT}")
    return parsed


def check_dial_address(address: str, name: str) -> str:
    """An address to call: HOST:PORT with a port from 1 to 65535, or a gRPC target with its scheme
    (dns:///binding:50051, unix:/run/gongji.sock); else a ValueError whose message starts with `name`."""
    if address.startswith(_SCHEMES):
        return address
    parsed = host_and_port(address)
    if parsed is None or not parsed[0] or parsed[1] == 0:
        raise ValueError(
            f"{name} {address!r} is not HOST:PORT with a port from 1 to {_HIGHEST_PORT} (without a port, gRPC "
            "would dial 443)"
        )
    return address


def why_not_listening(address: str) -> str | None:
    """Why this process cannot listen on `address` ("Address already in use"), found by binding a
    socket there; gRPC's own error says only that it failed, and sends the cause to stderr apart."""
    parsed = host_and_port(address)
    if parsed is None:
        return None
    host, port = parsed
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as error:
        return f"{host}: {error.strerror}"
    for family, kind, protocol, _, place in found:
        with socket.socket(family, kind, protocol) as probe:
            try:
                probe.bind(place)
            except OSError as error:
                return error.strerror
    return None
