"""Every rule of binding over real gRPC, on SQLite and PostgreSQL:
each refusal with its own reason, and the paths that succeed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from shared.bindings import Channel
from shared.principals import channel_principal, operator
from tests.helpers import binding_request, make_id_number, person, refusal_of, request_id

FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


class Family:
    """A grantor and relatives registered through UpsertInsuredPerson."""

    def __init__(self, harness, admdvs: str = "110101") -> None:
        self.stub = harness.stub
        self.clock = harness.clock
        self.grantor = self.register("王建国", admdvs)
        self.spouse = self.register("李秀英", admdvs)
        self.child = self.register("王小明", admdvs, insurance_type=common.INSURANCE_TYPE_RESIDENT)
        self.parent = self.register("王老汉", admdvs, insurance_type=common.INSURANCE_TYPE_RESIDENT)

    def register(self, name: str, admdvs: str = "110101", **overrides) -> bpb.InsuredPerson:
        message = person(make_id_number(admdvs), name, admdvs=admdvs, **overrides)
        if message.insurance_type == common.INSURANCE_TYPE_RESIDENT and "has_personal_account" not in overrides:
            message.has_personal_account = False
        self.stub.UpsertInsuredPerson(
            bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=message), timeout=10
        )
        return message

    def bind(self, beneficiary, relationship=common.RELATIONSHIP_CHILD, **kwargs) -> bpb.Binding:
        request = binding_request(self.grantor, beneficiary, relationship, **kwargs)
        return self.stub.CreateBinding(request, timeout=10).binding

    def refusal(self, call, request):
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout=10)
        refusal = refusal_of(raised.value)
        assert refusal.domain == "binding.gongji"
        return refusal


def put_policy(stub, clock, admdvs: str, **fields) -> bpb.RegionPolicy:
    effective = Timestamp()
    effective.FromDatetime(fields.pop("effective_from", clock.now() - timedelta(days=1)))
    policy = bpb.RegionPolicy(
        admdvs=admdvs,
        effective_from=effective,
        relationship_scope=fields.pop("relationship_scope", bpb.RELATIONSHIP_SCOPE_EXTENDED),
        max_beneficiaries=fields.pop("max_beneficiaries", 6),
        geographic_scope=fields.pop("geographic_scope", bpb.GEOGRAPHIC_SCOPE_SAME_PROVINCE),
        allowed_uses=fields.pop("allowed_uses", [common.USE_CATEGORY_OUTPATIENT, common.USE_CATEGORY_PHARMACY]),
        auto_approve_relationships=fields.pop(
            "auto_approve_relationships",
            [common.RELATIONSHIP_SPOUSE, common.RELATIONSHIP_PARENT, common.RELATIONSHIP_CHILD],
        ),
        contact_change_grace_days=fields.pop("contact_change_grace_days", 15),
        **fields,
    )
    return stub.PutRegionPolicy(bapi.PutRegionPolicyRequest(request_id=request_id(), policy=policy), timeout=10).policy


@pytest.fixture
def family(binding_service) -> Family:
    return Family(binding_service)


# Who may bind ---------------------------------------------------


def test_a_grantor_with_resident_insurance_is_refused_as_not_employee(family):
    resident = family.register("赵居民", insurance_type=common.INSURANCE_TYPE_RESIDENT)
    refusal = family.refusal(family.stub.CreateBinding, binding_request(resident, family.child))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "GRANTOR_NOT_EMPLOYEE")


def test_an_employee_without_a_personal_account_cannot_grant(family):
    """The grantor must own the personal account that would pay."""
    no_account = family.register("孙无账户", has_personal_account=False)
    refusal = family.refusal(family.stub.CreateBinding, binding_request(no_account, family.child))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "GRANTOR_NOT_EMPLOYEE")


def test_a_grantor_in_suspended_insurance_is_refused(family):
    suspended = family.register("钱暂停", status=common.INSURANCE_STATUS_SUSPENDED)
    refusal = family.refusal(family.stub.CreateBinding, binding_request(suspended, family.child))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "GRANTOR_NOT_IN_NORMAL_STATUS")


def test_a_beneficiary_missing_from_the_registry_is_refused_as_not_insured(family):
    stranger = person(make_id_number("110102"), "孙陌生")
    refusal = family.refusal(family.stub.CreateBinding, binding_request(family.grantor, stranger))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "BENEFICIARY_NOT_INSURED")
    assert refusal.fields == ("beneficiary.id_number",)


def test_a_deceased_beneficiary_is_refused(family):
    late = family.register("周已故", status=common.INSURANCE_STATUS_DECEASED)
    refusal = family.refusal(family.stub.CreateBinding, binding_request(family.grantor, late))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "BENEFICIARY_NOT_IN_NORMAL_STATUS")


def test_a_name_that_does_not_match_the_registry_is_refused_as_identity_mismatch(family):
    request = binding_request(family.grantor, family.child)
    request.beneficiary.name = "王小红"
    refusal = family.refusal(family.stub.CreateBinding, request)
    assert (refusal.code, refusal.reason, refusal.fields) == (
        FAILED_PRECONDITION,
        "IDENTITY_MISMATCH",
        ("beneficiary.name",),
    )


@pytest.mark.parametrize(
    "who",
    ["deceased beneficiary", "beneficiary of another province", "suspended grantor", "beneficiary bound already"],
)
def test_a_wrong_name_learns_nothing_of_the_person_behind_an_id_number(family, who):
    """Whoever knows an ID number but not its owner's name is told only that the identity does not
    match: the person's insurance status, region or bindings stay out of the refusal (最小必要)."""
    grantor, beneficiary = family.grantor, family.spouse
    if who == "deceased beneficiary":
        beneficiary = family.register("周已故", status=common.INSURANCE_STATUS_DECEASED)
    elif who == "beneficiary of another province":
        beneficiary = family.register("王远亲", admdvs="620102")
    elif who == "suspended grantor":
        grantor = family.register("钱暂停", status=common.INSURANCE_STATUS_SUSPENDED)
    else:
        family.bind(family.spouse, common.RELATIONSHIP_SPOUSE)
    request = binding_request(grantor, beneficiary, common.RELATIONSHIP_SPOUSE)
    role = "grantor" if who == "suspended grantor" else "beneficiary"
    getattr(request, role).name = "张冒名"
    refusal = family.refusal(family.stub.CreateBinding, request)
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "IDENTITY_MISMATCH")
    assert refusal.fields == (f"{role}.name",)
    assert refusal.metadata == {}


def test_binding_oneself_is_refused_as_invalid(family):
    refusal = family.refusal(family.stub.CreateBinding, binding_request(family.grantor, family.grantor))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "SELF_BINDING")


def test_binding_without_acknowledging_the_notice_is_refused(family):
    refusal = family.refusal(
        family.stub.CreateBinding, binding_request(family.grantor, family.child, consent_version="")
    )
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "CONSENT_MISSING",
        ("consent_version",),
    )


def test_a_malformed_id_number_is_invalid_argument_naming_the_field_and_stores_nothing(family):
    request = binding_request(family.grantor, family.child)
    request.grantor.id_number = "11010119800101001X"
    refusal = family.refusal(family.stub.CreateBinding, request)
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ID_NUMBER",
        ("grantor.id_number",),
    )
    listed = family.stub.ListBindings(bapi.ListBindingsRequest(grantor_id_number=family.grantor.id_number))
    assert list(listed.bindings) == []


def test_an_unspecified_relationship_is_invalid_argument(family):
    refusal = family.refusal(
        family.stub.CreateBinding,
        binding_request(family.grantor, family.child, relationship=common.RELATIONSHIP_UNSPECIFIED),
    )
    assert (refusal.code, refusal.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ("relationship",))


def test_a_binding_records_consent_channel_policy_and_regions(family):
    binding = family.bind(family.child, channel=common.CHANNEL_COUNTER)
    assert binding.state == bpb.BINDING_STATE_ACTIVE
    assert binding.consent_version == "notice-2025-01"
    assert binding.consent_time.seconds > 0
    assert binding.channel == common.CHANNEL_COUNTER
    assert binding.policy_version.startswith("000000@")
    assert (binding.grantor_admdvs, binding.beneficiary_admdvs) == ("110101", "110101")
    assert binding.share_all


def test_a_consent_dated_after_the_binding_is_refused_and_one_a_moment_ahead_is_taken_as_now(family):
    late = binding_request(family.grantor, family.child)
    late.consent_time.FromDatetime(family.clock.now() + timedelta(days=365 * 50))
    refusal = family.refusal(family.stub.CreateBinding, late)
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "FIELD_INVALID",
        ("consent_time",),
    )
    assert not family.stub.ListBindings(bapi.ListBindingsRequest(grantor_id_number=family.grantor.id_number)).bindings
    ahead = binding_request(family.grantor, family.child)
    ahead.consent_time.FromDatetime(family.clock.now() + timedelta(minutes=1))
    binding = family.stub.CreateBinding(ahead).binding
    assert binding.consent_time == binding.create_time


def test_a_binding_acknowledging_a_notice_the_region_no_longer_shows_is_refused(family):
    """The grantor acknowledges the current notice (承诺书); a region that names its current
    versions refuses any other, and nothing is bound."""
    put_policy(family.stub, family.clock, "110000", current_notice_versions=["notice-2026-07"])
    refusal = family.refusal(family.stub.CreateBinding, binding_request(family.grantor, family.child))
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT, "CONSENT_MISSING", ("consent_version",),
    )  # fmt: skip
    assert "notice-2026-07" in refusal.message
    listed = family.stub.ListBindings(bapi.ListBindingsRequest(grantor_id_number=family.grantor.id_number))
    assert list(listed.bindings) == []
    binding = family.bind(family.child, consent_version="notice-2026-07")
    assert (binding.state, binding.consent_version) == (bpb.BINDING_STATE_ACTIVE, "notice-2026-07")


def test_a_pair_already_bound_is_refused(family):
    family.bind(family.child)
    refusal = family.refusal(family.stub.CreateBinding, binding_request(family.grantor, family.child))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, "ALREADY_BOUND")


def test_a_relative_may_be_authorised_by_several_grantors(family):
    """Bindings are many-to-many."""
    family.bind(family.child)
    second = family.register("李秀英二")
    request = binding_request(second, family.child)
    assert family.stub.CreateBinding(request).binding.state == bpb.BINDING_STATE_ACTIVE


# Relationships and proofs ----------------------------------------


def test_a_sibling_is_refused_where_the_region_allows_only_core_relatives(family):
    put_policy(family.stub, family.clock, "110000", relationship_scope=bpb.RELATIONSHIP_SCOPE_CORE)
    sibling = family.register("王建军")
    refusal = family.refusal(
        family.stub.CreateBinding, binding_request(family.grantor, sibling, common.RELATIONSHIP_SIBLING)
    )
    assert (refusal.code, refusal.reason, refusal.fields) == (
        FAILED_PRECONDITION,
        "RELATIONSHIP_NOT_ALLOWED",
        ("relationship",),
    )
    assert refusal.metadata["scope"] == "CORE"
    assert refusal.metadata["policy_version"].startswith("110000@")


def test_a_sibling_binds_pending_review_under_the_extended_scope_and_an_operator_approves(family):
    sibling = family.register("王建军")
    binding = family.bind(sibling, common.RELATIONSHIP_SIBLING)
    assert binding.state == bpb.BINDING_STATE_PENDING_REVIEW
    reviewed = family.stub.ReviewBinding(
        bapi.ReviewBindingRequest(
            request_id=request_id(),
            binding_id=binding.binding_id,
            decision=bapi.REVIEW_DECISION_APPROVE,
            operator_id="op-7",
        )
    ).binding
    assert reviewed.state == bpb.BINDING_STATE_ACTIVE


def approve(family, binding: bpb.Binding) -> bapi.ReviewBindingRequest:
    return bapi.ReviewBindingRequest(
        request_id=request_id(), binding_id=binding.binding_id, decision=bapi.REVIEW_DECISION_APPROVE, operator_id="op"
    )


def test_an_approval_judges_the_binding_by_the_rules_of_its_day_not_those_it_was_made_under(family):
    """A binding that waited for review is approved only if it may be made now: a region that
    narrowed to CORE relatives since, or a grantor whose insurance was suspended since, refuses
    it, and it stays pending."""
    sibling = family.register("王建军")
    waiting = family.bind(sibling, common.RELATIONSHIP_SIBLING)
    put_policy(family.stub, family.clock, "110000", relationship_scope=bpb.RELATIONSHIP_SCOPE_CORE)
    refusal = family.refusal(family.stub.ReviewBinding, approve(family, waiting))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "RELATIONSHIP_NOT_ALLOWED")
    put_policy(
        family.stub, family.clock, "110000", relationship_scope=bpb.RELATIONSHIP_SCOPE_EXTENDED,
        effective_from=family.clock.now(),
    )  # fmt: skip
    suspended = bpb.InsuredPerson()
    suspended.CopyFrom(family.grantor)
    suspended.status = common.INSURANCE_STATUS_SUSPENDED
    family.stub.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=suspended))
    refusal = family.refusal(family.stub.ReviewBinding, approve(family, waiting))
    assert refusal.reason == "GRANTOR_NOT_IN_NORMAL_STATUS"
    still = family.stub.GetBinding(bapi.GetBindingRequest(binding_id=waiting.binding_id)).binding
    assert still.state == bpb.BINDING_STATE_PENDING_REVIEW
    assert list(resolve(family.stub, sibling).grants) == []


def test_a_rejected_review_leaves_the_binding_rejected_and_a_second_review_is_refused(family):
    sibling = family.register("王建军")
    binding = family.bind(sibling, common.RELATIONSHIP_SIBLING)
    review = bapi.ReviewBindingRequest(
        request_id=request_id(), binding_id=binding.binding_id, decision=bapi.REVIEW_DECISION_REJECT, operator_id="op"
    )
    assert family.stub.ReviewBinding(review).binding.state == bpb.BINDING_STATE_REJECTED
    review.request_id = request_id()
    review.decision = bapi.REVIEW_DECISION_APPROVE
    refusal = family.refusal(family.stub.ReviewBinding, review)
    assert refusal.reason == "BINDING_NOT_PENDING_REVIEW"


def test_a_review_with_a_decision_that_is_neither_approve_nor_reject_is_refused_and_changes_nothing(family):
    sibling = family.register("王建军")
    binding = family.bind(sibling, common.RELATIONSHIP_SIBLING)
    review = bapi.ReviewBindingRequest(request_id=request_id(), binding_id=binding.binding_id, operator_id="op")
    review.decision = 7  # a value this version does not know
    refusal = family.refusal(family.stub.ReviewBinding, review)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")
    assert tuple(refusal.fields) == ("decision",)
    got = family.stub.GetBinding(bapi.GetBindingRequest(binding_id=binding.binding_id)).binding
    assert got.state == bpb.BINDING_STATE_PENDING_REVIEW


def test_a_binding_without_a_proof_document_is_refused(family):
    refusal = family.refusal(
        family.stub.CreateBinding, binding_request(family.grantor, family.spouse, common.RELATIONSHIP_SPOUSE, proof=0)
    )
    assert (refusal.code, refusal.reason, refusal.fields) == (FAILED_PRECONDITION, "PROOF_MISSING", ("proofs",))


def test_a_spouse_with_only_a_birth_certificate_is_refused_as_proof_missing(family):
    refusal = family.refusal(
        family.stub.CreateBinding,
        binding_request(
            family.grantor, family.spouse, common.RELATIONSHIP_SPOUSE, proof=bpb.PROOF_TYPE_BIRTH_CERTIFICATE
        ),
    )
    assert refusal.reason == "PROOF_MISSING"


def test_a_kinship_certificate_cannot_be_checked_automatically_so_the_binding_awaits_review(family):
    binding = family.bind(family.parent, common.RELATIONSHIP_PARENT, proof=bpb.PROOF_TYPE_KINSHIP_CERTIFICATE)
    assert binding.state == bpb.BINDING_STATE_PENDING_REVIEW


# Caps -------------------------------------------------------------


def test_the_cap_of_the_grantors_region_refuses_one_binding_too_many(family):
    put_policy(family.stub, family.clock, "110101", max_beneficiaries=2)
    family.bind(family.child)
    family.bind(family.spouse, common.RELATIONSHIP_SPOUSE)
    refusal = family.refusal(
        family.stub.CreateBinding, binding_request(family.grantor, family.parent, common.RELATIONSHIP_PARENT)
    )
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "CAP_REACHED")
    assert refusal.message.startswith("the grantor already shares with 2 relatives; region 110101 allows 2")
    assert refusal.metadata["max_beneficiaries"] == "2"
    assert refusal.metadata["policy_version"].startswith("110101@")


def test_a_cap_lowered_below_the_relatives_shared_with_keeps_their_bindings_and_refuses_a_new_one_saying_how_many(
    family,
):
    """A region that lowers max_beneficiaries ends no binding (the sources end bindings on life
    events and by the parties); a new one is refused, and the refusal tells the grantor how many
    relatives he shares with and how many the region now allows."""
    bound = [
        family.bind(family.child),
        family.bind(family.spouse, common.RELATIONSHIP_SPOUSE),
        family.bind(family.parent, common.RELATIONSHIP_PARENT),
    ]
    put_policy(family.stub, family.clock, "110101", max_beneficiaries=1, effective_from=family.clock.now())

    refusal = family.refusal(family.stub.CreateBinding, binding_request(family.grantor, family.register("王小妹")))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "CAP_REACHED")
    assert refusal.message.startswith("the grantor already shares with 3 relatives; region 110101 allows 1")
    assert refusal.metadata["max_beneficiaries"] == "1"
    for binding in bound:
        kept = family.stub.GetBinding(bapi.GetBindingRequest(binding_id=binding.binding_id)).binding
        assert kept.state == bpb.BINDING_STATE_ACTIVE
    assert [g.binding_id for g in resolve(family.stub, family.child).grants] == [bound[0].binding_id]


def test_an_approval_is_refused_while_a_cap_lowered_since_the_application_is_filled_by_active_bindings(family):
    """The cap counts the relatives a grantor shares with. A binding that waited for review while the
    region lowered its cap is not approved over the new cap: it stays pending, and once an active
    binding ends and frees a place, the same approval goes through."""
    child = family.bind(family.child)
    spouse = family.bind(family.spouse, common.RELATIONSHIP_SPOUSE)
    assert (child.state, spouse.state) == (bpb.BINDING_STATE_ACTIVE, bpb.BINDING_STATE_ACTIVE)
    waiting = family.bind(family.register("王建军"), common.RELATIONSHIP_SIBLING)
    assert waiting.state == bpb.BINDING_STATE_PENDING_REVIEW
    put_policy(family.stub, family.clock, "110101", max_beneficiaries=2)

    refusal = family.refusal(family.stub.ReviewBinding, approve(family, waiting))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "CAP_REACHED")
    assert refusal.metadata["max_beneficiaries"] == "2"
    still = family.stub.GetBinding(bapi.GetBindingRequest(binding_id=waiting.binding_id)).binding
    assert still.state == bpb.BINDING_STATE_PENDING_REVIEW

    family.stub.EndBinding(
        bapi.EndBindingRequest(
            request_id=request_id(), binding_id=child.binding_id, actor=bpb.ACTOR_GRANTOR,
            actor_id=family.grantor.id_number,
        )
    )  # fmt: skip
    approved = family.stub.ReviewBinding(approve(family, waiting)).binding
    assert approved.state == bpb.BINDING_STATE_ACTIVE


def test_an_ended_binding_frees_its_place_under_the_cap(family):
    put_policy(family.stub, family.clock, "110101", max_beneficiaries=1)
    first = family.bind(family.child)
    family.stub.EndBinding(
        bapi.EndBindingRequest(
            request_id=request_id(),
            binding_id=first.binding_id,
            actor=bpb.ACTOR_GRANTOR,
            actor_id=family.grantor.id_number,
        )
    )
    assert family.bind(family.spouse, common.RELATIONSHIP_SPOUSE).state == bpb.BINDING_STATE_ACTIVE


# Regions ------------------------------------------------------------


def test_a_beneficiary_in_another_pooling_region_is_refused_where_the_region_allows_only_its_own(family):
    put_policy(family.stub, family.clock, "110101", geographic_scope=bpb.GEOGRAPHIC_SCOPE_SAME_POOLING_REGION)
    cousin_city = family.register("王远亲", admdvs="110102")
    refusal = family.refusal(family.stub.CreateBinding, binding_request(family.grantor, cousin_city))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "OUTSIDE_REGION")


def test_a_region_that_keeps_mutual_aid_within_itself_takes_no_relative_of_another_city_either(family):
    """Each side's region sets a scope and the stricter holds: the grantor's province allows its
    cities to bind, the beneficiary's city keeps to itself."""
    put_policy(family.stub, family.clock, "110102", geographic_scope=bpb.GEOGRAPHIC_SCOPE_SAME_POOLING_REGION)
    other_city = family.register("王远亲", admdvs="110102")
    refusal = family.refusal(family.stub.CreateBinding, binding_request(family.grantor, other_city))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "OUTSIDE_REGION")
    assert "110102 SAME_POOLING_REGION" in refusal.message


def test_the_same_province_is_allowed_by_default_but_another_province_is_outside_the_region(family):
    same_province = family.register("王近", admdvs="110105")
    assert family.bind(same_province).state == bpb.BINDING_STATE_ACTIVE
    other_province = family.register("王远", admdvs="320102")
    refusal = family.refusal(family.stub.CreateBinding, binding_request(family.grantor, other_province))
    assert refusal.reason == "OUTSIDE_REGION"


def test_cross_province_bindings_need_both_provinces_in_the_pilot(binding_service):
    pilots = ["32", "37"]
    for province in ("320000", "370000"):
        put_policy(
            binding_service.stub,
            binding_service.clock,
            province,
            geographic_scope=bpb.GEOGRAPHIC_SCOPE_CROSS_PROVINCE,
            cross_province_provinces=pilots,
        )
    family = Family(binding_service, admdvs="320102")
    in_shandong = family.register("王济南", admdvs="370102")
    assert family.bind(in_shandong).state == bpb.BINDING_STATE_ACTIVE
    in_zhejiang = family.register("王杭州", admdvs="330102")
    refusal = family.refusal(family.stub.CreateBinding, binding_request(family.grantor, in_zhejiang))
    assert refusal.reason == "OUTSIDE_REGION"


# Ending bindings -----------------------------------------------------


def end_request(binding, actor, actor_id) -> bapi.EndBindingRequest:
    return bapi.EndBindingRequest(
        request_id=request_id(), binding_id=binding.binding_id, actor=actor, actor_id=actor_id, comment="no longer"
    )


def test_the_grantor_unbinds_and_the_binding_records_who_and_why(family):
    binding = family.bind(family.child)
    ended = family.stub.EndBinding(end_request(binding, bpb.ACTOR_GRANTOR, family.grantor.id_number)).binding
    assert ended.state == bpb.BINDING_STATE_ENDED
    assert (ended.end_reason, ended.ended_by, ended.end_comment) == (
        bpb.END_REASON_GRANTOR_REQUEST,
        bpb.ACTOR_GRANTOR,
        "no longer",
    )
    assert ended.end_time.seconds > 0


def test_the_beneficiary_may_leave_but_a_stranger_may_not_end_the_binding(family):
    binding = family.bind(family.child)
    refusal = family.refusal(
        family.stub.EndBinding, end_request(binding, bpb.ACTOR_BENEFICIARY, family.spouse.id_number)
    )
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_PARTY_TO_BINDING")
    left = family.stub.EndBinding(end_request(binding, bpb.ACTOR_BENEFICIARY, family.child.id_number)).binding
    assert left.end_reason == bpb.END_REASON_BENEFICIARY_REQUEST


def test_a_grantor_and_a_beneficiary_whose_id_numbers_end_in_x_may_end_a_binding_typing_a_small_x(family):
    """GB 11643's check character X is one character in either case, as everywhere else gongji
    reads an ID number: a party naming himself with a small x is still the binding's party."""
    numbers = (make_id_number("110101", "19800101", sequence) for sequence in range(100))
    grantor_number, child_number = [n for n in numbers if n.endswith("X")][:2]
    grantor = person(grantor_number, "王建新")
    child = person(child_number, "王小新", insurance_type=common.INSURANCE_TYPE_RESIDENT, has_personal_account=False)
    for who in (grantor, child):
        family.stub.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=who))
    for actor, number in ((bpb.ACTOR_GRANTOR, grantor_number), (bpb.ACTOR_BENEFICIARY, child_number)):
        binding = family.stub.CreateBinding(binding_request(grantor, child)).binding
        ended = family.stub.EndBinding(end_request(binding, actor, number[:-1] + "x")).binding
        assert (ended.state, ended.ended_by) == (bpb.BINDING_STATE_ENDED, actor)


@pytest.mark.parametrize("actor_id", ["", "   "], ids=["empty", "spaces"])
@pytest.mark.parametrize("actor", [bpb.ACTOR_GRANTOR, bpb.ACTOR_BENEFICIARY], ids=["grantor", "beneficiary"])
def test_a_grantor_or_beneficiary_ending_a_binding_without_an_actor_id_is_told_to_send_it_and_may_retry_with_it(
    family, actor: int, actor_id: str
) -> None:
    """Not NOT_PARTY_TO_BINDING (nobody was named) and not FIELD_REQUIRED (actor_id is not marked
    REQUIRED: an operator may leave it empty), but FIELD_INVALID naming actor_id; the refusal is
    not stored under the key, so the same request with the ID number ends the binding."""
    binding = family.bind(family.child)
    request = end_request(binding, actor, actor_id)
    refusal = family.refusal(family.stub.EndBinding, request)
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "FIELD_INVALID",
        ("actor_id",),
    )
    assert "actor_id is needed when the actor is the" in refusal.message
    assert family.stub.GetBinding(bapi.GetBindingRequest(binding_id=binding.binding_id)).binding.state == (
        bpb.BINDING_STATE_ACTIVE
    )
    request.actor_id = binding.grantor_id_number if actor == bpb.ACTOR_GRANTOR else binding.beneficiary_id_number
    assert family.stub.EndBinding(request).binding.state == bpb.BINDING_STATE_ENDED


def test_ending_an_ended_binding_is_refused_as_not_active(family):
    binding = family.bind(family.child)
    family.stub.EndBinding(end_request(binding, bpb.ACTOR_OPERATOR, "op-1"))
    refusal = family.refusal(family.stub.EndBinding, end_request(binding, bpb.ACTOR_OPERATOR, "op-1"))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "BINDING_NOT_ACTIVE")
    assert refusal.metadata["state"] == "ENDED"


def test_a_region_that_forbids_early_unbinding_refuses_the_grantor_until_the_period_passed(family):
    put_policy(family.stub, family.clock, "110101", min_days_before_unbind=90)
    binding = family.bind(family.child)
    refusal = family.refusal(family.stub.EndBinding, end_request(binding, bpb.ACTOR_GRANTOR, family.grantor.id_number))
    assert refusal.reason == "UNBIND_TOO_EARLY"
    earliest = datetime.fromisoformat(refusal.metadata["earliest"])
    assert earliest.utcoffset() == timedelta(hours=8), "shown in China Standard Time"
    assert earliest == datetime.fromisoformat(binding.create_time.ToJsonString()) + timedelta(days=90)
    family.clock.advance(timedelta(days=91))
    ended = family.stub.EndBinding(end_request(binding, bpb.ACTOR_GRANTOR, family.grantor.id_number)).binding
    assert ended.state == bpb.BINDING_STATE_ENDED


def test_where_early_unbinding_is_forbidden_the_grantor_may_still_withdraw_an_application_awaiting_review(family):
    """The period runs from binding (解绑 of a binding made); an application an operator has not
    yet approved binds no one, so its grantor may withdraw it at once."""
    put_policy(family.stub, family.clock, "110101", min_days_before_unbind=90)
    waiting = family.bind(family.register("王建军"), common.RELATIONSHIP_SIBLING)
    assert waiting.state == bpb.BINDING_STATE_PENDING_REVIEW
    ended = family.stub.EndBinding(end_request(waiting, bpb.ACTOR_GRANTOR, family.grantor.id_number)).binding
    assert (ended.state, ended.end_reason) == (bpb.BINDING_STATE_ENDED, bpb.END_REASON_GRANTOR_REQUEST)


def test_where_early_unbinding_is_forbidden_the_period_of_a_reviewed_binding_runs_from_its_approval(family):
    """A binding that waited for review binds from its approval, so the region's days before
    unbinding count from then, not from the application."""
    put_policy(family.stub, family.clock, "110101", min_days_before_unbind=90)
    waiting = family.bind(family.register("王建军"), common.RELATIONSHIP_SIBLING)
    family.clock.advance(timedelta(days=89))
    approved = family.stub.ReviewBinding(approve(family, waiting)).binding
    family.clock.advance(timedelta(days=2))
    refusal = family.refusal(family.stub.EndBinding, end_request(waiting, bpb.ACTOR_GRANTOR, family.grantor.id_number))
    assert refusal.reason == "UNBIND_TOO_EARLY"
    assert datetime.fromisoformat(refusal.metadata["earliest"]) == datetime.fromisoformat(
        approved.update_time.ToJsonString()
    ) + timedelta(days=90)
    family.clock.advance(timedelta(days=88))
    ended = family.stub.EndBinding(end_request(waiting, bpb.ACTOR_GRANTOR, family.grantor.id_number)).binding
    assert ended.state == bpb.BINDING_STATE_ENDED


def life_event(stub, who, event, other=""):
    return stub.ReportLifeEvent(
        bapi.ReportLifeEventRequest(
            request_id=request_id(), id_number=who.id_number, event_type=event, other_id_number=other
        )
    )


def test_the_grantors_death_ends_every_binding_and_marks_the_person_deceased(family):
    family.bind(family.child)
    family.bind(family.spouse, common.RELATIONSHIP_SPOUSE)
    answer = life_event(family.stub, family.grantor, bapi.LIFE_EVENT_TYPE_DEATH)
    assert len(answer.ended_bindings) == 2
    assert {b.end_reason for b in answer.ended_bindings} == {bpb.END_REASON_DEATH}
    assert answer.insured_person.status == common.INSURANCE_STATUS_DECEASED


def test_a_person_who_died_stays_deceased_whatever_is_reported_after(family):
    life_event(family.stub, family.grantor, bapi.LIFE_EVENT_TYPE_DEATH)
    after = life_event(family.stub, family.grantor, bapi.LIFE_EVENT_TYPE_INSURANCE_ENDED)
    assert after.insured_person.status == common.INSURANCE_STATUS_DECEASED


def test_payers_asked_for_a_time_before_a_binding_was_made_do_not_include_it(family):
    before = Timestamp()
    before.FromDatetime(family.clock.now())
    family.clock.advance(timedelta(days=5))
    family.bind(family.child)
    asked = bapi.ResolvePayersRequest(
        beneficiary_id_number=family.child.id_number, use_category=common.USE_CATEGORY_OUTPATIENT, at_time=before
    )
    assert list(family.stub.ResolvePayers(asked).grants) == []
    assert len(resolve(family.stub, family.child).grants) == 1


def test_a_divorce_ends_only_the_spouse_binding(family):
    spouse_binding = family.bind(family.spouse, common.RELATIONSHIP_SPOUSE)
    child_binding = family.bind(family.child)
    answer = life_event(family.stub, family.grantor, bapi.LIFE_EVENT_TYPE_DIVORCE, family.spouse.id_number)
    assert [b.binding_id for b in answer.ended_bindings] == [spouse_binding.binding_id]
    assert answer.ended_bindings[0].end_reason == bpb.END_REASON_DIVORCE
    still = family.stub.GetBinding(bapi.GetBindingRequest(binding_id=child_binding.binding_id)).binding
    assert still.state == bpb.BINDING_STATE_ACTIVE


def test_a_divorce_naming_the_person_as_his_own_former_spouse_is_refused_and_ends_nothing(family):
    spouse_binding = family.bind(family.spouse, common.RELATIONSHIP_SPOUSE)
    refusal = family.refusal(
        family.stub.ReportLifeEvent,
        bapi.ReportLifeEventRequest(
            request_id=request_id(), id_number=family.grantor.id_number,
            event_type=bapi.LIFE_EVENT_TYPE_DIVORCE, other_id_number=family.grantor.id_number,
        ),
    )  # fmt: skip
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "FIELD_INVALID",
        ("other_id_number",),
    )
    still = family.stub.GetBinding(bapi.GetBindingRequest(binding_id=spouse_binding.binding_id)).binding
    assert still.state == bpb.BINDING_STATE_ACTIVE


def test_the_end_of_the_beneficiarys_insurance_ends_the_binding(family):
    family.bind(family.child)
    answer = life_event(family.stub, family.child, bapi.LIFE_EVENT_TYPE_INSURANCE_ENDED)
    assert [b.end_reason for b in answer.ended_bindings] == [bpb.END_REASON_INSURANCE_ENDED]


def test_a_registry_sync_that_suspends_the_grantor_suspends_and_later_resumes_the_binding(family):
    binding = family.bind(family.child)
    family.grantor.status = common.INSURANCE_STATUS_SUSPENDED
    family.stub.UpsertInsuredPerson(
        bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=family.grantor)
    )
    get = bapi.GetBindingRequest(binding_id=binding.binding_id)
    assert family.stub.GetBinding(get).binding.state == bpb.BINDING_STATE_SUSPENDED
    family.grantor.status = common.INSURANCE_STATUS_NORMAL
    family.stub.UpsertInsuredPerson(
        bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=family.grantor)
    )
    assert family.stub.GetBinding(get).binding.state == bpb.BINDING_STATE_ACTIVE


def sync(family, who) -> None:
    family.stub.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=who))


@pytest.mark.parametrize(
    ("change", "end_reason"),
    [
        ({"status": common.INSURANCE_STATUS_DECEASED}, bpb.END_REASON_DEATH),
        ({"status": common.INSURANCE_STATUS_TERMINATED}, bpb.END_REASON_INSURANCE_ENDED),
        ({"admdvs": "110102"}, bpb.END_REASON_INSURANCE_ENDED),
        ({"insurance_type": common.INSURANCE_TYPE_RESIDENT, "has_personal_account": False},
         bpb.END_REASON_INSURANCE_ENDED),
    ],
    ids=["death", "insurance-terminated", "moved-to-another-pooling-region", "no-longer-employee-insured"],
)  # fmt: skip
def test_a_registry_sync_that_takes_away_what_granting_needs_ends_the_grantors_bindings(family, change, end_reason):
    """The registry is the truth about a person: when it says the grantor died, left insurance,
    moved to another pooling region or no longer has a personal account, the bindings end."""
    binding = family.bind(family.child)
    for field_name, value in change.items():
        setattr(family.grantor, field_name, value)
    sync(family, family.grantor)
    ended = family.stub.GetBinding(bapi.GetBindingRequest(binding_id=binding.binding_id)).binding
    assert (ended.state, ended.end_reason) == (bpb.BINDING_STATE_ENDED, end_reason)


def test_a_registry_sync_that_changes_nothing_granting_needs_leaves_the_binding_active(family):
    binding = family.bind(family.child)
    family.grantor.name = "王建国"
    sync(family, family.grantor)
    kept = family.stub.GetBinding(bapi.GetBindingRequest(binding_id=binding.binding_id)).binding
    assert kept.state == bpb.BINDING_STATE_ACTIVE


def resolve(stub, beneficiary, use=common.USE_CATEGORY_OUTPATIENT, chronic=False) -> bapi.ResolvePayersResponse:
    return stub.ResolvePayers(
        bapi.ResolvePayersRequest(
            beneficiary_id_number=beneficiary.id_number, use_category=use, chronic_disease=chronic
        )
    )


def test_a_new_phone_from_the_registry_is_a_contact_change_the_person_must_confirm_within_15_days(family):
    """Phone and address changes must be confirmed within 15 days (信息变更需在15日内修改): a
    registry sync that brings a new phone starts the clock, as a reported change does."""
    binding = family.bind(family.child)
    same = bpb.InsuredPerson()
    same.CopyFrom(family.grantor)
    family.stub.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=same))
    family.clock.advance(timedelta(days=20))
    assert [g.binding_id for g in resolve(family.stub, family.child).grants] == [binding.binding_id], (
        "the same phone and address again is no change"
    )
    moved = bpb.InsuredPerson()
    moved.CopyFrom(family.grantor)
    moved.phone = "13912345678"
    family.stub.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=moved))
    family.clock.advance(timedelta(days=15))
    assert [g.binding_id for g in resolve(family.stub, family.child).grants] == [binding.binding_id]
    family.clock.advance(timedelta(days=1))
    assert [e.reason for e in resolve(family.stub, family.child).excluded] == ["CONTACT_CHANGE_OVERDUE"]
    family.stub.UpdateContactInfo(
        bapi.UpdateContactInfoRequest(request_id=request_id(), id_number=family.grantor.id_number, phone="13912345678")
    )
    assert [g.binding_id for g in resolve(family.stub, family.child).grants] == [binding.binding_id]
    # The registry sends the confirmed phone again: nothing more to confirm.
    family.stub.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=moved))
    family.clock.advance(timedelta(days=30))
    assert [g.binding_id for g in resolve(family.stub, family.child).grants] == [binding.binding_id]
    # A sync that leaves the phone out keeps the one on record, so sending it again is no change.
    silent = bpb.InsuredPerson()
    silent.CopyFrom(moved)
    silent.phone = ""
    for sent in (silent, moved):
        family.stub.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=sent))
    family.clock.advance(timedelta(days=30))
    assert [g.binding_id for g in resolve(family.stub, family.child).grants] == [binding.binding_id]


def test_a_contact_change_unconfirmed_for_15_days_stops_payments_until_the_person_confirms(family):
    """Confirm changed contact information within 15 days."""
    binding = family.bind(family.child)
    life_event(family.stub, family.grantor, bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED)
    family.clock.advance(timedelta(days=14))
    assert [g.binding_id for g in resolve(family.stub, family.child).grants] == [binding.binding_id]
    family.clock.advance(timedelta(days=2))
    answer = resolve(family.stub, family.child)
    assert list(answer.grants) == []
    assert [(e.binding_id, e.reason) for e in answer.excluded] == [(binding.binding_id, "CONTACT_CHANGE_OVERDUE")]
    refusal = family.refusal(
        family.stub.CreateBinding, binding_request(family.grantor, family.spouse, common.RELATIONSHIP_SPOUSE)
    )
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "CONTACT_CHANGE_OVERDUE")
    family.stub.UpdateContactInfo(
        bapi.UpdateContactInfoRequest(request_id=request_id(), id_number=family.grantor.id_number, phone="13900000000")
    )
    assert [g.binding_id for g in resolve(family.stub, family.child).grants] == [binding.binding_id]


def test_a_contact_change_dated_in_the_future_is_refused_so_it_cannot_lengthen_the_15_days(family):
    """Changed contact information must be confirmed within 15 days of the change: a change
    reported as happening a year from now would keep the grantor paying for a year and 15 days
    unconfirmed. A life event after the service's clock is refused and changes nothing."""
    binding = family.bind(family.child)
    for event in (bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED, bapi.LIFE_EVENT_TYPE_DEATH):
        dated = Timestamp()
        dated.FromDatetime(family.clock.now() + timedelta(days=365))
        request = bapi.ReportLifeEventRequest(
            request_id=request_id(), id_number=family.grantor.id_number, event_type=event, event_time=dated
        )
        refusal = family.refusal(family.stub.ReportLifeEvent, request)
        assert (refusal.code, refusal.reason, refusal.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "FIELD_INVALID",
            ("event_time",),
        )
    person = family.stub.GetInsuredPerson(bapi.GetInsuredPersonRequest(id_number=family.grantor.id_number))
    assert person.insured_person.status == common.INSURANCE_STATUS_NORMAL
    assert not person.insured_person.HasField("contact_change_time")
    kept = family.stub.GetBinding(bapi.GetBindingRequest(binding_id=binding.binding_id)).binding
    assert kept.state == bpb.BINDING_STATE_ACTIVE
    # Reported now, the change is due in 15 days, as always.
    life_event(family.stub, family.grantor, bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED)
    family.clock.advance(timedelta(days=16))
    assert [e.reason for e in resolve(family.stub, family.child).excluded] == ["CONTACT_CHANGE_OVERDUE"]


def test_a_contact_change_a_minute_ahead_of_the_service_clock_is_taken_as_happening_now(family):
    """A reporting platform whose clock runs a minute ahead sends "now" as a minute later: the
    change is accepted and its 15 days to confirm count from the service's now, not from later."""
    family.bind(family.child)
    dated = Timestamp()
    dated.FromDatetime(family.clock.now() + timedelta(minutes=1))
    family.stub.ReportLifeEvent(
        bapi.ReportLifeEventRequest(
            request_id=request_id(),
            id_number=family.grantor.id_number,
            event_type=bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED,
            event_time=dated,
        )
    )
    person = family.stub.GetInsuredPerson(bapi.GetInsuredPersonRequest(id_number=family.grantor.id_number))
    assert person.insured_person.contact_change_time.ToDatetime(tzinfo=UTC) == family.clock.now()


def test_a_person_not_in_the_registry_is_refused_naming_the_field_not_repeating_the_id_number(family):
    unknown = make_id_number("320102")
    refusal = family.refusal(family.stub.GetInsuredPerson, bapi.GetInsuredPersonRequest(id_number=unknown))
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.NOT_FOUND,
        "PERSON_NOT_FOUND",
        ("id_number",),
    )
    assert unknown not in refusal.message and unknown[-4:] not in refusal.message


# Sharing settings, payer order, resolution ---------------------


def test_a_yearly_cap_is_set_and_lifted_and_each_change_is_in_the_audit_trail(family):
    binding = family.bind(family.child)
    capped = family.stub.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(request_id=request_id(), binding_id=binding.binding_id, yearly_cap_fen=100_000)
    ).binding
    assert (capped.share_all, capped.yearly_cap_fen) == (False, 100_000)
    lifted = family.stub.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(request_id=request_id(), binding_id=binding.binding_id, share_all=True)
    ).binding
    assert (lifted.share_all, lifted.yearly_cap_fen) == (True, 0)
    events = family.stub.ListBindingEvents(bapi.ListBindingEventsRequest(binding_id=binding.binding_id)).events
    assert [e.event_type for e in events] == [
        bpb.BINDING_EVENT_TYPE_CREATED,
        bpb.BINDING_EVENT_TYPE_SHARING_LIMIT_CHANGED,
        bpb.BINDING_EVENT_TYPE_SHARING_LIMIT_CHANGED,
    ]
    assert events[0].actor == bpb.ACTOR_GRANTOR
    assert events[0].channel == common.CHANNEL_NATIONAL_APP
    assert events[0].request_id


def test_the_audit_trail_names_the_channel_or_the_operator_that_changed_a_sharing_limit(family):
    binding = family.bind(family.child)
    family.stub.stub_as(channel_principal(Channel.WECHAT)).UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(request_id=request_id(), binding_id=binding.binding_id, yearly_cap_fen=100_000)
    )
    family.stub.stub_as(operator("110000", "op7")).UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(request_id=request_id(), binding_id=binding.binding_id, yearly_cap_fen=50_000)
    )
    events = family.stub.ListBindingEvents(bapi.ListBindingEventsRequest(binding_id=binding.binding_id)).events
    assert [(e.actor, e.actor_id, e.channel) for e in events[1:]] == [
        (bpb.ACTOR_GRANTOR, family.grantor.id_number, common.CHANNEL_WECHAT),
        (bpb.ACTOR_OPERATOR, "op7", common.CHANNEL_UNSPECIFIED),
    ]


def test_who_may_pay_for_a_grantor_lists_the_amounts_he_earmarked_only_where_his_region_earmarks(family):
    """The payment service must know what a patient
    reserved for relatives when he is a grantor; share-everything bindings reserve nothing."""
    capped = family.bind(family.child)
    family.stub.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(request_id=request_id(), binding_id=capped.binding_id, yearly_cap_fen=50_000)
    )
    family.bind(family.spouse, common.RELATIONSHIP_SPOUSE)  # shares everything
    assert list(resolve(family.stub, family.grantor).earmarked_shares) == []

    policy = put_policy(family.stub, family.clock, family.grantor.admdvs, earmark_shared_amount=True)
    earmarked = resolve(family.stub, family.grantor).earmarked_shares
    assert [(e.binding_id, e.beneficiary_id_number, e.yearly_cap_fen, e.policy_version) for e in earmarked] == [
        (capped.binding_id, family.child.id_number, 50_000, policy.version)
    ]


def test_a_capped_binding_without_an_amount_is_refused(family):
    binding = family.bind(family.child)
    refusal = family.refusal(
        family.stub.UpdateSharingLimit,
        bapi.UpdateSharingLimitRequest(request_id=request_id(), binding_id=binding.binding_id, share_all=False),
    )
    assert (refusal.code, refusal.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ("yearly_cap_fen",))


@pytest.mark.parametrize(
    ("share_all", "cap", "reason"),
    [(True, 50_000, "FIELD_INVALID"), (False, 10**11 + 1, "INVALID_AMOUNT"), (False, -1, "INVALID_AMOUNT")],
    ids=["a cap beside share_all", "a cap above any balance", "a negative cap"],
)
def test_a_sharing_limit_that_says_two_things_or_an_impossible_amount_is_refused_and_changes_nothing(
    family, share_all, cap, reason
):
    binding = family.bind(family.child)
    refusal = family.refusal(
        family.stub.UpdateSharingLimit,
        bapi.UpdateSharingLimitRequest(
            request_id=request_id(), binding_id=binding.binding_id, share_all=share_all, yearly_cap_fen=cap
        ),
    )
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        ("yearly_cap_fen",),
    )
    after = family.stub.GetBinding(bapi.GetBindingRequest(binding_id=binding.binding_id)).binding
    assert (after.share_all, after.yearly_cap_fen) == (True, 0)


def test_payers_come_in_binding_order_until_the_beneficiary_sets_another(binding_service):
    family = Family(binding_service)
    mother = family.register("李妈妈")
    father = family.grantor
    first = family.stub.CreateBinding(binding_request(mother, family.child)).binding
    second = family.stub.CreateBinding(binding_request(father, family.child)).binding
    assert [g.binding_id for g in resolve(family.stub, family.child).grants] == [first.binding_id, second.binding_id]
    family.stub.SetPayerOrder(
        bapi.SetPayerOrderRequest(
            request_id=request_id(),
            beneficiary_id_number=family.child.id_number,
            binding_ids=[second.binding_id],
            mode=bpb.PAYER_MODE_PROPORTIONAL,
        )
    )
    answer = resolve(family.stub, family.child)
    assert [(g.binding_id, g.priority) for g in answer.grants] == [(second.binding_id, 1), (first.binding_id, 2)]
    assert answer.mode == bpb.PAYER_MODE_PROPORTIONAL


def test_resolve_payers_carries_the_grantor_regions_limits_and_policy_version(family):
    policy = put_policy(
        family.stub,
        family.clock,
        "110000",
        annual_share_ratio_percent=60,
        per_use_limit_fen=50_000,
        chronic_disease_per_use_limit_fen=200_000,
    )
    family.bind(family.child, yearly_cap_fen=300_000)
    grant = resolve(family.stub, family.child).grants[0]
    assert (grant.annual_share_ratio_percent, grant.per_use_limit_fen, grant.yearly_cap_fen) == (60, 50_000, 300_000)
    assert grant.policy_version == policy.version
    assert resolve(family.stub, family.child, chronic=True).grants[0].per_use_limit_fen == 200_000


def test_a_use_the_beneficiarys_region_does_not_allow_is_refused(family):
    family.bind(family.child)
    refusal = family.refusal(
        family.stub.ResolvePayers,
        bapi.ResolvePayersRequest(
            beneficiary_id_number=family.child.id_number,
            use_category=common.USE_CATEGORY_COMMERCIAL_HEALTH_INSURANCE,
        ),
    )
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "USE_NOT_ALLOWED")


def test_pending_and_ended_bindings_are_never_resolved_as_payers(family):
    sibling = family.register("王建军")
    pending = family.bind(sibling, common.RELATIONSHIP_SIBLING)
    assert list(resolve(family.stub, sibling).grants) == []
    assert [e.reason for e in resolve(family.stub, sibling).excluded] == ["BINDING_NOT_ACTIVE"]
    ended = family.bind(family.child)
    family.stub.EndBinding(end_request(ended, bpb.ACTOR_GRANTOR, family.grantor.id_number))
    assert list(resolve(family.stub, family.child).grants) == []
    assert pending.binding_id


# Regional policy ------------------------------------------------------------------------


def test_a_pooling_region_policy_overrides_its_province_and_a_future_version_waits_for_its_date(binding_service):
    stub, clock = binding_service.stub, binding_service.clock
    province = put_policy(stub, clock, "320000", max_beneficiaries=6)
    city = put_policy(stub, clock, "320100", max_beneficiaries=4)
    put_policy(stub, clock, "320100", max_beneficiaries=3, effective_from=clock.now() + timedelta(days=30))

    def in_force(admdvs: str) -> bpb.RegionPolicy:
        return stub.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs=admdvs)).policy

    assert in_force("320100").version == city.version
    assert in_force("320200").version == province.version
    assert in_force("330100").admdvs == "000000"
    clock.advance(timedelta(days=31))
    assert in_force("320100").max_beneficiaries == 3
    listed = stub.ListRegionPolicies(bapi.ListRegionPoliciesRequest(admdvs="32", page_size=2))
    assert len(listed.policies) == 2 and listed.next_page_token
    rest = stub.ListRegionPolicies(
        bapi.ListRegionPoliciesRequest(admdvs="32", page_size=2, page_token=listed.next_page_token)
    )
    assert len(rest.policies) == 1 and not rest.next_page_token


def test_policies_put_between_two_pages_neither_repeat_nor_hide_another(binding_service):
    stub, clock = binding_service.stub, binding_service.clock
    for admdvs in ("320200", "320300", "320400"):
        put_policy(stub, clock, admdvs)
    first = stub.ListRegionPolicies(bapi.ListRegionPoliciesRequest(admdvs="32", page_size=2))
    assert [p.admdvs for p in first.policies] == ["320200", "320300"]
    put_policy(stub, clock, "320100")  # sorts before the first page
    rest = stub.ListRegionPolicies(
        bapi.ListRegionPoliciesRequest(admdvs="32", page_size=2, page_token=first.next_page_token)
    )
    assert [p.admdvs for p in rest.policies] == ["320400"] and not rest.next_page_token


def test_a_policy_that_leaves_out_grace_days_and_uses_gets_the_national_15_days_and_uses(binding_service):
    """proto3 cannot tell an unset number or list from 0 or empty: a policy that leaves out the
    grace for a changed phone or address gets the national 15 days, not none, and one that names
    no use lets mutual aid pay for the national uses, not for nothing."""
    stub, clock = binding_service.stub, binding_service.clock
    effective = Timestamp()
    effective.FromDatetime(clock.now() - timedelta(days=1))
    minimal = bpb.RegionPolicy(
        admdvs="320100", effective_from=effective, relationship_scope=bpb.RELATIONSHIP_SCOPE_CORE,
        max_beneficiaries=5, geographic_scope=bpb.GEOGRAPHIC_SCOPE_SAME_POOLING_REGION,
        auto_approve_relationships=[common.RELATIONSHIP_CHILD],
    )  # fmt: skip
    stored = stub.PutRegionPolicy(bapi.PutRegionPolicyRequest(request_id=request_id(), policy=minimal)).policy
    assert stored.contact_change_grace_days == 15
    assert set(stored.allowed_uses) == set(common.UseCategory.values()) - {
        common.USE_CATEGORY_UNSPECIFIED,
        common.USE_CATEGORY_COMMERCIAL_HEALTH_INSURANCE,
    }
    family = Family(binding_service, admdvs="320100")
    binding = family.bind(family.child)
    life_event(stub, family.grantor, bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED)
    clock.advance(timedelta(days=14))
    for use in (common.USE_CATEGORY_OUTPATIENT, common.USE_CATEGORY_INPATIENT, common.USE_CATEGORY_PHARMACY):
        assert [g.binding_id for g in resolve(stub, family.child, use).grants] == [binding.binding_id]
    clock.advance(timedelta(days=2))
    assert [e.reason for e in resolve(stub, family.child).excluded] == ["CONTACT_CHANGE_OVERDUE"]


def test_a_stored_policy_version_cannot_be_changed_in_place(binding_service):
    stub, clock = binding_service.stub, binding_service.clock
    moment = clock.now() - timedelta(days=1)
    put_policy(stub, clock, "320100", max_beneficiaries=4, effective_from=moment)
    with pytest.raises(grpc.RpcError) as raised:
        put_policy(stub, clock, "320100", max_beneficiaries=5, effective_from=moment)
    assert refusal_of(raised.value).reason == "POLICY_VERSION_EXISTS"


def test_a_policy_with_an_impossible_number_is_refused_naming_the_field(binding_service):
    with pytest.raises(grpc.RpcError) as raised:
        put_policy(binding_service.stub, binding_service.clock, "320100", annual_share_ratio_percent=150)
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ("policy.annual_share_ratio_percent",),
    )


@pytest.mark.parametrize(
    ("per_use_limit_fen", "chronic_disease_per_use_limit_fen"),
    [(50_000, 30_000), (0, 80_000)],
    ids=["below-the-ordinary-limit", "where-ordinary-bills-have-none"],
)
def test_a_chronic_disease_limit_lower_than_the_ordinary_one_is_refused_and_stores_nothing(
    binding_service, per_use_limit_fen, chronic_disease_per_use_limit_fen
):
    """Chronic and special diseases (门诊慢特病) get the per-use limit raised or lifted (DOMAIN 2.6,
    seed 003), never lowered: such a policy is a typing error, refused before it governs a bill."""
    stub, clock = binding_service.stub, binding_service.clock
    with pytest.raises(grpc.RpcError) as raised:
        put_policy(
            stub, clock, "320100",
            per_use_limit_fen=per_use_limit_fen, chronic_disease_per_use_limit_fen=chronic_disease_per_use_limit_fen,
        )  # fmt: skip
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "FIELD_INVALID",
        ("policy.chronic_disease_per_use_limit_fen",),
    )
    assert list(stub.ListRegionPolicies(bapi.ListRegionPoliciesRequest(admdvs="320100")).policies) == []
    # Raised, lifted (0) or the same as the ordinary limit, it is taken.
    for days, chronic in enumerate((80_000, 0, 50_000), start=1):
        put_policy(
            stub, clock, "320100", effective_from=clock.now() + timedelta(days=days),
            per_use_limit_fen=50_000, chronic_disease_per_use_limit_fen=chronic,
        )  # fmt: skip


def test_bindings_are_listed_in_pages_by_grantor_and_by_state(family):
    for relative in (family.child, family.spouse, family.parent):
        relationship = {
            family.child.id_number: common.RELATIONSHIP_CHILD,
            family.spouse.id_number: common.RELATIONSHIP_SPOUSE,
            family.parent.id_number: common.RELATIONSHIP_PARENT,
        }[relative.id_number]
        family.bind(relative, relationship)
    request = bapi.ListBindingsRequest(grantor_id_number=family.grantor.id_number, page_size=2)
    first = family.stub.ListBindings(request)
    request.page_token = first.next_page_token
    second = family.stub.ListBindings(request)
    ids = [b.binding_id for b in [*first.bindings, *second.bindings]]
    assert len(ids) == 3 == len(set(ids)) and not second.next_page_token
    ended = family.stub.ListBindings(
        bapi.ListBindingsRequest(grantor_id_number=family.grantor.id_number, states=[bpb.BINDING_STATE_ENDED])
    )
    assert list(ended.bindings) == []
    refusal = family.refusal(
        family.stub.ListBindings,
        bapi.ListBindingsRequest(beneficiary_id_number=family.child.id_number, page_token=first.next_page_token),
    )
    assert refusal.reason == "INVALID_PAGE_TOKEN"


def test_bindings_are_listed_by_one_party_and_naming_both_is_invalid_not_missing(family):
    """ListBindings takes exactly one of grantor_id_number and beneficiary_id_number: neither is
    a field missing (FIELD_REQUIRED), both a request given wrongly (FIELD_INVALID)."""
    family.bind(family.child, common.RELATIONSHIP_CHILD)
    neither = family.refusal(family.stub.ListBindings, bapi.ListBindingsRequest())
    assert (neither.code, neither.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED")
    both = family.refusal(
        family.stub.ListBindings,
        bapi.ListBindingsRequest(
            grantor_id_number=family.grantor.id_number, beneficiary_id_number=family.child.id_number
        ),
    )
    assert (both.code, both.reason, both.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "FIELD_INVALID",
        ("beneficiary_id_number",),
    )


def test_a_region_without_a_policy_of_its_own_is_told_whose_policy_governs_it(binding_service):
    """A pooling region inherits its province's policy, else the national one, else the
    built-in national rules; the answer says which instead of passing one off as the region's."""
    stub, clock = binding_service.stub, binding_service.clock

    def source_of(admdvs: str) -> tuple[str, int]:
        answer = stub.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs=admdvs), timeout=10)
        return answer.policy.admdvs, answer.source

    assert source_of("450100") == ("000000", bpb.POLICY_SOURCE_BUILT_IN)
    put_policy(stub, clock, "000000")
    assert source_of("450100") == ("000000", bpb.POLICY_SOURCE_NATIONAL)
    put_policy(stub, clock, "450000")
    assert source_of("450100") == ("450000", bpb.POLICY_SOURCE_PROVINCE)
    assert source_of("450000") == ("450000", bpb.POLICY_SOURCE_OWN)
    put_policy(stub, clock, "450100")
    assert source_of("450100") == ("450100", bpb.POLICY_SOURCE_OWN)
