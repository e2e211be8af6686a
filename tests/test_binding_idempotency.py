"""Retries of mutating binding requests, and malformed input.

The binding service follows AIP-155: the first answer to a request_id, success or
refusal, is what every retry of the same request gets, whatever happened since;
the same key on a different request is refused and changes nothing. Malformed
input is refused as INVALID_ARGUMENT naming the field, never as INTERNAL, and
leaves no trace.
"""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from tests.conftest import BindingHarness
from tests.helpers import Refusal, binding_request, make_id_number, person, refusal_of, request_id

REGION = "110101"
TIMEOUT = 30


# Helpers ---------------------------------------------------------------------------


def refused(call, request) -> Refusal:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=TIMEOUT)
    return refusal_of(raised.value)


def register(harness: BindingHarness, someone: bpb.InsuredPerson) -> bapi.UpsertInsuredPersonResponse:
    return harness.stub.UpsertInsuredPerson(
        bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=someone), timeout=TIMEOUT
    )


def put_policy(harness: BindingHarness, **values: int) -> bpb.RegionPolicy:
    """A policy for REGION in force since yesterday: the one in force now, with `values` changed."""
    current = harness.stub.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs=REGION), timeout=TIMEOUT).policy
    policy = bpb.RegionPolicy()
    policy.CopyFrom(current)
    policy.admdvs = REGION
    policy.ClearField("version")
    policy.effective_from.FromDatetime(harness.clock.now() - timedelta(days=1))
    for name, value in values.items():
        setattr(policy, name, value)
    return harness.stub.PutRegionPolicy(
        bapi.PutRegionPolicyRequest(request_id=request_id(), policy=policy), timeout=TIMEOUT
    ).policy


def family(harness: BindingHarness, size: int) -> tuple[bpb.InsuredPerson, list[bpb.InsuredPerson]]:
    grantor = person(make_id_number(REGION, "19700101"), "王建国", admdvs=REGION)
    register(harness, grantor)
    relatives = [person(make_id_number(REGION, "20000101"), f"王{i}", admdvs=REGION) for i in range(size)]
    for relative in relatives:
        register(harness, relative)
    return grantor, relatives


def bind(harness: BindingHarness, grantor: bpb.InsuredPerson, beneficiary: bpb.InsuredPerson) -> bpb.Binding:
    return harness.stub.CreateBinding(binding_request(grantor, beneficiary), timeout=TIMEOUT).binding


def end_request(binding: bpb.Binding, key: str | None = None) -> bapi.EndBindingRequest:
    return bapi.EndBindingRequest(
        request_id=request_id() if key is None else key,
        binding_id=binding.binding_id,
        actor=bpb.ACTOR_GRANTOR,
        actor_id=binding.grantor_id_number,
        comment="no longer needed",
        channel=common.CHANNEL_NATIONAL_APP,
    )


def current(harness: BindingHarness, binding: bpb.Binding) -> bpb.Binding:
    return harness.stub.GetBinding(bapi.GetBindingRequest(binding_id=binding.binding_id), timeout=TIMEOUT).binding


def bindings_of(harness: BindingHarness, grantor: bpb.InsuredPerson) -> list[bpb.Binding]:
    request = bapi.ListBindingsRequest(grantor_id_number=grantor.id_number, page_size=100)
    return list(harness.stub.ListBindings(request, timeout=TIMEOUT).bindings)


def events_of(harness: BindingHarness, binding: bpb.Binding) -> list[int]:
    request = bapi.ListBindingEventsRequest(binding_id=binding.binding_id, page_size=100)
    return [e.event_type for e in harness.stub.ListBindingEvents(request, timeout=TIMEOUT).events]


def not_found(harness: BindingHarness, id_number: str) -> bool:
    refusal = refused(harness.stub.GetInsuredPerson, bapi.GetInsuredPersonRequest(id_number=id_number))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.NOT_FOUND, "PERSON_NOT_FOUND"), refusal
    return True


# A retry returns the first answer ----------------------------------------------------


def test_a_retried_binding_returns_the_first_answer_even_after_the_binding_ended(binding_service):
    """The retry gets the same binding_id, create_time and state the first call returned."""
    grantor, (child,) = family(binding_service, 1)
    request = binding_request(grantor, child)
    first = binding_service.stub.CreateBinding(request, timeout=TIMEOUT)
    binding_service.clock.advance(timedelta(hours=2))
    binding_service.stub.EndBinding(end_request(first.binding), timeout=TIMEOUT)
    binding_service.clock.advance(timedelta(hours=2))

    retry = binding_service.stub.CreateBinding(request, timeout=TIMEOUT)

    assert retry == first
    assert retry.binding.binding_id == first.binding.binding_id
    assert retry.binding.create_time == first.binding.create_time
    assert retry.binding.state == bpb.BINDING_STATE_ACTIVE
    assert current(binding_service, first.binding).state == bpb.BINDING_STATE_ENDED
    assert [b.binding_id for b in bindings_of(binding_service, grantor)] == [first.binding.binding_id]


def test_a_retried_registration_returns_the_first_answer_and_does_not_undo_a_later_change(binding_service):
    """Replaying an old registry sync must not overwrite the newer record."""
    id_number = make_id_number(REGION, "19750505")
    first_request = bapi.UpsertInsuredPersonRequest(
        request_id=request_id(), insured_person=person(id_number, "赵敏", admdvs=REGION)
    )
    first = binding_service.stub.UpsertInsuredPerson(first_request, timeout=TIMEOUT)
    binding_service.clock.advance(timedelta(days=1))
    moved = person(id_number, "赵敏", admdvs=REGION)
    moved.phone, moved.address = "13911112222", "2 New Road"
    second = register(binding_service, moved)

    retry = binding_service.stub.UpsertInsuredPerson(first_request, timeout=TIMEOUT)

    assert first.created and not second.created
    assert retry == first
    assert retry.created
    stored = binding_service.stub.GetInsuredPerson(bapi.GetInsuredPersonRequest(id_number=id_number), timeout=TIMEOUT)
    assert stored.insured_person.phone == "13911112222"
    assert stored.insured_person.address == "2 New Road"


def test_a_retried_unbinding_returns_the_first_answer_instead_of_binding_not_active(binding_service):
    """The second EndBinding with the same key is not "already ended"; it is the first answer."""
    grantor, (child,) = family(binding_service, 1)
    binding = bind(binding_service, grantor, child)
    request = end_request(binding)
    first = binding_service.stub.EndBinding(request, timeout=TIMEOUT)
    binding_service.clock.advance(timedelta(minutes=5))

    retry = binding_service.stub.EndBinding(request, timeout=TIMEOUT)

    assert retry == first
    assert retry.binding.state == bpb.BINDING_STATE_ENDED
    assert retry.binding.end_reason == bpb.END_REASON_GRANTOR_REQUEST
    assert events_of(binding_service, binding) == [bpb.BINDING_EVENT_TYPE_CREATED, bpb.BINDING_EVENT_TYPE_ENDED]
    again = refused(binding_service.stub.EndBinding, end_request(binding))
    assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BINDING_NOT_ACTIVE")


def test_a_retried_sharing_limit_returns_the_first_answer_and_keeps_the_later_setting(binding_service):
    """A late retry of "cap at 1,000 yuan" does not undo a later "share everything"."""
    grantor, (child,) = family(binding_service, 1)
    binding = bind(binding_service, grantor, child)
    capped = bapi.UpdateSharingLimitRequest(
        request_id=request_id(), binding_id=binding.binding_id, share_all=False, yearly_cap_fen=100_000
    )
    first = binding_service.stub.UpdateSharingLimit(capped, timeout=TIMEOUT)
    share_all = bapi.UpdateSharingLimitRequest(request_id=request_id(), binding_id=binding.binding_id, share_all=True)
    binding_service.stub.UpdateSharingLimit(share_all, timeout=TIMEOUT)

    retry = binding_service.stub.UpdateSharingLimit(capped, timeout=TIMEOUT)

    assert retry == first
    assert (retry.binding.share_all, retry.binding.yearly_cap_fen) == (False, 100_000)
    now = current(binding_service, binding)
    assert (now.share_all, now.yearly_cap_fen) == (True, 0)
    changes = [e for e in events_of(binding_service, binding) if e == bpb.BINDING_EVENT_TYPE_SHARING_LIMIT_CHANGED]
    assert len(changes) == 2


# A refusal is replayed too --------------------------------------------------------------


def test_a_binding_refused_for_the_cap_is_refused_again_on_retry_after_a_place_frees_up(binding_service):
    """The CAP_REACHED answer is the answer to that key; a new key may succeed."""
    put_policy(binding_service, max_beneficiaries=1)
    grantor, (first_child, second_child) = family(binding_service, 2)
    taken = bind(binding_service, grantor, first_child)
    request = binding_request(grantor, second_child)
    first = refused(binding_service.stub.CreateBinding, request)
    binding_service.stub.EndBinding(end_request(taken), timeout=TIMEOUT)

    retry = refused(binding_service.stub.CreateBinding, request)

    assert (first.code, first.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CAP_REACHED")
    assert retry == first
    assert [b.state for b in bindings_of(binding_service, grantor)] == [bpb.BINDING_STATE_ENDED]
    request.request_id = request_id()
    fresh = binding_service.stub.CreateBinding(request, timeout=TIMEOUT)
    assert fresh.binding.state == bpb.BINDING_STATE_ACTIVE


def test_a_binding_refused_as_already_bound_is_refused_again_on_retry_after_unbinding(binding_service):
    """ALREADY_BOUND is replayed to the same key even once the pair is free again."""
    grantor, (child,) = family(binding_service, 1)
    existing = bind(binding_service, grantor, child)
    duplicate = binding_request(grantor, child)
    first = refused(binding_service.stub.CreateBinding, duplicate)
    binding_service.stub.EndBinding(end_request(existing), timeout=TIMEOUT)

    retry = refused(binding_service.stub.CreateBinding, duplicate)

    assert (first.code, first.reason) == (grpc.StatusCode.ALREADY_EXISTS, "ALREADY_BOUND")
    assert retry == first
    assert len(bindings_of(binding_service, grantor)) == 1
    duplicate.request_id = request_id()
    assert binding_service.stub.CreateBinding(duplicate, timeout=TIMEOUT).binding.state == bpb.BINDING_STATE_ACTIVE


def test_an_unbinding_refused_as_too_early_is_refused_again_on_retry_after_the_waiting_period(binding_service):
    """A region's waiting period refusal stays the answer to that key."""
    put_policy(binding_service, min_days_before_unbind=30)
    grantor, (child,) = family(binding_service, 1)
    binding = bind(binding_service, grantor, child)
    request = end_request(binding)
    first = refused(binding_service.stub.EndBinding, request)
    binding_service.clock.advance(timedelta(days=31))

    retry = refused(binding_service.stub.EndBinding, request)

    assert (first.code, first.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "UNBIND_TOO_EARLY")
    assert retry == first
    assert current(binding_service, binding).state == bpb.BINDING_STATE_ACTIVE
    ended = binding_service.stub.EndBinding(end_request(binding), timeout=TIMEOUT)
    assert ended.binding.state == bpb.BINDING_STATE_ENDED


# The same key on a different request ----------------------------------------------------


def test_the_same_key_on_a_binding_for_another_relative_is_refused_and_binds_no_one(binding_service):
    """A key names one request; reusing it is ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED."""
    grantor, (first_child, second_child) = family(binding_service, 2)
    original = binding_request(grantor, first_child)
    binding_service.stub.CreateBinding(original, timeout=TIMEOUT)
    other = binding_request(grantor, second_child)
    other.request_id = original.request_id

    refusal = refused(binding_service.stub.CreateBinding, other)

    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert "request_id" in refusal.fields
    assert [b.beneficiary_id_number for b in bindings_of(binding_service, grantor)] == [first_child.id_number]


def test_the_same_key_on_a_registration_of_another_person_is_refused_and_registers_no_one(binding_service):
    """Reusing a registry-sync key for another person changes nothing."""
    first = person(make_id_number(REGION, "19800808"), "孙丽", admdvs=REGION)
    key = request_id()
    binding_service.stub.UpsertInsuredPerson(
        bapi.UpsertInsuredPersonRequest(request_id=key, insured_person=first), timeout=TIMEOUT
    )
    second = person(make_id_number(REGION, "19800808"), "孙强", admdvs=REGION)

    refusal = refused(
        binding_service.stub.UpsertInsuredPerson, bapi.UpsertInsuredPersonRequest(request_id=key, insured_person=second)
    )

    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert not_found(binding_service, second.id_number)


def test_the_same_key_on_another_sharing_limit_is_refused_and_keeps_the_first_limit(binding_service):
    """A reused key with another amount does not change the cap."""
    grantor, (child,) = family(binding_service, 1)
    binding = bind(binding_service, grantor, child)
    key = request_id()
    binding_service.stub.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(request_id=key, binding_id=binding.binding_id, yearly_cap_fen=50_000),
        timeout=TIMEOUT,
    )
    other_amount = bapi.UpdateSharingLimitRequest(request_id=key, binding_id=binding.binding_id, yearly_cap_fen=90_000)

    refusal = refused(binding_service.stub.UpdateSharingLimit, other_amount)

    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert current(binding_service, binding).yearly_cap_fen == 50_000


def test_a_key_used_for_a_binding_cannot_be_reused_to_end_it(binding_service):
    """A key is unique across methods; EndBinding under a CreateBinding key changes nothing."""
    grantor, (child,) = family(binding_service, 1)
    creation = binding_request(grantor, child)
    binding = binding_service.stub.CreateBinding(creation, timeout=TIMEOUT).binding

    refusal = refused(binding_service.stub.EndBinding, end_request(binding, key=creation.request_id))

    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert current(binding_service, binding).state == bpb.BINDING_STATE_ACTIVE
    assert events_of(binding_service, binding) == [bpb.BINDING_EVENT_TYPE_CREATED]


# A missing key ------------------------------------------------------------------------


MUTATIONS = ["UpsertInsuredPerson", "CreateBinding", "EndBinding", "UpdateSharingLimit"]


@pytest.mark.parametrize("rpc", MUTATIONS)
def test_a_mutating_request_without_a_request_id_is_refused_naming_the_field_and_changes_nothing(
    binding_service, rpc: str
):
    """Rule: "every mutating request carries an idempotency key"; without one nothing happens."""
    grantor, (child, newcomer) = family(binding_service, 2)
    binding = bind(binding_service, grantor, child)
    newcomer_id = make_id_number(REGION, "19900909")
    requests = {
        "UpsertInsuredPerson": bapi.UpsertInsuredPersonRequest(
            insured_person=person(newcomer_id, "周一", admdvs=REGION)
        ),
        "CreateBinding": binding_request(grantor, newcomer),
        "EndBinding": end_request(binding),
        "UpdateSharingLimit": bapi.UpdateSharingLimitRequest(binding_id=binding.binding_id, yearly_cap_fen=10_000),
    }
    request = requests[rpc]
    request.request_id = ""

    refusal = refused(getattr(binding_service.stub, rpc), request)

    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED")
    assert refusal.fields == ("request_id",)
    assert not_found(binding_service, newcomer_id)
    assert [b.binding_id for b in bindings_of(binding_service, grantor)] == [binding.binding_id]
    unchanged = current(binding_service, binding)
    assert (unchanged.state, unchanged.share_all) == (bpb.BINDING_STATE_ACTIVE, True)
    assert events_of(binding_service, binding) == [bpb.BINDING_EVENT_TYPE_CREATED]


def test_a_request_id_longer_than_128_characters_is_refused_naming_the_field(binding_service):
    """AIP-155 keys are bounded; 128 characters are accepted and replayed, 129 are refused, never INTERNAL."""
    someone = person(make_id_number(REGION, "19910101"), "吴桐", admdvs=REGION)
    longest = bapi.UpsertInsuredPersonRequest(request_id="k" * 128, insured_person=someone)
    first = binding_service.stub.UpsertInsuredPerson(longest, timeout=TIMEOUT)
    assert binding_service.stub.UpsertInsuredPerson(longest, timeout=TIMEOUT) == first

    refusal = refused(
        binding_service.stub.UpsertInsuredPerson,
        bapi.UpsertInsuredPersonRequest(request_id="k" * 129, insured_person=someone),
    )

    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "FIELD_INVALID",
        ("request_id",),
    )


# Malformed input never becomes INTERNAL ---------------------------------------------------


def _check_digit_off(id_number: str) -> str:
    last = "0" if id_number[-1] != "0" else "1"
    return id_number[:-1] + last


@pytest.mark.parametrize(
    ("case", "expected_reason"),
    [
        ("wrong check digit", "INVALID_ID_NUMBER"),
        ("seventeen digits", "INVALID_ID_NUMBER"),
        ("letters inside", "INVALID_ID_NUMBER"),
        ("impossible birth date", "INVALID_ID_NUMBER"),
        ("unknown area code", "INVALID_ID_NUMBER"),
        ("empty", "FIELD_REQUIRED"),
    ],
)
def test_a_registration_with_an_invalid_id_number_is_refused_naming_the_field_and_stores_nothing(
    binding_service, case: str, expected_reason: str
):
    """A person is keyed by a valid GB 11643 ID number; anything else is INVALID_ARGUMENT."""
    valid = make_id_number(REGION, "19850315")
    bad = {
        "wrong check digit": _check_digit_off(valid),
        "seventeen digits": valid[:17],
        "letters inside": valid[:10] + "AB" + valid[12:],
        "impossible birth date": make_id_number(REGION, "19850230"),
        "unknown area code": make_id_number("119901", "19850315"),
        "empty": "",
    }[case]
    request = bapi.UpsertInsuredPersonRequest(
        request_id=request_id(), insured_person=person(bad, "郑洁", admdvs=REGION)
    )

    refusal = refused(binding_service.stub.UpsertInsuredPerson, request)

    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, expected_reason)
    assert refusal.fields == ("insured_person.id_number",)
    assert not_found(binding_service, valid)


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("no name", "insured_person.name"),
        ("name of 101 characters", "insured_person.name"),
        ("unknown region", "insured_person.admdvs"),
        ("region of five digits", "insured_person.admdvs"),
        ("no insurance type", "insured_person.insurance_type"),
        ("no insurance status", "insured_person.status"),
        ("insurance type out of range", "insured_person.insurance_type"),
    ],
)
def test_a_registration_with_a_malformed_field_is_refused_naming_it_and_stores_nothing(
    binding_service, case: str, field: str
):
    """The registry keeps only well-formed records; a bad field is named, never INTERNAL."""
    id_number = make_id_number(REGION, "19860101")
    someone = person(id_number, "冯云", admdvs=REGION)
    if case == "no name":
        someone.name = "  "
    elif case == "name of 101 characters":
        someone.name = "冯" * 101
    elif case == "unknown region":
        someone.admdvs = "990101"
    elif case == "region of five digits":
        someone.admdvs = "11010"
    elif case == "no insurance type":
        someone.insurance_type = common.INSURANCE_TYPE_UNSPECIFIED
    elif case == "no insurance status":
        someone.status = common.INSURANCE_STATUS_UNSPECIFIED
    else:
        someone.insurance_type = 99

    refusal = refused(
        binding_service.stub.UpsertInsuredPerson,
        bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=someone),
    )

    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT, refusal
    assert refusal.fields == (field,)
    assert not_found(binding_service, id_number)


@pytest.mark.parametrize(
    "case",
    ["long phone", "long address", "NUL in the name", "NUL in the request_id"],
)
def test_registry_text_the_database_cannot_store_is_refused_as_invalid_argument_not_internal(
    binding_service, case: str
):
    """Whatever a caller sends is either stored or refused with a reason; INTERNAL means a bug."""
    id_number = make_id_number(REGION, "19870101")
    someone = person(id_number, "陈晨", admdvs=REGION)
    key = request_id()
    if case == "long phone":
        someone.phone = "1" * 40
    elif case == "long address":
        someone.address = "路" * 300
    elif case == "NUL in the name":
        someone.name = "陈\x00晨"
    else:
        key = "key\x00" + key
    request = bapi.UpsertInsuredPersonRequest(request_id=key, insured_person=someone)

    try:
        answer = binding_service.stub.UpsertInsuredPerson(request, timeout=TIMEOUT)
    except grpc.RpcError as error:
        refusal = refusal_of(error)
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT, refusal
        assert refusal.fields, refusal
        assert not_found(binding_service, id_number)
    else:
        stored = binding_service.stub.GetInsuredPerson(
            bapi.GetInsuredPersonRequest(id_number=id_number), timeout=TIMEOUT
        ).insured_person
        assert stored == answer.insured_person


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("grantor ID number with a wrong check digit", "grantor.id_number"),
        ("beneficiary ID number of 17 digits", "beneficiary.id_number"),
        ("no relationship", "relationship"),
        ("no consent", "consent_version"),
        ("negative yearly cap", "yearly_cap_fen"),
        ("binding oneself", "beneficiary.id_number"),
    ],
)
def test_a_malformed_binding_application_is_refused_naming_the_field_and_binds_no_one(
    binding_service, case: str, field: str
):
    """Every application fault is INVALID_ARGUMENT with the field named, and nothing is stored."""
    grantor, (child,) = family(binding_service, 1)
    request = binding_request(grantor, child)
    if case.startswith("grantor ID"):
        request.grantor.id_number = _check_digit_off(grantor.id_number)
    elif case.startswith("beneficiary ID"):
        request.beneficiary.id_number = child.id_number[:17]
    elif case == "no relationship":
        request.relationship = common.RELATIONSHIP_UNSPECIFIED
    elif case == "no consent":
        request.consent_version = " "
    elif case == "negative yearly cap":
        request.yearly_cap_fen = -1
    else:
        request.beneficiary.CopyFrom(request.grantor)

    refusal = refused(binding_service.stub.CreateBinding, request)

    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT, refusal
    assert field in refusal.fields
    assert bindings_of(binding_service, grantor) == []


@pytest.mark.parametrize("case", ["consent version of 200 characters", "operator id of 200 characters"])
def test_long_free_text_in_binding_requests_is_stored_or_refused_but_never_internal(binding_service, case: str):
    """The consent version and the operator who unbinds are recorded; long ones are handled."""
    grantor, (child,) = family(binding_service, 1)
    if case.startswith("consent"):
        request = binding_request(grantor, child, consent_version="notice-" + "v" * 193)
        call = binding_service.stub.CreateBinding
    else:
        binding = bind(binding_service, grantor, child)
        request = bapi.EndBindingRequest(
            request_id=request_id(), binding_id=binding.binding_id, actor=bpb.ACTOR_OPERATOR, actor_id="op-" + "9" * 197
        )
        call = binding_service.stub.EndBinding

    try:
        call(request, timeout=TIMEOUT)
    except grpc.RpcError as error:
        refusal = refusal_of(error)
        if case.startswith("operator"):
            # Only the operator of the caller's certificate may be named, and no ID is that long.
            assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OUT_OF_SCOPE"), refusal
        else:
            assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT, refusal
            assert refusal.fields, refusal


def test_unknown_binding_ids_are_not_found_for_every_mutation_never_internal(binding_service):
    """Ending or limiting a binding that does not exist is NOT_FOUND naming binding_id."""
    for binding_id in ("no-such-binding", "0" * 36, "x" * 200):
        for call, request in (
            (
                binding_service.stub.EndBinding,
                bapi.EndBindingRequest(
                    request_id=request_id(), binding_id=binding_id, actor=bpb.ACTOR_OPERATOR, actor_id="op-1"
                ),
            ),
            (
                binding_service.stub.UpdateSharingLimit,
                bapi.UpdateSharingLimitRequest(request_id=request_id(), binding_id=binding_id, share_all=True),
            ),
        ):
            refusal = refused(call, request)
            assert (refusal.code, refusal.reason) == (grpc.StatusCode.NOT_FOUND, "BINDING_NOT_FOUND"), refusal
            assert refusal.fields == ("binding_id",)
