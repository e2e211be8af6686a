"""Concurrent bindings never break the rules.

The cap must be enforced atomically: two concurrent bindings
must never push a grantor over the cap. These tests fire real concurrent calls,
each over its own gRPC channel and released together by a barrier, at the
binding service on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import grpc

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from tests.conftest import BindingHarness
from tests.helpers import Refusal, binding_request, make_id_number, person, refusal_of, request_id

REGION = "110101"
CAP = 5
OPEN_STATES = [bpb.BINDING_STATE_PENDING_REVIEW, bpb.BINDING_STATE_ACTIVE, bpb.BINDING_STATE_SUSPENDED]
CALL_TIMEOUT = 60


def register(harness: BindingHarness, someone: bpb.InsuredPerson) -> None:
    harness.stub.UpsertInsuredPerson(
        bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=someone), timeout=CALL_TIMEOUT
    )


def set_cap(harness: BindingHarness, admdvs: str, cap: int) -> None:
    """A policy for the region, in force since yesterday: the policy in force now with another cap."""
    current = harness.stub.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs=admdvs), timeout=CALL_TIMEOUT).policy
    policy = bpb.RegionPolicy()
    policy.CopyFrom(current)
    policy.admdvs = admdvs
    policy.ClearField("version")
    policy.effective_from.FromDatetime(harness.clock.now() - timedelta(days=1))
    policy.max_beneficiaries = cap
    policy.description = f"test: at most {cap} beneficiaries"
    harness.stub.PutRegionPolicy(bapi.PutRegionPolicyRequest(request_id=request_id(), policy=policy))
    in_force = harness.stub.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs=admdvs), timeout=CALL_TIMEOUT).policy
    assert in_force.max_beneficiaries == cap


def race(harness, requests: list[bapi.CreateBindingRequest]) -> list[bapi.CreateBindingResponse | Refusal]:
    """Sends every request at once, each from its own thread over its own (mutual TLS) channel."""
    barrier = threading.Barrier(len(requests))

    def send(request: bapi.CreateBindingRequest) -> bapi.CreateBindingResponse | Refusal:
        stub = harness.fresh_stub()
        try:
            stub.prepare("CreateBinding", request, timeout=CALL_TIMEOUT)
            barrier.wait(timeout=CALL_TIMEOUT)
            try:
                return stub.CreateBinding(request, timeout=CALL_TIMEOUT)
            except grpc.RpcError as error:
                return refusal_of(error)
        finally:
            stub.close()

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def split(
    answers: list[bapi.CreateBindingResponse | Refusal],
) -> tuple[list[bpb.Binding], list[Refusal]]:
    created = [a.binding for a in answers if isinstance(a, bapi.CreateBindingResponse)]
    refused = [a for a in answers if isinstance(a, Refusal)]
    return created, refused


def open_bindings(harness: BindingHarness, grantor_id: str) -> list[bpb.Binding]:
    answer = harness.stub.ListBindings(
        bapi.ListBindingsRequest(grantor_id_number=grantor_id, states=OPEN_STATES, page_size=100),
        timeout=CALL_TIMEOUT,
    )
    assert answer.next_page_token == ""
    return list(answer.bindings)


def family(harness: BindingHarness, size: int, birth: str) -> tuple[bpb.InsuredPerson, list[bpb.InsuredPerson]]:
    """A registered employee grantor and `size` registered relatives, all insured in REGION."""
    grantor = person(make_id_number(REGION, "19700101", 1), "张建国", admdvs=REGION)
    register(harness, grantor)
    relatives = [
        person(
            make_id_number(REGION, birth, 100 + i),
            f"张{i}",
            admdvs=REGION,
            insurance_type=common.INSURANCE_TYPE_RESIDENT,
        )
        for i in range(size)
    ]
    for relative in relatives:
        register(harness, relative)
    return grantor, relatives


def describe(refused: list[Refusal]) -> str:
    return "; ".join(f"{r.code.name} {r.reason}: {r.message}" for r in refused)


def test_twenty_concurrent_bindings_of_one_grantor_fill_the_cap_exactly_and_refuse_the_rest(binding_service):
    """With a cap of 5, 20 racing applications give 5 bindings and 15 CAP_REACHED refusals."""
    set_cap(binding_service, REGION, CAP)
    grantor, relatives = family(binding_service, 20, "20000101")
    requests = [
        binding_request(grantor, relative, common.RELATIONSHIP_CHILD if i % 2 else common.RELATIONSHIP_PARENT)
        for i, relative in enumerate(relatives)
    ]

    created, refused = split(race(binding_service, requests))

    assert len(created) == CAP, describe(refused)
    assert all(b.state == bpb.BINDING_STATE_ACTIVE for b in created)
    assert len(refused) == len(requests) - CAP
    assert {(r.code, r.reason) for r in refused} == {(grpc.StatusCode.FAILED_PRECONDITION, "CAP_REACHED")}, describe(
        refused
    )
    listed = open_bindings(binding_service, grantor.id_number)
    assert sorted(b.binding_id for b in listed) == sorted(b.binding_id for b in created)
    assert len({b.beneficiary_id_number for b in listed}) == CAP


def test_the_cap_counts_every_open_binding_when_the_race_starts_part_full(binding_service):
    """A grantor already sharing with 3 of 5 gets exactly 2 more from a race of 10."""
    set_cap(binding_service, REGION, CAP)
    grantor, relatives = family(binding_service, 13, "20010101")
    for relative in relatives[:3]:
        binding_service.stub.CreateBinding(binding_request(grantor, relative), timeout=CALL_TIMEOUT)

    created, refused = split(race(binding_service, [binding_request(grantor, r) for r in relatives[3:]]))

    assert len(created) == CAP - 3, describe(refused)
    assert [r.reason for r in refused] == ["CAP_REACHED"] * (10 - (CAP - 3)), describe(refused)
    assert len(open_bindings(binding_service, grantor.id_number)) == CAP


def test_ten_concurrent_applications_for_the_same_pair_give_one_binding_and_nine_already_bound(binding_service):
    """Rule: "a pair can be bound once", even when ten different requests race for it."""
    grantor, (child,) = family(binding_service, 1, "20020101")
    first = binding_request(grantor, child)
    requests = []
    for _ in range(10):
        request = bapi.CreateBindingRequest()
        request.CopyFrom(first)
        request.request_id = request_id()
        requests.append(request)

    created, refused = split(race(binding_service, requests))

    assert len(created) == 1, describe(refused)
    assert {(r.code, r.reason) for r in refused} == {(grpc.StatusCode.ALREADY_EXISTS, "ALREADY_BOUND")}, describe(
        refused
    )
    assert len(refused) == 9
    assert [b.binding_id for b in open_bindings(binding_service, grantor.id_number)] == [created[0].binding_id]


def test_ten_concurrent_retries_of_one_request_all_get_the_same_binding(binding_service):
    """Rule: "a retry returns the first answer", even when the retries arrive together."""
    grantor, (child,) = family(binding_service, 1, "20030101")
    request = binding_request(grantor, child)

    created, refused = split(race(binding_service, [request] * 10))

    assert refused == []
    assert len(created) == 10
    assert len({b.binding_id for b in created}) == 1
    assert len({b.create_time.ToDatetime() for b in created}) == 1
    listed = open_bindings(binding_service, grantor.id_number)
    assert [b.binding_id for b in listed] == [created[0].binding_id]
    events = binding_service.stub.ListBindingEvents(
        bapi.ListBindingEventsRequest(binding_id=created[0].binding_id), timeout=CALL_TIMEOUT
    ).events
    assert [e.event_type for e in events] == [bpb.BINDING_EVENT_TYPE_CREATED]


def test_racing_applications_of_two_grantors_for_one_beneficiary_each_respect_their_own_cap(binding_service):
    """The cap is per grantor; two grantors racing for the same relatives never block each other."""
    set_cap(binding_service, REGION, 3)
    grantor, relatives = family(binding_service, 6, "20040101")
    other = person(make_id_number(REGION, "19720101", 2), "李秀英", admdvs=REGION)
    register(binding_service, other)
    requests = [binding_request(g, r) for r in relatives for g in (grantor, other)]

    created, refused = split(race(binding_service, requests))

    assert len(created) == 6, describe(refused)
    assert [r.reason for r in refused] == ["CAP_REACHED"] * 6, describe(refused)
    for someone in (grantor, other):
        assert len(open_bindings(binding_service, someone.id_number)) == 3
