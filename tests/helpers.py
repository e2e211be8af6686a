"""Builders and assertions the tests share."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_sequence = itertools.count(1)


def make_id_number(area: str = "110101", birth: str = "19800101", sequence: int | None = None) -> str:
    """A valid resident ID number (GB 11643 check digit) for a real area code."""
    seq = f"{(sequence if sequence is not None else next(_sequence)) % 1000:03d}"
    body = area + birth + seq
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True)) % 11]


def request_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    reason: str
    domain: str
    fields: tuple[str, ...]
    message: str
    metadata: dict[str, str] = field(default_factory=dict)


def refusal_of(error: grpc.RpcError) -> Refusal:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"{error.code()} carried no google.rpc.Status: {error.details()}"
    reason, domain, fields, metadata = "", "", [], {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    assert reason, "every error carries an ErrorInfo with a reason"
    return Refusal(error.code(), reason, domain, tuple(fields), status.message, metadata)


def person(
    id_number: str,
    name: str,
    admdvs: str = "110101",
    insurance_type: int = common.INSURANCE_TYPE_EMPLOYEE,
    status: int = common.INSURANCE_STATUS_NORMAL,
    has_personal_account: bool = True,
) -> bpb.InsuredPerson:
    return bpb.InsuredPerson(
        id_number=id_number,
        name=name,
        insurance_type=insurance_type,
        status=status,
        admdvs=admdvs,
        phone="13800000000",
        address="1 Example Road",
        has_personal_account=has_personal_account,
    )


PROOF_FOR = {
    common.RELATIONSHIP_SPOUSE: bpb.PROOF_TYPE_MARRIAGE_CERTIFICATE,
}


def binding_request(
    grantor: bpb.InsuredPerson,
    beneficiary: bpb.InsuredPerson,
    relationship: int = common.RELATIONSHIP_CHILD,
    proof: int | None = None,
    consent_version: str = "notice-2025-01",
    channel: int = common.CHANNEL_NATIONAL_APP,
    yearly_cap_fen: int = 0,
) -> bapi.CreateBindingRequest:
    proof_type = proof if proof is not None else PROOF_FOR.get(relationship, bpb.PROOF_TYPE_HOUSEHOLD_REGISTER)
    return bapi.CreateBindingRequest(
        request_id=request_id(),
        grantor=bapi.PersonIdentity(id_number=grantor.id_number, name=grantor.name),
        beneficiary=bapi.PersonIdentity(id_number=beneficiary.id_number, name=beneficiary.name),
        relationship=relationship,
        proofs=[bpb.Proof(type=proof_type, document_ref="DOC-1")] if proof_type else [],
        consent_version=consent_version,
        channel=channel,
        yearly_cap_fen=yearly_cap_fen,
    )


def metric_total(address: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`, read from the
    Prometheus endpoint at HOST:PORT with prometheus_client's own parser."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
