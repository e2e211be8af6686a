"""Each national transaction through the gateway: inpatient, pharmacy, person information,
the acct_pay rule, cash-only bills."""

from __future__ import annotations

import urllib.request
from dataclasses import replace

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from services.gateway.service_layer.account_pay import AccountPayRule, AccountPayRules
from tests.gateway_helpers import ADMDVS, Gateway, gateway, running_gateway, settle_data
from tests.helpers import binding_request, make_id_number, person, request_id
from tests.payment_helpers import PaymentFamily

__all__ = ["gateway"]  # the fixture


def test_person_information_shows_the_registry_and_both_balances(gateway):
    family = gateway.family
    family.credit(family.mother, 5_000, kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT)
    answer = gateway.his.call("1101", {"mdtrt_cert_type": "02", "mdtrt_cert_no": family.mother.id_number})
    assert answer["infcode"] == "0", answer
    base, insu = answer["output"]["baseinfo"], answer["output"]["insuinfo"][0]
    assert (base["psn_no"], base["psn_name"], base["brdy"]) == (family.mother.id_number, "李妈妈", "1980-01-01")
    assert (insu["balc"], insu["insutype"], insu["psn_insu_stas"]) == (1050.0, "310", "1")
    assert answer["output"]["wltinfo"]["balc"] == 0


def test_person_information_of_someone_unknown_is_refused_with_gongjis_reason(gateway):
    unknown = make_id_number("110101")
    answer = gateway.his.call("1101", {"mdtrt_cert_type": "02", "mdtrt_cert_no": unknown})
    assert answer["infcode"] == "-1"
    assert answer["err_msg"].startswith("[PERSON_NOT_FOUND]"), answer


def test_inpatient_pre_settlement_mid_stay_and_discharge_settlements_and_undo(gateway):
    his, family = gateway.his, gateway.family
    data = settle_data(family, 5000.00, 400.00, med_type="21", mdtrt_id="ZY0001")
    quote = his.call("2303", data)
    assert quote["infcode"] == "0" and quote["output"]["setlinfo"]["acct_mulaid_pay"] == 400.0, quote
    assert sum(gateway.balances().values()) == 200_000
    mid = his.call("2304", {**data, "mid_setl_flag": "1"})
    assert mid["infcode"] == "0", mid
    assert mid["output"]["setlinfo"]["mid_setl_flag"] == "1"
    discharge = his.call("2304", {**data, "psn_part_amt": 600.00, "medfee_sumamt": 3000.00})
    assert discharge["infcode"] == "0", discharge
    assert sum(gateway.balances().values()) == 200_000 - 100_000
    setl = discharge["output"]["setlinfo"]
    undone = his.call("2305", {"setl_id": setl["setl_id"], "mdtrt_id": "ZY0001", "psn_no": family.child.id_number})
    assert undone["infcode"] == "0", undone
    assert sum(gateway.balances().values()) == 200_000 - 40_000
    wrong_kind = his.call("2208", {"setl_id": mid["output"]["setlinfo"]["setl_id"], "psn_no": family.child.id_number})
    assert wrong_kind["err_msg"].startswith("[SETTLEMENT_NOT_FOUND]"), wrong_kind


def test_pharmacy_pre_settlement_settlement_and_undo(gateway):
    his, family = gateway.his, gateway.family
    data = {**settle_data(family, 88.80, 88.80), "med_type": "41"}
    assert his.call("2101", data)["output"]["setlinfo"]["acct_mulaid_pay"] == 88.8
    settled = his.call("2102", data)
    assert settled["infcode"] == "0", settled
    assert sum(gateway.balances().values()) == 200_000 - 8_880
    setl_id = settled["output"]["setlinfo"]["setl_id"]
    someone_else = his.call("2103", {"setl_id": setl_id, "psn_no": family.mother.id_number})
    assert someone_else["err_msg"].startswith("[SETTLEMENT_MISMATCH]"), someone_else
    undone = his.call("2103", {"setl_id": setl_id, "psn_no": family.child.id_number})
    assert undone["infcode"] == "0", undone
    assert sum(gateway.balances().values()) == 200_000


def test_acct_pay_includes_mutual_aid_by_default_so_cash_is_the_share_less_acct_pay(gateway):
    family = gateway.family
    family.credit(family.mother, 10_000)
    answer = gateway.his.call("2207", settle_data(family, 5000.00, 2100.00))
    setl = answer["output"]["setlinfo"]
    assert setl["acct_mulaid_pay"] == 2000.0 + 100.0  # mother 1,100 yuan and father 1,000 yuan
    assert setl["acct_pay"] == setl["acct_mulaid_pay"]
    assert setl["psn_cash_pay"] == setl["psn_part_amt"] - setl["acct_pay"] == 0


def test_a_region_may_report_acct_pay_as_the_own_account_only(databases, payment_service):
    family = PaymentFamily(payment_service)
    rules = AccountPayRules(regions={ADMDVS: AccountPayRule.OWN_ACCOUNT_ONLY})
    with running_gateway(payment_service, databases.url("gateway"), account_pay=rules) as (server, settings):
        gateway = Gateway(server, payment_service.binding.pki, payment_service.binding.clock, family, settings)
        setl = gateway.his.call("2207", settle_data(family, 300.00, 120.00))["output"]["setlinfo"]
    assert (setl["acct_pay"], setl["acct_mulaid_pay"], setl["psn_cash_pay"]) == (0, 120.0, 0)
    assert AccountPayRules(regions={"320000": AccountPayRule.OWN_ACCOUNT_ONLY}).rule_for("320100") is (
        AccountPayRule.OWN_ACCOUNT_ONLY
    )
    assert replace(rules, regions={}).rule_for(ADMDVS) is AccountPayRule.INCLUDES_MUTUAL_AID


def test_a_bill_the_accounts_may_not_pay_is_all_cash_and_moves_nothing(gateway):
    his, family = gateway.his, gateway.family
    answer = his.call("2207", settle_data(family, 100.00, 40.00, acct_used_flag="0"))
    assert answer["infcode"] == "0", answer
    setl = answer["output"]["setlinfo"]
    assert (setl["acct_pay"], setl["acct_mulaid_pay"], setl["psn_cash_pay"]) == (0, 0, 40.0)
    assert gateway.balances() == {"mother": 100_000, "father": 100_000}
    undone = his.call("2208", {"setl_id": setl["setl_id"], "psn_no": family.child.id_number})
    assert undone["infcode"] == "0" and undone["output"]["setlinfo"]["psn_cash_pay"] == -40.0, undone


def test_the_gateway_counts_requests_and_relayed_settlements_for_prometheus(databases, payment_service):
    family = PaymentFamily(payment_service)
    url = databases.url("gateway")
    with running_gateway(payment_service, url, metrics_address="127.0.0.1:0") as (server, settings):
        gateway = Gateway(server, payment_service.binding.pki, payment_service.binding.clock, family, settings)
        assert gateway.his.call("2207", settle_data(family, 100.00, 60.00))["infcode"] == "0"
        assert gateway.his.call("2207", settle_data(family, 100.005, 60.00))["infcode"] == "-1"
        port = server.running.metrics.port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            scraped = answer.read().decode()
    assert 'gongji_gateway_requests_total{infno="2207",outcome="0",reason=""} 1.0' in scraped
    assert 'gongji_gateway_requests_total{infno="2207",outcome="-1",reason="INVALID_AMOUNT"} 1.0' in scraped
    assert 'gongji_gateway_relayed_settlements{infno="2207",state="SETTLED"} 1.0' in scraped
    assert 'grpc_client_handled_total{grpc_code="OK",grpc_method="Settle"' in scraped
    assert family.child.id_number not in scraped


def test_transaction_codes_the_gateway_does_not_serve_share_one_metrics_label(databases, payment_service):
    family = PaymentFamily(payment_service)
    url = databases.url("gateway")
    with running_gateway(payment_service, url, metrics_address="127.0.0.1:0") as (server, settings):
        gateway = Gateway(server, payment_service.binding.pki, payment_service.binding.clock, family, settings)
        for infno in ("1234", "8888", "0000"):
            answer = gateway.his.call(infno, {})
            assert answer["err_msg"].startswith("[UNKNOWN_TRANSACTION]"), answer
        port = server.running.metrics.port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            scraped = answer.read().decode()
    assert 'gongji_gateway_requests_total{infno="",outcome="-1",reason="UNKNOWN_TRANSACTION"} 3.0' in scraped
    assert not any(f'infno="{infno}"' in scraped for infno in ("1234", "8888", "0000"))


def a_child_whose_id_number_ends_in_x(family: PaymentFamily) -> str:
    """A resident child bound to the mother, whose ID number's check character is X."""
    id_number = next(n for n in (make_id_number("320102", "20100101", s) for s in range(100)) if n.endswith("X"))
    child = person(id_number, "王小溪", admdvs=ADMDVS, insurance_type=common.INSURANCE_TYPE_RESIDENT,
                   has_personal_account=False)  # fmt: skip
    family.binding.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=child))
    family.binding.CreateBinding(binding_request(family.mother, child))
    return id_number


def test_a_psn_no_ending_in_a_small_x_is_the_same_person_as_with_a_capital_x_in_every_transaction(gateway):
    """GB 11643's check character X is one character whichever case a HIS types it in: 1101 answers
    the capital, so an undo, a reversal or a stay's next message naming the person so must find
    the settlement or stay a small x began."""
    his, family = gateway.his, gateway.family
    capital = a_child_whose_id_number_ends_in_x(family)
    small = capital[:-1] + "x"
    settled = his.call("2207", settle_data(family, 100.00, 10.00, psn_no=small, mdtrt_cert_no=small))
    assert settled["infcode"] == "0", settled
    setl = settled["output"]["setlinfo"]
    assert setl["psn_no"] == capital
    undone = his.call("2208", {"setl_id": setl["setl_id"], "mdtrt_id": "MD0001", "psn_no": capital})
    assert undone["infcode"] == "0", undone
    assert sum(gateway.balances().values()) == 200_000

    his.call("2207", settle_data(family, 50.00, 20.00, psn_no=small, mdtrt_cert_no=small, mdtrt_id="MD0002"))
    lost_msgid = f"{his.code}{his.day}090000{his.sequence:04d}"
    reversal = his.call("2601", {"psn_no": capital, "omsgid": lost_msgid, "oinfno": "2207"})
    assert reversal["infcode"] == "0", reversal
    assert sum(gateway.balances().values()) == 200_000

    stay = settle_data(family, 500.00, 40.00, psn_no=small, mdtrt_cert_no=small, med_type="21", mdtrt_id="ZY0009")
    assert his.call("2303", stay)["infcode"] == "0"
    discharged = his.call("2304", {**stay, "psn_no": capital, "mdtrt_cert_no": capital})
    assert discharged["infcode"] == "0", discharged
    assert sum(gateway.balances().values()) == 200_000 - 4_000
