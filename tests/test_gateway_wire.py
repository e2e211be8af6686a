"""The national interface's wire format, as pure functions: amounts in yuan to fen and back,
the envelope a HIS sends and the answer it gets, and the signed headers some provinces use."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.wire.envelope import (
    Envelope,
    EnvelopeRefused,
    NotAnEnvelope,
    amount,
    failure,
    input_node,
    input_rows,
    parse_envelope,
    ref_msgid,
    render,
    sent_at,
    stamp,
    success,
    text,
)
from services.gateway.wire.money import MAX_AMOUNT_FEN, AmountRefused, fen_to_yuan, yuan_to_fen
from services.gateway.wire.signatures import (
    HEADERS,
    SIGNATURE_WINDOW,
    AccessKey,
    SignatureRefused,
    load_access_keys,
    sign,
    string_to_sign,
    verify,
)
from shared.china_time import CHINA_STANDARD_TIME

INSTITUTION = "H37010200001"
ID_NUMBER = "370102198001011237"  # shaped like an ID number; belongs to no one
SENT = datetime(2026, 12, 2, 10, 15, 30, tzinfo=CHINA_STANDARD_TIME)


def his_body(**changes: object) -> dict:
    """A 2207 outpatient settlement shaped like those public HIS integrations send."""
    body = {
        "infno": "2207",
        "msgid": INSTITUTION + "20261202101530" + "0001",
        "mdtrtarea_admvs": "370102",
        "insuplc_admdvs": "370102",
        "recer_sys_code": "MDTRT",
        "dev_no": "",
        "dev_safe_info": "",
        "cainfo": "",
        "signtype": "SM3",
        "infver": "V1.0",
        "opter_type": "1",
        "opter": "0012",
        "opter_name": "收费员张",
        "inf_time": "2026-12-02 10:15:30",
        "fixmedins_code": INSTITUTION,
        "fixmedins_name": "济南市历下区人民医院",
        "sign_no": "370000G0000000012345",
        "input": {
            "data": {
                "psn_no": ID_NUMBER,
                "mdtrt_cert_type": "02",
                "mdtrt_cert_no": ID_NUMBER,
                "med_type": "11",
                "medfee_sumamt": Decimal("128.50"),
                "psn_setlway": "01",
                "mdtrt_id": "MDTRT20261202000123",
                "chrg_bchno": "CB20261202000456",
                "insutype": "310",
                "acct_used_flag": "1",
                "psn_part_amt": Decimal("38.55"),
                "fund_pay_sumamt": Decimal("89.95"),
            }
        },
    }
    body.update(changes)
    return body


def encoded(body: dict) -> bytes:
    """As a HIS sends it: UTF-8 JSON, Chinese as itself, amounts as numbers with two decimals
    (written with render, the one JSON writer here that writes Decimal as a number)."""
    return render(body)


def refusal(body: bytes) -> EnvelopeRefused:
    with pytest.raises(EnvelopeRefused) as raised:
        parse_envelope(body)
    return raised.value


# Money


@given(st.integers(min_value=0, max_value=MAX_AMOUNT_FEN))
def test_fen_to_yuan_and_back_is_the_same_fen_for_every_amount_in_bounds(fen):
    yuan = fen_to_yuan(fen)
    assert yuan.as_tuple().exponent == -2
    assert yuan_to_fen(yuan, "acct_pay") == fen
    assert yuan_to_fen(str(yuan), "acct_pay") == fen
    assert yuan_to_fen(json.loads(str(yuan), parse_float=Decimal), "acct_pay") == fen


@given(st.integers(min_value=-MAX_AMOUNT_FEN, max_value=MAX_AMOUNT_FEN))
def test_negative_amounts_round_trip_where_they_are_allowed(fen):
    assert yuan_to_fen(fen_to_yuan(fen), "acct_pay", allow_negative=True) == fen


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        (Decimal("12.30"), 1230),
        (Decimal("12.3"), 1230),
        (12, 1200),
        (0, 0),
        ("12.30", 1230),
        ("0.01", 1),
        (Decimal("12.300"), 1230),
        (Decimal("1e2"), 10_000),
        (Decimal("1.2345E+2"), 12_345),
        (Decimal("0E+999999999"), 0),
        (Decimal("-0.00"), 0),
        (Decimal("1000000000.00"), MAX_AMOUNT_FEN),
    ],
)
def test_an_amount_that_is_whole_fen_is_converted_exactly(value, fen):
    assert yuan_to_fen(value, "medfee_sumamt") == fen


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Decimal("12.345"), "acct_pay: 12.345 has more than two decimal places"),
        ("12.345", "acct_pay: 12.345 has more than two decimal places"),
        (Decimal("1e-3"), "acct_pay: 0.001 has more than two decimal places"),
        (Decimal("1.23456E+2"), "acct_pay: 123.456 has more than two decimal places"),
        (Decimal("NaN"), "acct_pay: NaN is not an amount; send a number such as 12.30"),
        (Decimal("Infinity"), "acct_pay: Infinity is not an amount; send a number such as 12.30"),
        ("abc", "acct_pay: 'abc' is not an amount in yuan such as 12.30"),
        ("NaN", "acct_pay: 'NaN' is not an amount in yuan such as 12.30"),
        (" 12.30", "acct_pay: ' 12.30' is not an amount in yuan such as 12.30"),
        ("1e2", "acct_pay: '1e2' is not an amount in yuan such as 12.30"),
        ("１２.３０", "acct_pay: '１２.３０' is not an amount in yuan such as 12.30"),
        (True, "acct_pay: true is not an amount; send a number such as 12.30"),
        (False, "acct_pay: false is not an amount; send a number such as 12.30"),
        (None, "acct_pay: missing (null); send an amount in yuan such as 12.30"),
        ({"yuan": 1}, "acct_pay: expected an amount in yuan such as 12.30, got an object"),
        ([1], "acct_pay: expected an amount in yuan such as 12.30, got a list"),
        (12.3, "acct_pay: 12.3 arrived as a binary float; parse the body with parse_float=Decimal"),
        (Decimal("-0.01"), "acct_pay: -0.01 is negative; send zero or more"),
        (-1, "acct_pay: -1 is negative; send zero or more"),
        ("-5.00", "acct_pay: -5.00 is negative; send zero or more"),
        (
            Decimal("1000000000.01"),
            "acct_pay: 1000000000.01 is more than the largest amount, 1000000000.00 yuan",
        ),
        (MAX_AMOUNT_FEN, "acct_pay: 100000000000 is more than the largest amount, 1000000000.00 yuan"),
        (
            Decimal("1E+999999999"),
            "acct_pay: 1E+999999999 is more than the largest amount, 1000000000.00 yuan",
        ),
    ],
)
def test_an_amount_that_is_not_whole_fen_in_bounds_is_refused_naming_the_field(value, message):
    with pytest.raises(AmountRefused) as raised:
        yuan_to_fen(value, "acct_pay")
    assert str(raised.value) == message
    assert raised.value.field == "acct_pay"
    assert message == f"acct_pay: {raised.value.problem}"


def test_a_negative_amount_beyond_the_bound_is_refused_even_where_negatives_are_allowed():
    with pytest.raises(AmountRefused, match=r"less than the smallest amount, -1000000000\.00 yuan"):
        yuan_to_fen(Decimal("-1000000000.01"), "acct_pay", allow_negative=True)
    assert yuan_to_fen("-1000000000.00", "acct_pay", allow_negative=True) == -MAX_AMOUNT_FEN


def test_a_long_tail_of_digits_is_judged_digit_by_digit_not_rounded_away():
    # Decimal arithmetic at 28 digits of precision would round the final 1 away.
    tail = "1." + "0" * 40 + "1"
    with pytest.raises(AmountRefused, match="more than two decimal places"):
        yuan_to_fen(Decimal(tail), "acct_pay")
    assert yuan_to_fen(Decimal("1." + "0" * 5000), "acct_pay") == 100


def test_a_refusal_quotes_at_most_64_characters_of_what_was_sent():
    with pytest.raises(AmountRefused) as raised:
        yuan_to_fen("x" * 10_000, "acct_pay")
    assert len(str(raised.value)) < 120


def test_fen_to_yuan_gives_two_places_and_takes_only_ints():
    assert str(fen_to_yuan(1230)) == "12.30"
    assert str(fen_to_yuan(0)) == "0.00"
    assert str(fen_to_yuan(-5)) == "-0.05"
    assert str(fen_to_yuan(2**63 - 1)) == "92233720368547758.07"
    with pytest.raises(TypeError):
        fen_to_yuan(True)
    with pytest.raises(TypeError):
        fen_to_yuan(12.3)  # type: ignore[arg-type]


# The envelope a HIS sends


def test_a_realistic_his_body_parses_with_every_field_and_money_exact():
    envelope = parse_envelope(encoded(his_body()))
    assert isinstance(envelope, Envelope)
    assert (envelope.infno, envelope.msgid) == ("2207", "H37010200001202612021015300001")
    assert (envelope.mdtrtarea_admvs, envelope.insuplc_admdvs) == ("370102", "370102")
    assert (envelope.fixmedins_code, envelope.fixmedins_name) == (INSTITUTION, "济南市历下区人民医院")
    assert (envelope.opter_type, envelope.opter, envelope.opter_name) == ("1", "0012", "收费员张")
    assert (envelope.signtype, envelope.infver, envelope.recer_sys_code) == ("SM3", "V1.0", "MDTRT")
    assert (envelope.dev_no, envelope.dev_safe_info, envelope.cainfo) == ("", "", "")
    assert envelope.sign_no == "370000G0000000012345"
    assert envelope.inf_time == "2026-12-02 10:15:30"
    assert sent_at(envelope) == SENT
    data = input_node(envelope)
    assert str(data["medfee_sumamt"]) == "128.50"  # a Decimal as written, never a float
    assert amount(data, "medfee_sumamt") == 12_850
    assert amount(data, "psn_part_amt") == 3_855
    assert text(data, "psn_no", max_length=32) == ID_NUMBER
    assert text(data, "acct_used_flag") == "1"


def test_amounts_written_without_a_point_or_with_an_exponent_arrive_exact():
    raw = encoded(his_body()).replace(b'"medfee_sumamt":128.50', b'"medfee_sumamt":128')
    raw = raw.replace(b'"psn_part_amt":38.55', b'"psn_part_amt":3.855E+1')
    data = input_node(parse_envelope(raw))
    assert (amount(data, "medfee_sumamt"), amount(data, "psn_part_amt")) == (12_800, 3_855)


def test_integers_in_a_body_stay_exact_integers():
    body = his_body(input={"data": {"fixmedins_setl_cnt": 12, "big": 123456789012345678901234567890}})
    data = input_node(parse_envelope(encoded(body)))
    assert data["fixmedins_setl_cnt"] == 12 and type(data["fixmedins_setl_cnt"]) is int
    assert data["big"] == 123456789012345678901234567890


def test_fields_sent_as_numbers_or_null_are_read_as_text_or_empty():
    envelope = parse_envelope(encoded(his_body(opter_type=1, opter=12, dev_no=None, cainfo=None)))
    assert (envelope.opter_type, envelope.opter, envelope.dev_no, envelope.cainfo) == ("1", "12", "", "")


def test_a_body_with_a_byte_order_mark_is_read():
    assert parse_envelope(b"\xef\xbb\xbf" + encoded(his_body())).infno == "2207"


def test_absent_input_is_an_empty_input_and_a_named_node_is_found():
    body = his_body()
    del body["input"]
    assert parse_envelope(encoded(body)).input == {}
    sign_in = his_body(infno="9001", input={"signIn": {"opter_no": "0012", "mac": "", "ip": "10.0.0.8"}})
    assert input_node(parse_envelope(encoded(sign_in)), "signIn")["ip"] == "10.0.0.8"


def test_unknown_top_level_keys_are_ignored():
    assert parse_envelope(encoded(his_body(vendor_extension="anything"))).infno == "2207"


@pytest.mark.parametrize(
    ("msgid", "problem"),
    [
        ("H37010200001202612021015300001" + "0", "has 31 characters, not 30"),
        ("H3701020000120261202101530001", "has 29 characters, not 30"),
        ("H37010200002202612021015300001", "does not begin with fixmedins_code H37010200001"),
        ("H37010200001202613021015300001", "characters 13-26 ('20261302101530') are not a real time"),
        ("H37010200001202602301015300001", "characters 13-26 ('20260230101530') are not a real time"),
        ("H37010200001202612022415300001", "characters 13-26 ('20261202241530') are not a real time"),
        ("H3701020000120261202 015300001", "characters 13-26 ('20261202 01530') are not a real time"),
        (INSTITUTION + "２0261202101530" + "0001", "are not a real time"),
        ("H3701020000120261202101530000A", "the last four characters ('000A') are not digits"),
        ("", "missing; send fixmedins_code + yyyyMMddHHmmss + a four-digit sequence"),
        (None, "missing"),
        ({"id": 1}, "expected text, got an object"),
        ("H" * 5000, "is longer than 64 characters (5000)"),
    ],
)
def test_a_msgid_of_another_shape_is_refused_as_invalid_msgid(msgid, problem):
    refused = refusal(encoded(his_body(msgid=msgid)))
    assert refused.reason == "INVALID_MSGID"
    assert refused.message.startswith("msgid: ")
    assert problem in refused.message
    assert len(refused.message) < 200


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"infno=2207&msgid=1",
        b"{'infno': '2207'}",
        b'{"infno": "2207",',
        b"\xff\xfe{}",
        b'{"infno": "2207", "input": {"data": {"medfee_sumamt": NaN}}}',
        b'{"infno": "2207", "input": {"data": {"medfee_sumamt": Infinity}}}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"infno": "2207", "n": ' + b"9" * 5000 + b"}",
        b'{"infno": "2207", "input": {"data": {"psn_part_amt": 1e99999999999999999999}}}',
        b'{"infno": "2207", "input": {"data": {"psn_part_amt": 1e-99999999999999999999}}}',
    ],
    ids=[
        "empty",
        "form",
        "single-quotes",
        "truncated",
        "not-utf8",
        "nan",
        "infinity",
        "deep",
        "huge-int",
        "huge-exponent",
        "huge-negative-exponent",
    ],
)
def test_a_body_that_is_not_json_is_not_an_envelope(body):
    with pytest.raises(NotAnEnvelope, match=r"not JSON|not UTF-8"):
        parse_envelope(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "the body is JSON but an array, not the envelope object"),
        (b'[{"infno": "2207"}]', "the body is JSON but an array, not the envelope object"),
        (b'"2207"', "the body is JSON but text, not the envelope object"),
        (b"2207", "the body is JSON but a number, not the envelope object"),
        (b"null", "the body is JSON but null, not the envelope object"),
        (b"{}", "the body has no infno"),
        (b'{"infno": 2207}', "the body has no infno"),
        (b'{"infno": null, "msgid": "x"}', "the body has no infno"),
        (b'{"input": {"infno": "2207"}}', "the body has no infno"),
    ],
)
def test_json_that_is_not_an_object_with_a_text_infno_is_not_an_envelope(body, message):
    with pytest.raises(NotAnEnvelope) as raised:
        parse_envelope(body)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("changes", "reason", "message"),
    [
        ({"infno": "22O7"}, "UNKNOWN_TRANSACTION", "infno: '22O7' is not a four-digit transaction code"),
        ({"infno": "22070"}, "UNKNOWN_TRANSACTION", "infno: '22070' is not a four-digit transaction code"),
        ({"fixmedins_code": ""}, "MALFORMED_REQUEST", "fixmedins_code: missing; send the institution code"),
        ({"fixmedins_code": None}, "MALFORMED_REQUEST", "fixmedins_code: missing; send the institution code"),
        (
            {"fixmedins_code": "H3701020000"},
            "MALFORMED_REQUEST",
            "fixmedins_code: 'H3701020000' is not a 12-character institution code",
        ),
        (
            {"fixmedins_code": "H37010200/01"},
            "MALFORMED_REQUEST",
            "fixmedins_code: 'H37010200/01' is not a 12-character institution code",
        ),
        (
            {"inf_time": "2026/12/02 10:15:30"},
            "MALFORMED_REQUEST",
            "inf_time: '2026/12/02 10:15:30' is not a real time yyyy-MM-dd HH:mm:ss",
        ),
        (
            {"inf_time": "2026-02-30 10:15:30"},
            "MALFORMED_REQUEST",
            "inf_time: '2026-02-30 10:15:30' is not a real time yyyy-MM-dd HH:mm:ss",
        ),
        ({"inf_time": None}, "MALFORMED_REQUEST", "inf_time: missing; send the time sent as yyyy-MM-dd HH:mm:ss"),
        ({"input": [1]}, "MALFORMED_REQUEST", "input: expected an object, got an array"),
        ({"input": "data"}, "MALFORMED_REQUEST", "input: expected an object, got text"),
        ({"opter": {"id": "0012"}}, "MALFORMED_REQUEST", "opter: expected text, got an object"),
        ({"opter_type": True}, "MALFORMED_REQUEST", "opter_type: expected text, got true"),
        ({"sign_no": "9" * 65}, "MALFORMED_REQUEST", "is longer than 64 characters (65)"),
        ({"fixmedins_name": "医" * 201}, "MALFORMED_REQUEST", "is longer than 200 characters (201)"),
    ],
)
def test_an_envelope_with_a_bad_field_is_refused_naming_the_field(changes, reason, message):
    refused = refusal(encoded(his_body(**changes)))
    assert refused.reason == reason
    assert message in refused.message
    assert str(refused) == f"[{reason}] {refused.message}"


def test_long_fields_a_his_fills_with_signatures_are_accepted():
    envelope = parse_envelope(encoded(his_body(cainfo="A" * 4096, dev_safe_info="B" * 2000)))
    assert len(envelope.cainfo) == 4096


def test_a_key_given_twice_is_refused_rather_than_one_of_them_chosen():
    raw = encoded(his_body()).replace(b'"psn_setlway"', b'"medfee_sumamt":0.01,"psn_setlway"')
    refused = refusal(raw)
    assert (refused.reason, refused.message) == ("MALFORMED_REQUEST", "'medfee_sumamt' appears twice in one object")


def test_a_lone_surrogate_in_text_is_refused():
    raw = encoded(his_body(opter_name="X")).replace(b'"X"', b'"\\ud800"')
    assert refusal(raw).reason == "MALFORMED_REQUEST"


def test_a_refusal_quotes_at_most_64_characters_and_masks_id_numbers():
    refused = refusal(encoded(his_body(opter="x" * 40 + " " + ID_NUMBER + " " + "y" * 50)))
    assert ID_NUMBER not in refused.message
    assert "370102********1237" in refused.message
    assert len(refused.message) < 140


def test_input_node_and_rows_refuse_what_is_absent_or_of_another_shape():
    envelope = parse_envelope(
        encoded(his_body(input={"data": [], "drugdetail": [{"med_list_codg": "X"}, 3], "druginfo": {}}))
    )
    with pytest.raises(EnvelopeRefused, match=r"input.data: expected an object, got an array"):
        input_node(envelope)
    with pytest.raises(EnvelopeRefused, match=r"input.mdtrtinfo: missing"):
        input_node(envelope, "mdtrtinfo")
    assert input_node(envelope, "druginfo") == {}
    with pytest.raises(EnvelopeRefused, match=r"input.drugdetail\[1\]: expected an object, got a number"):
        input_rows(envelope, "drugdetail")
    assert input_rows(envelope, "feedetail", required=False) == []
    with pytest.raises(EnvelopeRefused, match=r"input.feedetail: missing"):
        input_rows(envelope, "feedetail")


def test_text_reads_numbers_as_their_text_and_refuses_the_rest():
    node = {"a": "x", "n": 37010219, "d": Decimal("12.30"), "empty": "", "null": None, "list": [], "long": "z" * 65}
    assert (text(node, "a"), text(node, "n"), text(node, "d")) == ("x", "37010219", "12.30")
    assert text(node, "empty", required=False) == text(node, "absent", required=False) == ""
    assert text(node, "long", max_length=65) == "z" * 65
    for key, problem in [
        ("empty", "empty: missing"),
        ("null", "null: missing"),
        ("absent", "absent: missing"),
        ("list", "list: expected text, got an array"),
        ("long", r"is longer than 64 characters \(65\)"),
    ]:
        with pytest.raises(EnvelopeRefused, match=problem) as raised:
            text(node, key)
        assert raised.value.reason == "MALFORMED_REQUEST"


def test_text_refuses_control_characters_and_a_node_that_is_no_object():
    node = {"nul": "MD\x0001", "bell": "a\x07", "del": "a\x7f", "lines": "line one\r\nline\ttwo"}
    assert text(node, "lines") == "line one\r\nline\ttwo"
    for key, problem in [("nul", "U\\+0000 at 2"), ("bell", "U\\+0007 at 1"), ("del", "U\\+007F at 1")]:
        with pytest.raises(EnvelopeRefused, match=f"{key}: holds the control character {problem}") as raised:
            text(node, key)
        assert raised.value.reason == "MALFORMED_REQUEST"
    for not_a_node in ("abc", [], None):
        with pytest.raises(EnvelopeRefused, match="opter_no: its node is"):
            text(not_a_node, "opter_no")  # type: ignore[arg-type]


def test_amount_refusals_are_invalid_amount_naming_the_field():
    node = {"acct_pay": Decimal("12.345"), "absent_ok": None}
    with pytest.raises(EnvelopeRefused) as raised:
        amount(node, "acct_pay")
    assert (raised.value.reason, raised.value.message) == (
        "INVALID_AMOUNT",
        "acct_pay: 12.345 has more than two decimal places",
    )
    assert amount(node, "absent_ok", default=0) == 0
    with pytest.raises(EnvelopeRefused, match="medfee_sumamt: missing"):
        amount(node, "medfee_sumamt")


def test_three_decimals_in_a_realistic_body_are_refused_as_an_invalid_amount():
    raw = encoded(his_body()).replace(b'"medfee_sumamt":128.50', b'"medfee_sumamt":128.505')
    data = input_node(parse_envelope(raw))
    with pytest.raises(EnvelopeRefused, match=r"^\[INVALID_AMOUNT\] medfee_sumamt: 128.505 has more than two"):
        amount(data, "medfee_sumamt")


# The answer


def test_render_writes_compact_utf8_json_with_decimals_to_two_places():
    answer = success(
        {
            "setlinfo": {
                "setl_id": "S0001",
                "medfee_sumamt": fen_to_yuan(12_850),
                "acct_pay": Decimal("12.3"),
                "acct_mulaid_pay": fen_to_yuan(0),
                "balc": Decimal("1E+2"),
                "refund": fen_to_yuan(-5),
                "psn_name": "王小明",
                "count": 3,
                "flags": [True, False, None],
            }
        },
        refmsgid="370102202612021015300000000001",
        received=SENT,
        responded=SENT + timedelta(milliseconds=42),
    )
    assert (
        render(answer)
        == (
            '{"infcode":"0","inf_refmsgid":"370102202612021015300000000001",'
            '"refmsg_time":"20261202101530000","respond_time":"20261202101530042",'
            '"err_msg":"","warn_msg":"","output":{"setlinfo":{"setl_id":"S0001","medfee_sumamt":128.50,'
            '"acct_pay":12.30,"acct_mulaid_pay":0.00,"balc":100.00,"refund":-0.05,"psn_name":"王小明",'
            '"count":3,"flags":[true,false,null]}}}'
        ).encode()
    )
    assert json.loads(render(answer), parse_float=Decimal)["output"]["setlinfo"]["acct_pay"] == Decimal("12.30")


def test_render_writes_text_as_json_does_and_a_lone_surrogate_as_its_escape():
    odd = {"quote": 'a"b\\c\n\t\x01', "surrogate": "\ud800", "emoji": "🏥"}
    rendered = render(odd)
    assert rendered == json.dumps(odd, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")
    assert json.loads(rendered) == odd


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (Decimal("12.345"), ValueError),
        (Decimal("NaN"), ValueError),
        (Decimal("1E+40"), ValueError),
        (12.3, TypeError),
        ({1: "x"}, TypeError),
        (object(), TypeError),
    ],
)
def test_render_refuses_what_is_not_money_or_json_rather_than_round_it(value, error):
    with pytest.raises(error):
        render({"output": value})


def test_a_failure_carries_the_reason_in_err_msg_and_masks_id_numbers():
    answer = failure(
        "CAP_REACHED",
        f"the share of {ID_NUMBER} this year is used up",
        refmsgid="370102202612021015300000000002",
        received=SENT,
        responded=SENT,
    )
    assert answer == {
        "infcode": "-1",
        "inf_refmsgid": "370102202612021015300000000002",
        "refmsg_time": "20261202101530000",
        "respond_time": "20261202101530000",
        "err_msg": "[CAP_REACHED] the share of 370102********1237 this year is used up",
        "warn_msg": "",
        "output": {},
    }


def test_a_success_carries_its_warning():
    answer = success({}, refmsgid="r", received=SENT, responded=SENT, warn_msg="余额不足")
    assert (answer["infcode"], answer["err_msg"], answer["warn_msg"]) == ("0", "", "余额不足")


def test_ref_msgid_is_region_then_china_time_then_a_ten_digit_serial():
    utc = datetime(2026, 12, 2, 2, 15, 30, tzinfo=UTC)  # 10:15:30 in Beijing
    assert ref_msgid("370102", utc, 7) == "370102" + "20261202101530" + "0000000007"
    assert len(ref_msgid("370102", utc, 9_999_999_999)) == 30
    for bad in [("37010", utc, 1), ("37010X", utc, 1), ("370102", utc, -1), ("370102", utc, 10**10)]:
        with pytest.raises(ValueError):
            ref_msgid(*bad)
    with pytest.raises(ValueError, match="naive"):
        ref_msgid("370102", datetime(2026, 12, 2), 1)


def test_stamp_is_china_time_to_the_millisecond():
    late_utc = datetime(2026, 12, 31, 16, 0, 0, 999_999, tzinfo=UTC)  # already New Year in Beijing
    assert stamp(late_utc) == "20270101000000999"
    assert stamp(SENT.replace(microsecond=5_000)) == "20261202101530005"
    with pytest.raises(ValueError):
        stamp(datetime(2026, 12, 2))


# Signed headers

KEY = AccessKey("ak-jinan-0001", INSTITUTION, b"a secret of this institution")
KEYS = {KEY.access_key: KEY}
BODY = encoded(his_body())


def test_signed_headers_verify_as_the_institution_of_the_key():
    headers = sign(KEY, "2207", BODY, SENT)
    assert tuple(headers) == HEADERS
    assert headers["_api_name"] == "2207"
    assert headers["_api_version"] == "1.0.0"
    assert headers["_api_timestamp"] == str(int(SENT.timestamp()) * 1000)
    assert verify(headers, BODY, KEYS, SENT + timedelta(seconds=3)) == INSTITUTION


def test_the_string_to_sign_is_the_sorted_headers_and_the_body_hash():
    headers = sign(KEY, "2207", b"{}", SENT)
    assert string_to_sign(headers, b"{}") == (
        f"_api_access_key=ak-jinan-0001&_api_name=2207&_api_timestamp={headers['_api_timestamp']}"
        "&_api_version=1.0.0&body_sha256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )


def refused_signature(headers: dict[str, str], body: bytes = BODY, now: datetime = SENT) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as raised:
        verify(headers, body, KEYS, now)
    return raised.value


def test_a_tampered_body_is_a_bad_signature():
    headers = sign(KEY, "2207", BODY, SENT)
    tampered = BODY.replace(b"128.50", b"1.50")
    assert refused_signature(headers, tampered).reason == "BAD_SIGNATURE"


def test_a_tampered_header_is_a_bad_signature():
    headers = sign(KEY, "2207", BODY, SENT) | {"_api_name": "2208"}
    assert refused_signature(headers).reason == "BAD_SIGNATURE"


def test_a_signature_made_with_another_secret_is_a_bad_signature():
    forged = sign(AccessKey(KEY.access_key, INSTITUTION, b"guessed"), "2207", BODY, SENT)
    assert refused_signature(forged).reason == "BAD_SIGNATURE"


def test_a_signature_of_any_characters_is_a_bad_signature_not_a_crash():
    headers = sign(KEY, "2207", BODY, SENT)
    for signature in ["签名", "\udcff", "x" * 10_000]:
        assert refused_signature(headers | {"_api_signature": signature}).reason == "BAD_SIGNATURE"


def test_headers_that_could_be_read_as_another_split_are_a_bad_signature():
    headers = sign(KEY, "2207&_api_timestamp=1", BODY, SENT)
    assert refused_signature(headers).reason == "BAD_SIGNATURE"


def test_an_unknown_access_key_is_refused_as_unknown():
    stranger = AccessKey("ak-nobody", INSTITUTION, b"a secret of this institution")
    refused = refused_signature(sign(stranger, "2207", BODY, SENT))
    assert (refused.reason, refused.message) == ("UNKNOWN_ACCESS_KEY", "_api_access_key 'ak-nobody' is not a known key")


@pytest.mark.parametrize("header", HEADERS)
def test_a_missing_or_empty_header_is_refused_as_missing(header):
    headers = sign(KEY, "2207", BODY, SENT)
    assert refused_signature({k: v for k, v in headers.items() if k != header}).reason == "SIGNATURE_MISSING"
    assert refused_signature(headers | {header: ""}).reason == "SIGNATURE_MISSING"


@pytest.mark.parametrize(
    "skew",
    [SIGNATURE_WINDOW + timedelta(milliseconds=1), -(SIGNATURE_WINDOW + timedelta(milliseconds=1)), timedelta(days=1)],
    ids=["just-too-old", "just-too-far-ahead", "a-day-old"],
)
def test_a_timestamp_outside_the_window_either_way_is_refused(skew):
    headers = sign(KEY, "2207", BODY, SENT)
    refused = refused_signature(headers, now=SENT + skew)
    assert refused.reason == "TIMESTAMP_OUT_OF_WINDOW"


@pytest.mark.parametrize("skew", [SIGNATURE_WINDOW, -SIGNATURE_WINDOW])
def test_a_timestamp_at_the_edge_of_the_window_is_accepted(skew):
    assert verify(sign(KEY, "2207", BODY, SENT), BODY, KEYS, SENT + skew) == INSTITUTION


def test_a_timestamp_that_is_not_milliseconds_is_a_bad_signature():
    headers = sign(KEY, "2207", BODY, SENT)
    for timestamp in ["2026-12-02", "-1", "1" * 16]:
        assert refused_signature(headers | {"_api_timestamp": timestamp}).reason == "BAD_SIGNATURE"


def test_verify_looks_headers_up_in_any_mapping():
    class Headers(dict):
        pass

    assert verify(Headers(sign(KEY, "2207", BODY, SENT)), BODY, KEYS, SENT) == INSTITUTION


def test_an_access_key_shows_no_secret():
    assert "a secret of this institution" not in repr(KEY)


# Access keys file


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "access_keys.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_access_keys_are_loaded_by_key_with_their_secret_as_utf8_bytes(tmp_path):
    path = write(
        tmp_path,
        {
            "keys": [
                {"access_key": "ak-1", "institution_code": INSTITUTION, "secret": "密钥-one"},
                {"access_key": "ak-2", "institution_code": "P37010200002", "secret": "two"},
            ]
        },
    )
    keys = load_access_keys(path)
    assert keys == {
        "ak-1": AccessKey("ak-1", INSTITUTION, "密钥-one".encode()),
        "ak-2": AccessKey("ak-2", "P37010200002", b"two"),
    }
    assert verify(sign(keys["ak-1"], "1101", b"{}", SENT), b"{}", keys, SENT) == INSTITUTION


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{", "not JSON: Expecting property name enclosed in double quotes (line 1 column 2)"),
        ([], 'expected {"keys": [...]}'),
        ({"keys": {}}, 'expected {"keys": [...]}'),
        ({"keys": ["ak-1"]}, "keys[0]: expected an object"),
        ({"keys": [{"access_key": "ak-1", "institution_code": INSTITUTION}]}, "keys[0]: secret is missing or empty"),
        (
            {"keys": [{"access_key": "ak-1", "institution_code": INSTITUTION, "secret": ""}]},
            "keys[0]: secret is missing or empty",
        ),
        (
            {"keys": [{"access_key": "", "institution_code": INSTITUTION, "secret": "s"}]},
            "keys[0]: access_key is missing or empty",
        ),
        (
            {"keys": [{"access_key": "a k", "institution_code": INSTITUTION, "secret": "s"}]},
            "keys[0]: access_key 'a k' is not 1-64 letters, digits",
        ),
        (
            {"keys": [{"access_key": "ak-1", "institution_code": "H370", "secret": "s"}]},
            "keys[0]: institution_code 'H370' is not 12 letters and digits",
        ),
        (
            {
                "keys": [
                    {"access_key": "ak-1", "institution_code": INSTITUTION, "secret": "first"},
                    {"access_key": "ak-1", "institution_code": "H37010200002", "secret": "second"},
                ]
            },
            "keys[1]: access_key 'ak-1' is given twice",
        ),
    ],
)
def test_a_bad_access_keys_file_is_refused_naming_the_file_and_the_entry(tmp_path, content, problem):
    path = write(tmp_path, content)
    with pytest.raises(ValueError) as raised:
        load_access_keys(path)
    assert str(raised.value).startswith(f"access keys file {path}")
    assert problem in str(raised.value)
    assert "first" not in str(raised.value) and "second" not in str(raised.value)


def test_a_missing_access_keys_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"access keys file .*nowhere\.json: no such file"):
        load_access_keys(tmp_path / "nowhere.json")
