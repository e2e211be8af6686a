"""Channels one gongji service uses to call another: mutual TLS with the caller's own
certificate, a default deadline on every call, retries of UNAVAILABLE with backoff
(every mutating call carries an idempotency key, so a retry is safe), and keepalive
to notice dead peers. A server with metrics counts every call its peer channels make."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry.sdk.trace import TracerProvider

from services.common.metrics import ClientRpcMetrics
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


class ClientMetrics(grpc.aio.UnaryUnaryClientInterceptor):
    """Counts and times each call by the status it ends with: the peer's answer, or the
    DEADLINE_EXCEEDED or UNAVAILABLE grpc reports when the peer never answered."""

    def __init__(self, metrics: ClientRpcMetrics) -> None:
        self._metrics = metrics

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        method = method.decode() if isinstance(method, bytes) else method
        self._metrics.started("unary", method)
        started = time.perf_counter()
        code = "UNKNOWN"
        try:
            call = await continuation(client_call_details, request)
            # code() waits for the end without raising, and the caller still gets the call
            # itself, its metadata and its error intact.
            code = (await call.code()).name
            return call
        except grpc.aio.AioRpcError as error:
            code = error.code().name
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED.name
            raise
        finally:
            self._metrics.handled("unary", method, code, time.perf_counter() - started)


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
    metrics: ClientRpcMetrics | None = None,
    own_connection: bool = False,
) -> grpc.aio.Channel:
    """With own_connection, the channel shares no connection with other channels to the same
    peer (the payer watch: its reconnect attempts while the peer is down must not leave the
    calls' connection waiting out a long backoff)."""
    # Ahead of the tracer and the deadline: a call's time includes its retries and the tracing.
    counted = [ClientMetrics(metrics)] if metrics is not None else []
    return transport.aio_channel(
        address,
        options=[
            ("grpc.service_config", service_config(service)),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            # A peer back from a restart is reached within a second, not after gRPC's default
            # backoff of up to two minutes (calls fail fast while a connection is backing off).
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1_000),
            *([("grpc.use_local_subchannel_pool", 1)] if own_connection else []),
        ],
        interceptors=[*counted, *client_interceptors(tracer_provider), DefaultDeadline(default_deadline)],
    )
