"""The call guard: the one server interceptor every call passes.

Before any work it finds out who is calling (the client certificate's SPIFFE ID) and asks
the access policy whether that principal may make this call within its scope; a call with
no rule is denied. Then it runs the handler, turns every way it can fail into a rich status
(a code, google.rpc.ErrorInfo, BadRequest naming the field), masks what this caller may not
see, and writes one access line: who, what, which request_id, and the outcome's reason.
Streams (health watches, reflection) are admitted the same way.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DataError, DBAPIError, OperationalError

from services.common.database import is_past_deadline
from services.common.deadlines import reset_call_deadline, set_call_deadline
from services.common.metrics import RpcMetrics
from services.common.security.access_policy import AccessPolicy, Rule, denied
from services.common.security.callers import (
    Caller,
    acting_for,
    direct_principal,
    reset_current_caller,
    set_current_caller,
)
from services.common.security.redaction import redact_response, redact_status
from services.common.security.scopes import Asked, NodeDirectory, ScopeFacts
from services.common.status import error_info_of, internal_status, plain_status, status_of
from shared.errors import DomainError, Reason
from shared.principals import PrincipalKind
from shared.privacy import scrub_key

log = logging.getLogger("gongji.rpc")
_KEY_FIELDS = ("request_id", "transaction_id", "transfer_id")


def _log_database_failure(method: str, error: DBAPIError) -> None:
    """The driver's class and where it was raised, never its message: PostgreSQL's DETAIL quotes
    the row (`Failing row contains (…)`, `Key (…)=(…)`), names and addresses included, which no
    pattern of the log filter would catch."""
    where = "".join(traceback.format_tb(error.__traceback__))
    log.error("unexpected database failure in %s: %s\n%s", method, type(error.orig).__name__, where)


class RpcFailure(Exception):
    """A refusal already expressed as a status: one stored under its request_id (made just
    now, or `replayed` for a retry), or one a peer node answered."""

    def __init__(self, status: status_pb2.Status, replayed: bool = False) -> None:
        super().__init__(status.message)
        self.status = status
        self.replayed = replayed

    @property
    def reason(self) -> str:
        info = error_info_of(self.status)
        reason = info.reason if info is not None else "UNKNOWN_REASON"
        return f"{reason}(replayed)" if self.replayed else reason


@dataclass(frozen=True)
class Gate:
    """What the guard decides with: the policy, how callers prove who they are, and the
    facts and nodes the policy's scopes consult."""

    policy: AccessPolicy
    secure: bool
    facts: ScopeFacts
    nodes: NodeDirectory

    def presented(self, context: grpc.aio.ServicerContext) -> Caller | None:
        """Who the call's certificate (or, on loopback, its forwarded header) names, judged or not:
        the access log of a call refused before it was admitted names that principal."""
        try:
            direct = direct_principal(context, self.secure)
        except DomainError:
            return None
        return Caller(direct) if direct is not None else None

    def identify(self, method: str, context: grpc.aio.ServicerContext) -> tuple[Caller | None, Rule]:
        """The caller and the policy's rule that lets it call `method`; a DomainError refusal
        otherwise. Quick, with no reads: the call counts against its caller before `check_scopes`,
        whose reads wait for a worker thread like the call's own work."""
        direct = direct_principal(context, self.secure)
        if direct is not None and direct.kind is PrincipalKind.PAYMENT_NODE and not self.nodes.accepts(direct.node):
            raise DomainError(
                Reason.CALLER_NOT_ALLOWED,
                f"payment node {direct.node!r} is not in this deployment's routing file",
                metadata={"principal": direct.spiffe_id},
            )
        caller = Caller(direct) if direct is not None else None
        represented = acting_for(context)
        if represented is not None:
            if direct is None or not self.policy.may_act_for_others(method, direct):
                raise DomainError(
                    Reason.CALLER_NOT_ALLOWED,
                    "this caller may not act for another principal here",
                    metadata={"principal": direct.spiffe_id if direct else ""},
                )
            if not self.policy.may_represent(direct, represented):
                raise DomainError(
                    Reason.CALLER_NOT_ALLOWED,
                    f"{direct.path} may not act for a principal of kind {represented.kind.value}",
                    metadata={"principal": direct.spiffe_id},
                )
            caller = Caller(represented, via=direct)
        principal = caller.principal if caller is not None else None
        rule = self.policy.rule_for(method, principal)
        if rule is None:
            raise denied(principal, method)
        return caller, rule

    async def check_scopes(self, rule: Rule, caller: Caller | None, request: Message | None) -> None:
        """A DomainError refusal unless the request lies within the scopes `rule` gives the caller."""
        if rule.scopes and caller is not None and request is not None:
            await rule.check(Asked(caller.principal, request, self.facts, self.nodes))


@dataclass(frozen=True)
class _Malformed:
    """Request bytes that are no message of the method's type (truncated, bad UTF-8 …)."""

    problem: str


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that hands the handler a _Malformed instead of failing in gRPC's own
    code (which answers UNKNOWN, naming a Python exception, and logs a traceback)."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:
            return _Malformed(type(error).__name__)

    return deserialize


async def _well_formed(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A stream's requests; one that does not parse ends it with MALFORMED_REQUEST."""
    async for request in requests:
        if isinstance(request, _Malformed):
            raise DomainError(Reason.MALFORMED_REQUEST, f"a request of the stream is malformed ({request.problem})")
        yield request


def _loggable(value: str) -> str:
    value = value[:128]
    if value.isprintable() and " " not in value:
        return value  # the usual key; the character-by-character pass below is the slow path
    return "".join(c if c.isprintable() and c != " " else "?" for c in value)


def _request_key(request: Any) -> str:
    fields = getattr(getattr(request, "DESCRIPTOR", None), "fields_by_name", {})
    for name in _KEY_FIELDS:
        if name in fields:
            return _loggable(scrub_key(getattr(request, name))) or "-"
    return "-"


def _answered(status: status_pb2.Status | None, context: grpc.aio.ServicerContext) -> tuple[str, str]:
    """The gRPC code name and the ErrorInfo reason the caller gets (no status: the call
    succeeded, or the handler aborted by itself and the context holds its code)."""
    if status is None:
        code = context.code()
        if code is None:
            return "OK", ""
        return (code.name if isinstance(code, grpc.StatusCode) else _CODE_NAMES.get(int(code), "UNKNOWN")), ""
    info = error_info_of(status)
    return _CODE_NAMES.get(status.code, "UNKNOWN"), info.reason if info is not None else ""


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class InFlight:
    """Calls each principal has running, so no one caller takes the whole server."""

    def __init__(self, per_principal: int) -> None:
        self._limit = per_principal
        self._running: Counter[str] = Counter()

    def enter(self, caller: Caller | None) -> str:
        key = caller.principal.spiffe_id if caller is not None else "-"
        if self._running[key] >= self._limit:
            raise DomainError(
                Reason.TOO_MANY_CALLS,
                f"{self._limit} calls of this caller are running already; retry when one has finished",
                metadata={"principal": key},
            )
        self._running[key] += 1
        return key

    def leave(self, key: str) -> None:
        self._running[key] -= 1
        if not self._running[key]:
            del self._running[key]


class CallGuard(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        error_domain: str,
        gate: Gate,
        calls_per_principal: int = 128,
        streams_per_principal: int = 16,
        metrics: RpcMetrics | None = None,
    ) -> None:
        self._domain = error_domain
        self._gate = gate
        self._metrics = metrics
        self._calls = InFlight(calls_per_principal)
        self._streams = InFlight(streams_per_principal)
        # A method this server lacks (a client's newer protos, a typo) is UNIMPLEMENTED with
        # ErrorInfo NOT_IMPLEMENTED like every other refusal; gRPC's own answer carried no
        # details. Neither logged nor counted: the method name is the caller's free text.
        unimplemented = rpc_status.to_status(
            plain_status(
                grpc.StatusCode.UNIMPLEMENTED, "NOT_IMPLEMENTED", error_domain, "this server has no such method"
            )
        )

        async def refuse(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            await context.abort_with_status(unimplemented)
            yield b""  # never reached: the yield makes this the async generator a stream handler is

        # Streaming both ways fits every kind of call, and answers without waiting for a request.
        self._no_such_method = grpc.stream_stream_rpc_method_handler(refuse)
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return self._no_such_method
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        # The guarded handler of a method is the same for every call: built once, not per call.
        # Keyed by the server's own handler, so only methods it serves take a place.
        guarded = self._guarded.get(method)
        if guarded is None or guarded[0] is not handler:
            guarded = self._guarded[method] = (handler, self._guard(method, handler))
        return guarded[1]

    def _guard(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream, request_is_message=True, grpc_type="server_stream"),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(method, handler.stream_stream, request_is_message=False, grpc_type="bidi_stream"),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_unary_rpc_method_handler(
            self._stream(method, handler.stream_unary, request_is_message=False, grpc_type="client_stream"),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _unary(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            self._started("unary", method)
            outcome, caller, running = "OK", None, None
            status: status_pb2.Status | None = None
            cut_off: str | None = None  # the code of a call the caller gave up on while it ran
            token = set_current_caller(None)
            remaining = context.time_remaining()
            deadline = set_call_deadline(remaining)
            try:
                if remaining is not None and remaining <= 0:
                    outcome = "DEADLINE_EXCEEDED"
                    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the work started")
                if isinstance(request, _Malformed):
                    raise DomainError(
                        Reason.MALFORMED_REQUEST,
                        f"the request is not a well-formed {method.rsplit('/', 1)[-1]}Request ({request.problem})",
                    )
                identified, rule = self._gate.identify(method, context)
                running = self._calls.enter(identified)  # before the scope check's reads
                await self._gate.check_scopes(rule, identified, request)
                caller = identified
                set_current_caller(caller)
                result = behavior(request, context)
                result = await result if inspect.isawaitable(result) else result
                return redact_response(caller.principal if caller else None, result)
            except DomainError as error:
                status = status_of(error, self._domain)
                outcome = error.reason.value
            except RpcFailure as failure:
                status = failure.status
                outcome = failure.reason
            except NotImplementedError:
                status = plain_status(
                    grpc.StatusCode.UNIMPLEMENTED, "NOT_IMPLEMENTED", self._domain, f"{method} is not implemented yet"
                )
                outcome = "UNIMPLEMENTED"
            except grpc.aio.AbortError:
                raise
            except asyncio.CancelledError:
                # The caller's deadline passed or it cancelled while the work waited (on a database
                # that stalls, say): no answer goes out, and neither the log nor the metrics call it OK.
                remaining = context.time_remaining()
                cut_off = outcome = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
                raise
            except OperationalError as error:
                if error.statement is None:  # no connection to be had: the database is away
                    log.warning("%s: the database does not answer (%s)", method, type(error.orig).__name__)
                    status = status_of(
                        DomainError(Reason.DATABASE_UNAVAILABLE, "the service's database does not answer; retry"),
                        self._domain,
                    )
                    outcome = Reason.DATABASE_UNAVAILABLE.value
                elif not is_past_deadline(error):
                    _log_database_failure(method, error)
                    status = internal_status(self._domain)
                    outcome = "INTERNAL"
                else:
                    status = status_of(
                        DomainError(Reason.DEADLINE_EXCEEDED, "the deadline passed while the work was running"),
                        self._domain,
                    )
                    outcome = Reason.DEADLINE_EXCEEDED.value
            except DataError as error:
                # A value the converters let through but the database cannot store: the caller's input.
                # The driver's message may quote the value, so only its class is logged.
                log.warning("database refused a value in %s: %s", method, type(error.orig).__name__)
                status = plain_status(
                    grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID", self._domain,
                    "a field holds a value the service cannot store (too long or malformed)",
                )  # fmt: skip
                outcome = "FIELD_INVALID"
            except DBAPIError as error:
                _log_database_failure(method, error)
                status = internal_status(self._domain)
                outcome = "INTERNAL"
            except Exception:
                log.exception("unexpected failure in %s", method)
                status = internal_status(self._domain)
                outcome = "INTERNAL"
            finally:
                if running is not None:
                    self._calls.leave(running)
                reset_current_caller(token)
                reset_call_deadline(deadline)
                known = caller is not None or (status is None and cut_off is None)
                logged = caller if known else self._gate.presented(context)
                answered = (cut_off, "") if cut_off else _answered(status, context)
                self._log(method, request, logged, outcome, started, *answered)
                self._handled("unary", method, status, context, started, answered)
            await context.abort_with_status(
                rpc_status.to_status(redact_status(caller.principal if caller else None, status))
            )

        return guarded

    def _stream(
        self, method: str, behavior: Callable[..., Any], request_is_message: bool, grpc_type: str
    ) -> Callable[..., AsyncIterator[Any]]:
        async def admitted(request: Any, context: grpc.aio.ServicerContext) -> str | None:
            """The stream's slot of its caller, once admitted; None after a refusal."""
            started = time.perf_counter()
            self._started(grpc_type, method)
            try:
                if isinstance(request, _Malformed):
                    raise DomainError(Reason.MALFORMED_REQUEST, f"the request is not well-formed ({request.problem})")
                caller, rule = self._gate.identify(method, context)
                slot = self._streams.enter(caller)  # before the scope check's reads
                try:
                    await self._gate.check_scopes(rule, caller, request if request_is_message else None)
                except BaseException:
                    self._streams.leave(slot)
                    raise
            except DomainError as error:
                refusal = status_of(error, self._domain)
                presented = self._gate.presented(context)
                self._log(method, None, presented, error.reason.value, started, *_answered(refusal, context))
                self._handled(grpc_type, method, refusal, context, started)
                await context.abort_with_status(rpc_status.to_status(refusal))
                return None
            set_current_caller(caller)
            self._log(method, None, caller, "STREAM_OPENED", started)
            return slot

        if inspect.isasyncgenfunction(behavior):

            async def generating(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                slot = await admitted(request, context)
                if slot is None:
                    return
                started = time.perf_counter()
                refusal: status_pb2.Status | None = None
                try:
                    async for item in behavior(request if request_is_message else _well_formed(request), context):
                        yield item
                except DomainError as error:
                    refusal = status_of(error, self._domain)
                finally:
                    self._streams.leave(slot)
                    self._handled(grpc_type, method, refusal, context, started)
                if refusal is not None:
                    await context.abort_with_status(rpc_status.to_status(refusal))

            return generating

        async def writing(request: Any, context: grpc.aio.ServicerContext) -> Any:
            slot = await admitted(request, context)
            if slot is None:
                return None
            started = time.perf_counter()
            try:
                return await behavior(request, context)
            finally:
                self._streams.leave(slot)
                self._handled(grpc_type, method, None, context, started)

        return writing  # type: ignore[return-value]

    def _started(self, grpc_type: str, method: str) -> None:
        if self._metrics is not None:
            self._metrics.started(grpc_type, method)

    def _handled(
        self,
        grpc_type: str,
        method: str,
        status: status_pb2.Status | None,
        context: grpc.aio.ServicerContext,
        started: float,
        answered: tuple[str, str] | None = None,
    ) -> None:
        if self._metrics is not None:
            code, reason = answered or _answered(status, context)
            self._metrics.handled(grpc_type, method, code, reason or None, time.perf_counter() - started)

    @staticmethod
    def _log(
        method: str,
        request: Any,
        caller: Caller | None,
        outcome: str,
        started: float,
        code: str = "OK",
        reason: str = "",
    ) -> None:
        level = logging.DEBUG if method.startswith("/grpc.") else logging.INFO
        if not log.isEnabledFor(level):
            return
        who = caller.describe() if caller is not None else "-"
        key, latency = _request_key(request), (time.perf_counter() - started) * 1000
        # The same values apart, so the JSON format need not parse the message.
        fields = {
            "method": method, "principal": caller.principal.spiffe_id if caller is not None else "",
            "request_id": "" if key == "-" else key, "status": code, "reason": reason, "latency_ms": round(latency, 1),
        }  # fmt: skip
        log.log(level, "%s %s principal=%s request_id=%s %.1fms", method, outcome, who, key, latency, extra=fields)
