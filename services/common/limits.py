"""Bounds on what one server takes at once, so a flood slows no one down for long: excess
calls are shed with RESOURCE_EXHAUSTED at once instead of queueing without end.

- `max_concurrent_rpcs`: calls in the server at once (gRPC itself refuses the rest);
- `calls_per_principal` and `streams_per_principal`: what one caller may have running
  (health watches and reflection streams count apart), so no one caller takes the server;
- `max_waiting_work`: use cases waiting for a worker thread (runner: SERVER_BUSY beyond);
- `max_message_bytes`: the largest request (gRPC: RESOURCE_EXHAUSTED beyond);
- `streams_per_connection`: calls one connection may carry at once (gRPC refuses the rest,
  UNAVAILABLE), and `max_pending_calls`: calls gRPC holds until the service takes them
  (beyond it gRPC cancels new ones; it is set high, so that the service itself sheds);
- `max_connections`: connections the server holds at once (by default three quarters of the
  process's open-file limit, so a flood of connections leaves it the files its database needs;
  beyond it a new connection is closed at once), and `handshake_timeout_ms`: how long a
  connection may take to finish its TLS handshake before it is closed;
- keepalive: clients may ping at most every `min_ping_interval_ms` without calls in flight
  (a ping flood gets the connection closed); idle connections close after
  `max_connection_idle_ms`, and every connection is renewed after `max_connection_age_ms`.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Any


def _open_file_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


@dataclass(frozen=True)
class ServerLimits:
    max_concurrent_rpcs: int = 1024
    calls_per_principal: int = 256
    streams_per_principal: int = 16
    max_waiting_work: int = 256
    max_message_bytes: int = 1 << 20
    streams_per_connection: int = 256
    max_pending_calls: int = 10_000
    min_ping_interval_ms: int = 10_000
    max_connection_idle_ms: int = 15 * 60_000
    max_connection_age_ms: int = 60 * 60_000
    max_connections: int = 0  # 0: three quarters of the process's open-file limit
    handshake_timeout_ms: int = 10_000

    def connections(self) -> int:
        return self.max_connections or max(16, _open_file_limit() * 3 // 4)

    def grpc_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_concurrent_streams", self.streams_per_connection),
            ("grpc.server.max_pending_requests", self.max_pending_calls),
            ("grpc.server.max_pending_requests_hard_limit", 2 * self.max_pending_calls),
            ("grpc.max_send_message_length", 4 * self.max_message_bytes),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", self.min_ping_interval_ms),
            ("grpc.http2.min_ping_interval_without_data_ms", self.min_ping_interval_ms),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.keepalive_permit_without_calls", 0),
            ("grpc.max_connection_idle_ms", self.max_connection_idle_ms),
            ("grpc.max_connection_age_ms", self.max_connection_age_ms),
            ("grpc.max_connection_age_grace_ms", 30_000),
            ("grpc.max_allowed_incoming_connections", self.connections()),
            ("grpc.server_handshake_timeout_ms", self.handshake_timeout_ms),
        ]
