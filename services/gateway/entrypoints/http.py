"""The HTTP entry point: POST /fsi/api/rsfComIfsService/callService with the national envelope.

HTTP status 200 for every answer the envelope can carry, refusals included (infcode -1);
400 for a body that is not the envelope at all (or does not decode as its Content-Encoding
says), 401 without authentication, 404/405/413 for a wrong path, method or size. Every error
body is JSON. One log line per request, without personal data: the infno, the institution,
the msgid, the outcome and the time taken."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import PayloadEncodingError

from services.common.clock import Clock
from services.gateway.entrypoints.authentication import NotAuthenticated, institution_of_request
from services.gateway.entrypoints.metrics import RequestMetrics
from services.gateway.service_layer import refusals as why
from services.gateway.service_layer.ports import Store, StoreUnavailable
from services.gateway.service_layer.refusals import Refused
from services.gateway.service_layer.transactions import Answer, Transactions
from services.gateway.wire.envelope import (
    Envelope,
    EnvelopeRefused,
    NotAnEnvelope,
    failure,
    parse_envelope,
    ref_msgid,
    render,
    success,
)
from services.gateway.wire.signatures import AccessKey
from shared.principals import institution

PATH = "/fsi/api/rsfComIfsService/callService"
access_log = logging.getLogger("gongji.gateway")
log = logging.getLogger(__name__)
_ADMDVS_DIGITS = 6


def _json_error(status: int, reason: str, message: str) -> web.Response:
    body = json.dumps({"infcode": "-1", "err_msg": f"[{reason}] {message}", "output": {}}, ensure_ascii=False)
    return web.Response(status=status, text=body, content_type="application/json", charset="utf-8")


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """HTTP errors as JSON; an unexpected failure is logged and answered 500 without detail."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _json_error(error.status, f"HTTP_{error.status}", error.reason)
    except Exception:
        log.exception("unexpected failure serving %s", request.path)
        return _json_error(500, "INTERNAL", "internal error; it was logged")


class Endpoint:
    def __init__(
        self,
        transactions: Transactions,
        store: Store,
        clock: Clock,
        secure: bool,
        access_keys: Mapping[str, AccessKey] | None,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self._transactions = transactions
        self._store = store
        self._clock = clock
        self._secure = secure
        self._keys = access_keys
        self._metrics = metrics
        self._serial = itertools.count(secrets.randbelow(10**9))

    async def call_service(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        received = self._clock.now()
        outcome = {"infno": "", "principal": "", "msgid": "", "status": "", "reason": ""}
        try:
            try:
                body = await request.read()
            except web.RequestPayloadError as problem:
                # A body aiohttp could not read, such as one that does not inflate as its
                # Content-Encoding says (gzip, deflate and br are inflated as it is read): the
                # sender's mistake, not the gateway's.
                encoding = isinstance(problem.__cause__, PayloadEncodingError)
                reason = "BAD_CONTENT_ENCODING" if encoding else "NOT_AN_ENVELOPE"
                outcome.update(status="400", reason=reason)
                what = "does not decode as its Content-Encoding says" if encoding else "could not be read"
                return _json_error(400, reason, f"the body {what}")
            return await self._serve(request, body, received, outcome)
        finally:
            self._log(outcome, started)

    async def _serve(
        self, request: web.Request, body: bytes, received: datetime, outcome: dict[str, str]
    ) -> web.Response:
        try:
            code = institution_of_request(request, body, self._secure, self._keys, received)
        except NotAuthenticated as refused:
            outcome.update(status="401", reason=refused.reason)
            return _json_error(401, refused.reason, refused.message)
        outcome["principal"] = institution(code).spiffe_id
        try:
            envelope = parse_envelope(body)
        except NotAnEnvelope as problem:
            outcome.update(status="400", reason="NOT_AN_ENVELOPE")
            return _json_error(400, "NOT_AN_ENVELOPE", str(problem))
        except EnvelopeRefused as refused:
            outcome.update(status="-1", reason=refused.reason, infno=refused.infno)
            return self._answer(self._refusal(refused.reason, refused.message, "", received))
        outcome.update(infno=envelope.infno, msgid=envelope.msgid)
        if envelope.fixmedins_code != code:
            outcome.update(status="-1", reason=why.INSTITUTION_MISMATCH)
            message = f"fixmedins_code {envelope.fixmedins_code} is not the institution you authenticated as ({code})"
            return self._answer(self._refusal(why.INSTITUTION_MISMATCH, message, envelope.mdtrtarea_admvs, received))
        digest = hashlib.sha256(body).hexdigest()
        # The msgid is claimed for this body before gongji hears of it: another body under the
        # msgid, sent while this one is served or ever after, is refused and never calls gongji,
        # so it can neither move money nor have its refusal stored as the msgid's answer. A
        # claim left without an answer (a passing refusal, a crash) lets only the same body run
        # again; gongji's request_id = msgid makes that exactly-once.
        try:
            first = await self._store.claim(code, envelope.msgid, envelope.infno, digest, received)
        except StoreUnavailable:
            outcome.update(status="-1", reason=why.SERVICE_UNAVAILABLE)
            message = "the gateway cannot read its records; send the same msgid again"
            return self._answer(self._refusal(why.SERVICE_UNAVAILABLE, message, envelope.mdtrtarea_admvs, received))
        if first.request_digest != digest or first.answer:
            return self._repeat(envelope, first.request_digest, first.answer, digest, received, outcome)
        try:
            answer = self._success(await self._transactions.run(envelope), envelope, received)
            outcome["status"] = "0"
            final = True
        except Refused as refused:
            answer = self._refusal(refused.reason, refused.message, envelope.mdtrtarea_admvs, received)
            outcome.update(status="-1", reason=refused.reason)
            final = refused.final
        if not final:
            return self._answer(answer)
        try:
            kept = await self._store.keep_answer(
                code, envelope.msgid, envelope.infno, digest, answer, self._clock.now()
            )
        except StoreUnavailable:
            # The work is done and idempotent by msgid: a repeat runs it again and gets the same.
            return self._answer(answer)
        if kept.answer != answer:  # a concurrent duplicate of this body stored its answer first
            return self._repeat(envelope, kept.request_digest, kept.answer, digest, received, outcome)
        return self._answer(answer)

    def _repeat(
        self, envelope: Envelope, stored_digest: str, stored: bytes, digest: str, received: datetime,
        outcome: dict[str, str],
    ) -> web.Response:  # fmt: skip
        """A msgid seen before: its first answer byte for byte, or a refusal if the body differs."""
        if stored_digest == digest:
            outcome["reason"] = outcome.get("reason") or "REPEATED"
            return self._answer(stored)
        outcome.update(status="-1", reason=why.MSGID_REUSED)
        message = f"msgid {envelope.msgid} was used before for another request; use a new msgid"
        return self._answer(self._refusal(why.MSGID_REUSED, message, envelope.mdtrtarea_admvs, received))

    def _refmsgid(self, admdvs: str, at: datetime) -> str:
        region = admdvs if len(admdvs) == _ADMDVS_DIGITS and admdvs.isascii() and admdvs.isdigit() else "000000"
        return ref_msgid(region, at, next(self._serial) % 10**10)

    def _success(self, answer: Answer, envelope: Envelope, received: datetime) -> bytes:
        refmsgid = self._refmsgid(envelope.mdtrtarea_admvs, received)
        responded = self._clock.now()
        return render(
            success(answer.output, refmsgid=refmsgid, received=received, responded=responded, warn_msg=answer.warn_msg)
        )

    def _refusal(self, reason: str, message: str, admdvs: str, received: datetime) -> bytes:
        refmsgid = self._refmsgid(admdvs, received)
        return render(failure(reason, message, refmsgid=refmsgid, received=received, responded=self._clock.now()))

    @staticmethod
    def _answer(body: bytes) -> web.Response:
        return web.Response(status=200, body=body, content_type="application/json", charset="utf-8")

    def _log(self, outcome: dict[str, str], started: float) -> None:
        latency = (time.perf_counter() - started) * 1000
        if self._metrics is not None:
            self._metrics.handled(outcome["infno"], outcome["status"], outcome["reason"], latency / 1000)
        access_log.info(
            "%s %s principal=%s msgid=%s reason=%s %.1fms",
            outcome["infno"] or "-", outcome["status"], outcome["principal"] or "-", outcome["msgid"] or "-",
            outcome["reason"] or "-", latency,
            extra={
                "method": outcome["infno"], "principal": outcome["principal"], "request_id": outcome["msgid"],
                "status": outcome["status"], "reason": outcome["reason"], "latency_ms": round(latency, 3),
            },
        )  # fmt: skip


def make_app(endpoint: Endpoint, max_body: int) -> web.Application:
    app = web.Application(client_max_size=max_body, middlewares=[json_errors])
    app.router.add_post(PATH, endpoint.call_service)
    return app
