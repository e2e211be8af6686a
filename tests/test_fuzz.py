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
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import Engine, create_engine, inspect, text

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.node.v1 import node_service_pb2 as node
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.common.converters import datetime_to_timestamp
from services.common.database import normalise_url
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import Roles
from services.payment.verification import stand_in_token
from shared.bindings import Channel
from shared.principals import Principal, channel_principal, institution, operator, payment_node
from tests.fuzzing import Pool, RequestMaker, one_field_hostile
from tests.helpers import binding_request, request_id
from tests.test_cross_province import HOSPITAL, NANJING, CrossFamily, at_noon

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


# One hostile field in an otherwise good request ---------------------------------------------


def rows_of(tables: dict[Engine, list[str]]) -> dict[tuple[int, str], list[str]]:
    """Every row of each engine's `tables`."""
    found: dict[tuple[int, str], list[str]] = {}
    for number, (engine, names) in enumerate(tables.items()):
        with engine.connect() as connection:
            for name in names:
                rows = connection.execute(text(f'SELECT * FROM "{name}"')).fetchall()
                found[(number, name)] = sorted(repr(tuple(row)) for row in rows)
    return found


def tables_of(urls: tuple[str, ...]) -> dict[Engine, list[str]]:
    """An engine on each database, with its tables but the idempotency keys (a refusal is stored
    under its key)."""
    tables = {}
    for url in urls:
        engine = create_engine(normalise_url(url))
        skipped = ("idempotency_keys", "alembic_version")
        tables[engine] = [name for name in inspect(engine).get_table_names() if name not in skipped]
    return tables


def good_requests(nodes: Any, family: CrossFamily) -> list[tuple[str, str, Principal | None, Any]]:
    """(address, method path, caller or None for the natural one, a maker of a fresh request that
    succeeds as it is) for the calls that move money or make a binding. West coordinates the
    node calls on east, whose mother's account holds their legs."""
    east, west = nodes.east, nodes.west
    from_west = payment_node("west")
    node_stub = east.node_stub("west")

    def prepare() -> node.PrepareLegsRequest:
        return node.PrepareLegsRequest(
            transaction_id=str(uuid.uuid4()), coordinator_province="62",
            beneficiary_id_number=family.child.id_number, institution_code="H620100-001",
            institution_admdvs="620100", use_category=common.USE_CATEGORY_OUTPATIENT,
            legs=[node.NodeLeg(leg_no=1, payer_id_number=family.mother.id_number,
                               binding_id=family.mother_binding.binding_id, amount_fen=1_000)],
            expire_time=datetime_to_timestamp(family.clock.now() + timedelta(minutes=10)),
        )  # fmt: skip

    def held_transaction() -> str:
        request = prepare()
        node_stub.PrepareLegs(request, timeout=20)
        return request.transaction_id

    def committed_transaction() -> str:
        transaction_id = held_transaction()
        node_stub.CommitLegs(node.CommitLegsRequest(transaction_id=transaction_id), timeout=20)
        return transaction_id

    def authorized() -> str:
        bill = family.bill(3_000)
        return east.stub.AuthorizeSettlement(
            papi.AuthorizeSettlementRequest(request_id=request_id(), bill=bill)
        ).settlement.settlement_id

    def settled() -> str:
        return east.stub.Settle(
            papi.SettleRequest(request_id=request_id(), bill=family.bill(3_000))
        ).settlement.settlement_id

    pairs = iter(range(1, 10_000))

    def new_binding() -> bapi.CreateBindingRequest:
        n = next(pairs)
        return binding_request(family.register(f"甲{n}", NANJING), family.register(f"乙{n}", NANJING, resident=True))

    payment, nodes_path = "/gongji.payment.v1.PaymentService/", "/gongji.node.v1.PaymentNodeService/"
    to_east, to_west = east.server.address, west.server.address
    return [
        (to_east, payment + "Settle", None, lambda: papi.SettleRequest(
            request_id=request_id(), bill=family.bill(3_000))),
        (to_east, payment + "AuthorizeSettlement", None, lambda: papi.AuthorizeSettlementRequest(
            request_id=request_id(), bill=family.bill(3_000),
            expire_time=datetime_to_timestamp(family.clock.now() + timedelta(hours=1)))),
        (to_east, payment + "CaptureSettlement", None, lambda: papi.CaptureSettlementRequest(
            request_id=request_id(), settlement_id=authorized(), amount_fen=2_000)),
        (to_east, payment + "RefundSettlement", None, lambda: papi.RefundSettlementRequest(
            request_id=request_id(), settlement_id=settled(), reason="退费")),
        (to_west, payment + "TransferToWallet", None, lambda: papi.TransferToWalletRequest(
            request_id=request_id(), grantor_id_number=family.father.id_number,
            beneficiary_id_number=family.child.id_number, amount_fen=100,
            verification=ppb.Verification(method=ppb.VERIFICATION_METHOD_FACE,
                                           token=stand_in_token(family.father.id_number, "FACE")))),
        (east.binding.server.address, "/gongji.binding.v1.BindingService/CreateBinding", None, new_binding),
        (to_east, nodes_path + "PrepareLegs", from_west, prepare),
        (to_east, nodes_path + "CommitLegs", from_west, lambda: node.CommitLegsRequest(
            transaction_id=held_transaction(), captures=[node.NodeLeg(leg_no=1, amount_fen=500)])),
        (to_east, nodes_path + "BatchCommitLegs", from_west, lambda: node.BatchCommitLegsRequest(requests=[
            node.CommitLegsRequest(
                transaction_id=held_transaction(), captures=[node.NodeLeg(leg_no=1, amount_fen=500)]),
            node.CommitLegsRequest(transaction_id=held_transaction())])),
        (to_east, nodes_path + "RefundLegs", from_west, lambda: node.RefundLegsRequest(
            transaction_id=committed_transaction())),
    ]  # fmt: skip


def test_one_hostile_field_in_a_good_request_is_refused_with_a_reason_and_changes_no_data(two_nodes):
    """Each call that moves money or makes a binding, made good, then with one field at a time
    set to an edge value (int64 bounds, negative, NUL and control characters, a 900 kB string,
    unknown enum numbers, timestamps out of range, 10,000 items in a repeated field). No answer
    is INTERNAL or UNKNOWN, every refusal carries an ErrorInfo reason, and a refused call leaves
    every table of both nodes and the binding service as it was."""
    family = CrossFamily(two_nodes, mother_fen=5_000_000, father_fen=5_000_000)
    at_noon(family)
    two_nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs=NANJING)
    )
    urls = (two_nodes.east.database_url, two_nodes.west.database_url, two_nodes.east.binding.database_url)
    tables = tables_of(urls)
    at_start = rows_of(tables)
    roles, pki = two_nodes.east.binding.roles, two_nodes.east.binding.pki
    channels: dict[tuple[str, Principal], grpc.Channel] = {}
    problems: list[str] = []
    codes: Counter[str] = Counter()
    try:
        for address, path, caller, make in good_requests(two_nodes, family):
            for label, made_hostile in one_field_hostile(make()):
                hostile = made_hostile(make())  # each on a fresh request, with its own request_id
                principal = caller or roles.principal_for(path.rsplit("/", 1)[1], hostile)
                if (address, principal) not in channels:
                    channels[(address, principal)] = pki.channel(address, principal)
                before = rows_of(tables)
                try:
                    channels[(address, principal)].unary_unary(path)(hostile.SerializeToString(), timeout=30)
                    codes["OK"] += 1
                    continue
                except grpc.RpcError as error:
                    codes[error.code().name] += 1
                    what = f"{path} {label}: {error.code().name} {error.details()[:120]!r}"
                    if error.code() in FORBIDDEN:
                        problems.append(what)
                    status = rpc_status.from_call(error)  # type: ignore[arg-type]
                    if status is None or not any(d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) for d in status.details):
                        problems.append(f"no ErrorInfo: {what}")
                    if rows_of(tables) != before:
                        problems.append(f"data changed: {what}")
        at_end = rows_of(tables)
    finally:
        for channel in channels.values():
            channel.close()
        for engine in tables:
            engine.dispose()
    print(f"\none hostile field: {dict(codes)}")
    assert problems == [], "\n".join(problems[:20])
    assert codes["INVALID_ARGUMENT"] > 200
    assert at_end != at_start, "the comparison sees what the calls that succeeded wrote"
    family.assert_books_close()
