"""`gongji demo`: both services in one process on a temporary SQLite database, and a
family walked through mutual aid over real gRPC with mutual TLS, printed as a report.

Every call is made as the principal a real deployment would make it as (the national
operator syncs the registry, WeChat carries the family's binding, the hospital settles its
bills), each with a certificate from a development CA made for the run, and each step
shows who made it. ID numbers are printed masked."""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_status import rpc_status

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.binding.app import BindingSettings, start_binding_server
from services.binding.entrypoints.converters import policy_to_proto
from services.common.clock import ManualClock
from services.common.hosting import BackgroundServer
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import ActingStub, Roles
from services.common.server import ServerSecurity
from services.common.status import error_info_of
from services.demo_cross import walk_cross_province
from services.demo_payments import walk_payments as _walk_payments
from services.demo_trust import walk_trust_boundaries
from services.payment.app import PaymentSettings, start_payment_server
from services.payment.routing import Node, RoutingTable
from services.payment.verification import StandInVerifier
from shared.ledger import CHINA_STANDARD_TIME
from shared.policy import example_policies
from shared.principals import BINDING_SERVICE, payment_node
from shared.privacy import mask_id_number
from shared.regions import PROVINCES

NANJING, HANGZHOU = "320100", "330100"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _id_number(area: str, birth: str, sequence: int) -> str:
    body = f"{area}{birth}{sequence:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True)) % 11]


class Report:
    def __init__(self, roles: Roles | None = None) -> None:
        self._step = 0
        self._keys = 0
        self._roles = roles

    def key(self) -> str:
        self._keys += 1
        return f"demo-{self._keys:04d}"

    def section(self, title: str) -> None:
        print(f"\n== {title}")

    def _caller(self) -> str:
        if self._roles is None:
            return ""
        last = self._roles.last
        return f"  [as {last.path}]" if last else "  [as nobody]"

    def ok(self, text: str) -> None:
        self._step += 1
        print(f"  {self._step:2d}. ✓ {text}{self._caller()}")

    def refused(self, text: str, error: grpc.RpcError) -> None:
        self._step += 1
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        info = error_info_of(status) if status else None
        reason = info.reason if info else "(no status: refused before any call)"
        print(
            f"  {self._step:2d}. ✗ {text}{self._caller()}\n"
            f"        refused: {error.code().name} {reason} — {error.details()}"
        )

    def expect_refusal(self, text: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except grpc.RpcError as error:
            self.refused(text, error)
            return
        raise AssertionError(f"the demo expected a refusal: {text}")


Family = dict[str, bpb.InsuredPerson]


def _grantor_binds(
    report: Report, persons: Family, role: str, relationship: int, proof: int
) -> bapi.CreateBindingRequest:
    """The grantor's application to bind the family member in `role`; the parent applies at a counter."""
    return bapi.CreateBindingRequest(
        request_id=report.key(),
        grantor=bapi.PersonIdentity(id_number=persons["grantor"].id_number, name=persons["grantor"].name),
        beneficiary=bapi.PersonIdentity(id_number=persons[role].id_number, name=persons[role].name),
        relationship=relationship,
        proofs=[bpb.Proof(type=proof, document_ref=f"{role}-doc")],
        consent_version="notice-2025-01",
        channel=common.CHANNEL_COUNTER if role == "parent" else common.CHANNEL_WECHAT,
    )


def _walk_bindings(stub: binding_grpc.BindingServiceStub, report: Report) -> tuple[Family, dict[str, bpb.Binding]]:
    report.section("Regional policy (policy is data, versioned by effective date)")
    for policy in example_policies():
        stub.PutRegionPolicy(bapi.PutRegionPolicyRequest(request_id=report.key(), policy=policy_to_proto(policy)))
    since = Timestamp()
    since.FromDatetime(datetime(2025, 1, 1, tzinfo=UTC))
    nanjing = stub.PutRegionPolicy(
        bapi.PutRegionPolicyRequest(
            request_id=report.key(),
            policy=bpb.RegionPolicy(
                admdvs=NANJING,
                effective_from=since,
                relationship_scope=bpb.RELATIONSHIP_SCOPE_EXTENDED,
                max_beneficiaries=3,
                geographic_scope=bpb.GEOGRAPHIC_SCOPE_CROSS_PROVINCE,
                cross_province_provinces=["32", "62"],
                allowed_uses=[common.USE_CATEGORY_OUTPATIENT, common.USE_CATEGORY_PHARMACY],
                auto_approve_relationships=[
                    common.RELATIONSHIP_SPOUSE,
                    common.RELATIONSHIP_PARENT,
                    common.RELATIONSHIP_CHILD,
                ],
                contact_change_grace_days=15,
                description="Demo: Nanjing, at most 3 relatives, cross-province pilot with Gansu",
            ),
        )
    ).policy
    listed = stub.ListRegionPolicies(bapi.ListRegionPoliciesRequest(page_size=100)).policies
    report.ok(f"{len(listed)} policies stored, e.g. {nanjing.version}: at most {nanjing.max_beneficiaries} relatives")

    report.section("Registry sync from the insurance core")
    people = {
        "grantor": ("王建国", common.INSURANCE_TYPE_EMPLOYEE, NANJING, "19700312"),
        "spouse": ("李秀英", common.INSURANCE_TYPE_EMPLOYEE, NANJING, "19720520"),
        "child": ("王小明", common.INSURANCE_TYPE_RESIDENT, NANJING, "20100901"),
        "parent": ("王老汉", common.INSURANCE_TYPE_RESIDENT, NANJING, "19440105"),
        "sibling": ("王建军", common.INSURANCE_TYPE_RESIDENT, NANJING, "19750808"),
        "cousin": ("王杭州", common.INSURANCE_TYPE_RESIDENT, HANGZHOU, "19800101"),
    }
    persons: dict[str, bpb.InsuredPerson] = {}
    for sequence, (role, (name, kind, admdvs, birth)) in enumerate(people.items(), start=11):
        message = bpb.InsuredPerson(
            id_number=_id_number("320102", birth, sequence),
            name=name,
            insurance_type=kind,
            status=common.INSURANCE_STATUS_NORMAL,
            admdvs=admdvs,
            phone="1380000" + f"{sequence:04d}",
            has_personal_account=kind == common.INSURANCE_TYPE_EMPLOYEE,
        )
        stub.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=report.key(), insured_person=message))
        persons[role] = message
        report.ok(
            f"{role:8s} {name} {mask_id_number(message.id_number)} insured in {admdvs} "
            f"({'employee' if kind == 1 else 'resident'})"
        )

    def bind(role: str, relationship: int, proof: int) -> bapi.CreateBindingRequest:
        return _grantor_binds(report, persons, role, relationship, proof)

    report.section("Binding (家庭共济绑定)")
    bindings: dict[str, bpb.Binding] = {}
    for role, relationship, proof in (
        ("spouse", common.RELATIONSHIP_SPOUSE, bpb.PROOF_TYPE_MARRIAGE_CERTIFICATE),
        ("parent", common.RELATIONSHIP_PARENT, bpb.PROOF_TYPE_HOUSEHOLD_REGISTER),
        ("child", common.RELATIONSHIP_CHILD, bpb.PROOF_TYPE_BIRTH_CERTIFICATE),
    ):
        binding = stub.CreateBinding(bind(role, relationship, proof)).binding
        bindings[role] = binding
        report.ok(
            f"{persons['grantor'].name} binds {role} {persons[role].name}: "
            f"{bpb.BindingState.Name(binding.state)} (policy {binding.policy_version})"
        )
    report.expect_refusal(
        "a fourth relative, the sibling",
        lambda: stub.CreateBinding(bind("sibling", common.RELATIONSHIP_SIBLING, bpb.PROOF_TYPE_HOUSEHOLD_REGISTER)),
    )
    report.expect_refusal(
        "a relative insured in Hangzhou (Zhejiang runs no cross-province pilot with Jiangsu)",
        lambda: stub.CreateBinding(bind("cousin", common.RELATIONSHIP_SIBLING, bpb.PROOF_TYPE_HOUSEHOLD_REGISTER)),
    )

    report.section("Who pays for the child's outpatient bill")
    payers = stub.ResolvePayers(
        bapi.ResolvePayersRequest(
            beneficiary_id_number=persons["child"].id_number, use_category=common.USE_CATEGORY_OUTPATIENT
        )
    )
    report.ok(
        f"payers of the child: {[mask_id_number(g.grantor_id_number) for g in payers.grants]} "
        f"under {payers.policy_version}"
    )
    return persons, bindings


def _walk_endings(
    stub: binding_grpc.BindingServiceStub, report: Report, persons: Family, bindings: dict[str, bpb.Binding]
) -> None:
    def bind(role: str, relationship: int, proof: int) -> bapi.CreateBindingRequest:
        return _grantor_binds(report, persons, role, relationship, proof)

    report.section("Unbinding (解绑) and a death")
    ended = stub.EndBinding(
        bapi.EndBindingRequest(
            request_id=report.key(),
            binding_id=bindings["spouse"].binding_id,
            actor=bpb.ACTOR_GRANTOR,
            actor_id=persons["grantor"].id_number,
            comment="spouse has her own account",
            channel=common.CHANNEL_NATIONAL_APP,
        )
    ).binding
    report.ok(f"grantor unbinds the spouse: {bpb.EndReason.Name(ended.end_reason)}")
    sibling = stub.CreateBinding(bind("sibling", common.RELATIONSHIP_SIBLING, bpb.PROOF_TYPE_HOUSEHOLD_REGISTER))
    report.ok(f"the freed place takes the sibling: {bpb.BindingState.Name(sibling.binding.state)}")
    death = stub.ReportLifeEvent(
        bapi.ReportLifeEventRequest(
            request_id=report.key(),
            id_number=persons["grantor"].id_number,
            event_type=bapi.LIFE_EVENT_TYPE_DEATH,
        )
    )
    report.ok(
        f"the grantor dies: {len(death.ended_bindings)} bindings end "
        f"({', '.join(sorted({bpb.EndReason.Name(b.end_reason) for b in death.ended_bindings}))})"
    )
    after = stub.ResolvePayers(
        bapi.ResolvePayersRequest(
            beneficiary_id_number=persons["child"].id_number, use_category=common.USE_CATEGORY_OUTPATIENT
        )
    )
    report.ok(f"payers of the child now: {len(after.grants)}")
    history = stub.ListBindingEvents(bapi.ListBindingEventsRequest(binding_id=bindings["child"].binding_id))
    trail = ", ".join(
        f"{bpb.BindingEventType.Name(e.event_type).removeprefix('BINDING_EVENT_TYPE_')} by "
        f"{bpb.Actor.Name(e.actor).removeprefix('ACTOR_')}"
        for e in history.events
    )
    report.ok(f"audit trail of the child's binding: {trail}")


def _demo_day() -> datetime:
    """10:00 China Standard Time today: the demo's clock, so wallet transfers (closed at night) work."""
    today = datetime.now(UTC).astimezone(CHINA_STANDARD_TIME)
    return today.replace(hour=10, minute=0, second=0, microsecond=0)


def run_demo(verbose: bool = False) -> int:
    if not verbose:
        for name in ("gongji.rpc", "alembic", "services"):
            logging.getLogger(name).setLevel(logging.WARNING)
    clock = ManualClock(_demo_day())
    with tempfile.TemporaryDirectory(prefix="gongji-demo-") as scratch:
        pki = DevelopmentPKI(Path(scratch) / "pki", "gongji demo CA")
        print(f"gongji demo: a binding service and two payment nodes on SQLite in {scratch}")
        print(f"every port serves mutual TLS; certificates from a development CA in {pki.directory}")
        routing = two_node_routing()
        binding_settings = BindingSettings(
            database_url=f"sqlite:///{scratch}/binding.db",
            security=ServerSecurity(pki.transport(BINDING_SERVICE), nodes=routing.directory()),
            address="127.0.0.1:0",
            clock=clock,
        )
        with BackgroundServer(lambda: start_binding_server(binding_settings)) as binding_server:
            nodes = {}
            for name in ("east", "west"):
                settings = PaymentSettings(
                    database_url=f"sqlite:///{scratch}/payment-{name}.db",
                    security=ServerSecurity(pki.transport(payment_node(name))),
                    verifier=StandInVerifier(),
                    address=routing.nodes[name].address,
                    binding_address=binding_server.address,
                    clock=clock,
                    routing=RoutingTable(routing.nodes, name),
                )
                nodes[name] = BackgroundServer(lambda s=settings: start_payment_server(s)).start()
            roles = Roles(node_caller="east")
            stubs = [
                ActingStub(binding_grpc.BindingServiceStub, binding_server.address, pki, roles),
                ActingStub(payment_grpc.PaymentServiceStub, nodes["east"].address, pki, roles),
                ActingStub(payment_grpc.PaymentServiceStub, nodes["west"].address, pki, roles),
            ]
            try:
                print(
                    f"binding service on {binding_server.address}; payment node east (Jiangsu and others) on "
                    f"{nodes['east'].address}, west (Gansu and others) on {nodes['west'].address}"
                )
                binding, east, west = stubs
                report = Report(roles)
                persons, bindings = _walk_bindings(binding, report)  # type: ignore[arg-type]
                _walk_payments(binding, east, report, persons, clock)  # type: ignore[arg-type]
                walk_cross_province(binding, east, west, report, persons, clock)  # type: ignore[arg-type]
                walk_trust_boundaries(pki, east, report, persons, clock)
                _walk_endings(binding, report, persons, bindings)  # type: ignore[arg-type]
            finally:
                for stub in stubs:
                    stub.close()
                for server in nodes.values():
                    server.stop()
    print("\ndemo finished: every step above went over gRPC with mutual TLS to the running services.")
    return 0


def two_node_routing() -> RoutingTable:
    """Two payment nodes on free local ports: west keeps Gansu and its neighbours, east the rest."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    west = frozenset({"37", "41", "42", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"})
    return RoutingTable(
        {
            "east": Node("east", f"127.0.0.1:{ports[0]}", PROVINCES - west),
            "west": Node("west", f"127.0.0.1:{ports[1]}", west),
        },
        "east",
    )
