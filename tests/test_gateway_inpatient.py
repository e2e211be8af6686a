"""Inpatient stays through the gateway: a 2303 deposit hold that follows the bill over days,
captured at discharge (2304), mid-stay settlements, lapsed holds, undo and reconciliation;
real HTTPS to the gateway, real gRPC behind it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from services.gateway.adapters.gongji_client import GrpcGongji
from services.gateway.app import GatewaySettings
from services.gateway.service_layer.inpatient import MAX_HOLD_DAYS
from services.gateway.service_layer.ports import GongjiRefused
from tests.gateway_helpers import Gateway, gateway, running_gateway, settle_data
from tests.payment_helpers import PaymentFamily

__all__ = ["gateway"]  # the fixture

MOTHER_FEN = 100_000  # PaymentFamily credits the mother's personal account with 1,000 yuan


def stay_data(family: PaymentFamily, medfee: float, psn_part: float, mdtrt_id: str = "ZY0001", **extra: Any):
    """2303/2304 input for the mother (an employee with her own personal account) in hospital."""
    mother = family.mother.id_number
    return settle_data(
        family, medfee, psn_part, psn_no=mother, mdtrt_cert_no=mother, med_type="21", mdtrt_id=mdtrt_id,
        insutype="310", **extra,
    )  # fmt: skip


def account(gateway: Gateway) -> tuple[int, int, int]:
    """The mother's personal account: (balance, held, available) in fen."""
    found = gateway.family.account(gateway.family.mother)
    return found.balance_fen, found.held_fen, found.available_fen


def ok(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["infcode"] == "0", answer["err_msg"]
    return answer["output"]["setlinfo"]


def test_a_three_day_stay_holds_the_running_share_captures_at_discharge_and_undoes(gateway):
    his, family, clock = gateway.his, gateway.family, gateway.clock
    day1 = ok(his.call("2303", stay_data(family, 2000.00, 300.00)))
    assert (day1["setl_id"], day1["acct_pay"], day1["psn_cash_pay"], day1["balc"]) == ("", 300.0, 0, 700.0)
    assert account(gateway) == (MOTHER_FEN, 30_000, 70_000)

    clock.advance(timedelta(days=1))
    day2 = ok(his.call("2303", stay_data(family, 5000.00, 800.00)))
    assert (day2["acct_pay"], day2["balc"]) == (800.0, 200.0)
    assert account(gateway) == (MOTHER_FEN, 80_000, 20_000)  # the day-1 hold released, only day 2's held

    clock.advance(timedelta(days=1))
    discharge = his.call("2304", stay_data(family, 5500.00, 700.00))
    setl = ok(discharge)
    assert discharge["warn_msg"] == ""
    assert (setl["acct_pay"], setl["psn_cash_pay"], setl["fund_pay_sumamt"], setl["balc"]) == (700.0, 0, 4800.0, 300.0)
    assert setl["setl_id"]
    assert account(gateway) == (MOTHER_FEN - 70_000, 0, MOTHER_FEN - 70_000)  # the rest of the hold released

    period = {"clr_type": "21", "stmt_begndate": "2026-03-02", "stmt_enddate": "2026-03-04",
              "medfee_sumamt": 5500.00, "fund_pay_sumamt": 4800.00, "acct_pay": 700.00, "fixmedins_setl_cnt": 1,
              "refd_setl_flag": "0"}  # fmt: skip
    balanced = his.call("3201", period)
    assert balanced["output"]["stmtinfo"]["stmt_rslt"] == "0", balanced["output"]

    undone = ok(his.call("2305", {"setl_id": setl["setl_id"], "mdtrt_id": "ZY0001", "psn_no": family.mother.id_number}))
    assert undone["acct_pay"] == -700.0
    assert account(gateway) == (MOTHER_FEN, 0, MOTHER_FEN)
    after_undo = his.call("3201", {**period, "fixmedins_setl_cnt": 0, "medfee_sumamt": 0, "fund_pay_sumamt": 0,
                                   "acct_pay": 0})  # fmt: skip
    assert after_undo["output"]["stmtinfo"]["stmt_rslt"] == "0", after_undo["output"]


def test_a_mid_stay_settlement_leaves_the_stay_open_for_a_new_hold_and_a_final_one(gateway):
    his, family, clock = gateway.his, gateway.family, gateway.clock
    ok(his.call("2303", stay_data(family, 3000.00, 300.00)))
    mid = ok(his.call("2304", stay_data(family, 3000.00, 250.00, mid_setl_flag="1")))
    assert (mid["mid_setl_flag"], mid["acct_pay"]) == ("1", 250.0)
    assert account(gateway) == (MOTHER_FEN - 25_000, 0, MOTHER_FEN - 25_000)

    clock.advance(timedelta(days=3))
    ok(his.call("2303", stay_data(family, 2000.00, 200.00)))
    assert account(gateway) == (MOTHER_FEN - 25_000, 20_000, MOTHER_FEN - 45_000)
    final = ok(his.call("2304", stay_data(family, 2000.00, 200.00)))
    assert (final["mid_setl_flag"], final["acct_pay"]) == ("0", 200.0)
    assert final["setl_id"] != mid["setl_id"]
    assert account(gateway) == (MOTHER_FEN - 45_000, 0, MOTHER_FEN - 45_000)

    after = his.call("2303", stay_data(family, 100.00, 50.00))
    assert "discharge" in after["warn_msg"], after
    assert account(gateway) == (MOTHER_FEN - 45_000, 0, MOTHER_FEN - 45_000)  # a closed stay holds nothing


def test_a_repeated_msgid_holds_and_captures_once(gateway):
    his, family = gateway.his, gateway.family
    hold = his.envelope("2303", stay_data(family, 2000.00, 300.00))
    first = his.post(hold)
    assert his.post(hold) == first
    assert account(gateway) == (MOTHER_FEN, 30_000, 70_000)
    settle = his.envelope("2304", stay_data(family, 2000.00, 300.00))
    captured = his.post(settle)
    assert json.loads(captured[1])["infcode"] == "0", captured
    assert his.post(settle) == captured
    assert account(gateway) == (MOTHER_FEN - 30_000, 0, MOTHER_FEN - 30_000)


def test_a_2303_resent_after_its_answer_was_lost_gets_the_same_hold(gateway):
    """The gateway placed the hold but kept no answer (it stopped first): the same body resent a
    minute later asks the payment service for the same hold, expiry included, and gets it."""
    from sqlalchemy import create_engine, text

    his, family, clock = gateway.his, gateway.family, gateway.clock
    hold = his.envelope("2303", stay_data(family, 2000.00, 300.00))
    first = json.loads(his.post(hold)[1])
    assert first["infcode"] == "0", first
    engine = create_engine(gateway.settings.database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE gateway_answers SET answer = :empty"), {"empty": b""})
    engine.dispose()
    clock.advance(timedelta(minutes=1))
    again = json.loads(his.post(hold)[1])
    assert again["infcode"] == "0", again
    amounts = ("acct_pay", "acct_mulaid_pay", "psn_cash_pay", "balc")
    assert [again["output"]["setlinfo"][k] for k in amounts] == [first["output"]["setlinfo"][k] for k in amounts]
    assert account(gateway) == (MOTHER_FEN, 30_000, 70_000), "held once"


def lose_the_first_hold_answer(monkeypatch: Any) -> None:
    """The payment service places the first hold asked for, but its answer times out on the way
    back to the gateway."""
    real, lost = GrpcGongji.call, []

    async def answer_lost_once(self: GrpcGongji, service: str, method: str, request: Any, code: str) -> Any:
        answer = await real(self, service, method, request, code)
        if method == "AuthorizeSettlement" and not lost:
            lost.append(method)
            raise GongjiRefused("DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED", "deadline exceeded")
        return answer

    monkeypatch.setattr(GrpcGongji, "call", answer_lost_once)


def test_a_2303_whose_hold_the_gateway_never_heard_of_gets_it_when_the_same_body_is_resent(gateway, monkeypatch):
    """The payment service placed the hold but its answer timed out, so the gateway recorded no
    hold: the same body resent later asks for the same hold (its expiry comes from the message's
    inf_time, not the gateway's clock) and gets it, held once."""
    his, family, clock = gateway.his, gateway.family, gateway.clock
    lose_the_first_hold_answer(monkeypatch)
    body = his.envelope("2303", stay_data(family, 2000.00, 300.00))
    first = json.loads(his.post(body)[1])
    assert first["err_msg"].startswith("[SERVICE_UNAVAILABLE]"), first
    clock.advance(timedelta(seconds=5))
    again = json.loads(his.post(body)[1])
    assert again["infcode"] == "0", again["err_msg"]
    assert account(gateway) == (MOTHER_FEN, 30_000, 70_000), "held once"


def test_a_2601_of_a_2303_releases_its_deposit_and_the_stay_settles_afresh(gateway):
    his, family = gateway.his, gateway.family
    mother = family.mother.id_number
    ok(his.call("2303", stay_data(family, 2000.00, 300.00)))
    omsgid = last_msgid(his)
    child = family.child.id_number
    other = his.call("2601", {"psn_no": child, "omsgid": omsgid, "oinfno": "2303"})
    assert other["err_msg"].startswith("[SETTLEMENT_MISMATCH]"), other
    assert account(gateway) == (MOTHER_FEN, 30_000, 70_000)
    reversal = his.call("2601", {"psn_no": mother, "omsgid": omsgid, "oinfno": "2303"})
    assert reversal["infcode"] == "0", reversal
    assert account(gateway) == (MOTHER_FEN, 0, MOTHER_FEN), "the deposit is released"
    discharge = his.call("2304", stay_data(family, 2000.00, 300.00))
    assert ok(discharge)["acct_pay"] == 300.0
    assert account(gateway) == (MOTHER_FEN - 30_000, 0, MOTHER_FEN - 30_000), "settled afresh, once"


def test_a_2303_left_unanswered_is_reversed_by_2601_and_holds_nothing(gateway, monkeypatch):
    """The hold was placed but the gateway never heard (a timeout); the HIS reverses the message
    as the national interface has it, and the deposit is released."""
    his, family = gateway.his, gateway.family
    lose_the_first_hold_answer(monkeypatch)
    body = his.envelope("2303", stay_data(family, 2000.00, 300.00))
    assert json.loads(his.post(body)[1])["infcode"] == "-1"
    omsgid = last_msgid(his)
    assert account(gateway) == (MOTHER_FEN, 30_000, 70_000)
    mother = family.mother.id_number
    reversal = his.call("2601", {"psn_no": mother, "omsgid": omsgid, "oinfno": "2303"})
    assert reversal["infcode"] == "0", reversal
    assert account(gateway) == (MOTHER_FEN, 0, MOTHER_FEN)
    late = json.loads(his.post(body)[1])
    assert late["err_msg"].startswith("[REQUEST_REVERSED]"), late
    assert account(gateway) == (MOTHER_FEN, 0, MOTHER_FEN)


def test_a_final_share_above_the_hold_is_settled_afresh_so_the_accounts_pay_it(gateway):
    his, family = gateway.his, gateway.family
    ok(his.call("2303", stay_data(family, 2000.00, 300.00)))
    answer = his.call("2304", stay_data(family, 4000.00, 500.00))
    assert ok(answer)["acct_pay"] == 500.0 and ok(answer)["psn_cash_pay"] == 0
    assert "exceeds" in answer["warn_msg"]
    assert account(gateway) == (MOTHER_FEN - 50_000, 0, MOTHER_FEN - 50_000)


def test_a_capture_reversed_by_2601_gives_the_money_back(gateway):
    his, family = gateway.his, gateway.family
    ok(his.call("2303", stay_data(family, 2000.00, 300.00)))
    ok(his.call("2304", stay_data(family, 2000.00, 300.00)))
    omsgid = f"{his.code}{his.day}090000{his.sequence:04d}"
    reversal = his.call("2601", {"psn_no": family.mother.id_number, "omsgid": omsgid, "oinfno": "2304"})
    assert reversal["infcode"] == "0", reversal
    assert account(gateway) == (MOTHER_FEN, 0, MOTHER_FEN)


def last_msgid(his) -> str:
    return f"{his.code}{his.day}090000{his.sequence:04d}"


def test_a_final_2304_reversed_by_2601_opens_the_stay_again_for_a_new_deposit(gateway):
    """Reversal (冲正) cancels whatever effect its original had: the discharge too."""
    his, family = gateway.his, gateway.family
    ok(his.call("2303", stay_data(family, 2000.00, 300.00)))
    ok(his.call("2304", stay_data(family, 2000.00, 300.00)))
    reversal = his.call("2601", {"psn_no": family.mother.id_number, "omsgid": last_msgid(his), "oinfno": "2304"})
    assert reversal["infcode"] == "0", reversal
    again = his.call("2303", stay_data(family, 2500.00, 400.00))
    assert again["infcode"] == "0" and again["warn_msg"] == "", again
    assert account(gateway) == (MOTHER_FEN, 40_000, MOTHER_FEN - 40_000)


def test_a_2305_reversed_by_2601_closes_the_stay_again_so_it_is_never_settled_twice(gateway):
    his, family = gateway.his, gateway.family
    ok(his.call("2303", stay_data(family, 2000.00, 300.00)))
    setl = ok(his.call("2304", stay_data(family, 2000.00, 300.00)))
    mother = family.mother.id_number
    ok(his.call("2305", {"setl_id": setl["setl_id"], "mdtrt_id": "ZY0001", "psn_no": mother}))
    undo_msgid = last_msgid(his)
    # The reopened stay takes a new deposit before the undo is reversed.
    ok(his.call("2303", stay_data(family, 2500.00, 400.00)))
    assert account(gateway) == (MOTHER_FEN, 40_000, MOTHER_FEN - 40_000)
    reversal = his.call("2601", {"psn_no": mother, "omsgid": undo_msgid, "oinfno": "2305"})
    assert reversal["infcode"] == "0", reversal
    assert account(gateway) == (MOTHER_FEN - 30_000, 0, MOTHER_FEN - 30_000), "the settlement stands, the deposit goes"
    late = his.call("2303", stay_data(family, 2500.00, 400.00))
    assert "settled at discharge" in late["warn_msg"], late
    assert account(gateway) == (MOTHER_FEN - 30_000, 0, MOTHER_FEN - 30_000), "nothing is held for a closed stay"


def test_a_second_final_2304_of_a_closed_stay_is_refused_and_takes_nothing(gateway):
    his, family = gateway.his, gateway.family
    ok(his.call("2303", stay_data(family, 2000.00, 300.00)))
    final = his.envelope("2304", stay_data(family, 2000.00, 300.00))
    settled = his.post(final)
    assert json.loads(settled[1])["infcode"] == "0", settled
    paid = (MOTHER_FEN - 30_000, 0, MOTHER_FEN - 30_000)
    assert account(gateway) == paid
    for again in (stay_data(family, 2000.00, 300.00), stay_data(family, 800.00, 100.00, mid_setl_flag="1")):
        refused = his.call("2304", again)
        assert refused["err_msg"].startswith("[STAY_CLOSED]"), refused
    assert account(gateway) == paid, "the stay is not settled twice"
    assert his.post(final) == settled  # the final 2304 itself, resent, still gets its answer


@pytest.mark.parametrize("infno", ["2303", "2304"])
def test_an_inpatient_message_without_its_stays_mdtrt_id_is_refused_and_holds_nothing(gateway, infno):
    """A stay's deposit hold is found by mdtrt_id; a 2304 without it would settle afresh beside
    the hold and leave the deposit held for weeks."""
    his, family = gateway.his, gateway.family
    data = stay_data(family, 2000.00, 300.00)
    del data["mdtrt_id"]
    refused = his.call(infno, data)
    assert refused["infcode"] == "-1" and "mdtrt_id" in refused["err_msg"], refused
    assert account(gateway) == (MOTHER_FEN, 0, MOTHER_FEN)


def test_another_persons_stay_is_refused_and_nothing_is_held(gateway):
    his, family = gateway.his, gateway.family
    ok(his.call("2303", stay_data(family, 2000.00, 300.00)))
    child = family.child.id_number
    other = his.call("2303", {**stay_data(family, 100.00, 10.00), "psn_no": child, "mdtrt_cert_no": child})
    assert other["err_msg"].startswith("[SETTLEMENT_MISMATCH]"), other
    assert account(gateway) == (MOTHER_FEN, 30_000, 70_000)


def test_a_lapsed_hold_is_settled_afresh_with_a_warning(databases, payment_service):
    family = PaymentFamily(payment_service)
    with running_gateway(payment_service, databases.url("gateway"), inpatient_hold_days=2) as (server, settings):
        gw = Gateway(server, payment_service.binding.pki, payment_service.binding.clock, family, settings)
        ok(gw.his.call("2303", stay_data(family, 2000.00, 300.00)))
        gw.clock.advance(timedelta(days=3))
        answer = gw.his.call("2304", stay_data(family, 2000.00, 300.00))
        assert ok(answer)["acct_pay"] == 300.0
        assert "lapsed" in answer["warn_msg"], answer
        assert account(gw) == (MOTHER_FEN - 30_000, 0, MOTHER_FEN - 30_000)


@pytest.mark.parametrize("days", [0, MAX_HOLD_DAYS + 1])
def test_a_hold_length_the_payment_service_would_refuse_is_refused_at_start(days):
    with pytest.raises(ValueError, match="hold days"):
        GatewaySettings(database_url="sqlite://", transport=None, binding_address="", payment_address="",  # type: ignore[arg-type]
                        inpatient_hold_days=days)  # fmt: skip
