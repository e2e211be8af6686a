"""Fuzzing the national-interface gateway over real HTTPS, in front of the real binding and
payment services, on SQLite and PostgreSQL: random bytes, random JSON and envelopes of every
transaction with plausible and hostile fields (tests/gateway_fuzzing.py), all with the client
certificate of the institution the envelope names.

Every answer must be HTTP 200 or 400, a 200 must be JSON with infcode "0" or "-1", and no
err_msg may say INTERNAL, carry a traceback or show whole the ID number of a person the request
did not name. Afterwards the payment ledger balances, the gateway logged no unexpected failure,
and a run of requests that are all refused has moved no money.

The normal run sends a few hundred requests per database. The long run is on demand:

    pytest -m fuzz tests/test_gateway_fuzz.py                 # 5,000 requests per database
    GONGJI_GATEWAY_FUZZ_EXAMPLES=20000 pytest -m fuzz tests/test_gateway_fuzz.py
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import ssl
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongji.payment.v1 import payment_service_pb2 as papi
from shared.principals import institution
from tests.gateway_fuzzing import CLASSIC, QUICK_SWEEP, FreshMsgid, FromPool, bodies, dumps, refused_envelopes, sweep
from tests.gateway_helpers import CODE, PATH, Gateway, gateway
from tests.helpers import make_id_number
from tests.payment_helpers import NATIONAL_OPERATOR

__all__ = ["gateway"]  # the fixture
SHORT_RUN = 400
SWEEPERS = 4  # the sweep's requests are independent: sent four at a time
LONG_RUN = int(os.environ.get("GONGJI_GATEWAY_FUZZ_EXAMPLES", "5000"))
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")
MSGID = re.compile(r"[A-Za-z0-9]{12}")


class Client:
    """One HTTPS connection to the gateway, kept alive, with the institution's certificate."""

    def __init__(self, gateway: Gateway) -> None:
        self._port = gateway.server.port
        self._context = ssl.create_default_context(cafile=str(gateway.pki.ca_file))
        files = gateway.pki.files(institution(CODE))
        self._context.load_cert_chain(str(files.cert), str(files.key))
        self._connection: http.client.HTTPSConnection | None = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            reused = self._connection is not None
            if self._connection is None:
                self._connection = http.client.HTTPSConnection(
                    "127.0.0.1", self._port, context=self._context, timeout=30
                )
            try:
                self._connection.request(
                    "POST", PATH, body=body, headers={"Content-Type": "application/json;charset=utf-8"}
                )
                answer = self._connection.getresponse()
                payload = answer.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused and attempt == 0:
                    continue  # a kept-alive connection the server had closed meanwhile
                raise
            if answer.will_close:
                self.close()
            return answer.status, payload
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass
class Findings:
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    sent: int = 0
    succeeded: int = 0


class Fuzzer:
    """Writes drawn bodies (filling in run-time placeholders), sends them, checks each answer."""

    def __init__(self, gateway: Gateway) -> None:
        family = gateway.family
        self.stranger = make_id_number("320102")  # valid, but nobody gongji knows
        self.people = [family.child.id_number, family.mother.id_number, family.father.id_number]
        self.pools: dict[str, list[str]] = {
            "ids": [*self.people, self.stranger],
            "setl_ids": [],
            "msgids": [],
            "mdtrt_ids": ["MD0001", "MD0002", "ZY0001"],
        }
        self._gateway = gateway
        self._clients: list[Client] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self.findings = Findings()
        self._serial = 0

    @property
    def client(self) -> Client:
        """This thread's connection."""
        if not hasattr(self._local, "client"):
            self._local.client = Client(self._gateway)
            with self._lock:
                self._clients.append(self._local.client)
        return self._local.client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def _fresh_msgid(self, code: Any) -> str:
        self._serial += 1
        seconds = 9 * 3600 + self._serial // 10_000
        moment = f"20260302{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"
        prefix = code if isinstance(code, str) and MSGID.fullmatch(code) else CODE
        return f"{prefix}{moment}{self._serial % 10_000:04d}"

    def _fill(self, value: Any, code: Any) -> Any:
        if isinstance(value, FromPool):
            pool = self.pools[value.pool]
            return pool[value.index % len(pool)] if pool else ""
        if isinstance(value, FreshMsgid):
            return self._fresh_msgid(code)
        if isinstance(value, dict):
            return {key: self._fill(item, code) for key, item in value.items()}
        if isinstance(value, list):
            return [self._fill(item, code) for item in value]
        return value

    def body_of(self, drawn: Any) -> bytes:
        if isinstance(drawn, bytes):
            return drawn
        with self._lock:
            return self._body_of(drawn)

    def _body_of(self, drawn: Any) -> bytes:
        if isinstance(drawn, dict):
            drawn = self._fill(drawn, drawn.get("fixmedins_code"))
            msgid = drawn.get("msgid")
            if isinstance(msgid, str) and len(msgid) == 30 and msgid not in self.pools["msgids"]:
                self.pools["msgids"].append(msgid)
        return dumps(drawn).encode("utf-8", "surrogatepass")

    def send(self, drawn: Any) -> dict[str, Any] | None:
        """Sends one request; returns the answer of a 200, after checking it."""
        body = self.body_of(drawn)
        status, payload = self.client.post(body)
        with self._lock:
            return self._check(body, status, payload)

    def _check(self, body: bytes, status: int, payload: bytes) -> dict[str, Any] | None:
        self.findings.sent += 1
        what = f"{body[:300]!r} → {status} {payload[:400]!r}"
        if status not in (200, 400):
            self.findings.problems.append(f"HTTP {status}: {what}")
            return None
        try:
            answer = json.loads(payload)
        except ValueError:
            self.findings.problems.append(f"not JSON: {what}")
            return None
        infcode = answer.get("infcode") if isinstance(answer, dict) else None
        if status == 200 and infcode not in ("0", "-1"):
            self.findings.problems.append(f"infcode {infcode!r}: {what}")
            return None
        err_msg = str(answer.get("err_msg", ""))
        reason = err_msg[1 : err_msg.find("]")] if err_msg.startswith("[") else ""
        self.findings.outcomes[f"{status} {infcode} {reason}".strip()] += 1
        self._check_err_msg(err_msg, body, what)
        if infcode == "0":
            self.findings.succeeded += 1
            self._harvest(answer)
        return answer

    def _check_err_msg(self, err_msg: str, body: bytes, what: str) -> None:
        if "INTERNAL" in err_msg:
            self.findings.problems.append(f"INTERNAL: {what}")
        if TRACEBACK.search(err_msg):
            self.findings.problems.append(f"a traceback: {what}")
        sent = body.decode("utf-8", "replace")
        for id_number in self.pools["ids"]:
            if id_number in err_msg and id_number not in sent:
                self.findings.problems.append(f"another person's ID number unmasked: {what}")

    def _harvest(self, answer: dict[str, Any]) -> None:
        output = answer.get("output")
        setlinfo = output.get("setlinfo") if isinstance(output, dict) else None
        if isinstance(setlinfo, dict):
            setl_id, mdtrt_id = setlinfo.get("setl_id"), setlinfo.get("mdtrt_id")
            if isinstance(setl_id, str) and setl_id and setl_id not in self.pools["setl_ids"]:
                self.pools["setl_ids"].append(setl_id)
            if isinstance(mdtrt_id, str) and mdtrt_id and mdtrt_id not in self.pools["mdtrt_ids"]:
                self.pools["mdtrt_ids"].append(mdtrt_id)


def run(fuzzer: Fuzzer, strategy: st.SearchStrategy[Any], examples: int) -> Findings:
    @settings(
        max_examples=examples, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )  # fmt: skip
    @given(strategy)
    def one(drawn: Any) -> None:
        fuzzer.send(drawn)

    started = time.monotonic()
    try:
        one()
    finally:
        fuzzer.close()
    findings = fuzzer.findings
    print(f"\ngateway fuzz: {findings.sent} requests in {time.monotonic() - started:.0f}s, "
          f"{findings.succeeded} served: {dict(findings.outcomes.most_common())}")  # fmt: skip
    return findings


def unexpected_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{record.name}: {record.getMessage()}\n{record.exc_text or ''}"
        for record in caplog.records
        if "unexpected failure" in record.getMessage()
        or (record.levelno >= logging.ERROR and record.name.startswith(("services.gateway", "aiohttp")))
    ]


def ledger_problems(gateway: Gateway) -> list[str]:
    audit = gateway.family.payment.stub_as(NATIONAL_OPERATOR).CheckLedger(papi.CheckLedgerRequest())
    return [] if audit.balanced else [str(problem) for problem in audit.problems]


def fuzz_everything(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, examples: int, values: tuple[Any, ...]
) -> Findings:
    caplog.set_level(logging.WARNING)
    fuzzer = Fuzzer(gateway)
    started = time.monotonic()
    with ThreadPoolExecutor(SWEEPERS) as pool:
        list(pool.map(fuzzer.send, sweep(values)))
    print(f"\ngateway sweep: {fuzzer.findings.sent} requests in {time.monotonic() - started:.0f}s")
    findings = run(fuzzer, bodies, examples)
    assert findings.problems == [], "\n".join(findings.problems[:20])
    assert unexpected_failures(caplog) == [], "\n".join(unexpected_failures(caplog)[:5])
    assert ledger_problems(gateway) == []
    return findings


def test_fuzzed_bodies_and_envelopes_get_200_or_400_no_internal_error_and_leave_the_ledger_balanced(gateway, caplog):
    findings = fuzz_everything(gateway, caplog, SHORT_RUN, QUICK_SWEEP)
    assert findings.succeeded > 10, "the fuzzer should also send requests that are served"
    assert sum(count for outcome, count in findings.outcomes.items() if outcome.startswith("400")) > 5


def test_a_run_of_refused_requests_moves_no_money(gateway, caplog):
    caplog.set_level(logging.WARNING)
    before = gateway.balances()
    fuzzer = Fuzzer(gateway)
    refused = st.one_of(st.binary(max_size=200), refused_envelopes(), refused_envelopes())
    findings = run(fuzzer, refused, SHORT_RUN // 2)
    assert findings.problems == [], "\n".join(findings.problems[:20])
    assert findings.succeeded == 0, "every request of this run should have been refused"
    assert unexpected_failures(caplog) == [], "\n".join(unexpected_failures(caplog)[:5])
    assert ledger_problems(gateway) == []
    assert gateway.balances() == before


@pytest.mark.fuzz
@pytest.mark.timeout(0)  # as long as GONGJI_GATEWAY_FUZZ_EXAMPLES asks; the suite's per-test limit is for hangs
def test_the_long_gateway_fuzz_run_gets_no_5xx_and_leaves_the_ledger_balanced(gateway, caplog):
    fuzz_everything(gateway, caplog, LONG_RUN, CLASSIC)
