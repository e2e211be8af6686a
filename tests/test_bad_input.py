"""What outside clients once broke the services with, each sent again: the answer is a
refusal naming the reason and the field (never INTERNAL or UNKNOWN), nothing changes, and
the services keep answering afterwards."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.common.v1 import common_pb2 as common
from gongji.node.v1 import node_service_pb2 as node
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.binding.app import BindingSettings, start_binding_server
from services.common import paging
from services.common.hosting import BackgroundServer
from services.common.security.natural_callers import ActingStub
from services.common.server import ServerSecurity
from services.common.status import MAX_MESSAGE, MAX_METADATA_VALUE
from shared.errors import DomainError, Reason
from shared.money import INT64_MAX, MAX_BALANCE_FEN, within_limit
from shared.policy import PolicyIndex, RegionPolicy
from shared.principals import BINDING_SERVICE, operator, payment_node
from tests.conftest import METADATA, running_payment
from tests.helpers import binding_request, refusal_of, request_id
from tests.payment_helpers import PaymentFamily
from tests.test_authorization_matrix import World
from tests.test_cross_province import CrossFamily
from tests.test_field_behavior import IDEMPOTENCY_KEYS, METHODS, Caller, Refusal, well_formed

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
NATIONAL = operator("000000", "ops")


def refused(call, request, **kwargs):
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=10, **kwargs)
    return refusal_of(raised.value)


@pytest.fixture
def family(payment_service) -> PaymentFamily:
    return PaymentFamily(payment_service)


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(0, -1), (0, 1_000_000_000), (253_402_300_800, 0), (-62_135_596_801, 0), (-2_208_988_801, 0)],
)
def test_a_timestamp_out_of_range_is_refused_naming_its_field(family, seconds, nanos):
    quote = papi.QuoteSettlementRequest(bill=family.bill(1_000))
    quote.at_time.seconds, quote.at_time.nanos = seconds, nanos
    authorize = papi.AuthorizeSettlementRequest(request_id=request_id(), bill=family.bill(1_000))
    authorize.expire_time.seconds, authorize.expire_time.nanos = seconds, nanos
    policy = bapi.GetRegionPolicyRequest(admdvs="320100")
    policy.at_time.seconds, policy.at_time.nanos = seconds, nanos
    event = bapi.ReportLifeEventRequest(
        request_id=request_id(), id_number=family.child.id_number, event_type=bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED
    )
    event.event_time.seconds, event.event_time.nanos = seconds, nanos
    put = bapi.PutRegionPolicyRequest(request_id=request_id())
    put.policy.CopyFrom(family.binding.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs="320100")).policy)
    put.policy.admdvs = "320200"
    put.policy.effective_from.seconds, put.policy.effective_from.nanos = seconds, nanos
    for call, request, field in (
        (family.payment.QuoteSettlement, quote, "at_time"),
        (family.payment.AuthorizeSettlement, authorize, "expire_time"),
        (family.binding.GetRegionPolicy, policy, "at_time"),
        (family.binding.ReportLifeEvent, event, "event_time"),
        (family.binding.PutRegionPolicy, put, "policy.effective_from"),  # its path, as when it is missing
    ):
        refusal = refused(call, request)
        assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_INVALID", (field,))
    assert not family.binding.ListRegionPolicies(bapi.ListRegionPoliciesRequest(admdvs="320200")).policies
    assert family.ledger().balanced


def test_a_contact_phone_that_is_neither_a_mobile_nor_a_landline_number_is_refused_without_quoting_it(family):
    """A mainland mobile number has 11 digits, 1 then 3 to 9; a landline its area code. Anything
    else is refused naming the field, the number itself in no error text, and nothing changes."""
    update = family.binding.UpdateContactInfo

    def on_record() -> str:
        return family.binding.GetInsuredPerson(
            bapi.GetInsuredPersonRequest(id_number=family.child.id_number)
        ).insured_person.phone

    before = on_record()
    malformed = ("1391234567890123", "12345678901", "1391234567", "+8613912345678", "139 1234 5678", "０１０-12345678")
    for phone in malformed:
        request = bapi.UpdateContactInfoRequest(request_id=request_id(), id_number=family.child.id_number, phone=phone)
        refusal = refused(update, request)
        assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_INVALID", ("phone",)), phone
        assert phone not in refusal.message
    assert on_record() == before
    for phone in ("13912345678", "19912345678", "010-12345678", "0563-8163414", "05638163414"):
        request = bapi.UpdateContactInfoRequest(request_id=request_id(), id_number=family.child.id_number, phone=phone)
        assert update(request, timeout=10).insured_person.phone == phone


def test_a_payer_grant_without_a_known_relationship_is_refused(family, payment_service):
    capacity = payment_service.node_stub("local").GetPayerCapacity
    for relationship in (0, 99):
        request = node.GetPayerCapacityRequest(
            beneficiary_id_number=family.child.id_number,
            grants=[
                bapi.PayerGrant(binding_id="b", grantor_id_number=family.mother.id_number, relationship=relationship)
            ],
        )
        refusal = refused(capacity, request)
        assert (refusal.code, refusal.fields) == (INVALID_ARGUMENT, ("grants.relationship",))


def test_a_peer_asking_about_or_holding_for_more_payers_than_a_hundred_is_refused(family, payment_service):
    """Each payer becomes an SQL parameter: the hundreds of thousands a megabyte holds would be
    INTERNAL on PostgreSQL (65,535 at most); a family has a few, so a hundred is plenty."""
    stub = payment_service.node_stub("local")
    grant = bapi.PayerGrant(
        binding_id=family.mother_binding.binding_id, grantor_id_number=family.mother.id_number,
        grantor_admdvs="320100", relationship=common.RELATIONSHIP_CHILD,
    )  # fmt: skip
    capacity = node.GetPayerCapacityRequest(beneficiary_id_number=family.child.id_number, grants=[grant] * 1_000)
    leg = node.NodeLeg(leg_no=1, payer_id_number=family.mother.id_number, binding_id=grant.binding_id, amount_fen=1)
    prepare = node.PrepareLegsRequest(transaction_id=request_id(), coordinator_province="32", legs=[leg] * 1_000)
    for call, request, field in ((stub.GetPayerCapacity, capacity, "grants"), (stub.PrepareLegs, prepare, "legs")):
        refusal = refused(call, request)
        assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_INVALID", (field,))
    assert (family.account(family.mother).held_fen, family.ledger().balanced) == (0, True)


def test_crediting_the_largest_int64_twice_is_refused_and_credits_work_afterwards(family):
    before = family.account(family.mother).balance_fen
    for _ in range(2):
        request = papi.CreditAccountRequest(
            request_id=request_id(), id_number=family.mother.id_number, amount_fen=INT64_MAX,
            account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT, kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION,
            admdvs="320100",
        )  # fmt: skip
        assert refused(family.payment.CreditAccount, request).reason == "AMOUNT_LIMIT_EXCEEDED"
    assert family.credit(family.mother, 1_000).balance_fen == before + 1_000
    assert family.ledger().balanced


def test_an_amount_exactly_at_the_per_call_limit_is_taken_and_one_fen_more_is_refused():
    for amount in (5_000, -5_000, 0):
        assert within_limit(amount, "amount_fen", 5_000) == amount
    for amount in (5_001, -5_001):
        with pytest.raises(DomainError) as raised:
            within_limit(amount, "amount_fen", 5_000)
        assert (raised.value.reason, raised.value.field) == (Reason.AMOUNT_LIMIT_EXCEEDED, "amount_fen")
        assert raised.value.metadata == {"max_fen": "5000"}


def test_a_node_takes_a_credit_or_a_bill_of_exactly_its_max_amount_and_refuses_one_fen_more(databases, binding_service):
    with running_payment(databases, binding_service, max_amount_fen=50_000) as harness:
        family = PaymentFamily(harness, mother_fen=50_000, father_fen=50_000)
        assert family.credit(family.mother, 50_000).balance_fen == 100_000
        refusal = refused(family.payment.CreditAccount, _credit(family.mother, 50_001))
        assert (refusal.reason, refusal.fields) == ("AMOUNT_LIMIT_EXCEEDED", ("amount_fen",))
        assert refusal.metadata["max_fen"] == "50000"
        adjustment = papi.CREDIT_KIND_ADJUSTMENT
        refusal = refused(family.payment.CreditAccount, _credit(family.mother, -50_001, kind=adjustment))
        assert refusal.reason == "AMOUNT_LIMIT_EXCEEDED"
        assert family.payment.CreditAccount(_credit(family.mother, -50_000, kind=adjustment)).account.balance_fen == (
            50_000
        )

        refusal = refused(family.payment.Settle, papi.SettleRequest(request_id=request_id(), bill=family.bill(50_001)))
        assert (refusal.reason, refusal.fields) == ("AMOUNT_LIMIT_EXCEEDED", ("bill.self_pay_fen",))
        assert family.settle(50_000).captured_fen == 50_000
        assert family.account(family.mother).balance_fen + family.account(family.father).balance_fen == 50_000
        assert family.ledger().entry_count == 5  # four credits and one settlement: no refusal wrote anything


def _credit(who, amount_fen: int, kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, admdvs="320100"):
    return papi.CreditAccountRequest(
        request_id=request_id(), id_number=who.id_number, amount_fen=amount_fen,
        account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT, kind=kind, admdvs=admdvs, period="2026-03",
    )  # fmt: skip


def test_a_credit_that_would_take_an_account_past_the_most_it_may_hold_is_refused_and_writes_nothing(
    databases, binding_service
):
    with running_payment(databases, binding_service, max_amount_fen=2 * MAX_BALANCE_FEN) as harness:
        family = PaymentFamily(harness, father_fen=0)
        topped_up = family.credit(family.mother, MAX_BALANCE_FEN - 100_000)
        assert topped_up.balance_fen == MAX_BALANCE_FEN  # exactly the most is allowed
        entries = family.ledger().entry_count
        refusal = refused(family.payment.CreditAccount, _credit(family.mother, 1))
        assert (refusal.code, refusal.reason, refusal.fields) == (
            INVALID_ARGUMENT,
            "AMOUNT_LIMIT_EXCEEDED",
            ("amount_fen",),
        )
        assert refusal.metadata["max_balance_fen"] == str(MAX_BALANCE_FEN)
        # An account not opened yet is not opened by a credit it could not hold.
        refusal = refused(family.payment.CreditAccount, _credit(family.father, MAX_BALANCE_FEN + 1))
        assert refusal.reason == "AMOUNT_LIMIT_EXCEEDED"
        missing = refused(
            family.payment.GetAccount,
            papi.GetAccountRequest(id_number=family.father.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT),
        )
        assert missing.reason == "ACCOUNT_NOT_FOUND"
        assert family.account(family.mother).balance_fen == MAX_BALANCE_FEN
        audit = family.ledger()
        assert (audit.balanced, audit.entry_count) == (True, entries)


def test_a_state_filter_repeated_seventy_thousand_times_lists_and_pages_as_that_state_once(family):
    """A state becomes one SQL parameter however often it is asked for (PostgreSQL takes at most
    65,535), and a page token of the long filter continues the short one: the query is the same."""
    child = family.child.id_number
    once = bapi.ListBindingsRequest(beneficiary_id_number=child, states=[bpb.BINDING_STATE_ACTIVE], page_size=1)
    many = bapi.ListBindingsRequest(
        beneficiary_id_number=child, states=[bpb.BINDING_STATE_ACTIVE] * 70_000 + [bpb.BINDING_STATE_ENDED] * 3,
        page_size=1,
    )  # fmt: skip
    first, first_of_many = family.binding.ListBindings(once), family.binding.ListBindings(many)
    assert first_of_many.bindings == first.bindings
    once.states.append(bpb.BINDING_STATE_ENDED)
    once.page_token = first_of_many.next_page_token
    second = family.binding.ListBindings(once)
    assert sorted(b.binding_id for b in (*first.bindings, *second.bindings)) == sorted(
        [family.mother_binding.binding_id, family.father_binding.binding_id]
    )


def test_a_binding_with_more_than_ten_proofs_or_an_overlong_document_ref_is_refused_and_not_created(family):
    """Every proof travels with the binding in every list: five bindings of 7,000 proofs once made
    the beneficiary's ListBindings larger than the server may send."""
    uncle = family.register("王叔叔")
    proof = bpb.Proof(type=bpb.PROOF_TYPE_HOUSEHOLD_REGISTER, document_ref="DOC-1")
    too_many = binding_request(uncle, family.child)
    too_many.proofs.extend([proof] * 10)
    too_long = binding_request(uncle, family.child)
    too_long.proofs[0].document_ref = "r" * 129
    for request, field in ((too_many, "proofs"), (too_long, "proofs[0].document_ref")):
        refusal = refused(family.binding.CreateBinding, request)
        assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_INVALID", (field,))
    assert not family.binding.ListBindings(bapi.ListBindingsRequest(grantor_id_number=uncle.id_number)).bindings
    ten = binding_request(uncle, family.child)
    ten.proofs.extend([proof] * 9)
    assert len(family.binding.CreateBinding(ten).binding.proofs) == 10


def test_a_page_ends_before_its_answer_would_pass_the_most_a_page_may_take(family, monkeypatch):
    """Whatever page_size asks, the answer stays sendable; the token goes on from the last one sent."""
    monkeypatch.setattr(paging, "MAX_PAGE_BYTES", 1)
    request = bapi.ListBindingsRequest(beneficiary_id_number=family.child.id_number, page_size=500)
    seen = []
    while True:
        page = family.binding.ListBindings(request)
        assert len(page.bindings) == 1
        seen.append(page.bindings[0].binding_id)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert sorted(seen) == sorted([family.mother_binding.binding_id, family.father_binding.binding_id])
    family.binding.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(
            request_id=request_id(), binding_id=family.mother_binding.binding_id, yearly_cap_fen=50_000
        )
    )  # a second event
    events = family.binding.ListBindingEvents(
        bapi.ListBindingEventsRequest(binding_id=family.mother_binding.binding_id, page_size=500)
    )
    assert (len(events.events), bool(events.next_page_token)) == (1, True)


def _token(body: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


def test_a_page_token_is_accepted_only_as_issued_for_the_same_query(family):
    listed = family.binding.ListBindings(bapi.ListBindingsRequest(beneficiary_id_number=family.child.id_number,
                                                                   page_size=1))  # fmt: skip
    assert listed.next_page_token
    following = family.binding.ListBindings(
        bapi.ListBindingsRequest(
            beneficiary_id_number=family.child.id_number, page_size=1, page_token=listed.next_page_token
        )
    )
    assert following.bindings[0].binding_id != listed.bindings[0].binding_id
    forged = [_token({"p": ["not a time", 5], "s": "00"}), _token({"q": "x", "p": -1}), "%%%", "x" * 5000]
    for token in [*forged, listed.next_page_token]:
        for call, request in (
            (family.binding.ListBindings, bapi.ListBindingsRequest(grantor_id_number=family.mother.id_number,
                                                                   page_token=token)),
            (family.binding.ListRegionPolicies, bapi.ListRegionPoliciesRequest(page_token=token)),
            (family.payment.ListStatement, papi.ListStatementRequest(id_number=family.mother.id_number,
                                                                     page_token=token)),
            (family.payment.ListViolations, papi.ListViolationsRequest(holder_id_number=family.mother.id_number,
                                                                       page_token=token)),
        ):  # fmt: skip
            refusal = refused(call, request)
            assert (refusal.code, refusal.reason, refusal.fields) == (
                INVALID_ARGUMENT,
                "INVALID_PAGE_TOKEN",
                ("page_token",),
            ), (call, token[:20])


def _old_digest(query) -> str:
    """What the first page tokens carried as their check: a hash of the query, which the caller knows."""
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()


def _forgeries(query, position) -> list[str]:
    """The old attack: a made-up position with a check anyone can compute, in the old layout and the new."""
    unkeyed = hashlib.sha256(json.dumps([query, position], sort_keys=True, default=str).encode()).hexdigest()
    return [
        _token({"q": _old_digest(query)[:16], "p": position}),
        _token({"p": position, "s": _old_digest(query)[:32]}),
        _token({"p": position, "s": unkeyed[:32]}),
    ]


def _refused_as_a_bad_page_token(call, request) -> None:
    refusal = refused(call, request)
    assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "INVALID_PAGE_TOKEN", ("page_token",))


def test_a_page_token_made_up_from_the_query_the_caller_knows_is_refused(family):
    mother, binding_id = family.mother.id_number, family.mother_binding.binding_id
    later = ["2026-03-02T01:00:00+00:00", "z" * 20]
    personal = "PERSONAL_ACCOUNT"
    attempts = [
        (family.binding.ListBindings, lambda t: bapi.ListBindingsRequest(grantor_id_number=mother, page_token=t),
         [mother, "", []], later),
        (family.binding.ListBindingEvents, lambda t: bapi.ListBindingEventsRequest(binding_id=binding_id, page_token=t),
         [binding_id], 0),
        (family.binding.ListRegionPolicies, lambda t: bapi.ListRegionPoliciesRequest(page_token=t), ["", "key"], 0),
        (family.binding.ListRegionPolicies, lambda t: bapi.ListRegionPoliciesRequest(page_token=t), ["", "key"],
         ["2026-03-02", 5]),
        (family.payment.ListStatement, lambda t: papi.ListStatementRequest(id_number=mother, page_token=t),
         [mother, personal, ""], 10**9),
        (family.payment.ListViolations, lambda t: papi.ListViolationsRequest(holder_id_number=mother, page_token=t),
         [mother], later),
    ]  # fmt: skip
    for call, build, query, position in attempts:
        assert call(build(""), timeout=10) is not None  # the query itself is fine
        for token in _forgeries(query, position):
            _refused_as_a_bad_page_token(call, build(token))


def test_a_page_token_issued_for_one_query_is_refused_on_another(family):
    binding = family.binding
    mother_binding, father_binding = family.mother_binding.binding_id, family.father_binding.binding_id
    binding.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(request_id=request_id(), binding_id=mother_binding, yearly_cap_fen=50_000)
    )  # a second event on the mother's binding
    events = binding.ListBindingEvents(bapi.ListBindingEventsRequest(binding_id=mother_binding, page_size=1))
    assert events.next_page_token
    following = binding.ListBindingEvents(
        bapi.ListBindingEventsRequest(binding_id=mother_binding, page_size=1, page_token=events.next_page_token)
    )
    assert following.events and following.events[0] != events.events[0]
    _refused_as_a_bad_page_token(
        binding.ListBindingEvents,
        bapi.ListBindingEventsRequest(binding_id=father_binding, page_size=1, page_token=events.next_page_token),
    )

    child = family.child.id_number
    listed = binding.ListBindings(bapi.ListBindingsRequest(beneficiary_id_number=child, page_size=1))
    assert listed.next_page_token
    for other in (
        bapi.ListBindingsRequest(beneficiary_id_number=child, states=[bpb.BINDING_STATE_ACTIVE], page_size=1),
        bapi.ListBindingsRequest(grantor_id_number=family.mother.id_number, page_size=1),
    ):
        other.page_token = listed.next_page_token
        _refused_as_a_bad_page_token(binding.ListBindings, other)
    _refused_as_a_bad_page_token(
        binding.ListBindingEvents,
        bapi.ListBindingEventsRequest(binding_id=mother_binding, page_token=listed.next_page_token),
    )

    family.credit(family.mother, 1_000)
    mother = family.mother.id_number
    statement = family.payment.ListStatement(papi.ListStatementRequest(id_number=mother, page_size=1))
    assert statement.next_page_token
    for other in (
        papi.ListStatementRequest(id_number=family.father.id_number, page_size=1),
        papi.ListStatementRequest(id_number=mother, month="2026-03", page_size=1),
        papi.ListStatementRequest(id_number=mother, account_kind=ppb.ACCOUNT_KIND_WALLET, page_size=1),
    ):
        other.page_token = statement.next_page_token
        _refused_as_a_bad_page_token(family.payment.ListStatement, other)
    second = family.payment.ListStatement(
        papi.ListStatementRequest(id_number=mother, page_size=1, page_token=statement.next_page_token)
    )
    assert second.lines and second.lines[0] != statement.lines[0]


@pytest.mark.parametrize(
    ("rpc", "request_", "field"),
    [
        ("ReconcileInstitution", papi.ReconcileInstitutionRequest(date="9999-12-31"), "date"),
        ("GetClearingReport", papi.GetClearingReportRequest(date="0001-01-01"), "date"),
        ("ListStatement", papi.ListStatementRequest(month="9999-12"), "month"),
        ("ListStatement", papi.ListStatementRequest(month="0001-01"), "month"),
    ],
)
def test_a_day_or_month_at_the_calendars_edge_is_refused_naming_its_field(family, rpc, request_, field):
    if rpc == "ListStatement":
        request_.id_number = family.mother.id_number
    refusal = refused(getattr(family.payment, rpc), request_)
    assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_INVALID", (field,))


@pytest.mark.parametrize(
    ("day", "month"),
    [("２０２６-03-02", "２０２６-03"), ("٢٠٢٦-٠٣-٠٢", "٢٠٢٦-٠٣"), ("2026-3-2", "2026-3"), ("2026-03-2", "202603"),
     (" 2026-03-02", "2026-03 x"), ("2026-03-02\n", "2026-03\n"), ("+2026-03-02", "+2026-03")],
)  # fmt: skip
def test_a_day_or_month_not_written_in_ascii_yyyy_mm_dd_or_yyyy_mm_is_refused_naming_its_field(family, day, month):
    """strptime alone takes other digits, single-digit months and days, and spaces around them."""
    for call, request, field in (
        (family.payment.ReconcileInstitution, papi.ReconcileInstitutionRequest(institution_code="H1", date=day),
         "date"),
        (family.payment.GetClearingReport, papi.GetClearingReportRequest(date=day), "date"),
        (family.payment.ListStatement, papi.ListStatementRequest(id_number=family.mother.id_number, month=month),
         "month"),
        (family.payment.CreditAccount, papi.CreditAccountRequest(
            request_id=request_id(), id_number=family.mother.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
            amount_fen=100, kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, period=month), "period"),
    ):  # fmt: skip
        refusal = refused(call, request)
        assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_INVALID", (field,)), month
    assert family.account(family.mother).balance_fen == 100_000
    refusal = refused(family.binding.ListRegionPolicies, bapi.ListRegionPoliciesRequest(admdvs="３２０１"))
    assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "INVALID_ADMDVS", ("admdvs",))


def test_bytes_that_are_no_request_are_refused_as_malformed_with_one_quiet_log_line(family, pki, caplog):
    caplog.set_level(logging.INFO)
    with pki.channel(family.payment.address, operator("000000", "ops")) as channel:
        call = channel.unary_unary("/gongji.payment.v1.PaymentService/GetAccount")
        for payload in (b"\x0a\x03\xff\xfe\xc3", b"\x0a\x7f", bytes(range(256))):
            with pytest.raises(grpc.RpcError) as raised:
                call(payload, timeout=10)
            refusal = refusal_of(raised.value)
            assert (refusal.code, refusal.reason) == (INVALID_ARGUMENT, "MALFORMED_REQUEST")
            assert "DecodeError" not in refusal.message or "GetAccountRequest" in refusal.message
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert family.ledger().balanced


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", (INVALID_ARGUMENT, "MALFORMED_REQUEST")),
        # This binding service announces no payer changes: the watch is refused before it reads.
        ("/gongji.binding.v1.BindingService/WatchPayerChanges", (FAILED_PRECONDITION, "PAYER_WATCH_OFF")),
    ],
)
def test_bytes_that_are_no_request_on_a_stream_are_refused_with_a_reason(family, pki, path, expected, caplog):
    caplog.set_level(logging.INFO)
    with pki.channel(family.binding.address, payment_node("local")) as channel:
        stream = channel.stream_stream(path)
        with pytest.raises(grpc.RpcError) as raised:
            list(stream(iter([b"\x0a\x7f"]), timeout=10))
        refusal = refusal_of(raised.value)
        assert (refusal.code, refusal.reason) == expected
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_method_the_server_lacks_is_unimplemented_with_an_error_info_of_each_services_domain(family, pki):
    """gRPC's own "Method not found!" carried no google.rpc.Status; a client with newer protos
    meets exactly this against an older server."""
    for address, domain in ((family.binding.address, "binding.gongji"), (family.payment.address, "payment.gongji")):
        with pki.channel(address, NATIONAL) as channel:
            for path in ("/gongji.binding.v1.BindingService/NoSuchMethod", "/no.such.v1.Service/Get"):
                with pytest.raises(grpc.RpcError) as raised:
                    channel.unary_unary(path)(b"", timeout=10)
                refusal = refusal_of(raised.value)
                assert (refusal.code, refusal.reason, refusal.domain) == (
                    grpc.StatusCode.UNIMPLEMENTED,
                    "NOT_IMPLEMENTED",
                    domain,
                )
                # A stream that sends nothing is answered at once, not left waiting.
                with pytest.raises(grpc.RpcError) as raised:
                    list(channel.stream_stream(path)(iter(()), timeout=10))
                assert refusal_of(raised.value).reason == "NOT_IMPLEMENTED"


def test_input_is_echoed_into_errors_only_as_a_short_prefix(family):
    huge = "b" * 65_536
    refusal = refused(family.binding.GetBinding, bapi.GetBindingRequest(binding_id=huge))
    assert refusal.code == grpc.StatusCode.NOT_FOUND
    assert len(refusal.message) <= MAX_MESSAGE
    refusal = refused(
        family.payment.ReverseRequest, papi.ReverseRequestRequest(request_id=request_id(), original_request_id=huge)
    )
    assert (refusal.code, refusal.fields) == (INVALID_ARGUMENT, ("original_request_id",))
    assert len(refusal.message) <= MAX_MESSAGE
    assert MAX_METADATA_VALUE < 1_000


def test_a_refusal_that_echoes_a_space_padded_id_has_no_space_at_either_end_of_its_message(family):
    """The message travels in the grpc-message header, whose value HTTP/2 forbids to start or
    end with a space: Node.js's grpc-js (nghttp2) dropped it and showed its caller no message."""
    for call, request in (
        (family.binding.GetBinding, bapi.GetBindingRequest(binding_id="  no-such-binding  ")),
        (family.payment.GetSettlement, papi.GetSettlementRequest(settlement_id=" ")),
        (family.payment.CaptureSettlement, papi.CaptureSettlementRequest(request_id=request_id(), settlement_id="x ")),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout=10)
        refusal = refusal_of(raised.value)
        assert refusal.code == grpc.StatusCode.NOT_FOUND
        assert raised.value.details() == refusal.message
        assert refusal.message == refusal.message.strip(" ") != ""


def test_a_reversal_of_an_overlong_or_unprintable_request_id_stores_nothing(family):
    for original in ("r" * 500_000, "a\x00b", "a\x7fb"):
        refusal = refused(
            family.payment.ReverseRequest,
            papi.ReverseRequestRequest(request_id=request_id(), original_request_id=original),
        )
        assert (refusal.code, refusal.fields) == (INVALID_ARGUMENT, ("original_request_id",))
    # Larger than any request may be (1 MiB): gRPC refuses it before it is read.
    with pytest.raises(grpc.RpcError) as raised:
        family.payment.ReverseRequest(
            papi.ReverseRequestRequest(request_id=request_id(), original_request_id="r" * 4_000_000), timeout=10
        )
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert family.ledger().entry_count == 2  # the two credits of the family, nothing else


def test_a_bill_forwarded_between_nodes_that_both_do_not_know_it_is_answered_at_once(two_nodes):
    """A settlement id no node holds is NOT_FOUND within the caller's deadline, not bounced
    from node to node until it runs out."""
    for harness in (two_nodes.east, two_nodes.west):
        refusal = refused(harness.stub.GetSettlement, papi.GetSettlementRequest(settlement_id="no-such-settlement"))
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.NOT_FOUND, "SETTLEMENT_NOT_FOUND")


def _policy_in_force(policies: list[RegionPolicy], admdvs: str, at: datetime) -> RegionPolicy | None:
    """The rule, spelled out: the most specific region code that has a version in force, and
    of its versions the latest that started by then."""
    for code in (admdvs, admdvs[:2] + "0000", "000000"):
        started = [p for p in policies if p.admdvs == code and p.effective_from <= at]
        if started:
            return max(started, key=lambda p: p.effective_from)
    return None


def test_the_policy_in_force_is_found_among_thousands_of_versions():
    """Regions accumulate versions; the index picks the latest in force, most specific first."""
    start = datetime(2000, 1, 1, tzinfo=UTC)
    versions = [
        RegionPolicy(admdvs="320100" if n % 3 else "320000", effective_from=start + timedelta(days=n))
        for n in range(3_000)
    ]
    index = PolicyIndex(versions)
    for moment in (
        datetime(1999, 1, 1, tzinfo=UTC),
        datetime(2004, 6, 15, tzinfo=UTC),
        datetime(2100, 1, 1, tzinfo=UTC),
    ):
        for region in ("320100", "320200", "110101"):
            expected = _policy_in_force(versions, region, moment)
            found = index.for_region(region, moment)
            assert (found.version if expected else found.admdvs) == (expected.version if expected else "000000")


def test_a_peer_cannot_hold_money_here_with_an_expiry_in_the_past_or_months_away(two_nodes):
    from services.common.converters import datetime_to_timestamp
    from tests.test_trust_boundaries import CrossFamily, prepare

    cross = CrossFamily(two_nodes, mother_fen=100_000)
    request = prepare(cross, cross.mother_binding.binding_id, cross.mother.id_number, 1_000)
    for offset in (timedelta(seconds=-1), timedelta(days=62)):
        request.expire_time.CopyFrom(datetime_to_timestamp(cross.clock.now() + offset))
        refusal = refused(two_nodes.east.node_stub("west").PrepareLegs, request)
        assert (refusal.code, refusal.fields) == (INVALID_ARGUMENT, ("expire_time",))
    assert cross.balance(two_nodes.east.stub, cross.mother).held_fen == 0


def test_a_replayed_policy_change_leaves_the_policy_cache_warm(databases, clock, pki, roles):
    """Only a policy version not stored before empties the cache; a replay, or the same version
    sent again, must not make every later read go back to the database."""
    policy_reads: list[str] = []

    def count_policy_reads(connection, cursor, statement, parameters, context, executemany) -> None:
        if "FROM region_policies" in statement:
            policy_reads.append(statement)

    settings = BindingSettings(
        database_url=databases.url("binding"),
        security=ServerSecurity(pki.transport(BINDING_SERVICE)),
        address="127.0.0.1:0",
        clock=clock,
        policy_cache_seconds=3600,
    )
    event.listen(Engine, "before_cursor_execute", count_policy_reads)
    try:
        with BackgroundServer(lambda: start_binding_server(settings)) as server:
            stub = ActingStub(binding_grpc.BindingServiceStub, server.address, pki, roles)
            try:
                policy = stub.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs="320100"), timeout=10).policy
                policy.admdvs, policy.max_beneficiaries = "320000", 4
                put = bapi.PutRegionPolicyRequest(request_id=request_id(), policy=policy)
                stub.PutRegionPolicy(put, timeout=10)
                stub.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs="320100"), timeout=10)
                after_new_version = len(policy_reads)

                stub.PutRegionPolicy(put, timeout=10)
                stub.PutRegionPolicy(bapi.PutRegionPolicyRequest(request_id=request_id(), policy=policy), timeout=10)
                reads_by_the_puts = len(policy_reads)
                answer = stub.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs="320100"), timeout=10).policy
            finally:
                stub.close()
    finally:
        event.remove(Engine, "before_cursor_execute", count_policy_reads)

    assert after_new_version > 0
    assert len(policy_reads) == reads_by_the_puts, "a replay emptied the policy cache"
    assert answer.max_beneficiaries == 4


# Keys no caller means: only spaces (ASCII, and the ideographic space an IME types), and a key
# with a space before or after it. Short, so a node's transaction id (at most 36) is not refused
# for its length instead.
BLANK_OR_PADDED_KEYS = (" ", "   ", "\u3000", " k1", "k1 ")


def _every_row(urls: dict[str, str]) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table of the binding service and both payment nodes, comparable."""
    rows: dict[str, list[tuple[str, ...]]] = {}
    for name, url in urls.items():
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                for table in METADATA["payment" if name != "binding" else "binding"].sorted_tables:
                    found = connection.execute(select(table)).all()
                    rows[f"{name}.{table.name}"] = sorted(tuple(map(repr, row)) for row in found)
        finally:
            engine.dispose()
    return rows


def _every_rpc(two_nodes: Any) -> tuple[World, Caller, dict[str, str]]:
    """The authorization matrix's family on two nodes, a caller of every RPC as its natural
    principal, and the databases whose rows must not change."""
    pki = two_nodes.east.binding.pki
    urls = {
        "binding": two_nodes.east.binding.database_url,
        "east": two_nodes.east.database_url,
        "west": two_nodes.west.database_url,
    }
    return World(CrossFamily(two_nodes), two_nodes, pki, pki), Caller(two_nodes, pki), urls


def _with_key(request: Message, key: str) -> tuple[Message, str]:
    """A copy of request with its idempotency key replaced by key, and the key's field path."""
    copy = type(request)()
    copy.CopyFrom(request)
    for name in IDEMPOTENCY_KEYS:
        if name in copy.DESCRIPTOR.fields_by_name:
            setattr(copy, name, key)
            return copy, name
    copy.requests[0].transaction_id = key  # type: ignore[attr-defined]  # BatchCommitLegs: each commit's own
    return copy, "requests[0].transaction_id"


def _keyed(method: MethodDescriptor) -> bool:
    """A mutating RPC keyed by request_id, or a node call keyed by its transaction or transfer
    (PaymentService's GetTransfer only looks a transfer up: its transfer_id is no key)."""
    fields = method.input_type.fields_by_name
    if method.containing_service.name != "PaymentNodeService":
        return "request_id" in fields
    return any(name in fields for name in IDEMPOTENCY_KEYS) or method.name == "BatchCommitLegs"


def test_a_blank_or_space_padded_idempotency_key_is_refused_as_invalid_on_every_mutating_rpc_and_changes_nothing(
    two_nodes,
):
    """A blank key is no key (every caller sending one would share it), and a padded one is a
    caller's bug that a reversal, which trims the original key, could never reach. Each is
    refused as FIELD_INVALID naming the key before anything is read or written; the empty key
    keeps its established answer (FIELD_REQUIRED for request_id, which the proto marks REQUIRED;
    FIELD_INVALID for a node's transaction or transfer id)."""
    world, caller, urls = _every_rpc(two_nodes)
    wrong: list[str] = []
    methods = [method for method in METHODS if _keyed(method)]
    try:
        for method in methods:
            request = well_formed(world, method)  # may itself place a hold or a binding to act on
            principal = caller.principal(method, request)
            before = _every_row(urls)
            for key in ("", *BLANK_OR_PADDED_KEYS):
                sent, field = _with_key(request, key)
                expected = "FIELD_REQUIRED" if key == "" and field == "request_id" else "FIELD_INVALID"
                refusal = caller.send(method, sent, principal)
                if not (
                    isinstance(refusal, Refusal)
                    and (refusal.code, refusal.reason, refusal.field) == (INVALID_ARGUMENT, expected, field)
                ):
                    wrong.append(f"{method.full_name} with {field}={key!r}: {refusal or 'accepted'}")
            if _every_row(urls) != before:
                wrong.append(f"{method.full_name}: a refused key changed the databases")
    finally:
        caller.close()
    assert wrong == [], "\n".join(wrong)
    assert len(methods) >= 28, [method.name for method in methods]


# Keys with a character that is not printable: a C1 control (CSI, which a terminal obeys), a NUL,
# and invisible format characters (zero-width space, right-to-left override, byte-order mark) that
# make two keys look alike in the access log and in a caller's own records.
UNPRINTABLE_KEYS = ("k\x9b1", "k\x001", "k\u200b1", "\u202ek1", "k\ufeff1")


def test_an_idempotency_key_with_a_control_or_invisible_character_is_refused_as_invalid_on_every_mutating_rpc(
    two_nodes,
):
    """A request_id is up to 128 printable characters, and a node's transaction or transfer id
    is the coordinator's UUID: a key holding a character that is not printable is refused as
    FIELD_INVALID naming it, before anything is read or written."""
    world, caller, urls = _every_rpc(two_nodes)
    wrong: list[str] = []
    try:
        for method in [method for method in METHODS if _keyed(method)]:
            request = well_formed(world, method)
            principal = caller.principal(method, request)
            before = _every_row(urls)
            for key in UNPRINTABLE_KEYS:
                sent, field = _with_key(request, key)
                refusal = caller.send(method, sent, principal)
                if not (
                    isinstance(refusal, Refusal)
                    and (refusal.code, refusal.reason, refusal.field) == (INVALID_ARGUMENT, "FIELD_INVALID", field)
                ):
                    wrong.append(f"{method.full_name} with {field}={key!r}: {refusal or 'accepted'}")
            if _every_row(urls) != before:
                wrong.append(f"{method.full_name}: a refused key changed the databases")
    finally:
        caller.close()
    assert wrong == [], "\n".join(wrong)


# The ids a public RPC looks up: what the services made (UUIDs), never a caller's free text.
LOOKED_UP_IDS = ("binding_id", "binding_ids", "settlement_id")


def test_an_id_with_a_control_or_invisible_character_is_refused_naming_it_on_every_rpc_that_looks_one_up(two_nodes):
    """A binding or settlement id is one the services made: one holding a character that is not
    printable is refused as FIELD_INVALID naming the field, on SQLite and PostgreSQL alike (which
    refuses to compare a NUL), before it is looked up, and nothing changes."""
    world, caller, urls = _every_rpc(two_nodes)
    wrong: list[str] = []
    checked = 0
    try:
        for method in [m for m in METHODS if m.containing_service.name != "PaymentNodeService"]:
            request = well_formed(world, method)
            for name in [name for name in LOOKED_UP_IDS if name in request.DESCRIPTOR.fields_by_name]:
                before = _every_row(urls)
                for value in UNPRINTABLE_KEYS:
                    sent = type(request)()
                    sent.CopyFrom(request)
                    if sent.DESCRIPTOR.fields_by_name[name].is_repeated:
                        getattr(sent, name)[:] = [value]
                        field = f"{name}[0]"
                    else:
                        setattr(sent, name, value)
                        field = name
                    refusal = caller.send(method, sent, caller.principal(method, sent))
                    checked += 1
                    if not (
                        isinstance(refusal, Refusal)
                        and (refusal.code, refusal.reason, refusal.field) == (INVALID_ARGUMENT, "FIELD_INVALID", field)
                    ):
                        wrong.append(f"{method.full_name} with {field}={value!r}: {refusal or 'accepted'}")
                if _every_row(urls) != before:
                    wrong.append(f"{method.full_name}: a refused {name} changed the databases")
    finally:
        caller.close()
    assert checked >= 10 * len(UNPRINTABLE_KEYS), "every RPC that looks up a binding or settlement was sent one"
    assert wrong == [], "\n".join(wrong)


def _enum_fields(message: Message, path: str = "", depth: int = 0) -> list[tuple[str, list[tuple[str, Any]]]]:
    """Each enum field of `message` (and of the sub-messages it sets, the first item of a repeated
    one included) as its path and the steps that reach it: (field name, index or None)."""
    found: list[tuple[str, list[tuple[str, Any]]]] = []
    for field in message.DESCRIPTOR.fields:
        where = f"{path}{field.name}"
        if field.enum_type is not None:
            found.append((f"{where}[0]" if field.is_repeated else where, [(field.name, None)]))
        elif field.message_type is not None and depth < 2:
            if field.is_repeated:
                items = getattr(message, field.name)
                if len(items):
                    inner = _enum_fields(items[0], f"{where}[0].", depth + 1)
                    found += [(label, [(field.name, 0), *steps]) for label, steps in inner]
            elif message.HasField(field.name):
                inner = _enum_fields(getattr(message, field.name), f"{where}.", depth + 1)
                found += [(label, [(field.name, None), *steps]) for label, steps in inner]
    return found


def _with_enum(request: Message, steps: list[tuple[str, Any]], number: int) -> Message:
    copy = type(request)()
    copy.CopyFrom(request)
    holder: Any = copy
    for name, index in steps[:-1]:
        holder = getattr(holder, name)[index] if index is not None else getattr(holder, name)
    name = steps[-1][0]
    if holder.DESCRIPTOR.fields_by_name[name].is_repeated:
        getattr(holder, name)[:] = [number]
    else:
        setattr(holder, name, number)
    return copy


def test_an_enum_number_the_api_does_not_define_is_refused_as_invalid_naming_its_field_on_every_rpc(two_nodes):
    """Proto3 enums are open: a client built from newer protos, or one writing JSON by hand, may
    send a number this server does not know (99). It is a value given, not one missing, and no
    caller's scope can be judged by it: INVALID_ARGUMENT FIELD_INVALID naming the field, never
    FIELD_REQUIRED or a refusal of the caller's rights, and nothing changes."""
    world, caller, urls = _every_rpc(two_nodes)
    wrong: list[str] = []
    checked = 0
    try:
        for method in METHODS:
            request = well_formed(world, method)
            for path, steps in _enum_fields(request):
                before = _every_row(urls)
                sent = _with_enum(request, steps, 99)
                refusal = caller.send(method, sent, caller.principal(method, sent))
                checked += 1
                if not (
                    isinstance(refusal, Refusal)
                    and (refusal.code, refusal.reason) == (INVALID_ARGUMENT, "FIELD_INVALID")
                    and refusal.names(path.removesuffix("[0]"))
                ):
                    wrong.append(f"{method.full_name} with {path}=99: {refusal or 'accepted'}")
                if _every_row(urls) != before:
                    wrong.append(f"{method.full_name}: {path}=99 changed the databases")
    finally:
        caller.close()
    assert checked >= 20, "the well-formed requests set their enum fields"
    assert wrong == [], "\n".join(wrong)
