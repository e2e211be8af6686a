"""Regional mutual-aid policy as versioned data, and money in fen.

Relationship scope, caps, region checks and sharing settings (versions with an
effective date) are all per-region policy;
money is an integer number of fen, shown as two-decimal yuan.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import DomainError, Reason
from shared.money import INT64_MAX, MAX_BALANCE_FEN, format_yuan, parse_yuan
from shared.policy import (
    CROSS_PROVINCE_PILOTS,
    MAX_POLICY_COUNT,
    NATIONAL_DEFAULT,
    NATIONAL_WALLET_TRANSFERS_PER_DAY,
    NO_LIMIT,
    GeographicScope,
    RegionPolicy,
    example_policies,
    policy_from_dict,
    region_allows,
    select_policy,
    wallet_limit,
)
from shared.regions import NATIONAL
from shared.relationships import RelationshipScope

CST = timezone(timedelta(hours=8))


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=CST)


def policy(admdvs: str, effective_from: datetime, **values: Any) -> RegionPolicy:
    return RegionPolicy(admdvs=admdvs, effective_from=effective_from, **values)


@pytest.fixture(scope="module")
def shipped() -> list[RegionPolicy]:
    return example_policies()


def shipped_by_code(policies: list[RegionPolicy], admdvs: str) -> RegionPolicy:
    (found,) = (p for p in policies if p.admdvs == admdvs)
    return found


# Shipped examples.


def test_a_policy_version_names_its_region_and_start_in_china_standard_time() -> None:
    """People read policy versions; a version taking effect at midnight in Nanjing says so,
    whatever zone the effective time was given in."""
    utc_evening = datetime(2024, 6, 30, 16, tzinfo=UTC)
    assert policy("320100", utc_evening).version == "320100@2024-07-01T00:00:00+08:00"
    assert NATIONAL_DEFAULT.version == "000000@2024-07-01T00:00:00+08:00"


def test_every_shipped_example_policy_loads_and_validates(shipped: list[RegionPolicy]) -> None:
    """The seeds' regional variants ship as data, each a sane policy."""
    raw = json.loads(resources.files("shared").joinpath("example_policies.json").read_text(encoding="utf-8"))
    assert len(shipped) == len(raw) > 0
    assert [p.admdvs for p in shipped] == [item["admdvs"] for item in raw]
    for example in shipped:
        assert example.validated() is example
        assert example.effective_from.tzinfo is not None
        assert example.description


def test_the_shipped_examples_carry_the_seeds_numbers(shipped: list[RegionPolicy]) -> None:
    """Beijing 60% quota and 500 yuan per visit, Shanghai 70%, seed 002's 5 per card."""
    beijing = shipped_by_code(shipped, "110000")
    assert beijing.annual_share_ratio_percent == 60
    assert beijing.per_use_limit_fen == 50_000
    assert beijing.max_beneficiaries == 6
    assert shipped_by_code(shipped, "310000").annual_share_ratio_percent == 70
    seed_002 = shipped_by_code(shipped, "231100")
    assert seed_002.relationship_scope is RelationshipScope.CORE
    assert seed_002.max_beneficiaries == 5
    assert seed_002.geographic_scope is GeographicScope.SAME_POOLING_REGION
    lhasa = shipped_by_code(shipped, "540100")
    assert lhasa.min_grantor_balance_fen == 300_000
    assert lhasa.min_days_before_unbind == 90


def test_the_shipped_cross_province_pilots_list_each_other(shipped: list[RegionPolicy]) -> None:
    """The pilot provinces of seed 003, as data."""
    pilots = [p for p in shipped if p.geographic_scope is GeographicScope.CROSS_PROVINCE]
    assert {p.admdvs for p in pilots} == {"320000", "370000", "620000"}
    for pilot in pilots:
        assert pilot.cross_province_provinces == CROSS_PROVINCE_PILOTS
        assert pilot.admdvs[:2] in pilot.cross_province_provinces
    assert {"13", "32", "34", "37", "41", "42", "50", "51", "62"} == CROSS_PROVINCE_PILOTS


# Selecting the policy in force.

NATIONAL_2024 = policy(NATIONAL, at(2024, 7, 1), description="national")
JIANGSU_2025 = policy("320000", at(2025, 6, 1), description="Jiangsu province-wide")
NANJING_2021 = policy("320100", at(2021, 10, 1), max_beneficiaries=5, description="Nanjing v1")
NANJING_2024 = policy("320100", at(2024, 7, 1), max_beneficiaries=6, description="Nanjing v2")
NANJING_2030 = policy("320100", at(2030, 1, 1), max_beneficiaries=7, description="Nanjing future")
ALL = [NANJING_2030, NATIONAL_2024, NANJING_2021, JIANGSU_2025, NANJING_2024]


def test_a_pooling_regions_own_policy_governs_over_its_provinces_and_the_national_one() -> None:
    """The most specific policy in force applies."""
    assert select_policy(ALL, "320100", at(2026, 1, 1)) is NANJING_2024


def test_a_pooling_region_without_its_own_policy_follows_its_province() -> None:
    assert select_policy(ALL, "320200", at(2026, 1, 1)) is JIANGSU_2025


def test_a_province_without_any_policy_follows_the_national_policy() -> None:
    assert select_policy(ALL, "330100", at(2026, 1, 1)) is NATIONAL_2024


def test_the_built_in_national_default_applies_where_no_policy_was_ever_put() -> None:
    assert select_policy([], "330100", at(2026, 1, 1)) is NATIONAL_DEFAULT
    assert select_policy([NANJING_2024], "330100", at(2026, 1, 1)) is NATIONAL_DEFAULT


def test_the_latest_version_already_in_force_is_chosen() -> None:
    """Versions have an effective date; a settlement uses the one in force at its time."""
    assert select_policy(ALL, "320100", at(2023, 1, 1)) is NANJING_2021
    assert select_policy(ALL, "320100", at(2024, 7, 1)) is NANJING_2024
    assert select_policy(ALL, "320100", at(2029, 12, 31, 23)) is NANJING_2024


def test_a_future_version_is_not_used_before_its_date_and_is_used_from_it() -> None:
    assert select_policy(ALL, "320100", at(2030, 1, 1) - timedelta(microseconds=1)) is NANJING_2024
    assert select_policy(ALL, "320100", at(2030, 1, 1)) is NANJING_2030


def test_a_regions_policy_not_yet_in_force_leaves_its_province_policy_in_charge() -> None:
    only_future = [JIANGSU_2025, NANJING_2030]
    assert select_policy(only_future, "320100", at(2026, 1, 1)) is JIANGSU_2025
    assert select_policy(only_future, "320100", at(2025, 1, 1)) is NATIONAL_DEFAULT


def test_effective_dates_compare_as_instants_whatever_their_time_zone(shipped: list[RegionPolicy]) -> None:
    """Jiangsu's pilot starts at midnight Beijing time, 16:00 UTC the day before."""
    jiangsu = shipped_by_code(shipped, "320000")
    assert select_policy(shipped, "320100", datetime(2025, 5, 31, 15, 59, 59, tzinfo=UTC)) is not jiangsu
    assert select_policy(shipped, "320100", datetime(2025, 5, 31, 16, 0, tzinfo=UTC)) is jiangsu


def test_each_version_has_its_own_version_name_so_decisions_can_record_it() -> None:
    """A settlement records which version it used."""
    assert NANJING_2021.version != NANJING_2024.version
    assert NANJING_2024.version.startswith("320100@")
    assert NANJING_2024.version == replace(NANJING_2024, description="edited").version


# Region checks.


def test_under_same_pooling_region_only_the_same_region_may_bind() -> None:
    scope = policy("231100", at(2021, 10, 1), geographic_scope=GeographicScope.SAME_POOLING_REGION)
    assert region_allows(scope, scope, "231100", "231100")
    assert not region_allows(scope, scope, "231100", "230100")


def test_under_same_province_any_two_regions_of_the_province_may_bind_but_not_beyond() -> None:
    scope = policy("320000", at(2024, 7, 1), geographic_scope=GeographicScope.SAME_PROVINCE)
    assert region_allows(scope, scope, "320100", "320200")
    assert not region_allows(scope, NATIONAL_DEFAULT, "320100", "330100")


def cross(admdvs: str, *provinces: str) -> RegionPolicy:
    return policy(
        admdvs,
        at(2025, 6, 1),
        geographic_scope=GeographicScope.CROSS_PROVINCE,
        cross_province_provinces=frozenset(provinces),
    )


def test_across_provinces_both_sides_must_run_cross_province_aid_and_list_each_other() -> None:
    jiangsu, shandong = cross("320000", "32", "37"), cross("370000", "32", "37")
    assert region_allows(jiangsu, shandong, "320100", "370100")
    assert region_allows(shandong, jiangsu, "370100", "320100")


def test_cross_province_aid_is_refused_when_the_other_side_only_allows_its_own_province() -> None:
    jiangsu = cross("320000", "32", "33")
    zhejiang = policy("330000", at(2024, 7, 1), geographic_scope=GeographicScope.SAME_PROVINCE)
    assert not region_allows(jiangsu, zhejiang, "320100", "330100")
    assert not region_allows(zhejiang, jiangsu, "330100", "320100")


def test_cross_province_aid_is_refused_when_either_side_does_not_list_the_other() -> None:
    jiangsu_lists_shandong = cross("320000", "37")
    shandong_lists_hebei = cross("370000", "13")
    assert not region_allows(jiangsu_lists_shandong, shandong_lists_hebei, "320100", "370100")
    assert not region_allows(shandong_lists_hebei, jiangsu_lists_shandong, "370100", "320100")


def test_a_cross_province_region_still_allows_bindings_within_its_own_province() -> None:
    jiangsu = cross("320000", "37")
    assert region_allows(jiangsu, jiangsu, "320100", "320500")


def test_the_shipped_pilots_allow_jiangsu_and_gansu_but_not_jiangsu_and_beijing(shipped: list[RegionPolicy]) -> None:
    moment = at(2025, 7, 1)
    nanjing, lanzhou, beijing = (select_policy(shipped, code, moment) for code in ("320100", "620100", "110100"))
    assert region_allows(nanjing, lanzhou, "320100", "620100")
    assert not region_allows(nanjing, beijing, "320100", "110100")
    before_the_pilot = at(2025, 5, 1)
    assert not region_allows(
        select_policy(shipped, "320100", before_the_pilot),
        select_policy(shipped, "620100", before_the_pilot),
        "320100",
        "620100",
    )


# Reading policies from data.

MINIMAL = {"admdvs": "320100", "effective_from": "2025-01-01T00:00:00+08:00"}


def test_a_minimal_policy_reads_with_the_national_defaults() -> None:
    read = policy_from_dict(MINIMAL)
    assert read.admdvs == "320100"
    assert read.effective_from == at(2025, 1, 1)
    assert read.contact_change_grace_days == 15
    assert read.annual_share_ratio_percent == 0  # no quota unless the region sets one


def test_a_policy_with_an_unknown_key_is_refused_naming_the_key() -> None:
    with pytest.raises(DomainError) as caught:
        policy_from_dict({**MINIMAL, "max_members": 5})
    assert caught.value.reason is Reason.FIELD_INVALID
    assert caught.value.field == "policy"
    assert "max_members" in caught.value.message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("annual_share_ratio_percent", 101),
        ("annual_share_ratio_percent", -1),
        ("max_beneficiaries", 0),
        ("max_beneficiaries", -5),
        ("per_use_limit_fen", -1),
        ("chronic_disease_per_use_limit_fen", -1),
        ("contact_change_grace_days", -1),
        ("contact_change_grace_days", 2**31 - 1),
        ("min_days_before_unbind", 2**31 - 1),
        ("impersonation_suspension_threshold", -1),
        ("min_grantor_balance_fen", -1),
        ("min_days_before_unbind", -1),
        ("wallet_transfers_per_day", -2),
        ("wallet_transfer_max_fen", -2),
        # Above anything an account can hold or a person can reach: a typing error, and near
        # int64's end a sum of two would overflow in SQL.
        ("per_use_limit_fen", MAX_BALANCE_FEN + 1),
        ("chronic_disease_per_use_limit_fen", 2**63 - 1),
        ("min_grantor_balance_fen", 2**63 - 1),
        ("wallet_transfer_max_fen", MAX_BALANCE_FEN + 1),
        ("wallet_transfers_per_day", MAX_POLICY_COUNT + 1),
        ("impersonation_suspension_threshold", 2**31 - 1),
    ],
)
def test_a_policy_number_out_of_range_is_refused_naming_the_field(name: str, value: int) -> None:
    with pytest.raises(DomainError) as caught:
        policy_from_dict({**MINIMAL, name: value})
    assert caught.value.reason is Reason.FIELD_INVALID
    assert caught.value.field == f"policy.{name}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("annual_share_ratio_percent", 0),
        ("annual_share_ratio_percent", 100),
        ("max_beneficiaries", 1),
        ("per_use_limit_fen", MAX_BALANCE_FEN),
        ("wallet_transfers_per_day", MAX_POLICY_COUNT),
        ("impersonation_suspension_threshold", MAX_POLICY_COUNT),
    ],
)
def test_a_policy_number_at_the_edge_of_its_range_is_accepted(name: str, value: int) -> None:
    assert getattr(policy_from_dict({**MINIMAL, name: value}), name) == value


def test_a_policy_effective_date_without_a_time_zone_is_refused_naming_the_field() -> None:
    with pytest.raises(DomainError) as caught:
        policy_from_dict({**MINIMAL, "effective_from": "2025-01-01T00:00:00"})
    assert caught.value.field == "policy.effective_from"


def test_a_policy_for_an_unknown_region_or_pilot_province_is_refused_naming_the_field() -> None:
    with pytest.raises(DomainError) as caught:
        policy_from_dict({**MINIMAL, "admdvs": "990100"})
    assert caught.value.reason is Reason.INVALID_ADMDVS
    assert caught.value.field == "policy.admdvs"
    with pytest.raises(DomainError) as caught:
        policy_from_dict({**MINIMAL, "cross_province_provinces": ["32", "99"]})
    assert caught.value.reason is Reason.INVALID_ADMDVS
    assert caught.value.field == "policy.cross_province_provinces"


def test_the_national_default_may_be_put_as_data() -> None:
    assert policy_from_dict({**MINIMAL, "admdvs": NATIONAL}).admdvs == NATIONAL


# Money.


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (50, "0.50"),
        (12345, "123.45"),
        (-5, "-0.05"),
        (-12345, "-123.45"),
        (200_000, "2000.00"),
    ],
)
def test_fen_are_shown_as_yuan_with_two_decimals(fen: int, yuan: str) -> None:
    assert format_yuan(fen) == yuan
    assert parse_yuan(yuan) == fen


@pytest.mark.parametrize(("yuan", "fen"), [("123", 12300), ("123.4", 12340), ("0.1", 10), ("-1", -100), ("1.", 100)])
def test_yuan_with_fewer_than_two_decimals_are_read_exactly(yuan: str, fen: int) -> None:
    assert parse_yuan(yuan) == fen


@given(st.integers(min_value=-INT64_MAX - 1, max_value=INT64_MAX))
def test_every_int64_amount_survives_formatting_and_parsing_exactly(fen: int) -> None:
    """No floats anywhere: amounts beyond 2**53 fen would lose digits through a float."""
    parsed = parse_yuan(format_yuan(fen))
    assert type(parsed) is int
    assert parsed == fen


@given(st.integers(min_value=0, max_value=10**17), st.integers(min_value=0, max_value=99), st.booleans())
def test_every_two_decimal_yuan_text_survives_parsing_and_formatting(whole: int, cents: int, negative: bool) -> None:
    text = f"{'-' if negative and (whole or cents) else ''}{whole}.{cents:02d}"
    assert format_yuan(parse_yuan(text)) == text


@pytest.mark.parametrize(
    "text",
    ["1.234", "abc", "", "-", ".50", "1.2.3", "1,000.00", "¥1.00", "1e3", "1.5a", "+1.00", " 1.00", "1.-5", "0x10"],
)
def test_text_that_is_not_yuan_with_at_most_two_decimals_is_refused(text: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_yuan(text)
    assert caught.value.reason is Reason.INVALID_AMOUNT


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("--1.00", id="double-minus-read-as-negative"),
        pytest.param("²", id="superscript-raises-ValueError"),
        pytest.param("１２.００", id="full-width-digits-accepted"),
    ],
)
def test_malformed_signs_and_non_ascii_digits_are_refused_as_invalid_amounts(text: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_yuan(text)
    assert caught.value.reason is Reason.INVALID_AMOUNT


@pytest.mark.parametrize(
    ("stored", "meant"),
    [(0, NATIONAL_WALLET_TRANSFERS_PER_DAY), (NO_LIMIT, None), (1, 1), (5, 5)],
)
def test_an_unset_wallet_limit_means_the_national_rule_and_minus_one_means_none(stored, meant) -> None:
    assert wallet_limit(stored, NATIONAL_WALLET_TRANSFERS_PER_DAY) == meant
