"""Channels one gongji service uses to call another: mutual TLS with the caller's own
certificate, a default deadline on every call, retries of UNAVAILABLE with backoff
(every mutating call carries an idempotency key, so a retry is safe), and keepalive
to notice dead peers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry.sdk.trace import TracerProvider

from services.common.security.transport import Transport
from services.common.tracing import client_interceptors


class DefaultDeadline(grpc.aio.UnaryUnaryClientInterceptor):
    """Gives a call without a deadline this one, so no call waits forever."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        if client_call_details.timeout is None:
            client_call_details = client_call_details._replace(timeout=self._seconds)  # type: ignore[attr-defined]
        return await continuation(client_call_details, request)


def service_config(service: str, attempts: int = 3) -> str:
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": service}],
                    "retryPolicy": {
                        "maxAttempts": attempts,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "0.5s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def peer_channel(
    address: str,
    service: str,
    transport: Transport,
    default_deadline: float = 2.0,
    tracer_provider: TracerProvider | None = None,
) -> grpc.aio.Channel:
    return transport.aio_channel(
        address,
        options=[
            ("grpc.service_config", service_config(service)),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ],
        interceptors=[*client_interceptors(tracer_provider), DefaultDeadline(default_deadline)],
    )
