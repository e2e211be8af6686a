"""The attacks an outside client once got through, each tried again over real mutual TLS on
both databases: strangers are turned away, callers act only within their scope, payment
nodes check what their peers ask, request ids are each caller's own, and the ledger audit
stays exact afterwards."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

import grpc
import pytest
from cryptography import x509
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from sqlalchemy import create_engine, text

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.node.v1 import node_service_pb2 as node
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.converters import datetime_to_timestamp
from services.common.database import normalise_url
from services.common.security.callers import ACTING_FOR
from services.payment.service_layer.coordinator_memory import CoordinatorMemory
from shared.bindings import Channel
from shared.ledger import CHINA_STANDARD_TIME
from shared.money import MAX_BALANCE_FEN
from shared.principals import BINDING_SERVICE, GATEWAY, channel_principal, institution, operator, payment_node
from shared.privacy import mask_id_number
from tests.helpers import binding_request, refusal_of, request_id
from tests.payment_helpers import INSTITUTION, PaymentFamily
from tests.test_binding_rules import put_policy
from tests.test_cross_province import HOSPITAL, NANJING, PILOTS, CrossFamily, at_noon, transfer, wait_for_transfer

PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
NATIONAL = operator("000000", "ops")
JIANGSU = operator("320000", "op-js")
GANSU = operator("620000", "op-gs")
WECHAT = channel_principal(Channel.WECHAT)
ID_NUMBER = r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])"


def refusal(call, request):
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=20)
    return refusal_of(raised.value)


def balances(family: PaymentFamily) -> dict[str, tuple[int, int]]:
    """(balance, held) of each grantor's personal account."""
    return {
        person.id_number: (account.balance_fen, account.held_fen)
        for person in (family.mother, family.father)
        for account in [family.account(person)]
    }


def audit_is_exact(*stubs) -> None:
    for stub in stubs:
        audit = stub.as_principal(NATIONAL).CheckLedger(papi.CheckLedgerRequest())
        assert audit.balanced, list(audit.problems)


@pytest.fixture
def family(payment_service) -> PaymentFamily:
    return PaymentFamily(payment_service)


# Strangers -------------------------------------------------------------------------------


def test_a_caller_without_a_client_certificate_is_turned_away_before_any_call(family, payment_service, pki):
    before = balances(family)
    request = papi.SettleRequest(request_id=request_id(), bill=family.bill(50_000))
    address = payment_service.server.address
    for channel in (
        grpc.insecure_channel(address),
        grpc.secure_channel(address, grpc.ssl_channel_credentials(pki.ca_file.read_bytes())),
    ):
        with channel, pytest.raises(grpc.RpcError) as raised:
            payment_grpc.PaymentServiceStub(channel).Settle(request, timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake failed: no call exists
    assert balances(family) == before
    audit_is_exact(family.payment)


@pytest.mark.parametrize(
    "names",
    [
        [x509.DNSName(NATIONAL.spiffe_id)],
        [x509.RFC822Name(NATIONAL.spiffe_id)],
        [x509.UniformResourceIdentifier(NATIONAL.spiffe_id), x509.UniformResourceIdentifier("https://example.com")],
    ],
    ids=["id as a DNS name", "id as an e-mail address", "a second URI"],
)
def test_a_certificate_names_its_caller_only_by_its_one_uri_san(names, family, payment_service, pki):
    """A CA may hand out DNS names and e-mail addresses to whoever asks; only the certificate's
    one URI SAN, its SPIFFE ID, makes it a principal."""
    issued = pki.ca.issue_names(names, f"odd-{uuid.uuid4().hex[:8]}")
    credentials = grpc.ssl_channel_credentials(
        pki.ca_file.read_bytes(), issued.key.read_bytes(), issued.cert.read_bytes()
    )
    with (
        grpc.secure_channel(payment_service.server.address, credentials) as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        payment_grpc.PaymentServiceStub(channel).CheckLedger(papi.CheckLedgerRequest(), timeout=20)
    refused = refusal_of(raised.value)
    assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED_CALLER")


def test_a_hospital_settles_only_in_its_own_name(family):
    """An invented or another institution's code is refused, and nothing moves."""
    before = balances(family)
    hospital = family.payment.as_principal(institution(INSTITUTION))
    for code in ("H99999999", "X" * 64):
        bill = family.bill(50_000)
        bill.institution_code = code
        refused = refusal(hospital.Settle, papi.SettleRequest(request_id=request_id(), bill=bill))
        assert (refused.code, refused.reason) == (PERMISSION_DENIED, "OUT_OF_SCOPE")
        assert code not in refused.message
    unnamed = family.bill(1_000)
    unnamed.institution_code = ""
    settled = hospital.Settle(papi.SettleRequest(request_id=request_id(), bill=unnamed)).settlement
    assert settled.bill.institution_code == INSTITUTION  # taken from its certificate
    assert balances(family)[family.mother.id_number] == (before[family.mother.id_number][0] - 1_000, 0)
    audit_is_exact(family.payment)


def test_a_hospital_cannot_tell_another_hospitals_settlement_from_one_that_does_not_exist(family):
    """Both are the same NOT_FOUND, word for word but the id it sent: settlement ids cannot be probed."""
    settled, held = family.settle(1_000), family.authorize(2_000)
    before = balances(family)
    other = family.payment.as_principal(institution("H32010002"))
    for call, request_of, theirs in (
        (other.GetSettlement, lambda i: papi.GetSettlementRequest(settlement_id=i), settled.settlement_id),
        (other.RefundSettlement, lambda i: papi.RefundSettlementRequest(request_id=request_id(), settlement_id=i),
         settled.settlement_id),
        (other.CaptureSettlement, lambda i: papi.CaptureSettlementRequest(request_id=request_id(), settlement_id=i),
         held.settlement_id),
        (other.ReleaseSettlement, lambda i: papi.ReleaseSettlementRequest(request_id=request_id(), settlement_id=i),
         held.settlement_id),
    ):  # fmt: skip
        answers = []
        for settlement_id in (theirs, str(uuid.uuid4())):
            refused = refusal(call, request_of(settlement_id))
            shown = refused.message.replace(settlement_id, "<id>")
            answers.append((refused.code, refused.reason, shown, refused.metadata, refused.fields))
        assert answers[0] == answers[1]
        assert answers[0][:2] == (grpc.StatusCode.NOT_FOUND, "SETTLEMENT_NOT_FOUND")
    assert balances(family) == before
    audit_is_exact(family.payment)


def test_crediting_money_needs_an_operator_of_the_region_and_a_bounded_amount(family):
    before = balances(family)
    credit = papi.CreditAccountRequest(
        id_number=family.mother.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT, amount_fen=10**12,
        kind=papi.CREDIT_KIND_ADJUSTMENT, admdvs="320100",
    )  # fmt: skip
    for caller, expected in (
        (institution(INSTITUTION), (PERMISSION_DENIED, "CALLER_NOT_ALLOWED")),
        (WECHAT, (PERMISSION_DENIED, "CALLER_NOT_ALLOWED")),
        (GANSU, (PERMISSION_DENIED, "OUT_OF_SCOPE")),
        (NATIONAL, (grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_LIMIT_EXCEEDED")),
    ):
        credit.request_id = request_id()
        refused = refusal(family.payment.as_principal(caller).CreditAccount, credit)
        assert (refused.code, refused.reason) == expected, caller
    assert balances(family) == before
    audit_is_exact(family.payment)


def test_an_operator_of_another_region_opens_no_account_for_a_person_who_has_none_yet(family):
    """Where a person is insured comes from the registry when the node keeps no account of the
    person yet, not from the region the operator names."""
    child = family.child.id_number  # insured in Nanjing, with no account on the node yet
    credit = papi.CreditAccountRequest(
        request_id=request_id(), id_number=child, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
        amount_fen=500_000, kind=papi.CREDIT_KIND_ADJUSTMENT, admdvs="620100",
    )  # fmt: skip
    suspend = papi.SuspendSettlementRequest(request_id=request_id(), holder_id_number=child, reason="not mine")
    wallet = papi.ActivateWalletRequest(request_id=request_id(), id_number=child, admdvs="620100")
    for call, request in (
        (family.payment.as_principal(GANSU).ActivateWallet, wallet),
        (family.payment.as_principal(GANSU).CreditAccount, credit),
        (family.payment.as_principal(GANSU).SuspendSettlement, suspend),
    ):
        refused = refusal(call, request)
        assert (refused.code, refused.reason) == (PERMISSION_DENIED, "OUT_OF_SCOPE")
    looked_up = papi.GetAccountRequest(id_number=child, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT)
    assert refusal(family.payment.as_principal(JIANGSU).GetAccount, looked_up).code == grpc.StatusCode.NOT_FOUND
    settled = family.payment.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000)))
    assert settled.settlement.state == ppb.SETTLEMENT_STATE_CAPTURED  # the child was not suspended


def test_a_payment_node_reads_an_insured_person_without_name_phone_or_address(family):
    """It needs the region an operator's scope is judged by, nothing more."""
    person = (
        family.binding.as_principal(payment_node("local"))
        .GetInsuredPerson(bapi.GetInsuredPersonRequest(id_number=family.child.id_number))
        .insured_person
    )
    assert (person.id_number, person.admdvs) == (family.child.id_number, family.child.admdvs)
    assert (person.name, person.phone, person.address) == ("", "", "")


def test_a_binding_changes_only_for_its_parties_through_a_channel_or_an_operator_of_its_region(family):
    binding = family.mother_binding
    as_hospital = family.binding.as_principal(institution(INSTITUTION))
    as_wechat = family.binding.as_principal(WECHAT)
    as_gansu = family.binding.as_principal(GANSU)
    attempts = [
        (as_hospital.UpdateSharingLimit, bapi.UpdateSharingLimitRequest(binding_id=binding.binding_id, share_all=True),
         "CALLER_NOT_ALLOWED"),
        (as_hospital.EndBinding, bapi.EndBindingRequest(binding_id=binding.binding_id, actor=bpb.ACTOR_GRANTOR,
                                                        actor_id=family.mother.id_number), "CALLER_NOT_ALLOWED"),
        (as_wechat.EndBinding, bapi.EndBindingRequest(binding_id=binding.binding_id, actor=bpb.ACTOR_OPERATOR,
                                                      actor_id="op-1"), "OUT_OF_SCOPE"),
        (as_gansu.EndBinding, bapi.EndBindingRequest(binding_id=binding.binding_id, actor=bpb.ACTOR_OPERATOR),
         "OUT_OF_SCOPE"),
        (as_wechat.ReviewBinding, bapi.ReviewBindingRequest(binding_id=binding.binding_id,
                                                            decision=bapi.REVIEW_DECISION_APPROVE),
         "CALLER_NOT_ALLOWED"),
        (as_wechat.ReportLifeEvent, bapi.ReportLifeEventRequest(id_number=family.mother.id_number,
                                                                event_type=bapi.LIFE_EVENT_TYPE_DEATH),
         "CALLER_NOT_ALLOWED"),
        (as_gansu.ReportLifeEvent, bapi.ReportLifeEventRequest(id_number=family.mother.id_number,
                                                               event_type=bapi.LIFE_EVENT_TYPE_DEATH), "OUT_OF_SCOPE"),
        (family.binding.as_principal(JIANGSU).PutRegionPolicy,
         bapi.PutRegionPolicyRequest(policy=bpb.RegionPolicy(admdvs="000000")), "OUT_OF_SCOPE"),
        (as_wechat.ResolvePayers, bapi.ResolvePayersRequest(beneficiary_id_number=family.child.id_number,
                                                            use_category=common.USE_CATEGORY_OUTPATIENT),
         "CALLER_NOT_ALLOWED"),
    ]  # fmt: skip
    for call, request, reason in attempts:
        if "request_id" in request.DESCRIPTOR.fields_by_name:
            request.request_id = request_id()
        refused = refusal(call, request)
        assert (refused.code, refused.reason) == (PERMISSION_DENIED, reason), request
    suspend = papi.SuspendSettlementRequest(request_id=request_id(), holder_id_number=family.child.id_number)
    refused = refusal(family.payment.as_principal(institution(INSTITUTION)).SuspendSettlement, suspend)
    assert (refused.code, refused.reason) == (PERMISSION_DENIED, "CALLER_NOT_ALLOWED")
    still = family.binding.GetBinding(bapi.GetBindingRequest(binding_id=binding.binding_id)).binding
    assert (still.state, still.share_all) == (bpb.BINDING_STATE_ACTIVE, binding.share_all)
    assert family.settle(1_000).mutual_aid_pay_fen == 1_000
    audit_is_exact(family.payment)


def test_only_payment_nodes_of_the_routing_file_may_ask_who_pays(family):
    request = bapi.ResolvePayersRequest(
        beneficiary_id_number=family.child.id_number, use_category=common.USE_CATEGORY_OUTPATIENT
    )
    assert family.binding.as_principal(payment_node("local")).ResolvePayers(request).grants
    refused = refusal(family.binding.as_principal(payment_node("north")).ResolvePayers, request)
    assert (refused.code, refused.reason) == (PERMISSION_DENIED, "CALLER_NOT_ALLOWED")


# Acting for others -------------------------------------------------------------------------


def test_only_a_payment_node_may_forward_a_call_for_another_principal_and_only_to_a_payment_node(family, pki):
    hospital = institution(INSTITUTION)
    settle = papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000))
    with pki.channel(family.payment.address, institution("H99999999")) as channel, pytest.raises(grpc.RpcError) as e:
        payment_grpc.PaymentServiceStub(channel).Settle(settle, metadata=((ACTING_FOR, hospital.spiffe_id),))
    assert (refusal_of(e.value).code, refusal_of(e.value).reason) == (PERMISSION_DENIED, "CALLER_NOT_ALLOWED")
    resolve = bapi.ResolvePayersRequest(beneficiary_id_number=family.child.id_number, use_category=1)
    node_as = family.binding.stub_as(payment_node("local"))
    with pytest.raises(grpc.RpcError) as raised:
        node_as.ResolvePayers(resolve, metadata=((ACTING_FOR, NATIONAL.spiffe_id),))
    assert refusal_of(raised.value).reason == "CALLER_NOT_ALLOWED"
    # A payment node forwarding for the hospital is judged as the hospital.
    forwarded = family.payment.stub_as(payment_node("local")).Settle(
        settle, metadata=((ACTING_FOR, hospital.spiffe_id),)
    )
    assert forwarded.settlement.bill.institution_code == INSTITUTION
    other = papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000))
    with pytest.raises(grpc.RpcError) as raised:
        family.payment.stub_as(payment_node("local")).Settle(
            other, metadata=((ACTING_FOR, institution("H99999999").spiffe_id),)
        )
    assert refusal_of(raised.value).reason == "OUT_OF_SCOPE"


# The gateway acts for institutions only ---------------------------------------------------------


def for_(principal) -> tuple[tuple[str, str], ...]:
    """The metadata of a call made in `principal`'s name."""
    return ((ACTING_FOR, principal.spiffe_id),)


def test_the_gateway_settles_for_an_institution_and_is_judged_as_that_institution(family):
    hospital = institution(INSTITUTION)
    gateway = family.payment.stub_as(GATEWAY)
    before = balances(family)
    quoted = gateway.QuoteSettlement(papi.QuoteSettlementRequest(bill=family.bill(1_000)), metadata=for_(hospital))
    assert quoted.settlement.mutual_aid_pay_fen == 1_000
    key = request_id()
    unnamed = family.bill(1_000)
    unnamed.institution_code = ""
    settled = gateway.Settle(papi.SettleRequest(request_id=key, bill=unnamed), metadata=for_(hospital)).settlement
    assert settled.bill.institution_code == INSTITUTION  # taken from the principal acted for
    assert all(leg.payer_id_number == mask_id_number(leg.payer_id_number) for leg in settled.legs)  # as it sees them
    # The request id is the hospital's own: its retry without the gateway gets the same answer.
    again = family.payment.as_principal(hospital).Settle(papi.SettleRequest(request_id=key, bill=unnamed)).settlement
    assert again.settlement_id == settled.settlement_id
    # Another institution's bill is out of the hospital's scope, through the gateway as directly.
    elsewhere = family.bill(1_000)
    elsewhere.institution_code = "H32010002"
    for call, request in (
        (gateway.Settle, papi.SettleRequest(request_id=request_id(), bill=elsewhere)),
        (gateway.QuoteSettlement, papi.QuoteSettlementRequest(bill=elsewhere)),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout=20, metadata=for_(hospital))
        assert (refusal_of(raised.value).code, refusal_of(raised.value).reason) == (PERMISSION_DENIED, "OUT_OF_SCOPE")
    assert balances(family)[family.mother.id_number] == (before[family.mother.id_number][0] - 1_000, 0)
    audit_is_exact(family.payment)


def test_a_call_that_names_two_principals_to_act_for_is_refused_and_changes_nothing(family):
    """The first of two gongji-acting-for headers used to decide whom the gateway acted for."""
    gateway, gateway_binding = family.payment.stub_as(GATEWAY), family.binding.stub_as(GATEWAY)
    before = balances(family)
    twice = (*for_(institution(INSTITUTION)), *for_(institution("H32010002")))
    for call, request in (
        (gateway.Settle, papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000))),
        (gateway.GetAccount, papi.GetAccountRequest(id_number=family.mother.id_number)),
        (gateway_binding.GetInsuredPerson, bapi.GetInsuredPersonRequest(id_number=family.mother.id_number)),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout=20, metadata=twice)
        refused = refusal_of(raised.value)
        assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED_CALLER")
    assert balances(family) == before


def test_the_gateway_may_act_for_no_channel_operator_or_service(family, payment_service):
    gateway, gateway_binding = family.payment.stub_as(GATEWAY), family.binding.stub_as(GATEWAY)
    before = balances(family)
    account = papi.GetAccountRequest(id_number=family.mother.id_number)
    person = bapi.GetInsuredPersonRequest(id_number=family.mother.id_number)
    for someone in (WECHAT, NATIONAL, payment_node("local"), BINDING_SERVICE, GATEWAY):
        for call, request in (
            (gateway.Settle, papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000))),
            (gateway.GetAccount, account),
            (gateway_binding.GetInsuredPerson, person),
        ):
            with pytest.raises(grpc.RpcError) as raised:
                call(request, timeout=20, metadata=for_(someone))
            refused = refusal_of(raised.value)
            assert (refused.code, refused.reason) == (PERMISSION_DENIED, "CALLER_NOT_ALLOWED"), someone
            assert refused.metadata["principal"] == GATEWAY.spiffe_id
    # Nor for an institution on the services between nodes.
    prepare = node.PrepareLegsRequest(transaction_id=str(uuid.uuid4()), coordinator_province="32")
    with pytest.raises(grpc.RpcError) as raised:
        payment_service.node_stub("local").stub_as(GATEWAY).PrepareLegs(
            prepare, timeout=20, metadata=for_(institution(INSTITUTION))
        )
    assert refusal_of(raised.value).reason == "CALLER_NOT_ALLOWED"
    assert balances(family) == before


def test_the_gateway_in_its_own_name_may_call_nothing_but_health(family, pki):
    gateway, gateway_binding = family.payment.stub_as(GATEWAY), family.binding.stub_as(GATEWAY)
    for call, request in (
        (gateway.Settle, papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000))),
        (gateway.GetAccount, papi.GetAccountRequest(id_number=family.mother.id_number)),
        (gateway.ReconcileInstitution, papi.ReconcileInstitutionRequest(institution_code=INSTITUTION)),
        (gateway_binding.GetInsuredPerson, bapi.GetInsuredPersonRequest(id_number=family.mother.id_number)),
        (gateway_binding.GetRegionPolicy, bapi.GetRegionPolicyRequest(admdvs="320100")),
    ):
        refused = refusal(call, request)
        assert (refused.code, refused.reason) == (PERMISSION_DENIED, "CALLER_NOT_ALLOWED")
    with pki.channel(family.payment.address, GATEWAY) as channel:
        checked = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=20)
    assert checked.status == health_pb2.HealthCheckResponse.SERVING


def test_a_payment_node_still_forwards_for_any_principal(family):
    """Payment nodes keep forwarding as before the gateway: for institutions, and for others."""
    node_as = family.payment.stub_as(payment_node("local"))
    hospital = institution(INSTITUTION)
    settled = node_as.Settle(
        papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000)), metadata=for_(hospital)
    ).settlement
    assert settled.state == ppb.SETTLEMENT_STATE_CAPTURED
    mine = node_as.GetAccount(papi.GetAccountRequest(id_number=family.mother.id_number), metadata=for_(WECHAT))
    assert mine.account.shared_this_year[0].beneficiary_id_number == family.child.id_number  # as the channel sees it


def test_a_bill_the_gateway_sends_to_another_provinces_node_is_passed_on_to_the_right_one(cross):
    """The gateway is no payment node: its call is forwarded on like the hospital's own would be."""
    west_as_gateway = cross.nodes.west.stub.stub_as(GATEWAY)
    settled = west_as_gateway.Settle(
        papi.SettleRequest(request_id=request_id(), bill=cross.bill(30_000)), metadata=for_(institution(HOSPITAL))
    ).settlement
    assert settled.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert [(leg.amount_fen, leg.payer_admdvs) for leg in settled.legs] == [(30_000, "320100")]
    assert cross.balance(cross.nodes.east.stub, cross.mother).balance_fen == 70_000  # kept by east
    cross.assert_books_close()


# Request ids ---------------------------------------------------------------------------------


def test_two_institutions_using_the_same_request_id_both_settle_independently(family):
    key = request_id()
    answers = {}
    for code in (INSTITUTION, "H32010002"):
        bill = family.bill(2_000)
        bill.institution_code = code
        stub = family.payment.as_principal(institution(code))
        answers[code] = stub.Settle(papi.SettleRequest(request_id=key, bill=bill)).settlement
        again = stub.Settle(papi.SettleRequest(request_id=key, bill=bill)).settlement
        assert again.settlement_id == answers[code].settlement_id  # each one's retry gets its own answer
    assert answers[INSTITUTION].settlement_id != answers["H32010002"].settlement_id
    assert all(s.state == ppb.SETTLEMENT_STATE_CAPTURED for s in answers.values())
    # The second institution's reversal of "its" key reverses its own settlement only.
    reversal = family.payment.as_principal(institution("H32010002")).ReverseRequest(
        papi.ReverseRequestRequest(request_id=request_id(), original_request_id=key)
    )
    assert reversal.settlement.settlement_id == answers["H32010002"].settlement_id
    first = family.payment.as_principal(institution(INSTITUTION)).GetSettlement(
        papi.GetSettlementRequest(settlement_id=answers[INSTITUTION].settlement_id)
    )
    assert first.settlement.state == ppb.SETTLEMENT_STATE_CAPTURED
    audit_is_exact(family.payment)


def test_a_refusal_of_the_caller_stores_nothing_under_its_request_id(family):
    key = request_id()
    hospital = family.payment.as_principal(institution(INSTITUTION))
    elsewhere = family.bill(1_000)
    elsewhere.institution_code = "H99999999"
    assert refusal(hospital.Settle, papi.SettleRequest(request_id=key, bill=elsewhere)).reason == "OUT_OF_SCOPE"
    settled = hospital.Settle(papi.SettleRequest(request_id=key, bill=family.bill(1_000))).settlement
    assert settled.state == ppb.SETTLEMENT_STATE_CAPTURED


def test_another_callers_request_id_reveals_nothing_and_blocks_nothing(family):
    key = request_id()
    hospital = family.payment.as_principal(institution(INSTITUTION))
    hospital.Settle(papi.SettleRequest(request_id=key, bill=family.bill(3_000)))
    # Another hospital's reversal of that id finds nothing of its own and only reserves its own key.
    other = family.payment.as_principal(institution("H32010002"))
    answer = other.ReverseRequest(papi.ReverseRequestRequest(request_id=request_id(), original_request_id=key))
    assert (answer.original_found, answer.original_method) == (False, "")
    # The same hospital reusing its key for another request learns no method name.
    reused = refusal(
        hospital.AuthorizeSettlement, papi.AuthorizeSettlementRequest(request_id=key, bill=family.bill(3_000))
    )
    assert reused.reason == "IDEMPOTENCY_KEY_REUSED"
    assert "Settle" not in reused.message
    audit_is_exact(family.payment)


# What a caller sees ----------------------------------------------------------------------------


def test_an_institution_reads_a_persons_account_with_the_relatives_it_shared_with_masked(family):
    family.settle(1_000)  # the mother pays for the child through mutual aid
    request = papi.GetAccountRequest(id_number=family.mother.id_number)
    whole = family.payment.as_principal(WECHAT).GetAccount(request).account
    assert [share.beneficiary_id_number for share in whole.shared_this_year] == [family.child.id_number]
    hospital = institution(INSTITUTION)
    for seen in (
        family.payment.as_principal(hospital).GetAccount(request).account,
        family.payment.stub_as(GATEWAY).GetAccount(request, metadata=for_(hospital)).account,
    ):
        assert seen.id_number == family.mother.id_number  # the person asked about, whole
        assert seen.available_fen == whole.available_fen
        assert [
            (share.beneficiary_id_number, share.shared_fen, share.binding_id) for share in seen.shared_this_year
        ] == [(mask_id_number(family.child.id_number), 1_000, family.mother_binding.binding_id)]


def test_an_institution_sees_an_insured_person_without_address_and_with_the_phone_masked(family):
    request = bapi.GetInsuredPersonRequest(id_number=family.child.id_number)
    whole = family.binding.as_principal(WECHAT).GetInsuredPerson(request).insured_person
    assert (whole.phone, whole.address) == ("13800000000", "1 Example Road")
    hospital = institution(INSTITUTION)
    for seen in (
        family.binding.as_principal(hospital).GetInsuredPerson(request).insured_person,
        family.binding.stub_as(GATEWAY).GetInsuredPerson(request, metadata=for_(hospital)).insured_person,
    ):
        assert (seen.phone, seen.address) == ("138****0000", "")
        assert (seen.id_number, seen.name, seen.admdvs, seen.insurance_type, seen.status) == (
            whole.id_number, whole.name, whole.admdvs, whole.insurance_type, whole.status,
        )  # fmt: skip
        assert seen.has_personal_account == whole.has_personal_account


def test_a_hospital_sees_relatives_masked_and_an_operator_sees_them_whole(family):
    settled = family.settle(150_000)
    for leg in settled.legs:
        assert leg.payer_id_number == mask_id_number(leg.payer_id_number)
        assert leg.payer_balance_after_fen == 0
    whole = family.operator_view(settled)
    assert [leg.payer_id_number for leg in whole.legs] == [family.mother.id_number, family.father.id_number]
    assert [leg.payer_balance_after_fen for leg in whole.legs] == [0, 50_000]
    mine = family.payment.as_principal(WECHAT).GetAccount(
        papi.GetAccountRequest(id_number=family.father.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT)
    )
    assert mine.account.id_number == family.father.id_number


def test_an_error_a_hospital_receives_names_no_one_in_full(family):
    bill = family.bill(1_000, holder=family.father)  # the father's card for the child's bill
    with pytest.raises(grpc.RpcError) as raised:
        family.payment.as_principal(institution(INSTITUTION)).Settle(
            papi.SettleRequest(request_id=request_id(), bill=bill)
        )
    status = rpc_status.from_call(raised.value)
    assert status is not None and refusal_of(raised.value).reason == "IMPERSONATION"
    texts = [status.message]
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            texts += list(info.metadata.values())
    assert mask_id_number(family.father.id_number) in texts
    assert not any(family.father.id_number in text for text in texts)


def test_the_access_log_names_the_principal_and_request_and_no_personal_data(family, caplog):
    caplog.set_level(logging.INFO)
    key = request_id()
    family.payment.Settle(papi.SettleRequest(request_id=key, bill=family.bill(1_000)))
    refusal(
        family.payment.Settle,
        papi.SettleRequest(request_id=request_id(), bill=family.bill(1_000, holder=family.father)),
    )
    lines = [record.getMessage() for record in caplog.records]
    settle = [line for line in lines if "PaymentService/Settle OK" in line]
    assert any(f"principal=spiffe://gongji/institution/{INSTITUTION}" in line and f"request_id={key}" in line
               for line in settle), settle  # fmt: skip
    assert any("PaymentService/Settle IMPERSONATION principal=" in line for line in lines), lines
    for line in lines:
        assert not re.search(ID_NUMBER, line), line
        assert family.child.name not in line and family.mother.name not in line, line


def test_the_access_log_masks_an_id_number_glued_into_a_request_id(family, caplog):
    """A hospital that builds its keys from the patient's ID number and a counter still keeps the
    ID number out of the log: its birth date and sequence are masked, the rest of the key stays."""
    caplog.set_level(logging.INFO)
    number = family.child.id_number
    key = f"HIS{number}-0001"
    family.payment.Settle(papi.SettleRequest(request_id=key, bill=family.bill(1_000)))
    lines = [record.getMessage() for record in caplog.records if "PaymentService/Settle OK" in record.getMessage()]
    assert any(f"request_id=HIS{mask_id_number(number)}-0001" in line for line in lines), lines
    assert not any(number in line for record in caplog.records for line in (record.getMessage(), str(record.__dict__)))


# Payment nodes check their peers -----------------------------------------------------------


@pytest.fixture
def cross(two_nodes) -> CrossFamily:
    return CrossFamily(two_nodes, mother_fen=100_000)


def prepare(cross: CrossFamily, binding_id: str, payer: str, amount: int) -> node.PrepareLegsRequest:
    """West, coordinating a bill at a Lanzhou hospital, asks east to hold a leg."""
    return node.PrepareLegsRequest(
        transaction_id=str(uuid.uuid4()), coordinator_province="62", beneficiary_id_number=cross.child.id_number,
        institution_code="H620100-001", institution_admdvs="620100", use_category=common.USE_CATEGORY_OUTPATIENT,
        legs=[node.NodeLeg(leg_no=1, payer_id_number=payer, binding_id=binding_id, amount_fen=amount)],
        expire_time=datetime_to_timestamp(cross.clock.now() + timedelta(minutes=10)),
    )  # fmt: skip


def held_by_mother(cross: CrossFamily) -> tuple[int, int]:
    account = cross.balance(cross.nodes.east.stub, cross.mother)
    return account.balance_fen, account.held_fen


def test_the_node_service_is_closed_to_everyone_but_the_routing_files_nodes(cross):
    east = cross.nodes.east
    request = prepare(cross, cross.mother_binding.binding_id, cross.mother.id_number, 10_000)
    for caller, reason in (
        (institution(HOSPITAL), "CALLER_NOT_ALLOWED"),
        (NATIONAL, "CALLER_NOT_ALLOWED"),
        (payment_node("north"), "CALLER_NOT_ALLOWED"),
    ):
        refused = refusal(east.node_stub("west").as_principal(caller).PrepareLegs, request)
        assert (refused.code, refused.reason) == (PERMISSION_DENIED, reason)
    # West may act for its own provinces only.
    request.coordinator_province = "32"
    refused = refusal(east.node_stub("west").PrepareLegs, request)
    assert (refused.code, refused.reason) == (PERMISSION_DENIED, "OUT_OF_SCOPE")
    assert held_by_mother(cross) == (100_000, 0)


def test_a_node_holds_nothing_for_a_binding_the_binding_service_does_not_know(cross):
    west_calls = cross.nodes.east.node_stub("west")
    for binding_id, payer in (
        (str(uuid.uuid4()), cross.mother.id_number),  # no such binding
        (cross.father_binding.binding_id, cross.mother.id_number),  # a binding of someone else's
    ):
        refused = refusal(west_calls.PrepareLegs, prepare(cross, binding_id, payer, 10_000))
        assert (refused.code, refused.reason) == (PERMISSION_DENIED, "PEER_CLAIM_REJECTED")
    assert held_by_mother(cross) == (100_000, 0)
    cross.assert_books_close()


def test_a_node_checks_a_peers_institution_code_and_beneficiary_as_the_public_api_checks_a_bills(cross):
    west_calls = cross.nodes.east.node_stub("west")
    binding_id = cross.mother_binding.binding_id
    for code in ("H620100\x00-001", "H" * 33):
        request = prepare(cross, binding_id, cross.mother.id_number, 10_000)
        request.institution_code = code
        refused = refusal(west_calls.PrepareLegs, request)
        assert (refused.code, refused.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ("institution_code",)), code
    asked = node.GetPayerCapacityRequest(beneficiary_id_number="not an ID number")
    refused = refusal(west_calls.GetPayerCapacity, asked)
    assert (refused.code, refused.reason, refused.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ID_NUMBER",
        ("beneficiary_id_number",),
    )
    assert held_by_mother(cross) == (100_000, 0)
    cross.assert_books_close()


def test_a_node_acting_for_an_operator_credits_and_suspends_nobody_on_another_node(cross):
    """Forwarding carries bills and reads; a node's certificate is no operator's elsewhere."""
    east_as_west = cross.nodes.east.stub.stub_as(payment_node("west"))
    credit = papi.CreditAccountRequest(
        request_id=request_id(), id_number=cross.mother.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
        amount_fen=5_000_000, kind=papi.CREDIT_KIND_ADJUSTMENT, admdvs="320100",
    )  # fmt: skip
    suspend = papi.SuspendSettlementRequest(
        request_id=request_id(), holder_id_number=cross.mother.id_number, reason="a peer says so"
    )
    for call, request in ((east_as_west.CreditAccount, credit), (east_as_west.SuspendSettlement, suspend)):
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout=20, metadata=for_(NATIONAL))
        refused = refusal_of(raised.value)
        assert (refused.code, refused.reason) == (PERMISSION_DENIED, "CALLER_NOT_ALLOWED")
    assert held_by_mother(cross) == (100_000, 0)
    settled = cross.nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=cross.bill(1_000)))
    assert settled.settlement.state == ppb.SETTLEMENT_STATE_CAPTURED  # nobody was suspended


def test_a_node_tells_a_peer_nothing_of_a_grantor_under_a_binding_the_binding_service_does_not_confirm(cross):
    west_calls = cross.nodes.east.node_stub("west")
    mother = cross.mother.id_number

    def asked(binding_id: str, beneficiary: str) -> node.PayerCapacity:
        grant = bapi.PayerGrant(
            binding_id=binding_id,
            grantor_id_number=mother,
            share_all=True,
            grantor_admdvs="320100",
            priority=1,
            relationship=common.RELATIONSHIP_PARENT,
        )
        request = node.GetPayerCapacityRequest(beneficiary_id_number=beneficiary, grants=[grant])
        return west_calls.GetPayerCapacity(request, timeout=20).capacities[0]

    for binding_id, beneficiary in (
        (str(uuid.uuid4()), cross.father.id_number),  # no such binding
        (cross.mother_binding.binding_id, cross.father.id_number),  # hers, but to someone else
    ):
        told = asked(binding_id, beneficiary)
        assert (told.has_account, told.available_fen, told.limit_fen, told.admdvs) == (False, 0, 0, "")
    told = asked(cross.mother_binding.binding_id, cross.child.id_number)
    assert (told.has_account, told.available_fen) == (True, 100_000)


def test_a_node_tells_a_peer_a_grantors_balance_only_up_to_what_the_bill_could_take(cross):
    """A coordinator needs to know whether a remote grantor can cover the bill, and how much of it:
    not the grantor's whole balance (最小必要). The mother holds 100,000 fen; a bill's 30,000 is
    all another province's node learns of it."""
    west_calls = cross.nodes.east.node_stub("west")
    grant = bapi.PayerGrant(
        binding_id=cross.mother_binding.binding_id, grantor_id_number=cross.mother.id_number, share_all=True,
        grantor_admdvs="320100", priority=1, relationship=common.RELATIONSHIP_PARENT,
    )  # fmt: skip
    request = node.GetPayerCapacityRequest(
        beneficiary_id_number=cross.child.id_number, grants=[grant], ceiling_fen=30_000
    )
    told = west_calls.GetPayerCapacity(request, timeout=20).capacities[0]
    assert (told.has_account, told.limit_fen, told.available_fen) == (True, 30_000, 30_000)
    request.ceiling_fen = -1
    assert refusal(west_calls.GetPayerCapacity, request).reason == "INVALID_AMOUNT"


def test_a_node_holds_no_binding_twice_in_one_transaction_so_its_cap_holds(cross):
    """Each leg of a prepare is judged with the earlier legs' holds counted; the same binding
    twice is no request a coordinator makes, and is refused whole."""
    cross.binding.as_principal(WECHAT).UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(
            request_id=request_id(), binding_id=cross.mother_binding.binding_id, yearly_cap_fen=10_000
        )
    )
    west_calls = cross.nodes.east.node_stub("west")
    request = prepare(cross, cross.mother_binding.binding_id, cross.mother.id_number, 10_000)
    request.legs.extend(
        [node.NodeLeg(leg_no=n, payer_id_number=cross.mother.id_number, binding_id=cross.mother_binding.binding_id,
                      amount_fen=10_000) for n in (2, 3, 4)]
    )  # fmt: skip
    refused = refusal(west_calls.PrepareLegs, request)
    assert (refused.code, refused.reason) == (PERMISSION_DENIED, "PEER_CLAIM_REJECTED")
    assert held_by_mother(cross) == (100_000, 0)
    cross.assert_books_close()


def test_a_prepare_under_a_known_transaction_id_from_another_coordinator_or_for_another_beneficiary_is_refused(
    cross,
):
    """West prepared a hold on the mother's account. A prepare under that transaction id from east
    (acting for one of its own provinces), or from west for another beneficiary, is no retry of
    it: it is refused and told neither the payer, the binding nor the balance."""
    first = prepare(cross, cross.mother_binding.binding_id, cross.mother.id_number, 10_000)
    cross.nodes.east.node_stub("west").PrepareLegs(first)
    from_east = node.PrepareLegsRequest()
    from_east.CopyFrom(first)
    from_east.coordinator_province, from_east.institution_admdvs = "32", "320100"
    del from_east.legs[:]
    another_beneficiary = node.PrepareLegsRequest()
    another_beneficiary.CopyFrom(first)
    another_beneficiary.beneficiary_id_number = cross.father.id_number
    for caller, request in (("east", from_east), ("west", another_beneficiary)):
        refused = refusal(cross.nodes.east.node_stub(caller).PrepareLegs, request)
        assert (refused.code, refused.reason) == (PERMISSION_DENIED, "PEER_CLAIM_REJECTED"), caller
        assert cross.mother.id_number not in refused.message
        assert cross.mother_binding.binding_id not in refused.message
    assert held_by_mother(cross) == (100_000, 10_000)
    retried = cross.nodes.east.node_stub("west").PrepareLegs(first)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in retried.legs] == [(cross.mother.id_number, 10_000)]
    assert held_by_mother(cross) == (100_000, 10_000)


def test_a_node_captures_neither_less_than_nothing_nor_more_than_it_holds(cross):
    west_calls = cross.nodes.east.node_stub("west")
    request = prepare(cross, cross.mother_binding.binding_id, cross.mother.id_number, 10_000)
    west_calls.PrepareLegs(request)
    assert held_by_mother(cross) == (100_000, 10_000)
    for amount, expected in (
        (-5_000_000, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")),
        (10_001, (grpc.StatusCode.FAILED_PRECONDITION, "AMOUNT_EXCEEDS_HOLD")),
        (10**13, (grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_LIMIT_EXCEEDED")),
    ):
        commit = node.CommitLegsRequest(
            transaction_id=request.transaction_id, captures=[node.NodeLeg(leg_no=1, amount_fen=amount)]
        )
        refused = refusal(west_calls.CommitLegs, commit)
        assert (refused.code, refused.reason) == expected
    unknown_leg = node.CommitLegsRequest(
        transaction_id=request.transaction_id, captures=[node.NodeLeg(leg_no=9, amount_fen=1)]
    )
    assert refusal(west_calls.CommitLegs, unknown_leg).reason == "PEER_CLAIM_REJECTED"
    assert held_by_mother(cross) == (100_000, 10_000)
    west_calls.AbortLegs(node.AbortLegsRequest(transaction_id=request.transaction_id, coordinator_province="62"))
    assert held_by_mother(cross) == (100_000, 0)
    cross.assert_books_close()


def test_a_node_holds_and_captures_no_more_of_one_bill_across_its_grantors_than_the_per_use_limit_lets(cross):
    """Two grantors on east, each within the per-use limit of 100 yuan, may not pay 200 yuan of one
    bill together: relatives pay at most the limit of a bill between them. A coordinator asking
    for more is refused, at the prepare when it asks each leg's exact part, at the commit when it
    held up to ceilings, and nothing moves; a capture within the limit goes through."""
    put_policy(
        cross.binding, cross.clock, "320000", effective_from=cross.clock.now() - timedelta(hours=1),
        geographic_scope=bpb.GEOGRAPHIC_SCOPE_CROSS_PROVINCE, cross_province_provinces=PILOTS,
        allowed_uses=[common.USE_CATEGORY_OUTPATIENT], per_use_limit_fen=10_000,
    )  # fmt: skip
    aunt = cross.register("李阿姨", NANJING)
    aunt_binding = cross.binding.CreateBinding(binding_request(aunt, cross.child)).binding
    cross.credit(cross.nodes.east.stub, aunt, NANJING, 100_000)
    west_calls = cross.nodes.east.node_stub("west")

    def both(amount: int, up_to: bool) -> node.PrepareLegsRequest:
        request = prepare(cross, cross.mother_binding.binding_id, cross.mother.id_number, amount)
        request.legs.append(
            node.NodeLeg(leg_no=2, payer_id_number=aunt.id_number, binding_id=aunt_binding.binding_id,
                         amount_fen=amount)
        )  # fmt: skip
        request.hold_up_to_amount = up_to
        return request

    refused = refusal(west_calls.PrepareLegs, both(10_000, up_to=False))
    assert (refused.code, refused.reason) == (PERMISSION_DENIED, "PEER_CLAIM_REJECTED")
    assert held_by_mother(cross) == (100_000, 0)

    request = both(10_000, up_to=True)  # ceilings: each may turn out to pay the bill's whole share
    assert [leg.amount_fen for leg in west_calls.PrepareLegs(request).legs] == [10_000, 10_000]

    def commit(mother: int, aunt: int) -> node.CommitLegsRequest:
        return node.CommitLegsRequest(
            transaction_id=request.transaction_id,
            captures=[node.NodeLeg(leg_no=1, amount_fen=mother), node.NodeLeg(leg_no=2, amount_fen=aunt)],
        )

    refused = refusal(west_calls.CommitLegs, commit(10_000, 10_000))
    assert (refused.code, refused.reason) == (PERMISSION_DENIED, "PEER_CLAIM_REJECTED")
    assert held_by_mother(cross) == (100_000, 10_000)
    west_calls.CommitLegs(commit(6_000, 4_000))
    assert held_by_mother(cross) == (94_000, 0)
    assert cross.balance(cross.nodes.east.stub, aunt).balance_fen == 96_000
    # West never coordinated this bill, so east's books alone balance; clearing stays one-sided.
    assert cross.nodes.east.stub.CheckLedger(papi.CheckLedgerRequest()).balanced


def test_only_the_coordinating_node_commits_aborts_or_refunds_a_transaction_whether_remembered_or_read(
    cross, monkeypatch
):
    """West coordinates; east, acting on its own node service as a node of the routing file,
    is refused every second-phase step, first with the coordinator remembered from the prepare,
    then with it read from the database (a process that did not prepare it)."""
    east = cross.nodes.east
    request = prepare(cross, cross.mother_binding.binding_id, cross.mother.id_number, 10_000)
    east.node_stub("west").PrepareLegs(request)
    by_east = east.node_stub("east")
    steps = (
        (by_east.CommitLegs, node.CommitLegsRequest(
            transaction_id=request.transaction_id, captures=[node.NodeLeg(leg_no=1, amount_fen=10_000)])),
        (by_east.AbortLegs, node.AbortLegsRequest(transaction_id=request.transaction_id, coordinator_province="32")),
        (by_east.RefundLegs, node.RefundLegsRequest(transaction_id=request.transaction_id)),
    )  # fmt: skip
    for forgotten in (False, True):
        if forgotten:  # as in a process of the node that did not prepare it
            monkeypatch.setattr(CoordinatorMemory, "province_of", lambda self, transaction_id: None)
        for call, step in steps:
            refused = refusal(call, step)
            assert (refused.code, refused.reason) == (PERMISSION_DENIED, "OUT_OF_SCOPE"), call
    assert held_by_mother(cross) == (100_000, 10_000)
    east.node_stub("west").AbortLegs(
        node.AbortLegsRequest(transaction_id=request.transaction_id, coordinator_province="62")
    )
    assert held_by_mother(cross) == (100_000, 0)
    cross.assert_books_close()


def test_a_node_asking_the_outcome_of_a_transaction_for_a_province_without_legs_in_it_learns_no_beneficiary(
    cross: CrossFamily,
) -> None:
    """West sent the father's transfer to the child's wallet in Jiangsu (32); east, asking for
    Anhui (34), one of its own provinces with no leg in the transfer, is told no ID number."""
    at_noon(cross)
    cross.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=cross.child.id_number, admdvs="320100")
    )
    sent = transfer(cross, 5_000).transfer
    by_east = cross.nodes.west.node_stub("east")

    def outcome_for(province: str) -> node.GetTransactionOutcomeResponse:
        request = node.GetTransactionOutcomeRequest(transaction_id=sent.transfer_id, participant_province=province)
        return by_east.GetTransactionOutcome(request, timeout=20)

    elsewhere = outcome_for("34")
    assert (list(elsewhere.captures), elsewhere.beneficiary_id_number) == ([], "")
    wallet_province = outcome_for("32")
    assert wallet_province.beneficiary_id_number == cross.child.id_number
    assert [leg.payer_id_number for leg in wallet_province.captures] == [cross.father.id_number]


def test_a_node_whose_transfer_credits_a_wallet_in_another_province_is_not_told_the_wallets_balance(
    cross: CrossFamily,
) -> None:
    """The father's node needs to know its transfer arrived, not what the child's wallet holds."""
    at_noon(cross)
    cross.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=cross.child.id_number, admdvs="320100")
    )
    transfer(cross, 5_000)
    sent = transfer(cross, 3_000).transfer
    credit = node.CreditWalletRequest(
        transfer_id=sent.transfer_id, beneficiary_id_number=cross.child.id_number, amount_fen=sent.amount_fen,
        source_province="62", grantor_id_number=cross.father.id_number, binding_id=cross.father_binding.binding_id,
    )  # fmt: skip
    answer = cross.nodes.east.node_stub("west").CreditWallet(credit, timeout=20)
    assert (answer.applied, answer.wallet_balance_fen) == (False, 0)
    wallet = cross.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=cross.child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
    ).account
    assert wallet.balance_fen == 8_000


def test_a_credit_or_decline_under_a_known_transfer_id_from_another_node_or_for_another_wallet_or_amount_is_refused(
    cross,
):
    """The father's transfer reached the child's wallet. Under its id, a credit that east sends for
    one of its own provinces, or that west sends for another amount or wallet, is no retry of it:
    refused, with the wallet as it was. A decline east sends for one of its own provinces is about
    no transfer of west's: east is told nothing was credited for it. West's true retry is answered
    as before."""
    at_noon(cross)
    cross.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=cross.child.id_number, admdvs="320100")
    )
    sent = transfer(cross, 3_000).transfer
    credit = node.CreditWalletRequest(
        transfer_id=sent.transfer_id, beneficiary_id_number=cross.child.id_number, amount_fen=sent.amount_fen,
        source_province="62", grantor_id_number=cross.father.id_number, binding_id=cross.father_binding.binding_id,
    )  # fmt: skip
    decline = node.DeclineWalletCreditRequest(
        transfer_id=sent.transfer_id,
        beneficiary_id_number=cross.child.id_number,
        amount_fen=sent.amount_fen,
        source_province="32",
    )
    from_east = node.CreditWalletRequest()
    from_east.CopyFrom(credit)
    from_east.source_province = "32"
    more = node.CreditWalletRequest()
    more.CopyFrom(credit)
    more.amount_fen = 9_000
    to_mother = node.CreditWalletRequest()
    to_mother.CopyFrom(credit)
    to_mother.beneficiary_id_number = cross.mother.id_number
    for caller, request in (("east", from_east), ("west", more), ("west", to_mother)):
        refused = refusal(cross.nodes.east.node_stub(caller).CreditWallet, request)
        assert (refused.code, refused.reason) == (PERMISSION_DENIED, "PEER_CLAIM_REJECTED"), caller
    assert cross.nodes.east.node_stub("east").DeclineWalletCredit(decline, timeout=20).credited is False
    assert cross.nodes.east.node_stub("west").CreditWallet(credit, timeout=20).applied is False
    wallet = cross.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=cross.child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
    ).account
    assert wallet.balance_fen == 3_000
    cross.assert_books_close()


@pytest.mark.sweeping(0.05)
def test_a_transfer_another_node_declined_first_still_goes_back_to_its_sender_the_next_morning(cross):
    """The child's wallet is not activated, so the father's transfer waits. East, acting for one
    of its own provinces, declines it first (for another amount). At 06:00 west learns all the
    same that it was never credited, and gives the father his money back."""
    at_noon(cross)
    pending = transfer(cross, 30_000).transfer
    assert pending.state == ppb.TRANSFER_STATE_PENDING
    forged = node.DeclineWalletCreditRequest(
        transfer_id=pending.transfer_id, beneficiary_id_number=cross.child.id_number, amount_fen=1,
        source_province="32",
    )  # fmt: skip
    assert cross.nodes.east.node_stub("east").DeclineWalletCredit(forged, timeout=20).credited is False
    next_morning = cross.clock.now().astimezone(CHINA_STANDARD_TIME).replace(hour=6, minute=0) + timedelta(days=1)
    cross.clock.set(next_morning)
    wait_for_transfer(cross, pending.transfer_id, ppb.TRANSFER_STATE_REFUNDED)
    assert cross.balance(cross.nodes.west.stub, cross.father).balance_fen == 100_000
    audit_is_exact(cross.nodes.east.stub, cross.nodes.west.stub)


@pytest.mark.sweeping(0.05)
def test_a_decline_another_node_sends_first_under_a_pending_transfers_id_does_not_keep_the_credit_out(cross):
    """The child's wallet is not activated yet, so the father's transfer from Lanzhou waits.
    East, acting for one of its own provinces, declines it under its id before the credit comes:
    that is no decline of west's transfer. Once the wallet is activated, west's credit arrives."""
    at_noon(cross)
    pending = transfer(cross, 30_000).transfer
    assert pending.state == ppb.TRANSFER_STATE_PENDING
    forged = node.DeclineWalletCreditRequest(
        transfer_id=pending.transfer_id, beneficiary_id_number=cross.child.id_number,
        amount_fen=pending.amount_fen, source_province="32",
    )  # fmt: skip
    assert cross.nodes.east.node_stub("east").DeclineWalletCredit(forged, timeout=20).credited is False
    cross.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=cross.child.id_number, admdvs="320100")
    )
    wait_for_transfer(cross, pending.transfer_id, ppb.TRANSFER_STATE_COMPLETED)
    wallet = cross.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=cross.child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
    ).account
    assert wallet.balance_fen == 30_000
    audit_is_exact(cross.nodes.east.stub, cross.nodes.west.stub)


def test_a_wallet_is_credited_only_for_a_transfer_its_sender_debited(cross):
    cross.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=cross.child.id_number, admdvs="320100")
    )
    minted = node.CreditWalletRequest(
        transfer_id=str(uuid.uuid4()), beneficiary_id_number=cross.child.id_number, amount_fen=100_000_000,
        source_province="62", grantor_id_number=cross.father.id_number, binding_id=cross.father_binding.binding_id,
    )  # fmt: skip
    refused = refusal(cross.nodes.east.node_stub("west").CreditWallet, minted)
    assert (refused.code, refused.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_LIMIT_EXCEEDED")
    minted.amount_fen = 1_000_000
    refused = refusal(cross.nodes.east.node_stub("west").CreditWallet, minted)
    assert (refused.code, refused.reason) == (PERMISSION_DENIED, "PEER_CLAIM_REJECTED")
    wallet = cross.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=cross.child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
    ).account
    assert wallet.balance_fen == 0
    cross.assert_books_close()


# The audit sees what no request could do -------------------------------------------------------


def test_the_ledger_audit_reports_money_no_settlement_or_transfer_explains(family, payment_service):
    family.settle(10_000)
    audit_is_exact(family.payment)
    engine = create_engine(normalise_url(payment_service.database_url))
    mother = f"PERSONAL_ACCOUNT:{family.mother.id_number}"
    with engine.begin() as connection:
        now = family.clock.now()
        connection.execute(
            text(
                "INSERT INTO journal_entries (entry_id, time, purpose, settlement_id, transfer_id, institution_code,"
                " request_id, memo) VALUES ('forged-1', :now, 'SETTLEMENT', '', '', '', '', 'made up')"
            ),
            {"now": now},
        )
        for posting_id, account, amount in (
            (900001, "CLEARING:32:62", 5_000_000),
            (900002, "EXTERNAL_CONTRIBUTIONS:*", -5_000_000),
        ):
            connection.execute(
                text(
                    "INSERT INTO postings (posting_id, entry_id, account_id, amount_fen, balance_after_fen,"
                    " counterpart_id_number, binding_id, time) VALUES (:id, 'forged-1', :account, :amount, 0, '', '',"
                    " :now)"
                ),
                {"id": posting_id, "account": account, "amount": amount, "now": now},
            )
        connection.execute(text("UPDATE accounts SET balance_fen = -5 WHERE account_id = :id"), {"id": mother})
        connection.execute(
            text("UPDATE accounts SET balance_fen = :huge WHERE account_id = :id"),
            {"huge": MAX_BALANCE_FEN + 1, "id": f"PERSONAL_ACCOUNT:{family.father.id_number}"},
        )
    engine.dispose()
    audit = family.payment.as_principal(NATIONAL).CheckLedger(papi.CheckLedgerRequest())
    problems = "\n".join(audit.problems)
    assert not audit.balanced
    assert "forged-1 on CLEARING:32:62 has no settlement" in problems
    assert f"account {mother} is below zero" in problems
    assert f"account PERSONAL_ACCOUNT:{family.father.id_number} is beyond {MAX_BALANCE_FEN} fen" in problems
