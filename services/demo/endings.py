"""The demo's last chapter: the grantor unbinds the spouse, the freed place goes to the
sibling, the grantor dies and every binding of his ends; the child's audit trail shows it."""

from __future__ import annotations

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.common.v1 import common_pb2 as common
from services.demo.family import Family, grantor_binds
from services.demo.report import Report


def walk_endings(
    stub: binding_grpc.BindingServiceStub, report: Report, persons: Family, bindings: dict[str, bpb.Binding]
) -> None:
    def bind(role: str, relationship: int, proof: int) -> bapi.CreateBindingRequest:
        return grantor_binds(report, persons, role, relationship, proof)

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
