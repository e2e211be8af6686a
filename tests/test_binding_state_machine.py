"""The binding rules hold through any sequence of operations.

A hypothesis state machine drives the real binding service over gRPC: it
registers people, binds random pairs with random relationships and proofs,
unbinds as grantor, beneficiary or operator, reviews pending bindings and
reports deaths, while a small model predicts every answer. After every step:

- no grantor has more open bindings than the region's cap;
- the service's bindings and their states are the model's;
- ResolvePayers offers only ACTIVE bindings of living grantors;
- every refusal is a known reason of the binding service, never INTERNAL or UNKNOWN.

Each example uses people of its own (a fresh birth date in their ID numbers), so
the examples share one server and database without seeing each other.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta

import grpc
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from shared.errors import Reason
from tests.conftest import START, BindingHarness
from tests.helpers import Refusal, binding_request, make_id_number, person, refusal_of, request_id

REGION = "110101"
CAP = 3
TIMEOUT = 30
OPERATOR = "operator-7"

# Persons 0 and 1 are employees with a personal account; 2–7 are resident-insured
# relatives. Grantors are drawn from 0–2, so person 2 tries and fails to grant;
# two grantors and a cap of 3 make the cap a frequent limit.
EMPLOYEES = range(2)
PEOPLE = 8
RELATIVES = range(2, PEOPLE)
GRANTOR_CANDIDATES = 3

CORE = {common.RELATIONSHIP_SPOUSE, common.RELATIONSHIP_PARENT, common.RELATIONSHIP_CHILD}
RELATIONSHIPS = [v.number for v in common.Relationship.DESCRIPTOR.values if v.number != 0]
OPEN = {bpb.BINDING_STATE_PENDING_REVIEW, bpb.BINDING_STATE_ACTIVE, bpb.BINDING_STATE_SUSPENDED}
KNOWN_REASONS = {reason.value for reason in Reason}
ACTORS = [bpb.ACTOR_GRANTOR, bpb.ACTOR_BENEFICIARY, bpb.ACTOR_OPERATOR]

_examples = itertools.count()


@dataclass
class Expected:
    """What the model expects a call to answer: success, or a refusal's code and reason."""

    code: grpc.StatusCode = grpc.StatusCode.OK
    reason: str = ""

    @classmethod
    def refusal(cls, code: grpc.StatusCode, reason: Reason) -> Expected:
        return cls(code, reason.value)


@dataclass
class ModelBinding:
    grantor: int
    beneficiary: int
    state: int


@dataclass
class Model:
    registered: set[int] = field(default_factory=set)
    deceased: set[int] = field(default_factory=set)
    bindings: dict[str, ModelBinding] = field(default_factory=dict)

    def open_of(self, grantor: int) -> list[ModelBinding]:
        return [b for b in self.bindings.values() if b.grantor == grantor and b.state in OPEN]


def cap_policy() -> bpb.RegionPolicy:
    """Like the national default (close relatives, one province, spouse/parent/child approved at once),
    but with a cap of 3, for REGION from before the test's clock starts."""
    policy = bpb.RegionPolicy(
        admdvs=REGION,
        relationship_scope=bpb.RELATIONSHIP_SCOPE_EXTENDED,
        max_beneficiaries=CAP,
        geographic_scope=bpb.GEOGRAPHIC_SCOPE_SAME_PROVINCE,
        allowed_uses=[
            common.USE_CATEGORY_OUTPATIENT,
            common.USE_CATEGORY_INPATIENT,
            common.USE_CATEGORY_PHARMACY,
        ],
        auto_approve_relationships=sorted(CORE),
        contact_change_grace_days=15,
        impersonation_suspension_threshold=3,
        wallet_transfers_per_day=3,
        wallet_transfer_max_fen=200_000,
        description="state machine: at most 3 beneficiaries",
    )
    policy.effective_from.FromDatetime(START - timedelta(days=30))
    return policy


class BindingRules(RuleBasedStateMachine):
    bindings = Bundle("bindings")

    def __init__(self, harness: BindingHarness) -> None:
        super().__init__()
        self.stub = harness.stub
        self.model = Model()
        birth = (date(1960, 1, 1) + timedelta(days=next(_examples))).strftime("%Y%m%d")
        self.people = [
            person(
                make_id_number(REGION, birth, sequence=i + 1),
                f"测试{i}",
                admdvs=REGION,
                insurance_type=common.INSURANCE_TYPE_EMPLOYEE if i in EMPLOYEES else common.INSURANCE_TYPE_RESIDENT,
                has_personal_account=i in EMPLOYEES,
            )
            for i in range(PEOPLE)
        ]
        self.index = {p.id_number: i for i, p in enumerate(self.people)}

    # Calling the service -----------------------------------------------------------

    def call(self, method: str, request: object, expected: Expected) -> object | None:
        """Calls the service; checks a refusal is a known reason and the answer is the model's."""
        try:
            answer = getattr(self.stub, method)(request, timeout=TIMEOUT)
        except grpc.RpcError as error:
            refusal: Refusal = refusal_of(error)
            event(f"{method} refused {refusal.reason}")
            assert refusal.code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (method, refusal)
            assert refusal.reason in KNOWN_REASONS, (method, refusal)
            assert refusal.domain == "binding.gongji", (method, refusal)
            assert (refusal.code, refusal.reason) == (expected.code, expected.reason), (method, refusal, expected)
            return None
        event(f"{method} succeeded")
        assert expected.code == grpc.StatusCode.OK, (method, "succeeded but the model expected", expected)
        return answer

    # Rules ---------------------------------------------------------------------------

    @initialize()
    def put_a_small_cap_and_register_the_family(self) -> None:
        """The region allows 3 beneficiaries per grantor (the same version in every example).

        Everyone but the last person is in the registry from the start; the last one
        joins only if the `register` rule runs.
        """
        answer = self.call(
            "PutRegionPolicy",
            bapi.PutRegionPolicyRequest(request_id=request_id(), policy=cap_policy()),
            Expected(),
        )
        assert answer.policy.max_beneficiaries == CAP
        for who in range(PEOPLE - 1):
            self.register(who)

    @rule(who=st.integers(0, PEOPLE - 1))
    def register(self, who: int) -> None:
        """The registry sync; repeating it for a known person changes nothing."""
        record = bpb.InsuredPerson()
        record.CopyFrom(self.people[who])
        if who in self.model.deceased:
            record.status = common.INSURANCE_STATUS_DECEASED
        answer = self.call(
            "UpsertInsuredPerson",
            bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=record),
            Expected(),
        )
        assert answer.created == (who not in self.model.registered)
        self.model.registered.add(who)

    @rule(
        target=bindings,
        grantor=st.integers(0, GRANTOR_CANDIDATES - 1),
        beneficiary=st.integers(0, PEOPLE - 1),
        relationship=st.sampled_from(RELATIONSHIPS),
        kinship_certificate=st.booleans(),
    )
    def create_binding(self, grantor: int, beneficiary: int, relationship: int, kinship_certificate: bool):
        """Any relationship and proof; the model predicts the refusal or the starting state."""
        return self.apply_for_binding(grantor, beneficiary, relationship, kinship_certificate)

    @rule(
        target=bindings,
        grantor=st.sampled_from(EMPLOYEES),
        beneficiary=st.sampled_from(RELATIVES),
        relationship=st.sampled_from(sorted(CORE)),
    )
    def create_binding_for_a_close_relative(self, grantor: int, beneficiary: int, relationship: int):
        """Spouse, parent or child with a checkable document, approved at once (the common case)."""
        return self.apply_for_binding(grantor, beneficiary, relationship, kinship_certificate=False)

    @rule(
        target=bindings,
        grantor=st.sampled_from(EMPLOYEES),
        beneficiary=st.sampled_from(RELATIVES),
        relationship=st.sampled_from(sorted(set(RELATIONSHIPS) - CORE)),
        kinship_certificate=st.booleans(),
    )
    def create_binding_that_needs_review(
        self, grantor: int, beneficiary: int, relationship: int, kinship_certificate: bool
    ):
        """A sibling, grandparent or grandchild waits for an operator's review."""
        return self.apply_for_binding(grantor, beneficiary, relationship, kinship_certificate)

    def apply_for_binding(self, grantor: int, beneficiary: int, relationship: int, kinship_certificate: bool):
        proof = bpb.PROOF_TYPE_KINSHIP_CERTIFICATE if kinship_certificate else None
        request = binding_request(self.people[grantor], self.people[beneficiary], relationship, proof=proof)
        expected, state = self.predict_binding(grantor, beneficiary, relationship, kinship_certificate)
        answer = self.call("CreateBinding", request, expected)
        if answer is None:
            return multiple()
        binding = answer.binding
        assert binding.state == state
        assert (binding.grantor_id_number, binding.beneficiary_id_number) == (
            self.people[grantor].id_number,
            self.people[beneficiary].id_number,
        )
        self.model.bindings[binding.binding_id] = ModelBinding(grantor, beneficiary, binding.state)
        return binding.binding_id

    def predict_binding(
        self, grantor: int, beneficiary: int, relationship: int, kinship_certificate: bool
    ) -> tuple[Expected, int]:
        model, failed = self.model, grpc.StatusCode.FAILED_PRECONDITION
        if grantor == beneficiary:
            return Expected.refusal(grpc.StatusCode.INVALID_ARGUMENT, Reason.SELF_BINDING), 0
        if grantor not in model.registered or grantor not in EMPLOYEES:
            return Expected.refusal(failed, Reason.GRANTOR_NOT_EMPLOYEE), 0
        if grantor in model.deceased:
            return Expected.refusal(failed, Reason.GRANTOR_NOT_IN_NORMAL_STATUS), 0
        if beneficiary not in model.registered:
            return Expected.refusal(failed, Reason.BENEFICIARY_NOT_INSURED), 0
        if beneficiary in model.deceased:
            return Expected.refusal(failed, Reason.BENEFICIARY_NOT_IN_NORMAL_STATUS), 0
        open_bindings = model.open_of(grantor)
        if any(b.beneficiary == beneficiary for b in open_bindings):
            return Expected.refusal(grpc.StatusCode.ALREADY_EXISTS, Reason.ALREADY_BOUND), 0
        if len(open_bindings) >= CAP:
            return Expected.refusal(failed, Reason.CAP_REACHED), 0
        if kinship_certificate and relationship == common.RELATIONSHIP_SPOUSE:
            return Expected.refusal(failed, Reason.PROOF_MISSING), 0
        automatic = relationship in CORE and not kinship_certificate
        return Expected(), bpb.BINDING_STATE_ACTIVE if automatic else bpb.BINDING_STATE_PENDING_REVIEW

    @rule(binding_id=bindings, actor=st.sampled_from(ACTORS), as_the_wrong_person=st.booleans())
    def end_binding(self, binding_id: str, actor: int, as_the_wrong_person: bool) -> None:
        """The grantor may unbind, the beneficiary may leave, an operator may end it."""
        binding = self.model.bindings[binding_id]
        party = {bpb.ACTOR_GRANTOR: binding.grantor, bpb.ACTOR_BENEFICIARY: binding.beneficiary}.get(actor)
        if actor == bpb.ACTOR_OPERATOR:
            actor_id = OPERATOR
        elif as_the_wrong_person:
            other = binding.beneficiary if actor == bpb.ACTOR_GRANTOR else binding.grantor
            actor_id = self.people[other].id_number
        else:
            actor_id = self.people[party].id_number
        if binding.state not in OPEN:
            expected = Expected.refusal(grpc.StatusCode.FAILED_PRECONDITION, Reason.BINDING_NOT_ACTIVE)
        elif actor != bpb.ACTOR_OPERATOR and as_the_wrong_person:
            expected = Expected.refusal(grpc.StatusCode.PERMISSION_DENIED, Reason.NOT_PARTY_TO_BINDING)
        else:
            expected = Expected()
        request = bapi.EndBindingRequest(
            request_id=request_id(),
            binding_id=binding_id,
            actor=actor,
            actor_id=actor_id,
            comment="state machine",
            channel=common.CHANNEL_WEB,
        )
        answer = self.call("EndBinding", request, expected)
        if answer is not None:
            assert answer.binding.state == bpb.BINDING_STATE_ENDED
            reason = {
                bpb.ACTOR_GRANTOR: bpb.END_REASON_GRANTOR_REQUEST,
                bpb.ACTOR_BENEFICIARY: bpb.END_REASON_BENEFICIARY_REQUEST,
                bpb.ACTOR_OPERATOR: bpb.END_REASON_OPERATOR_ACTION,
            }[actor]
            assert answer.binding.end_reason == reason
            binding.state = bpb.BINDING_STATE_ENDED

    @rule(binding_id=bindings, approve=st.booleans())
    def review_binding(self, binding_id: str, approve: bool) -> None:
        """An operator approves or rejects a binding whose proof needs a person's check."""
        binding = self.model.bindings[binding_id]
        if binding.state == bpb.BINDING_STATE_PENDING_REVIEW:
            expected = Expected()
        else:
            expected = Expected.refusal(grpc.StatusCode.FAILED_PRECONDITION, Reason.BINDING_NOT_PENDING_REVIEW)
        request = bapi.ReviewBindingRequest(
            request_id=request_id(),
            binding_id=binding_id,
            decision=bapi.REVIEW_DECISION_APPROVE if approve else bapi.REVIEW_DECISION_REJECT,
            operator_id=OPERATOR,
            comment="checked the kinship certificate",
        )
        answer = self.call("ReviewBinding", request, expected)
        if answer is not None:
            binding.state = bpb.BINDING_STATE_ACTIVE if approve else bpb.BINDING_STATE_REJECTED
            assert answer.binding.state == binding.state

    @precondition(lambda self: len(self.model.deceased) < 2)
    @rule(binding_id=bindings, of_the_grantor=st.booleans())
    def report_death_of_a_party(self, binding_id: str, of_the_grantor: bool) -> None:
        """Death of either party of a binding."""
        binding = self.model.bindings[binding_id]
        self.report_death(binding.grantor if of_the_grantor else binding.beneficiary)

    @precondition(lambda self: len(self.model.deceased) < 2)
    @rule(who=st.integers(0, PEOPLE - 1))
    def report_death(self, who: int) -> None:
        """Death of either party ends every open binding of that person."""
        if who in self.model.registered:
            expected = Expected()
        else:
            expected = Expected.refusal(grpc.StatusCode.NOT_FOUND, Reason.PERSON_NOT_FOUND)
        request = bapi.ReportLifeEventRequest(
            request_id=request_id(), id_number=self.people[who].id_number, event_type=bapi.LIFE_EVENT_TYPE_DEATH
        )
        answer = self.call("ReportLifeEvent", request, expected)
        if answer is None:
            return
        ending = {
            binding_id
            for binding_id, b in self.model.bindings.items()
            if b.state in OPEN and who in (b.grantor, b.beneficiary)
        }
        assert {b.binding_id for b in answer.ended_bindings} == ending
        assert all(b.end_reason == bpb.END_REASON_DEATH for b in answer.ended_bindings)
        assert answer.insured_person.status == common.INSURANCE_STATUS_DECEASED
        for binding_id in ending:
            self.model.bindings[binding_id].state = bpb.BINDING_STATE_ENDED
        self.model.deceased.add(who)

    # Invariants ------------------------------------------------------------------------

    @invariant()
    def no_grantor_exceeds_the_cap_and_the_service_holds_exactly_the_models_bindings(self) -> None:
        """At most CAP open bindings per grantor; each binding in the model's state (who, kin, ended)."""
        for grantor in range(GRANTOR_CANDIDATES):
            listed = self.stub.ListBindings(
                bapi.ListBindingsRequest(grantor_id_number=self.people[grantor].id_number, page_size=100),
                timeout=TIMEOUT,
            ).bindings
            assert len([b for b in listed if b.state in OPEN]) <= CAP
            actual = {b.binding_id: b.state for b in listed}
            expected = {i: b.state for i, b in self.model.bindings.items() if b.grantor == grantor}
            assert actual == expected

    @invariant()
    def payers_are_only_active_bindings_of_living_grantors(self) -> None:
        """Ended, rejected or pending bindings and deceased grantors never pay."""
        status_of: dict[str, int] = {}
        for beneficiary in sorted({b.beneficiary for b in self.model.bindings.values()}):
            request = bapi.ResolvePayersRequest(
                beneficiary_id_number=self.people[beneficiary].id_number,
                use_category=common.USE_CATEGORY_OUTPATIENT,
            )
            grants = self.stub.ResolvePayers(request, timeout=TIMEOUT).grants
            for grant in grants:
                binding = self.stub.GetBinding(
                    bapi.GetBindingRequest(binding_id=grant.binding_id), timeout=TIMEOUT
                ).binding
                assert binding.state == bpb.BINDING_STATE_ACTIVE, (grant, binding)
                if grant.grantor_id_number not in status_of:
                    status_of[grant.grantor_id_number] = self.stub.GetInsuredPerson(
                        bapi.GetInsuredPersonRequest(id_number=grant.grantor_id_number), timeout=TIMEOUT
                    ).insured_person.status
                assert status_of[grant.grantor_id_number] == common.INSURANCE_STATUS_NORMAL, grant
                assert self.index[grant.grantor_id_number] not in self.model.deceased, grant
            expected = {
                binding_id
                for binding_id, b in self.model.bindings.items()
                if b.beneficiary == beneficiary and b.state == bpb.BINDING_STATE_ACTIVE
            }
            assert {g.binding_id for g in grants} == expected
            assert [g.priority for g in grants] == list(range(1, len(grants) + 1))


def test_the_binding_rules_hold_through_any_sequence_of_operations(binding_service):
    """Caps, pairs, reviews, unbinding and deaths, driven at random against the real service."""
    run_state_machine_as_test(
        lambda: BindingRules(binding_service),
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
