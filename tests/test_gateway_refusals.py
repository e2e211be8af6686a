"""What the gateway refuses, and that a refusal moves nothing: repeated and reused msgids,
reversals before their original, the wrong institution, signatures, bodies that are not the
envelope, amounts finer than a fen, and gongji out of reach."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import ssl
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from services.common.database import create_database_engine, migrate
from services.gateway.adapters.store import SqlStore
from services.gateway.service_layer.ports import RelayedSettlement
from services.gateway.service_layer.transactions import Transactions
from tests.gateway_helpers import CODE, KEY, OTHER, Gateway, gateway, running_gateway, settle_data
from tests.payment_helpers import PaymentFamily

__all__ = ["gateway"]  # the fixture
UNTOUCHED = {"mother": 100_000, "father": 100_000}


def test_a_repeated_msgid_gets_the_first_answer_byte_for_byte_and_money_moves_once(gateway):
    his = gateway.his
    body = his.envelope("2207", settle_data(gateway.family, 100.00, 60.00))
    first = his.post(body)
    gateway.clock.advance(timedelta(seconds=30))
    again = his.post(body)
    assert first[0] == again[0] == 200
    assert first[1] == again[1]
    assert json.loads(first[1])["infcode"] == "0"
    assert sum(gateway.balances().values()) == 200_000 - 6_000


def test_the_same_msgid_with_another_body_is_refused_and_moves_nothing_more(gateway):
    his = gateway.his
    body = his.envelope("2207", settle_data(gateway.family, 100.00, 60.00))
    his.post(body)
    changed = body.replace(b'"psn_part_amt": 60.0', b'"psn_part_amt": 70.0')
    assert changed != body
    status, answer = his.post(changed)
    refused = json.loads(answer)
    assert (status, refused["infcode"]) == (200, "-1")
    assert refused["err_msg"].startswith("[MSGID_REUSED]"), refused
    assert sum(gateway.balances().values()) == 200_000 - 6_000


def test_a_reversal_before_its_original_makes_the_original_refused_when_it_comes(gateway):
    his, family = gateway.his, gateway.family
    original = his.envelope("2207", settle_data(family, 100.00, 60.00))
    omsgid = json.loads(original)["msgid"]
    reversal = his.call("2601", {"psn_no": family.child.id_number, "omsgid": omsgid, "oinfno": "2207"})
    assert reversal["infcode"] == "0", reversal
    assert reversal["output"]["data"]["orig_found"] == "0"
    late = json.loads(his.post(original)[1])
    assert late["infcode"] == "-1"
    assert late["err_msg"].startswith("[REQUEST_REVERSED]"), late
    assert gateway.balances() == UNTOUCHED


def test_only_the_reversible_transactions_can_be_reversed(gateway):
    answer = gateway.his.call("2601", {"psn_no": gateway.family.child.id_number, "omsgid": "X" * 30, "oinfno": "2206"})
    assert answer["err_msg"].startswith("[NOT_REVERSIBLE]"), answer


def test_a_reversal_of_a_msgid_this_institution_could_never_have_sent_is_refused_and_changes_nothing(gateway):
    """Every msgid the gateway takes is fixmedins_code + a real yyyyMMddHHmmss + four digits, so an
    omsgid of another shape names no request that could have arrived: INVALID_MSGID, not a
    reversal of a lost request answered with infcode 0."""
    his, family = gateway.his, gateway.family
    child = family.child.id_number
    other_institution = f"H99999999999{his.day}0900000001"
    impossible = [other_institution, f"{his.code}{his.day}250000" + "0001", f"{his.code}{his.day}0900000001X", "X" * 30]
    for omsgid in impossible:
        answer = his.call("2601", {"psn_no": child, "omsgid": omsgid, "oinfno": "2207"})
        assert answer["infcode"] == "-1", answer
        assert answer["err_msg"].startswith("[INVALID_MSGID] omsgid:"), answer
    assert gateway.balances() == UNTOUCHED


def test_a_reversal_must_name_its_originals_transaction_and_patient(gateway):
    """2601 takes psn_no, omsgid and oinfno: a reversal naming another transaction than the
    original was, or another patient, is refused and changes nothing."""
    his, family = gateway.his, gateway.family
    assert his.call("2207", settle_data(family, 100.00, 60.00))["infcode"] == "0"
    omsgid = f"{his.code}{his.day}090000{his.sequence:04d}"
    after_bill = gateway.balances()
    child = family.child.id_number
    wrong_code = his.call("2601", {"psn_no": child, "omsgid": omsgid, "oinfno": "2102"})
    assert wrong_code["err_msg"].startswith("[FIELD_INVALID]"), wrong_code
    wrong_patient = his.call("2601", {"psn_no": family.mother.id_number, "omsgid": omsgid, "oinfno": "2207"})
    assert wrong_patient["err_msg"].startswith("[SETTLEMENT_MISMATCH]"), wrong_patient
    no_patient = his.call("2601", {"omsgid": omsgid, "oinfno": "2207"})
    assert no_patient["infcode"] == "-1" and "psn_no" in no_patient["err_msg"], no_patient
    assert gateway.balances() == after_bill
    assert his.call("2601", {"psn_no": child, "omsgid": omsgid, "oinfno": "2207"})["infcode"] == "0"
    assert gateway.balances() == UNTOUCHED


def test_a_deposit_hold_cannot_be_reversed_by_calling_it_a_settlement(gateway):
    his, family = gateway.his, gateway.family
    hold = {**settle_data(family, 2000.00, 300.00, med_type="21", mdtrt_id="ZY0009")}
    assert his.call("2303", hold)["infcode"] == "0"
    omsgid = f"{his.code}{his.day}090000{his.sequence:04d}"
    held = family.account(family.mother).held_fen
    assert held > 0
    reversal = his.call("2601", {"psn_no": family.child.id_number, "omsgid": omsgid, "oinfno": "2207"})
    assert reversal["err_msg"].startswith("[FIELD_INVALID]"), reversal
    assert family.account(family.mother).held_fen == held, "the deposit stays held"


def test_an_institution_cannot_send_another_institutions_messages(gateway):
    his = gateway.his
    his.certificate = OTHER
    answer = his.call("2207", settle_data(gateway.family, 100.00, 60.00))
    assert answer["infcode"] == "-1"
    assert answer["err_msg"].startswith("[INSTITUTION_MISMATCH]"), answer
    assert gateway.balances() == UNTOUCHED


def test_signed_headers_authenticate_an_institution_without_a_certificate(gateway):
    his = gateway.his
    his.certificate = None
    status, answer = his.signed(his.envelope("2207", settle_data(gateway.family, 100.00, 60.00)))
    assert status == 200 and json.loads(answer)["infcode"] == "0", answer
    assert sum(gateway.balances().values()) == 200_000 - 6_000


def test_a_bad_signature_an_expired_timestamp_or_no_credentials_at_all_are_401(gateway):
    his = gateway.his
    his.certificate = None
    body = his.envelope("2207", settle_data(gateway.family, 100.00, 60.00))
    forged = his.post(body, {**_headers(his, body), "_api_signature": "AAAA" + "A" * 40})
    stale = his.signed(body, at=gateway.clock.now() - timedelta(minutes=6))
    other_key = his.signed(body, key=type(KEY)(KEY.access_key, CODE, b"not-the-secret"))
    nothing = his.post(body)
    for (status, answer), reason in [
        (forged, "BAD_SIGNATURE"), (stale, "TIMESTAMP_OUT_OF_WINDOW"), (other_key, "BAD_SIGNATURE"),
        (nothing, "SIGNATURE_MISSING"),
    ]:  # fmt: skip
        assert status == 401, answer
        assert json.loads(answer)["err_msg"].startswith(f"[{reason}]"), answer
    assert gateway.balances() == UNTOUCHED


def _headers(his, body):
    from services.gateway.wire.signatures import sign

    return sign(KEY, "2207", body, his.gateway.clock.now())


def test_a_body_that_is_not_the_envelope_is_400_and_a_wrong_path_404(gateway):
    his = gateway.his
    for body in (b"{not json", b"[1, 2]", b'{"msgid": "x"}', "\ufffe".encode()):
        status, answer = his.post(body)
        assert status == 400, (body, answer)
        assert json.loads(answer)["err_msg"].startswith("[NOT_AN_ENVELOPE]")
    status, answer = his.post(b"{}", path="/fsi/api/other")
    assert status == 404 and json.loads(answer)["infcode"] == "-1"
    status, answer = his.post(b"x" * (1024 * 1024 + 10))
    assert status == 413, answer


def test_an_amount_whose_exponent_no_decimal_holds_is_400_not_an_internal_error_and_moves_no_money(gateway):
    his = gateway.his
    body = his.envelope("2207", settle_data(gateway.family, 100.00, 60.00))
    hostile = body.replace(b'"psn_part_amt": 60.0', b'"psn_part_amt": 1e99999999999999999999')
    assert hostile != body
    status, answer = his.post(hostile)
    assert status == 400, answer
    assert json.loads(answer)["err_msg"].startswith("[NOT_AN_ENVELOPE]")
    assert gateway.balances() == UNTOUCHED


def test_an_envelope_sent_as_gzip_that_is_not_gzip_is_400_in_json_and_moves_no_money(gateway):
    """aiohttp inflates the body as it reads it; one that does not inflate is the sender's mistake."""
    his = gateway.his
    body = his.envelope("2207", settle_data(gateway.family, 10.00, 10.00))
    status, answer = his.post(body, {"Content-Encoding": "gzip"})
    assert status == 400, answer
    assert json.loads(answer)["err_msg"].startswith("[BAD_CONTENT_ENCODING]"), answer
    assert gateway.balances() == UNTOUCHED
    status, answer = his.post(gzip.compress(body), {"Content-Encoding": "gzip"})  # the same, truly gzip
    assert (status, json.loads(answer)["infcode"]) == (200, "0"), answer


def test_an_envelope_that_breaks_the_rules_is_answered_with_infcode_minus_one(gateway):
    his = gateway.his
    answer = his.call("2207", settle_data(gateway.family, 100.00, 60.00), msgid="short")
    assert answer["err_msg"].startswith("[INVALID_MSGID]"), answer
    unknown = his.call("9999", {})
    assert unknown["err_msg"].startswith("[UNKNOWN_TRANSACTION]"), unknown


def test_a_region_of_treatment_that_is_no_division_code_is_refused_naming_mdtrtarea_admvs(gateway):
    his = gateway.his
    for region in ("32010", "990100", "３２０１００"):
        answer = his.call("2207", settle_data(gateway.family, 100.00, 60.00), mdtrtarea_admvs=region)
        assert answer["err_msg"].startswith("[INVALID_ADMDVS] mdtrtarea_admvs"), answer
    assert gateway.balances() == UNTOUCHED


def test_amounts_with_three_decimals_are_refused_and_move_nothing(gateway):
    his = gateway.his
    answer = his.call("2207", settle_data(gateway.family, 100.005, 60.00))
    assert answer["infcode"] == "-1"
    assert answer["err_msg"].startswith("[INVALID_AMOUNT]"), answer
    share = his.call("2207", settle_data(gateway.family, 100.00, 60.001))
    assert share["err_msg"].startswith("[INVALID_AMOUNT]"), share
    assert gateway.balances() == UNTOUCHED


def test_gongji_out_of_reach_stores_nothing_so_the_same_msgid_later_settles(databases, payment_service):
    family = PaymentFamily(payment_service)
    url = databases.url("gateway")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{probe.getsockname()[1]}"
    with running_gateway(payment_service, url, payment_address=nowhere, call_deadline=1.0) as (server, settings):
        down = Gateway(server, payment_service.binding.pki, payment_service.binding.clock, family, settings)
        body = down.his.envelope("2207", settle_data(family, 100.00, 60.00))
        refused = json.loads(down.his.post(body)[1])
    assert refused["err_msg"].startswith("[SERVICE_UNAVAILABLE]"), refused
    assert down.balances() == UNTOUCHED
    with running_gateway(payment_service, url) as (server, settings):
        up = Gateway(server, payment_service.binding.pki, payment_service.binding.clock, family, settings)
        settled = json.loads(up.his.post(body)[1])
    assert settled["infcode"] == "0", settled
    assert sum(up.balances().values()) == 200_000 - 6_000


def test_concurrent_duplicates_of_one_msgid_get_one_answer_and_move_money_once(gateway):
    his = gateway.his
    body = his.envelope("2207", settle_data(gateway.family, 100.00, 60.00))
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: his.post(body), range(6)))
    assert {status for status, _ in answers} == {200}
    assert len({answer for _, answer in answers}) == 1, answers
    assert json.loads(answers[0][1])["infcode"] == "0"
    assert sum(gateway.balances().values()) == 200_000 - 6_000


def test_duplicates_recording_one_settlement_at_once_keep_one_row_and_none_fails(databases):
    """Concurrent duplicates of one body each relay the same settlement and record it: one row
    is kept and no duplicate fails. A conflict on the settlement's msgid as well as its setl_id
    is the same settlement, not a store failure that would answer a duplicate -1."""
    url = databases.url("gateway")
    migrate("gateway", url)
    engine = create_database_engine(url)
    store = SqlStore(engine)
    at = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    try:
        for round_no in range(60):
            settlement = RelayedSettlement(
                institution_code=CODE, setl_id=f"S{round_no}", settle_msgid=f"M{round_no}", infno="2207",
                clr_type="11", mdtrt_id=f"T{round_no}", psn_no="110101199003077777", in_gongji=True,
                mid_setl=False, medfee_fen=10_000, fund_fen=4_000, psn_part_fen=6_000, own_account_fen=6_000,
                mutual_aid_fen=0, cash_fen=0, state="SETTLED", settle_time=at,
            )  # fmt: skip
            barrier = threading.Barrier(8)

            def record(_: int, settlement: RelayedSettlement = settlement, barrier=barrier) -> None:
                barrier.wait(timeout=20)
                asyncio.run(store.record_settlement(settlement))

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(record, range(8)))  # a StoreUnavailable here fails the test
            assert asyncio.run(store.settlement(CODE, settlement.setl_id)) == settlement
    finally:
        engine.dispose()


def _held_after_gongji_settles(monkeypatch, psn_part_fen: int) -> tuple[threading.Event, threading.Event]:
    """Holds the bill of this share in the gateway once gongji has settled it (its split is
    read next), until released: (reached, release)."""
    reached, release = threading.Event(), threading.Event()
    split = Transactions._split

    async def held_split(self, envelope, charge, settlement, **options):
        if charge.psn_part_fen == psn_part_fen:
            reached.set()
            await asyncio.to_thread(release.wait, 30)
        return await split(self, envelope, charge, settlement, **options)

    monkeypatch.setattr(Transactions, "_split", held_split)
    return reached, release


def test_a_resent_msgid_with_another_body_while_the_first_is_served_is_refused_and_the_first_keeps_its_answer(
    gateway, monkeypatch
):
    """A HIS that times out resends its msgid with a refreshed inf_time and amount while the
    first body, its money already moved, is still being served. The second body is refused;
    the first is answered infcode 0, and so is every retry of it."""
    his = gateway.his
    reached, release = _held_after_gongji_settles(monkeypatch, 100)
    first = his.envelope("2207", settle_data(gateway.family, 100.00, 1.00))
    resent = first.replace(b'"inf_time": "2026-03-02 09:00:00"', b'"inf_time": "2026-03-02 09:00:05"')
    resent = resent.replace(b'"psn_part_amt": 1.0', b'"psn_part_amt": 2.0')
    assert resent != first
    with ThreadPoolExecutor(1) as pool:
        served = pool.submit(his.post, first)
        assert reached.wait(30), "the first body reached gongji"
        try:
            refused = json.loads(his.post(resent)[1])
        finally:
            release.set()
        answered = json.loads(served.result()[1])
    moved = 200_000 - sum(gateway.balances().values())
    assert moved == 100, "the first body's 1.00 yuan, once"
    assert answered["infcode"] == "0", answered
    assert json.loads(his.post(first)[1]) == answered, "a retry of the body that moved the money gets its answer"
    for other in (refused, json.loads(his.post(resent)[1])):
        assert other["err_msg"].startswith("[MSGID_REUSED]"), other


def test_a_msgid_whose_settlement_went_unrecorded_refuses_another_body_and_its_own_retry_settles_once(gateway):
    """Gongji settled, the gateway could not record it, so no answer is stored: the msgid is
    still the first body's. Another body under it is refused without reaching gongji (whose
    refusal of the reused request_id would otherwise become the msgid's answer)."""
    his = gateway.his
    body = his.envelope("2207", settle_data(gateway.family, 100.00, 60.00))
    _failing_settlement_records(gateway.settings.database_url, failing=True)
    assert json.loads(his.post(body)[1])["err_msg"].startswith("[SERVICE_UNAVAILABLE]")
    _failing_settlement_records(gateway.settings.database_url, failing=False)
    other = body.replace(b'"psn_part_amt": 60.0', b'"psn_part_amt": 70.0')
    refused = json.loads(his.post(other)[1])
    assert refused["err_msg"].startswith("[MSGID_REUSED]"), refused
    settled = json.loads(his.post(body)[1])
    assert settled["infcode"] == "0", settled
    assert sum(gateway.balances().values()) == 200_000 - 6_000
    assert json.loads(his.post(other)[1])["err_msg"].startswith("[MSGID_REUSED]")


def test_gongjis_refusal_reaches_the_his_with_its_reason_and_moves_nothing(gateway):
    family = gateway.family
    impersonating = settle_data(family, 100.00, 60.00, mdtrt_cert_no=family.mother.id_number)
    answer = gateway.his.call("2207", impersonating)
    assert answer["err_msg"].startswith("[IMPERSONATION]"), answer
    assert family.mother.id_number not in answer["err_msg"]
    assert gateway.balances() == UNTOUCHED
    unknown = gateway.his.call("2208", {"setl_id": "nothing-like-it", "psn_no": family.child.id_number})
    assert unknown["err_msg"].startswith("[SETTLEMENT_NOT_FOUND]"), unknown


def test_a_certificate_of_anyone_but_an_institution_is_401_and_get_is_405(gateway):
    from shared.principals import operator

    his = gateway.his
    his.certificate = None
    files = gateway.pki.files(operator("000000", "ops"))
    context = ssl.create_default_context(cafile=str(gateway.pki.ca_file))
    context.load_cert_chain(str(files.cert), str(files.key))
    url = f"https://127.0.0.1:{gateway.server.port}/fsi/api/rsfComIfsService/callService"
    body = his.envelope("9001", {"opter_no": "1"}, node="signIn")
    for method, data, expected in (("POST", body, 401), ("GET", None, 405)):
        request = urllib.request.Request(url, data=data, method=method)
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, context=context, timeout=30)
        assert raised.value.code == expected
        assert json.loads(raised.value.read())["infcode"] == "-1"


def test_behind_a_sidecar_a_forwarded_client_cert_header_sent_twice_names_no_institution():
    """Two headers name two callers: the gateway refuses, as the gRPC services do, and does not
    let whichever came first decide."""
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict

    from services.gateway.entrypoints.authentication import NotAuthenticated, institution_of_request

    now = datetime(2026, 3, 2, tzinfo=UTC)
    once = CIMultiDict([("x-forwarded-client-cert", f"URI=spiffe://gongji/institution/{CODE}")])
    request = make_mocked_request("POST", "/", headers=once)
    assert institution_of_request(request, b"{}", secure=False, keys=None, now=now) == CODE
    twice = CIMultiDict(
        [
            ("x-forwarded-client-cert", f"URI=spiffe://gongji/institution/{OTHER}"),
            ("x-forwarded-client-cert", f"URI=spiffe://gongji/institution/{CODE}"),
        ]
    )
    with pytest.raises(NotAuthenticated) as refused:
        institution_of_request(make_mocked_request("POST", "/", headers=twice), b"{}", secure=False, keys=None, now=now)
    assert refused.value.reason == "UNAUTHENTICATED_CALLER"


def test_each_request_logs_one_line_without_personal_data(gateway, caplog):
    caplog.set_level(logging.INFO, logger="gongji.gateway")
    gateway.his.call("2207", settle_data(gateway.family, 100.00, 60.00))
    lines = [record for record in caplog.records if record.name == "gongji.gateway"]
    assert len(lines) == 1
    line = lines[0]
    assert (line.method, line.status, line.principal) == ("2207", "0", f"spiffe://gongji/institution/{CODE}")
    assert gateway.family.child.id_number not in line.getMessage()


def test_an_envelope_refused_for_its_fields_is_logged_and_counted_under_its_infno(gateway, caplog):
    caplog.set_level(logging.INFO, logger="gongji.gateway")
    answer = gateway.his.call("2207", settle_data(gateway.family, 100.00, 60.00), inf_time="yesterday")
    assert answer["err_msg"].startswith("[MALFORMED_REQUEST] inf_time")
    (line,) = [record for record in caplog.records if record.name == "gongji.gateway"]
    assert (line.method, line.status, line.reason) == ("2207", "-1", "MALFORMED_REQUEST")
    assert line.getMessage().startswith("2207 -1 ")


def test_a_cash_only_bill_reversed_before_it_arrives_is_refused_too(gateway):
    his, family = gateway.his, gateway.family
    original = his.envelope("2207", settle_data(family, 100.00, 40.00, acct_used_flag="0"))
    omsgid = json.loads(original)["msgid"]
    assert his.call("2601", {"psn_no": family.child.id_number, "omsgid": omsgid, "oinfno": "2207"})["infcode"] == "0"
    late = json.loads(his.post(original)[1])
    assert late["err_msg"].startswith("[REQUEST_REVERSED]"), late


def _failing_settlement_records(url: str, failing: bool) -> None:
    """A trigger that makes the gateway's own database refuse to record a settlement (a full
    disk, a lost connection): a real failure of the real database, switched on and off."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER IF EXISTS refuse_records"))
            if failing:
                connection.execute(
                    text(
                        "CREATE TRIGGER refuse_records BEFORE INSERT ON gateway_settlements "
                        "BEGIN SELECT RAISE(ABORT, 'no space left'); END"
                    )
                )
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS refuse_records ON gateway_settlements"))
            if failing:
                connection.execute(
                    text(
                        "CREATE OR REPLACE FUNCTION refuse_records() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'no space left'; END $$"
                    )
                )
                connection.execute(
                    text(
                        "CREATE TRIGGER refuse_records BEFORE INSERT ON gateway_settlements "
                        "FOR EACH ROW EXECUTE FUNCTION refuse_records()"
                    )
                )
    engine.dispose()


def test_a_settlement_the_gateway_cannot_record_is_answered_retry_and_the_retry_settles_once(gateway):
    his = gateway.his
    body = his.envelope("2207", settle_data(gateway.family, 100.00, 60.00))
    _failing_settlement_records(gateway.settings.database_url, failing=True)
    status, answer = his.post(body)
    refused = json.loads(answer)
    assert (status, refused["infcode"]) == (200, "-1")
    assert refused["err_msg"].startswith("[SERVICE_UNAVAILABLE]") and "same msgid" in refused["err_msg"], refused
    assert "no space left" not in refused["err_msg"]

    _failing_settlement_records(gateway.settings.database_url, failing=False)
    settled = json.loads(his.post(body)[1])
    assert settled["infcode"] == "0", settled
    assert sum(gateway.balances().values()) == 200_000 - 6_000, "gongji settled once, under the msgid"
    assert json.loads(his.post(body)[1]) == settled, "and the retry's answer is the msgid's answer from now on"
