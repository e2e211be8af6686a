"""A clinic's whole day through the national-interface gateway, over real HTTPS to the real
gateway, real gRPC behind it, on SQLite and PostgreSQL."""

from __future__ import annotations

from gongji.payment.v1 import payment_service_pb2 as papi
from tests.gateway_helpers import ADMDVS, CODE, gateway, settle_data

__all__ = ["gateway"]  # the fixture


def test_a_whole_day_of_one_clinic_balances_and_a_wrong_count_does_not(gateway):
    his, family = gateway.his, gateway.family
    signed_in = his.call("9001", {"opter_no": "0001", "mac": "", "ip": "10.0.0.8"}, node="signIn")
    assert signed_in["infcode"] == "0", signed_in
    again = his.call("9001", {"opter_no": "0001"}, node="signIn")
    assert again["output"]["signinoutb"]["sign_no"] == signed_in["output"]["signinoutb"]["sign_no"]

    person = his.call("1101", {"mdtrt_cert_type": "02", "mdtrt_cert_no": family.child.id_number, "psn_cert_type": "01",
                               "certno": family.child.id_number, "psn_name": "王小宝"})  # fmt: skip
    assert person["infcode"] == "0", person
    assert person["output"]["baseinfo"]["psn_no"] == family.child.id_number
    assert person["output"]["insuinfo"][0]["insuplc_admdvs"] == ADMDVS

    quote = his.call("2206", settle_data(family, 300.00, 120.50))
    assert quote["infcode"] == "0", quote
    assert quote["output"]["setlinfo"]["acct_mulaid_pay"] == 120.5
    assert gateway.balances() == {"mother": 100_000, "father": 100_000}  # a quote moves nothing

    first = his.call("2207", settle_data(family, 300.00, 120.50))
    assert first["infcode"] == "0", first
    setl = first["output"]["setlinfo"]
    assert (setl["acct_mulaid_pay"], setl["acct_pay"], setl["psn_cash_pay"]) == (120.5, 120.5, 0)
    assert setl["fund_pay_sumamt"] == 179.5
    assert setl["clr_optins"] == ADMDVS  # cleared by the patient's insurance region
    assert sum(gateway.balances().values()) == 200_000 - 12_050

    undone = his.call("2208", {"setl_id": setl["setl_id"], "mdtrt_id": "MD0001", "psn_no": family.child.id_number})
    assert undone["infcode"] == "0", undone
    assert undone["output"]["setlinfo"]["acct_pay"] == -120.5
    assert sum(gateway.balances().values()) == 200_000

    second = his.call("2207", settle_data(family, 80.00, 30.00, mdtrt_id="MD0002"))
    assert second["infcode"] == "0", second
    lost = his.call("2207", settle_data(family, 50.00, 20.00, mdtrt_id="MD0003"))
    assert lost["infcode"] == "0", lost
    lost_msgid = f"{his.code}{his.day}090000{his.sequence:04d}"
    reversal = his.call("2601", {"psn_no": family.child.id_number, "omsgid": lost_msgid, "oinfno": "2207"})
    assert reversal["infcode"] == "0", reversal
    assert sum(gateway.balances().values()) == 200_000 - 3_000

    period = {"insutype": "390", "clr_type": "11", "setl_optins": ADMDVS, "stmt_begndate": "2026-03-02",
              "stmt_enddate": "2026-03-02", "medfee_sumamt": 80.00, "fund_pay_sumamt": 50.00, "acct_pay": 30.00,
              "fixmedins_setl_cnt": 1, "refd_setl_flag": "0"}  # fmt: skip
    balanced = his.call("3201", period)
    assert balanced["infcode"] == "0", balanced
    assert balanced["output"]["stmtinfo"]["stmt_rslt"] == "0", balanced
    institution_more = his.call("3201", {**period, "fixmedins_setl_cnt": 2, "medfee_sumamt": 130.00})
    assert institution_more["output"]["stmtinfo"]["stmt_rslt"] == "2", institution_more
    centre_more = his.call("3201", {**period, "fixmedins_setl_cnt": 0, "acct_pay": 0})
    assert centre_more["output"]["stmtinfo"]["stmt_rslt"] == "1", centre_more
    mixed = his.call("3201", {**period, "fixmedins_setl_cnt": 2, "acct_pay": 0})
    assert mixed["output"]["stmtinfo"]["stmt_rslt"] == "3", mixed
    unknown_type = his.call("3201", {**period, "clr_type": "31"})
    assert unknown_type["err_msg"].startswith("[FIELD_INVALID]"), unknown_type

    sign_no = signed_in["output"]["signinoutb"]["sign_no"]
    signed_out = his.call("9002", {"sign_no": sign_no, "opter_no": "0001"}, node="signOut")
    assert signed_out["infcode"] == "0", signed_out
    assert signed_out["output"]["signoutoutb"]["sign_time"]


def test_a_sign_out_names_a_sign_no_the_institution_signed_in_with(gateway):
    his = gateway.his
    unknown = his.call("9002", {"sign_no": "20260302ABCDEF012345", "opter_no": "0001"}, node="signOut")
    assert unknown["infcode"] == "-1" and unknown["err_msg"].startswith("[FIELD_INVALID]"), unknown
    missing = his.call("9002", {"opter_no": "0001"}, node="signOut")
    assert missing["infcode"] == "-1" and "sign_no" in missing["err_msg"], missing


def test_reconciliation_is_inconsistent_when_gongjis_books_hold_what_the_gateway_did_not_relay(gateway):
    his, family = gateway.his, gateway.family
    assert his.call("2207", settle_data(family, 80.00, 30.00))["infcode"] == "0"
    bill = family.bill(1_000)
    bill.institution_code = CODE  # the same hospital, settling over gRPC directly
    family.payment.Settle(papi.SettleRequest(request_id="direct-1", bill=bill))
    period = {"clr_type": "11", "stmt_begndate": "2026-03-02", "stmt_enddate": "2026-03-02", "medfee_sumamt": 80.00,
              "fund_pay_sumamt": 50.00, "acct_pay": 30.00, "fixmedins_setl_cnt": 1, "refd_setl_flag": "0"}  # fmt: skip
    answer = his.call("3201", period)
    assert answer["output"]["stmtinfo"]["stmt_rslt"] == "3", answer
    assert "books" in answer["output"]["stmtinfo"]["stmt_rslt_dscr"]
