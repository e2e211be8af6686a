"""Who may call what: every RPC of the three services, called over real mutual TLS by each
kind of caller, is allowed or refused with the right code and reason.

The table below is written by hand from what each role needs, not read from the shipped
policy, so a change to the policy that opens or closes a door fails here until the table
is changed too. A call counts as allowed when the guard let it through: the handler may
still refuse it for the domain's reasons (NOT_FOUND, FAILED_PRECONDITION, …).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.common.v1 import common_pb2 as common
from gongji.node.v1 import node_service_pb2 as node
from gongji.node.v1 import node_service_pb2_grpc as node_grpc
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.converters import datetime_to_timestamp
from services.common.security.callers import ACTING_FOR
from services.common.security.development_pki import DevelopmentPKI
from shared.bindings import Channel
from shared.principals import (
    BINDING_SERVICE,
    GATEWAY,
    Principal,
    channel_principal,
    institution,
    operator,
    payment_node,
)
from tests.helpers import refusal_of
from tests.test_cross_province import HOSPITAL, CrossFamily

OK, DENIED, SCOPE, HIDDEN, STRANGER, ANONYMOUS = "ok", "denied", "out of scope", "hidden", "stranger", "anonymous"

# The kinds of caller, by the name the table uses.
CALLERS: dict[str, Principal | None] = {
    "institution": institution(HOSPITAL),
    "other institution": institution("H440100-009"),
    "channel": channel_principal(Channel.WECHAT),
    "operator in region": operator("320000", "op-js"),
    "operator out of region": operator("620000", "op-gs"),
    "binding service": BINDING_SERVICE,
    "payment node": payment_node("west"),
    "node not in routing": payment_node("north"),
    # The gateway in its own name, and sending gongji-acting-for for a hospital or a channel.
    "gateway": GATEWAY,
    "gateway for institution": GATEWAY,
    "gateway for channel": GATEWAY,
    # A payment node of the routing file sending gongji-acting-for, as it forwards calls.
    "node for institution": payment_node("west"),
    "node for operator": payment_node("west"),
    "no certificate": None,
    "other CA": institution(HOSPITAL),
    # Signed by our CA, but its SPIFFE ID is of another trust domain.
    "no gongji ID": None,
}
# Whom a caller says it acts for (gongji-acting-for).
ACTING: dict[str, Principal] = {
    "gateway for institution": institution(HOSPITAL),
    "gateway for channel": channel_principal(Channel.WECHAT),
    "node for institution": institution(HOSPITAL),
    "node for operator": operator("320000", "op-js"),
}
# What a payment node forwards in its caller's name: what another node keeps (bills, their
# follow-ups, reads). Anything else in another's name is denied, whoever it names.
NODE_FORWARDS = {
    "QuoteSettlement", "AuthorizeSettlement", "Settle", "CaptureSettlement", "ReleaseSettlement",
    "RefundSettlement", "ReverseRequest", "GetSettlement", "GetAccount", "ListStatement",
}  # fmt: skip


def expected(allowed: str, scoped: dict[str, str] | None = None) -> dict[str, str]:
    """Outcome per caller: `allowed` lists the callers the RPC admits (by their table names'
    first words: institution, channel, operator, node); `scoped` overrides single callers.
    The gateway acting for the hospital is judged as the hospital, on the payment and binding
    services; in its own name, or for anyone but an institution, it may call nothing."""
    kinds = set(allowed.split())
    table = {
        "institution": OK if "institution" in kinds else DENIED,
        "gateway for institution": OK if "institution" in kinds else DENIED,
        "gateway": DENIED,
        "gateway for channel": DENIED,
        "other institution": OK if "institution" in kinds else DENIED,
        "channel": OK if "channel" in kinds else DENIED,
        "operator in region": OK if "operator" in kinds else DENIED,
        "operator out of region": OK if "operator" in kinds else DENIED,
        "binding service": DENIED,
        "payment node": OK if "node" in kinds else DENIED,
        "node not in routing": DENIED,
        "no certificate": STRANGER,
        "other CA": STRANGER,
        "no gongji ID": ANONYMOUS,
    }
    return table | (scoped or {})


OUT = {"operator out of region": SCOPE}
OTHER_SCOPE = {"other institution": SCOPE}
OTHER_HIDDEN = {"other institution": HIDDEN}

MATRIX: dict[str, dict[str, str]] = {
    # Binding service: persons act through channels, agency staff within their region;
    # institutions read the patient at the counter (least data, see redaction.py).
    "BindingService/UpsertInsuredPerson": expected("operator", OUT),
    "BindingService/GetInsuredPerson": expected("institution channel operator node", OUT),
    "BindingService/UpdateContactInfo": expected("channel operator", OUT),
    "BindingService/ReportLifeEvent": expected("operator", OUT),
    "BindingService/CreateBinding": expected("channel"),
    "BindingService/ReviewBinding": expected("operator", OUT),
    "BindingService/EndBinding": expected("channel operator", OUT),
    "BindingService/GetBinding": expected("channel operator node", OUT),
    "BindingService/ListBindings": expected("channel operator node", OUT),
    "BindingService/ListBindingEvents": expected("channel operator", OUT),
    "BindingService/UpdateSharingLimit": expected("channel operator", OUT),
    "BindingService/SetPayerOrder": expected("channel operator", OUT),
    "BindingService/ResolvePayers": expected("node"),
    "BindingService/CheckWalletTransfer": expected("node"),
    "BindingService/WatchPayerChanges": expected("node"),
    "BindingService/PutRegionPolicy": expected("operator", OUT),
    "BindingService/GetRegionPolicy": expected("institution channel operator node"),
    "BindingService/ListRegionPolicies": expected("institution channel operator node"),
    # Payment service: institutions settle their own bills only.
    "PaymentService/CreditAccount": expected("operator", OUT),
    "PaymentService/GetAccount": expected("institution channel operator", OUT),
    "PaymentService/ListStatement": expected("channel operator", OUT),
    "PaymentService/QuoteSettlement": expected("institution", OTHER_SCOPE),
    "PaymentService/AuthorizeSettlement": expected("institution", OTHER_SCOPE),
    "PaymentService/CaptureSettlement": expected("institution", OTHER_HIDDEN),
    "PaymentService/ReleaseSettlement": expected("institution", OTHER_HIDDEN),
    "PaymentService/Settle": expected("institution", OTHER_SCOPE),
    "PaymentService/RefundSettlement": expected("institution", OTHER_HIDDEN),
    "PaymentService/ReverseRequest": expected("institution"),
    "PaymentService/GetSettlement": expected("institution operator", {**OTHER_HIDDEN, **OUT}),
    "PaymentService/ActivateWallet": expected("channel operator", OUT),
    "PaymentService/TransferToWallet": expected("channel"),
    "PaymentService/GetTransfer": expected("channel"),
    "PaymentService/SuspendSettlement": expected("operator", OUT),
    "PaymentService/LiftSuspension": expected("operator", OUT),
    "PaymentService/ListViolations": expected("operator", OUT),
    "PaymentService/ReconcileInstitution": expected("institution"),
    "PaymentService/GetClearingReport": expected("operator", OUT),
    "PaymentService/CheckLedger": expected("operator", OUT),
    # Node-to-node service: only the payment nodes of the routing file.
    "PaymentNodeService/GetPayerCapacity": expected("node"),
    "PaymentNodeService/PrepareLegs": expected("node"),
    "PaymentNodeService/CommitLegs": expected("node"),
    "PaymentNodeService/BatchCommitLegs": expected("node"),
    "PaymentNodeService/AbortLegs": expected("node"),
    "PaymentNodeService/RefundLegs": expected("node"),
    "PaymentNodeService/GetTransactionOutcome": expected("node"),
    "PaymentNodeService/CreditWallet": expected("node"),
    "PaymentNodeService/DeclineWalletCredit": expected("node"),
    # Health answers every authenticated caller; a node outside the routing file is no caller.
    # The gateway may check health in its own name, but acts for nobody there.
    "Health/Check": expected("institution channel operator node")
    | {"binding service": OK, "gateway": OK, "gateway for institution": DENIED},
}
for _rpc, _row in MATRIX.items():
    _forwarded = _rpc.startswith("PaymentService/") and _rpc.split("/")[1] in NODE_FORWARDS
    _row["node for institution"] = _row["institution"] if _forwarded else DENIED
    _row["node for operator"] = _row["operator in region"] if _forwarded else DENIED


def _id() -> str:
    return str(uuid.uuid4())


@dataclass
class World:
    """The two-node deployment with a cross-province family, and ways to reach it."""

    family: CrossFamily
    nodes: Any
    pki: DevelopmentPKI
    stranger_pki: DevelopmentPKI

    def address(self, service: str) -> str:
        return self.nodes.east.binding.server.address if service == "BindingService" else self.nodes.east.server.address

    def authorized(self, amount: int = 100) -> ppb.Settlement:
        """A fresh hold at the family's hospital, placed by the hospital itself."""
        bill = self.family.bill(amount)
        return self.nodes.east.stub.AuthorizeSettlement(
            papi.AuthorizeSettlementRequest(request_id=_id(), bill=bill)
        ).settlement

    def captured(self) -> ppb.Settlement:
        return self.nodes.east.stub.Settle(papi.SettleRequest(request_id=_id(), bill=self.family.bill(100))).settlement

    def spare_binding(self) -> bpb.Binding:
        """A binding of two more people of Nanjing, to be ended or reviewed."""
        grantor = self.family.register("赵大妈", "320100")
        relative = self.family.register("赵小妹", "320100", resident=True)
        return self.family.binding.CreateBinding(
            bapi.CreateBindingRequest(
                request_id=_id(),
                grantor=bapi.PersonIdentity(id_number=grantor.id_number, name=grantor.name),
                beneficiary=bapi.PersonIdentity(id_number=relative.id_number, name=relative.name),
                relationship=common.RELATIONSHIP_CHILD,
                proofs=[bpb.Proof(type=bpb.PROOF_TYPE_HOUSEHOLD_REGISTER, document_ref="doc")],
                consent_version="notice-2025-01",
                channel=common.CHANNEL_NATIONAL_APP,
            )
        ).binding


Request = Callable[[World, str], Any]


def _binding_requests() -> dict[str, Request]:
    def end(world: World, caller: str) -> bapi.EndBindingRequest:
        binding = world.spare_binding()
        if caller.startswith("operator"):
            return bapi.EndBindingRequest(request_id=_id(), binding_id=binding.binding_id, actor=bpb.ACTOR_OPERATOR)
        return bapi.EndBindingRequest(
            request_id=_id(), binding_id=binding.binding_id, actor=bpb.ACTOR_GRANTOR,
            actor_id=binding.grantor_id_number,
        )  # fmt: skip

    def policy(world: World, caller: str) -> bapi.PutRegionPolicyRequest:
        current = world.family.binding.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs="320100")).policy
        current.admdvs = "320100"
        current.ClearField("version")
        current.effective_from.CopyFrom(datetime_to_timestamp(world.family.clock.now() + timedelta(days=3650)))
        current.description = f"matrix {_id()}"
        return bapi.PutRegionPolicyRequest(request_id=_id(), policy=current)

    return {
        "UpsertInsuredPerson": lambda w, c: bapi.UpsertInsuredPersonRequest(
            request_id=_id(), insured_person=w.family.child
        ),
        "GetInsuredPerson": lambda w, c: bapi.GetInsuredPersonRequest(id_number=w.family.child.id_number),
        "UpdateContactInfo": lambda w, c: bapi.UpdateContactInfoRequest(
            request_id=_id(), id_number=w.family.child.id_number, phone="13900000000"
        ),
        "ReportLifeEvent": lambda w, c: bapi.ReportLifeEventRequest(
            request_id=_id(), id_number=w.family.child.id_number, event_type=bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED
        ),
        "CreateBinding": lambda w, c: bapi.CreateBindingRequest(
            request_id=_id(),
            grantor=bapi.PersonIdentity(id_number=w.family.mother.id_number, name=w.family.mother.name),
            beneficiary=bapi.PersonIdentity(id_number=w.family.father.id_number, name=w.family.father.name),
            relationship=common.RELATIONSHIP_SPOUSE,
            proofs=[bpb.Proof(type=bpb.PROOF_TYPE_MARRIAGE_CERTIFICATE, document_ref="doc")],
            consent_version="notice-2025-01",
        ),
        "ReviewBinding": lambda w, c: bapi.ReviewBindingRequest(
            request_id=_id(), binding_id=w.spare_binding().binding_id, decision=bapi.REVIEW_DECISION_APPROVE
        ),
        "EndBinding": end,
        "GetBinding": lambda w, c: bapi.GetBindingRequest(binding_id=w.family.mother_binding.binding_id),
        "ListBindings": lambda w, c: bapi.ListBindingsRequest(grantor_id_number=w.family.mother.id_number),
        "ListBindingEvents": lambda w, c: bapi.ListBindingEventsRequest(binding_id=w.family.mother_binding.binding_id),
        "UpdateSharingLimit": lambda w, c: bapi.UpdateSharingLimitRequest(
            request_id=_id(), binding_id=w.family.mother_binding.binding_id, share_all=True
        ),
        "SetPayerOrder": lambda w, c: bapi.SetPayerOrderRequest(
            request_id=_id(), beneficiary_id_number=w.family.child.id_number, mode=bpb.PAYER_MODE_SEQUENTIAL
        ),
        "ResolvePayers": lambda w, c: bapi.ResolvePayersRequest(
            beneficiary_id_number=w.family.child.id_number, use_category=common.USE_CATEGORY_OUTPATIENT
        ),
        "CheckWalletTransfer": lambda w, c: bapi.CheckWalletTransferRequest(
            grantor_id_number=w.family.mother.id_number, beneficiary_id_number=w.family.child.id_number
        ),
        "WatchPayerChanges": lambda w, c: bapi.WatchPayerChangesRequest(keepalive=1),
        "PutRegionPolicy": policy,
        "GetRegionPolicy": lambda w, c: bapi.GetRegionPolicyRequest(admdvs="320100"),
        "ListRegionPolicies": lambda w, c: bapi.ListRegionPoliciesRequest(admdvs="32"),
    }


def _payment_requests() -> dict[str, Request]:
    def personal(id_number: str) -> dict[str, Any]:
        return {"id_number": id_number, "account_kind": ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT}

    return {
        "CreditAccount": lambda w, c: papi.CreditAccountRequest(
            request_id=_id(),
            **personal(w.family.mother.id_number),
            amount_fen=100,
            kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION,
            admdvs="320100",
        ),
        "GetAccount": lambda w, c: papi.GetAccountRequest(**personal(w.family.mother.id_number)),
        "ListStatement": lambda w, c: papi.ListStatementRequest(**personal(w.family.mother.id_number)),
        "QuoteSettlement": lambda w, c: papi.QuoteSettlementRequest(bill=w.family.bill(100)),
        "AuthorizeSettlement": lambda w, c: papi.AuthorizeSettlementRequest(request_id=_id(), bill=w.family.bill(100)),
        "CaptureSettlement": lambda w, c: papi.CaptureSettlementRequest(
            request_id=_id(), settlement_id=w.authorized().settlement_id
        ),
        "ReleaseSettlement": lambda w, c: papi.ReleaseSettlementRequest(
            request_id=_id(), settlement_id=w.authorized().settlement_id
        ),
        "Settle": lambda w, c: papi.SettleRequest(request_id=_id(), bill=w.family.bill(100)),
        "RefundSettlement": lambda w, c: papi.RefundSettlementRequest(
            request_id=_id(), settlement_id=w.captured().settlement_id
        ),
        "ReverseRequest": lambda w, c: papi.ReverseRequestRequest(request_id=_id(), original_request_id=_id()),
        "GetSettlement": lambda w, c: papi.GetSettlementRequest(settlement_id=w.authorized().settlement_id),
        "ActivateWallet": lambda w, c: papi.ActivateWalletRequest(
            request_id=_id(), id_number=w.family.child.id_number, admdvs="320100"
        ),
        "TransferToWallet": lambda w, c: papi.TransferToWalletRequest(
            request_id=_id(),
            grantor_id_number=w.family.mother.id_number,
            beneficiary_id_number=w.family.child.id_number,
            amount_fen=100,
            verification=ppb.Verification(method=ppb.VERIFICATION_METHOD_FACE, token="forged"),
        ),
        "GetTransfer": lambda w, c: papi.GetTransferRequest(transfer_id=_id()),
        "SuspendSettlement": lambda w, c: papi.SuspendSettlementRequest(
            request_id=_id(), holder_id_number=w.family.mother.id_number, reason="matrix"
        ),
        "LiftSuspension": lambda w, c: papi.LiftSuspensionRequest(
            request_id=_id(), holder_id_number=w.family.mother.id_number, reason="matrix"
        ),
        "ListViolations": lambda w, c: papi.ListViolationsRequest(holder_id_number=w.family.mother.id_number),
        "ReconcileInstitution": lambda w, c: papi.ReconcileInstitutionRequest(date=w.family.today()),
        "GetClearingReport": lambda w, c: papi.GetClearingReportRequest(date=w.family.today()),
        "CheckLedger": lambda w, c: papi.CheckLedgerRequest(),
    }


def _node_requests() -> dict[str, Request]:
    return {
        "GetPayerCapacity": lambda w, c: node.GetPayerCapacityRequest(beneficiary_id_number=w.family.child.id_number),
        "PrepareLegs": lambda w, c: node.PrepareLegsRequest(
            transaction_id=_id(),
            coordinator_province="62",
            beneficiary_id_number=w.family.child.id_number,
            expire_time=datetime_to_timestamp(w.family.clock.now() + timedelta(minutes=5)),
            use_category=common.USE_CATEGORY_OUTPATIENT,
            institution_admdvs="620100",
        ),
        "CommitLegs": lambda w, c: node.CommitLegsRequest(transaction_id=_id()),
        "BatchCommitLegs": lambda w, c: node.BatchCommitLegsRequest(
            requests=[node.CommitLegsRequest(transaction_id=_id())]
        ),
        "AbortLegs": lambda w, c: node.AbortLegsRequest(transaction_id=_id(), coordinator_province="62"),
        "RefundLegs": lambda w, c: node.RefundLegsRequest(transaction_id=_id()),
        "GetTransactionOutcome": lambda w, c: node.GetTransactionOutcomeRequest(
            transaction_id=_id(), participant_province="62"
        ),
        "CreditWallet": lambda w, c: node.CreditWalletRequest(
            transfer_id=_id(),
            beneficiary_id_number=w.family.child.id_number,
            amount_fen=100,
            source_province="62",
            grantor_id_number=w.family.father.id_number,
            binding_id=w.family.father_binding.binding_id,
        ),
        "DeclineWalletCredit": lambda w, c: node.DeclineWalletCreditRequest(
            transfer_id=_id(), beneficiary_id_number=w.family.child.id_number, amount_fen=100, source_province="62"
        ),
    }


REQUESTS: dict[str, Request] = {
    **{f"BindingService/{name}": make for name, make in _binding_requests().items()},
    **{f"PaymentService/{name}": make for name, make in _payment_requests().items()},
    **{f"PaymentNodeService/{name}": make for name, make in _node_requests().items()},
    "Health/Check": lambda w, c: health_pb2.HealthCheckRequest(),
}
# Both sides stream: one request goes in, the first answer shows the call was admitted.
STREAMING = {"WatchPayerChanges"}
STUBS: dict[str, Callable[[grpc.Channel], Any]] = {
    "BindingService": binding_grpc.BindingServiceStub,
    "PaymentService": payment_grpc.PaymentServiceStub,
    "PaymentNodeService": node_grpc.PaymentNodeServiceStub,
    "Health": health_pb2_grpc.HealthStub,
}


def test_the_matrix_names_every_rpc_of_the_three_services():
    declared = {
        f"{service.name}/{method.name}"
        for module in (bapi, papi, node)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert declared == set(MATRIX) - {"Health/Check"}
    assert set(REQUESTS) == set(MATRIX)


def _channel(world: World, caller: str, address: str) -> grpc.Channel:
    principal = CALLERS[caller]
    if caller == "no gongji ID":
        issued = world.pki.ca.issue_uri("spiffe://elsewhere.example/workload/billing", "foreign-workload")
        files = (world.pki.ca_file.read_bytes(), issued.key.read_bytes(), issued.cert.read_bytes())
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(*files))
    if caller == "no certificate":
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(world.pki.ca_file.read_bytes()))
    assert principal is not None
    if caller == "other CA":
        return world.stranger_pki.channel(address, principal, trusted_ca=world.pki.ca_file)
    return world.pki.channel(address, principal)


def _outcome(world: World, rpc: str, caller: str) -> tuple[str, str]:
    service, method = rpc.split("/")
    request = REQUESTS[rpc](world, caller)
    address = world.address(service)
    with _channel(world, caller, address) as channel:
        try:
            metadata = ((ACTING_FOR, ACTING[caller].spiffe_id),) if caller in ACTING else None
            call = getattr(STUBS[service](channel), method)
            if method in STREAMING:
                next(call(iter([request]), timeout=20, metadata=metadata))  # admitted once it answers
            else:
                call(request, timeout=20, metadata=metadata)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE and caller in ("no certificate", "other CA"):
                return STRANGER, error.code().name
            refusal = refusal_of(error)
            if (refusal.code, refusal.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED_CALLER"):
                return ANONYMOUS, refusal.reason
            if (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED"):
                return DENIED, refusal.reason
            if (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OUT_OF_SCOPE"):
                return SCOPE, refusal.reason
            if (refusal.code, refusal.reason) == (grpc.StatusCode.NOT_FOUND, "SETTLEMENT_NOT_FOUND") and (
                caller == "other institution"
            ):
                return HIDDEN, refusal.reason
            assert refusal.code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL), (rpc, refusal)
            return OK, f"{refusal.code.name} {refusal.reason}"
    return OK, "OK"


@pytest.fixture
def world(two_nodes, tmp_path) -> World:
    family = CrossFamily(two_nodes)
    return World(family, two_nodes, two_nodes.east.binding.pki, DevelopmentPKI(tmp_path / "stranger", "stranger CA"))


def test_every_rpc_admits_exactly_the_callers_its_role_needs(world):
    """Institutions settle their own bills (also through the gateway, acting for them), channels
    act for persons, operators act within their region, payment nodes of the routing file call
    each other, and nobody else gets in."""
    wrong = []
    for rpc, row in MATRIX.items():
        for caller, want in row.items():
            got, detail = _outcome(world, rpc, caller)
            if got != want:
                wrong.append(f"{rpc} as {caller}: expected {want}, got {got} ({detail})")
    assert wrong == [], "\n".join(wrong)
    for harness in (world.nodes.east, world.nodes.west):
        audit = harness.stub.CheckLedger(papi.CheckLedgerRequest())
        assert audit.balanced, list(audit.problems)
