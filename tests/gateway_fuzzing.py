"""Hypothesis strategies for fuzzing the national-interface gateway: bodies that are no envelope
at all (random bytes, random JSON), and envelopes of every transaction whose fields mix values a
HIS would send (ID numbers of people who exist, amounts such as "12.30", real dates, settlement
ids and msgids the gateway handed out earlier) with hostile ones (huge and negative numbers,
three decimals, Unicode digits, empty text, objects and lists where text belongs, null, very
long and control-character text).

Values that only exist at run time (a setl_id an earlier answer gave, a fresh msgid) are drawn
as placeholders and filled in when the body is written, so the strategies stay static.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from tests.gateway_helpers import ADMDVS, CODE, OTHER

SETTLES = ("2207", "2304", "2102")
PRE_SETTLES = ("2206", "2303", "2101")
UNDOES = ("2208", "2305", "2103")
SERVED = ("9001", "9002", "1101", *PRE_SETTLES, *SETTLES, *UNDOES, "2601", "3201")
UNKNOWN = ("9999", "2209", "0000", "1100", "abcd", "22070", "", " 2207", "２２０７", "٢٢٠٧")


@dataclass(frozen=True)
class Raw:
    """JSON text written as it is: what no Python value serialises to (NaN, 5,000-digit integers)."""

    text: str


@dataclass(frozen=True)
class FromPool:
    """The `index`-th (modulo) value of a run-time pool: "ids", "setl_ids", "msgids", "mdtrt_ids"."""

    pool: str
    index: int


@dataclass(frozen=True)
class FreshMsgid:
    """A msgid not used before, for the envelope's institution."""


HUGE = "1" + "0" * 5000
HOSTILE_TEXT = (
    "", " ", "²", "٣", "١٢.٣٠", "１２.３０", "12.345", "-1", "-0.01", "1e400", "1E+2", "NaN", "Infinity", "0x10",
    "12,30", "12.30 ", "\x00", "a\nb", "\x7f", "\u202e", "\ufeff", "😀", "x" * 70_000, "王" * 300,
    "'; DROP TABLE relayed_settlements; --", "%s%n{0}", "../../etc/passwd", "0" * 19, "9" * 18, "None", "null",
    "2026-02-30", "9999-12-31", "0001-01-01", "2026-03-02T00:00:00", "99", "-", "+1", "01", "1" * 40,
)  # fmt: skip
HOSTILE_VALUES: tuple[Any, ...] = (
    Decimal("12.345"), Decimal("-5.00"), Decimal("-0.01"), Decimal("1E+400"), Decimal("1E-400"),
    Decimal("1000000000.01"), Decimal("1E+12"), Decimal("0E-7"), 10**30, -(10**30), 2**63, 2**64, -1, 0,
    True, False, None, [], {}, {"a": "b"}, ["12.30"], [[[[]]]], {"": {"": None}},
    Raw("NaN"), Raw("-Infinity"), Raw(HUGE), Raw("1e99999"), Raw("-0"), Raw('"\\ud800"'), Raw("1.0e-5"),
)  # fmt: skip
# Amounts no field takes: three decimals, negatives, Unicode digits, not numbers at all.
INVALID_AMOUNTS: tuple[Any, ...] = (
    Decimal("12.345"), Decimal("-1.00"), Decimal("1E-3"), Decimal("1E+12"), 10**30, "²", "٣", "１２.３０", "12,30",
    "12.30 ", "1e2", "", "-0.01", True, {}, [], ["1.00"], {"value": "1.00"},
)  # fmt: skip

# The values every field is tried with in the sweep, and that the random run favours.
CLASSIC: tuple[Any, ...] = (
    "", "²", "٣", "\x00", "a\x01b", "x" * 70_000, None, {}, ["1"], -1, Decimal("12.345"), Decimal("-5.00"), 10**30,
    True, "0001-01-01", "9999-12-31",
)  # fmt: skip

hostile: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(CLASSIC),
    st.sampled_from(CLASSIC),
    st.sampled_from(CLASSIC),
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from(HOSTILE_VALUES),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8", categories=["Cc", "Nd", "No", "Zs"]), max_size=20),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.recursive(
        st.none() | st.booleans() | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3), max_leaves=5
    ),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


def yuan(low: str = "0", high: str = "300") -> st.SearchStrategy[Any]:
    """A plausible amount, as a HIS writes it: a JSON number, text such as "12.30", or a whole number."""
    number = st.decimals(min_value=Decimal(low), max_value=Decimal(high), places=2)
    return st.one_of(number, number.map(lambda d: f"{d:f}"), number.map(int))


def pooled(pool: str) -> st.SearchStrategy[FromPool]:
    return st.integers(min_value=0, max_value=10_000).map(lambda i: FromPool(pool, i))


DAYS = ("2026-03-01", "2026-03-02", "2026-03-03", "2026-02-01", "2026-03-31", "0001-01-01", "9999-12-31")
# Each field a transaction reads, with what a HIS would plausibly put there.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "psn_no": pooled("ids"),
    "mdtrt_cert_no": pooled("ids"),
    "certno": pooled("ids"),
    "mdtrt_cert_type": st.sampled_from(["01", "02", "03"]),
    "psn_cert_type": st.just("01"),
    "med_type": st.sampled_from(["11", "14", "21", "41", "51"]),
    "medfee_sumamt": yuan("0", "400"),
    "psn_part_amt": yuan("0", "200"),
    "fund_pay_sumamt": yuan("0", "200"),
    "acct_pay": yuan("0", "200"),
    "psn_setlway": st.sampled_from(["01", "02"]),
    "mdtrt_id": pooled("mdtrt_ids"),
    "chrg_bchno": st.sampled_from(["CB0001", "CB0002"]),
    "insutype": st.sampled_from(["310", "390"]),
    "acct_used_flag": st.sampled_from(["0", "1"]),
    "mid_setl_flag": st.sampled_from(["0", "1"]),
    "refd_setl_flag": st.sampled_from(["0", "1"]),
    "setl_id": pooled("setl_ids"),
    "omsgid": pooled("msgids"),
    "oinfno": st.sampled_from([*sorted(SETTLES + UNDOES), "2206", "9001"]),
    "stmt_begndate": st.sampled_from(DAYS),
    "stmt_enddate": st.sampled_from(DAYS),
    "clr_type": st.sampled_from(["11", "21", "41", "99", ""]),
    "fixmedins_setl_cnt": st.sampled_from(["0", "1", "2", "5", 3]),
    "setl_optins": st.just(ADMDVS),
    "opter_no": st.sampled_from(["0001", "0002"]),
    "begntime": st.sampled_from(["2026-03-02 08:00:00", "2026-02-28 10:30:00"]),
    "dscg_time": st.sampled_from(["2026-03-02 10:00:00", "2026-03-05 10:00:00"]),
    "card_sn": st.just(""),
}
CHARGE = (
    "psn_no", "mdtrt_cert_type", "mdtrt_cert_no", "med_type", "medfee_sumamt", "psn_part_amt", "fund_pay_sumamt",
    "psn_setlway", "mdtrt_id", "chrg_bchno", "insutype", "acct_used_flag", "mid_setl_flag", "begntime", "dscg_time",
)  # fmt: skip
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "9001": ("signIn", ("opter_no",)),
    "9002": ("signOut", ("sign_no", "opter_no")),
    "1101": ("data", ("mdtrt_cert_type", "mdtrt_cert_no", "certno", "psn_cert_type", "card_sn", "begntime")),
    **{infno: ("data", CHARGE) for infno in PRE_SETTLES + SETTLES},
    **{infno: ("data", ("setl_id", "mdtrt_id", "psn_no")) for infno in UNDOES},
    "2601": ("data", ("psn_no", "omsgid", "oinfno")),
    "3201": (
        "data",
        (
            "stmt_begndate",
            "stmt_enddate",
            "medfee_sumamt",
            "fund_pay_sumamt",
            "acct_pay",
            "fixmedins_setl_cnt",
            "clr_type",
            "refd_setl_flag",
            "setl_optins",
        ),
    ),
}
# Inpatient and pharmacy messages may carry their bill in other nodes too.
OTHER_NODES = ("mdtrtinfo", "setlinfo", "feedetail", "drugdetail", "diseinfo")


@st.composite
def field_value(draw: st.DrawFn, name: str, hostility: int) -> Any:
    """Plausible, or hostile with a chance of `hostility` in 20."""
    if draw(st.integers(0, 19)) >= hostility:
        return draw(PLAUSIBLE.get(name, st.text(max_size=10)))
    return draw(hostile)


@st.composite
def node_for(draw: st.DrawFn, infno: str) -> dict[str, Any]:
    """A transaction's input node: all plausible a third of the time, else with one field in
    twenty to one in two hostile; a field now and then left out."""
    hostility = draw(st.sampled_from([0, 0, 1, 2, 5, 10]))
    _, names = FIELDS.get(infno, ("data", tuple(draw(st.sets(st.sampled_from(sorted(PLAUSIBLE)), max_size=6)))))
    node: dict[str, Any] = {}
    for name in names:
        if draw(st.integers(0, 19)) == 0:
            continue  # left out
        node[name] = draw(field_value(name, hostility))
    if infno in PRE_SETTLES + SETTLES and draw(st.integers(0, 2)) > 0:
        # Amounts that agree with each other, so many bills go through.
        medfee = draw(st.decimals(min_value=0, max_value=400, places=2))
        part = draw(st.decimals(min_value=0, max_value=medfee, places=2))
        node.update(medfee_sumamt=medfee, psn_part_amt=part)
        if draw(st.booleans()):
            node["fund_pay_sumamt"] = medfee - part
        if hostility and draw(st.integers(0, 2)) == 0:
            node[draw(st.sampled_from(["medfee_sumamt", "psn_part_amt", "fund_pay_sumamt"]))] = draw(hostile)
        if "mdtrt_cert_no" in node and draw(st.booleans()):
            node["mdtrt_cert_no"] = node.get("psn_no")
    if draw(st.integers(0, 19)) == 0:
        node.update(draw(st.dictionaries(st.text(max_size=8), hostile, max_size=3)))  # unknown keys
    return node


ENVELOPE_PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "mdtrtarea_admvs": st.sampled_from([ADMDVS, ADMDVS, "320000", "620100", ""]),
    "insuplc_admdvs": st.sampled_from([ADMDVS, "620100"]),
    "opter": st.sampled_from(["0001", "0002", ""]),
    "inf_time": st.sampled_from(["2026-03-02 09:00:00", "2026-03-02 23:59:59"]),
    "sign_no": st.sampled_from(["", "20260302ABCDEF"]),
}


@st.composite
def envelopes(draw: st.DrawFn, infnos: st.SearchStrategy[str] | None = None) -> dict[str, Any]:
    """A well-formed envelope (fixmedins_code and msgid right most of the time) of a served or
    unknown transaction, its input drawn by node_for; now and then an envelope field is hostile."""
    infno = draw(infnos if infnos is not None else st.sampled_from([*SERVED, *SERVED, *SERVED, *UNKNOWN]))
    node_name, _ = FIELDS.get(infno, ("data", ()))
    body = {**envelope_of("9001", None), "infno": infno, "input": {node_name: draw(node_for(infno))}}
    for name, strategy in ENVELOPE_PLAUSIBLE.items():
        if draw(st.integers(0, 3)) == 0:
            body[name] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        body["msgid"] = draw(pooled("msgids"))  # a msgid used before: its first answer, or MSGID_REUSED
    if draw(st.integers(0, 14)) == 0:
        body["fixmedins_code"] = OTHER
    if draw(st.integers(0, 9)) == 0:
        extra = draw(st.sampled_from(OTHER_NODES))
        body["input"][extra] = draw(st.one_of(node_for(infno), st.lists(node_for(infno), max_size=2), hostile))
    if draw(st.integers(0, 11)) == 0:
        name = draw(st.sampled_from(["input", *body.keys()]))
        if name == "input":
            body["input"] = draw(st.one_of(hostile, st.just({node_name: draw(hostile)})))
        else:
            body[name] = draw(hostile)
    if draw(st.integers(0, 19)) == 0:
        del body[draw(st.sampled_from(sorted(body)))]
    return body


# What every request is: a body of random bytes, a random JSON value, or an envelope.
bodies: st.SearchStrategy[Any] = st.one_of(
    st.binary(max_size=300),
    json_values,
    envelopes(),
    envelopes(),
    envelopes(),
    envelopes(),
)


@st.composite
def refused_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """An envelope that must be refused whatever else it says: it names another institution
    than the certificate's, its msgid is broken, a settlement's medfee_sumamt is no amount, the
    undo names no settlement, or the reversal names an infno that cannot be reversed."""
    kind = draw(st.sampled_from(["institution", "msgid", "amount", "undo", "reversal"]))
    # The infno is drawn here, not read back: envelopes() may make the body's own one hostile or drop it.
    if kind == "amount":
        infno = draw(st.sampled_from(PRE_SETTLES + SETTLES))
        body = draw(envelopes(st.just(infno)))
        broken = draw(st.sampled_from(INVALID_AMOUNTS))
        body["input"] = {"data": {**draw(node_for(infno)), "medfee_sumamt": broken}}
    elif kind == "undo":
        infno = draw(st.sampled_from(UNDOES))
        body = draw(envelopes(st.just(infno)))
        body["input"] = {"data": {**draw(node_for(infno)), "setl_id": draw(st.sampled_from(["NOSUCH", "GW"]))}}
    elif kind == "reversal":
        body = draw(envelopes(st.just("2601")))
        body["input"] = {"data": {**draw(node_for("2601")), "oinfno": draw(st.sampled_from(["2206", "9001", "3201"]))}}
    else:
        body = draw(envelopes(st.sampled_from(SERVED)))
    if kind == "institution":
        body["fixmedins_code"] = OTHER
    elif kind == "msgid":
        body["msgid"] = draw(st.sampled_from(["", "short", CODE + "2026023009000001", OTHER + "202603020900000001"]))
    return body


# For the sweep: an input each served transaction would accept, so that the one field made
# hostile is all that is wrong with it.
_CHILD = FromPool("ids", 0)
_CHARGE_BASE: dict[str, Any] = {
    "psn_no": _CHILD, "mdtrt_cert_type": "02", "mdtrt_cert_no": _CHILD, "med_type": "11", "medfee_sumamt": "10.00",
    "psn_part_amt": "2.00", "fund_pay_sumamt": "8.00", "psn_setlway": "01", "mdtrt_id": "MD0001",
    "chrg_bchno": "CB0001", "insutype": "390", "acct_used_flag": "1", "mid_setl_flag": "0",
    "begntime": "2026-03-02 08:00:00", "dscg_time": "2026-03-02 10:00:00",
}  # fmt: skip
BASELINES: dict[str, dict[str, Any]] = {
    "9001": {"opter_no": "0001"},
    "9002": {"sign_no": "20260302ABCDEF012345", "opter_no": "0001"},
    "1101": {"mdtrt_cert_type": "02", "mdtrt_cert_no": _CHILD, "certno": _CHILD, "psn_cert_type": "01"},
    **{infno: _CHARGE_BASE for infno in PRE_SETTLES + SETTLES},
    **{infno: {"setl_id": FromPool("setl_ids", -1), "mdtrt_id": "MD0001", "psn_no": _CHILD} for infno in UNDOES},
    "2601": {"psn_no": _CHILD, "omsgid": FromPool("msgids", -3), "oinfno": "2207"},
    "3201": {
        "stmt_begndate": "2026-03-01",
        "stmt_enddate": "2026-03-02",
        "medfee_sumamt": "0.00",
        "fund_pay_sumamt": "0.00",
        "acct_pay": "0.00",
        "fixmedins_setl_cnt": "0",
        "clr_type": "11",
        "refd_setl_flag": "0",
        "setl_optins": ADMDVS,
    },
}
# Whole inputs the one-field sweep cannot reach: periods at the ends of the calendar.
PERIODS = [
    ("0001-01-01", "0001-01-01"),
    ("9999-12-31", "9999-12-31"),
    ("2026-02-29", "2026-03-01"),
    ("2024-02-29", "2024-02-29"),
]


def envelope_of(infno: str, node: Any) -> dict[str, Any]:
    """The envelope a HIS sends, with `node` as its input node."""
    node_name, _ = FIELDS[infno]
    return {
        "infno": infno, "msgid": FreshMsgid(), "mdtrtarea_admvs": ADMDVS, "insuplc_admdvs": ADMDVS,
        "recer_sys_code": "FSI_LOCAL", "dev_no": "", "dev_safe_info": "", "cainfo": "", "signtype": "SM3",
        "infver": "V1.0", "opter_type": "1", "opter": "0001", "opter_name": "收费员",
        "inf_time": "2026-03-02 09:00:00", "fixmedins_code": CODE, "fixmedins_name": "南京市第一医院",
        "sign_no": "", "input": {node_name: node},
    }  # fmt: skip


# The sweep of the normal run: CLASSIC without what only some fields care about.
QUICK_SWEEP = tuple(v for v in CLASSIC if not (isinstance(v, str) and (len(v) > 100 or "-" in v or "\x01" in v)))


def sweep(values: tuple[Any, ...] = CLASSIC) -> list[dict[str, Any]]:
    """Each served transaction's accepted input with one field at a time made each of `values`;
    then the envelope fields of a settlement and a sign-in's operator, one at a time, the same way."""
    sent: list[dict[str, Any]] = []
    for infno in SERVED:
        sent.append(envelope_of(infno, dict(BASELINES[infno])))
        for name in BASELINES[infno]:
            sent.extend(envelope_of(infno, {**BASELINES[infno], name: value}) for value in values)
    for begin, end in PERIODS:
        sent.append(envelope_of("3201", {**BASELINES["3201"], "stmt_begndate": begin, "stmt_enddate": end}))
    for name in envelope_of("2207", {}):
        if name not in ("infno", "fixmedins_code", "input"):
            sent.extend({**envelope_of("2207", dict(BASELINES["2207"])), name: value} for value in values)
    sent.extend({**envelope_of("9001", dict(BASELINES["9001"])), "opter": value} for value in values)
    return sent


def dumps(value: Any) -> str:
    """JSON text of a drawn value: Decimal as its exact digits, Raw as it is."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)
