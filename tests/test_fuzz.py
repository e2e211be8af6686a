"""Fuzzing every RPC of the three services over real mutual TLS, on SQLite and PostgreSQL:
empty, plausible, mutated and raw-byte requests, mostly from each call's natural caller and
sometimes from another. No answer may be INTERNAL or UNKNOWN, and afterwards both payment
nodes' ledgers must still balance exactly.

The CI run sends 5,000 requests per database. The long run is on demand:

    pytest -m fuzz tests/test_fuzz.py            # 100,000 requests per database
    GONGJI_FUZZ_REQUESTS=20000 GONGJI_FUZZ_SEED=7 pytest -m fuzz tests/test_fuzz.py
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.node.v1 import node_service_pb2 as node
from gongji.payment.v1 import payment_service_pb2 as papi
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import Roles
from shared.bindings import Channel
from shared.principals import Principal, channel_principal, institution, operator, payment_node
from tests.fuzzing import Pool, RequestMaker
from tests.helpers import request_id
from tests.test_cross_province import HOSPITAL, CrossFamily

SERVICES = [
    bapi.DESCRIPTOR.services_by_name["BindingService"],
    papi.DESCRIPTOR.services_by_name["PaymentService"],
    node.DESCRIPTOR.services_by_name["PaymentNodeService"],
]
METHODS: list[MethodDescriptor] = [method for service in SERVICES for method in service.methods]
OTHER_CALLERS = [
    institution("H440100-009"), channel_principal(Channel.ALIPAY), operator("620000", "op-gs"),
    operator("000000", "ops"), payment_node("east"), payment_node("west"),
]  # fmt: skip
FORBIDDEN = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


@dataclass
class Findings:
    codes: Counter[str] = field(default_factory=Counter)
    forbidden: list[str] = field(default_factory=list)
    sent: int = 0
    # The slowest calls: (seconds, what)
    slowest: list[tuple[float, str]] = field(default_factory=list)

    def timed(self, seconds: float, what: str) -> None:
        self.slowest = sorted([*self.slowest, (seconds, what)], reverse=True)[:5]


class Fuzzer:
    def __init__(self, nodes: Any, family: CrossFamily, pki: DevelopmentPKI, seed: int) -> None:
        self.nodes = nodes
        self.pki = pki
        self.random = random.Random(seed)
        self.roles = Roles(node_caller="west")
        pool = Pool(
            id_numbers=[family.child.id_number, family.mother.id_number, family.father.id_number],
            binding_ids=[family.mother_binding.binding_id, family.father_binding.binding_id],
            institutions=[HOSPITAL, "H32010001"],
            now_seconds=int(family.clock.now().timestamp()),
        )
        self.maker = RequestMaker(seed, pool)
        self.pool = pool
        self._channels: dict[tuple[str, Principal], grpc.Channel] = {}

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def _channel(self, address: str, principal: Principal) -> grpc.Channel:
        key = (address, principal)
        if key not in self._channels:
            self._channels[key] = self.pki.channel(address, principal)
        return self._channels[key]

    def _address(self, method: MethodDescriptor) -> str:
        if method.containing_service.name == "BindingService":
            return self.nodes.east.binding.server.address
        return self.random.choice([self.nodes.east, self.nodes.west]).server.address

    def _harvest(self, method: MethodDescriptor, payload: bytes) -> None:
        """Ids in an answer become plausible values for later requests."""
        try:
            answer = GetMessageClass(method.output_type).FromString(payload)
        except DecodeError:
            return
        settlement = getattr(answer, "settlement", None)
        if settlement is not None and settlement.settlement_id:
            self.pool.settlement_ids.append(settlement.settlement_id)
        transfer = getattr(answer, "transfer", None)
        if transfer is not None and transfer.transfer_id:
            self.pool.transfer_ids.append(transfer.transfer_id)
        binding = getattr(answer, "binding", None)
        if binding is not None and binding.binding_id:
            self.pool.binding_ids.append(binding.binding_id)

    def send(self, findings: Findings) -> None:
        method = self.random.choice(METHODS)
        request_class = GetMessageClass(method.input_type)
        shape = self.random.choices(["empty", "plausible", "mutated", "raw"], weights=[1, 4, 5, 2])[0]
        request: Message = request_class()
        if shape == "plausible":
            request = self.maker.plausible(request_class)
        elif shape == "mutated":
            request = self.maker.mutated(request_class)
        payload = self.maker.raw(request_class) if shape == "raw" else request.SerializeToString()
        principal = (
            self.roles.principal_for(method.name, request)
            if self.random.random() < 0.85
            else self.random.choice(OTHER_CALLERS)
        )
        path = f"/{method.containing_service.full_name}/{method.name}"
        call = self._channel(self._address(method), principal).unary_unary(path)
        findings.sent += 1
        started = time.monotonic()
        try:
            answer = call(payload, timeout=20)
        except grpc.RpcError as error:
            code = error.code()
            findings.codes[code.name] += 1
            findings.timed(time.monotonic() - started, f"{path} ({shape}) {code.name} {error.details()[:120]!r}")
            if code in FORBIDDEN:
                findings.forbidden.append(f"{path} ({shape}, as {principal.path}): {code.name} {error.details()!r}")
            return
        findings.codes["OK"] += 1
        findings.timed(time.monotonic() - started, f"{path} ({shape}) OK")
        self._harvest(method, answer)


def fuzz(two_nodes: Any, count: int, seed: int) -> Findings:
    family = CrossFamily(two_nodes, mother_fen=500_000, father_fen=500_000)
    east = two_nodes.east.stub
    for amount in (10_000, 25_000):
        east.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(amount)))
    fuzzer = Fuzzer(two_nodes, family, two_nodes.east.binding.pki, seed)
    findings = Findings()
    started = time.monotonic()
    try:
        for _ in range(count):
            fuzzer.send(findings)
    finally:
        fuzzer.close()
    print(f"\nfuzz: {findings.sent} requests in {time.monotonic() - started:.0f}s, seed {seed}: "
          f"{dict(findings.codes.most_common())}; slowest {findings.slowest}")  # fmt: skip
    for harness in (two_nodes.east, two_nodes.west):
        audit = harness.stub.as_principal(operator("000000", "ops")).CheckLedger(papi.CheckLedgerRequest())
        assert audit.balanced, list(audit.problems)
    return findings


def test_five_thousand_fuzzed_requests_get_no_internal_or_unknown_and_leave_the_books_exact(two_nodes):
    findings = fuzz(two_nodes, 5_000, seed=20261129)
    assert findings.forbidden == [], "\n".join(findings.forbidden[:20])
    assert findings.codes["OK"] > 100, "the fuzzer should also make calls that succeed"
    assert findings.codes["INVALID_ARGUMENT"] > 100


@pytest.mark.fuzz
@pytest.mark.timeout(0)  # as long as GONGJI_FUZZ_REQUESTS asks; the suite's per-test limit is for hangs
def test_the_long_fuzz_run_gets_no_internal_or_unknown(two_nodes):
    count = int(os.environ.get("GONGJI_FUZZ_REQUESTS", "100000"))
    seed = int(os.environ.get("GONGJI_FUZZ_SEED", "1"))
    findings = fuzz(two_nodes, count, seed)
    assert findings.forbidden == [], "\n".join(findings.forbidden[:50])
