"""The demo's first chapter, the binding rules: regional policy stored as data, the family
synced from the insurance core, the grantor binding three relatives (a fourth and one
insured in Hangzhou refused), and who pays for the child's bill."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.common.v1 import common_pb2 as common
from services.binding.entrypoints.converters import policy_to_proto
from services.demo.family import NANJING, Family, grantor_binds
from services.demo.report import Report
from shared.policy import example_policies
from shared.privacy import mask_id_number

HANGZHOU = "330100"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _id_number(area: str, birth: str, sequence: int) -> str:
    body = f"{area}{birth}{sequence:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True)) % 11]


def walk_bindings(stub: binding_grpc.BindingServiceStub, report: Report) -> tuple[Family, dict[str, bpb.Binding]]:
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
        return grantor_binds(report, persons, role, relationship, proof)

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
