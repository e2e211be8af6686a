"""What the demo's chapters share: the Nanjing family, the region and institutions where it
is treated, who is who in a printout, and the grantor's application to bind a relative."""

from __future__ import annotations

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from services.demo.report import Report
from shared.privacy import mask_id_number

NANJING, HOSPITAL, PHARMACY = "320100", "H320100-001", "P320100-017"

Family = dict[str, bpb.InsuredPerson]


def labels(names: dict[str, str]) -> dict[str, str]:
    """Who is who by ID number, whole or masked (a hospital sees relatives masked)."""
    return names | {mask_id_number(id_number): label for id_number, label in names.items()}


def grantor_binds(
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
