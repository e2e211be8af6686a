"""Server interceptor that turns every way a handler can fail into a rich status.

Handlers raise DomainError (or return normally); this layer aborts with the
matching code, google.rpc.ErrorInfo and BadRequest, logs one line per call,
and refuses work whose deadline has already passed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DataError

from services.common.status import internal_status, plain_status, status_of
from shared.errors import DomainError

log = logging.getLogger("gongji.rpc")


class RpcFailure(Exception):
    """A refusal already expressed as a status, e.g. one replayed for a retried request."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


class StatusInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, error_domain: str) -> None:
        self._domain = error_domain

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # health Watch and reflection streams pass through untouched
        behavior = handler.unary_unary
        method = handler_call_details.method  # type: ignore[attr-defined]

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            outcome = "OK"
            try:
                remaining = context.time_remaining()
                if remaining is not None and remaining <= 0:
                    outcome = "DEADLINE_EXCEEDED"
                    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the work started")
                result = behavior(request, context)
                return await result if inspect.isawaitable(result) else result
            except DomainError as error:
                status = status_of(error, self._domain)
                outcome = error.reason.value
            except RpcFailure as failure:
                status = failure.status
                outcome = "REPLAYED_FAILURE"
            except NotImplementedError:
                status = plain_status(
                    grpc.StatusCode.UNIMPLEMENTED, "NOT_IMPLEMENTED", self._domain, f"{method} is not implemented yet"
                )
                outcome = "UNIMPLEMENTED"
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except DataError as error:
                # A value the converters let through but the database cannot store: the caller's input.
                log.warning("database refused a value in %s: %s", method, error.orig)
                status = plain_status(
                    grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID", self._domain,
                    "a field holds a value the service cannot store (too long or malformed)",
                )  # fmt: skip
                outcome = "FIELD_INVALID"
            except Exception:
                log.exception("unexpected failure in %s", method)
                status = internal_status(self._domain)
                outcome = "INTERNAL"
            finally:
                level = logging.DEBUG if method.startswith("/grpc.health") else logging.INFO
                log.log(level, "%s %s %.1fms", method, outcome, (time.perf_counter() - started) * 1000)
            await context.abort_with_status(rpc_status.to_status(status))

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
