"""Resident ID numbers (GB 11643) and administrative division codes (GB/T 2260).

Persons are named by their 18-digit ID number; pooling regions by a
6-digit admdvs whose first two digits name the province. The
ID number's own area code is the place of first registration, never the
insurance location.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.china_time import CHINA_STANDARD_TIME
from shared.errors import DomainError, Reason
from shared.identity import validate_id_number
from shared.regions import NATIONAL, lookup_chain, province_code, province_of, validate_admdvs

# GB 11643 (ISO 7064 MOD 11-2): weight of position i is 2**(17 - i) mod 11.
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS = "10X98765432"

# Real district codes: Beijing Dongcheng, Nanjing Xuanwu, Lanzhou Chengguan.
# python-stdnum dates 320102 and 620102 from 1983; older holders must still validate.
AREA_CODES = ("110101", "320102", "620102")
FIRST_BIRTH_DATE = date(1930, 1, 1)
LAST_BIRTH_DATE = date(2024, 12, 31)


def make_id_number(area6: str, birth_yyyymmdd: str, seq3: str) -> str:
    """An ID number with the right GB 11643 check character for its 17 digits."""
    body = area6 + birth_yyyymmdd + seq3
    assert len(body) == 17 and body.isdigit(), body
    total = sum(int(digit) * weight for digit, weight in zip(body, WEIGHTS, strict=True))
    return body + CHECK_CHARACTERS[total % 11]


def refusal(value: str, field: str = "id_number") -> DomainError:
    with pytest.raises(DomainError) as caught:
        validate_id_number(value, field)
    return caught.value


def test_the_helper_agrees_with_a_published_example_number() -> None:
    """The check-digit helper itself: python-stdnum's doctest number, 360426199101010071."""
    assert make_id_number("360426", "19910101", "007") == "360426199101010071"


@pytest.mark.parametrize(
    ("area", "birth", "seq"),
    [
        ("110101", "19500101", "123"),
        ("110101", "20000229", "123"),
        ("320102", "19900307", "001"),
        ("320102", "19830101", "456"),
        ("620102", "20000229", "999"),
        ("620102", "20240101", "000"),
    ],
)
def test_a_well_formed_id_number_is_accepted_unchanged(area: str, birth: str, seq: str) -> None:
    """Persons are named by their 18-digit resident ID number."""
    id_number = make_id_number(area, birth, seq)
    assert validate_id_number(id_number) == id_number


def test_a_lowercase_x_check_character_is_normalised_to_uppercase() -> None:
    """The check character 10 is written X; people type x, the key is always X."""
    id_number = make_id_number("110101", "20000229", "123")
    assert id_number.endswith("X")
    assert validate_id_number(id_number.lower()) == id_number


def test_an_id_number_with_a_wrong_check_digit_is_refused_naming_the_field() -> None:
    id_number = make_id_number("320102", "19900307", "001")
    wrong = id_number[:-1] + ("0" if id_number[-1] != "0" else "1")
    error = refusal(wrong, "grantor.id_number")
    assert error.reason is Reason.INVALID_ID_NUMBER
    assert error.field == "grantor.id_number"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(make_id_number("110101", "19900307", "123")[:-1], id="17-characters"),
        pytest.param(make_id_number("110101", "19900307", "123") + "1", id="19-characters"),
        pytest.param("110101900307123", id="old-15-digit-number"),
    ],
)
def test_an_id_number_of_the_wrong_length_is_refused_naming_the_field(value: str) -> None:
    error = refusal(value, "beneficiary.id_number")
    assert error.reason is Reason.INVALID_ID_NUMBER
    assert error.field == "beneficiary.id_number"


@pytest.mark.parametrize("birth", ["19990230", "19991301", "19990001", "19990100", "19000229"])
def test_an_id_number_with_an_impossible_birth_date_is_refused_even_with_a_right_check_digit(birth: str) -> None:
    error = refusal(make_id_number("110101", birth, "123"), "patient_id_number")
    assert error.reason is Reason.INVALID_ID_NUMBER
    assert error.field == "patient_id_number"


@pytest.mark.parametrize("area", ["990101", "000000"])
def test_an_id_number_with_an_unknown_area_code_is_refused_even_with_a_right_check_digit(area: str) -> None:
    error = refusal(make_id_number(area, "19900307", "123"), "id_number")
    assert error.reason is Reason.INVALID_ID_NUMBER
    assert error.field == "id_number"


@pytest.mark.parametrize("area", ["110199", "329999"])
def test_an_id_number_with_an_unknown_district_of_a_known_province_is_refused_not_crashed(area: str) -> None:
    error = refusal(make_id_number(area, "19900307", "123"), "id_number")
    assert error.reason is Reason.INVALID_ID_NUMBER
    assert error.field == "id_number"


def test_an_id_number_whose_area_code_was_abolished_before_the_birth_is_refused() -> None:
    """A code abolished before the holder was born cannot be theirs (Nanjing Baixia, abolished 2013)."""
    assert validate_id_number(make_id_number("320103", "19900307", "123"))
    error = refusal(make_id_number("320103", "20150307", "123"))
    assert error.reason is Reason.INVALID_ID_NUMBER


@pytest.mark.parametrize("value", ["11010119900307123A", "1101011990O307123X", "11010119900307-23X"])
def test_an_id_number_with_letters_among_its_digits_is_refused(value: str) -> None:
    assert refusal(value).reason is Reason.INVALID_ID_NUMBER


def test_an_empty_id_number_is_a_missing_field_not_an_invalid_one() -> None:
    error = refusal("", "grantor.id_number")
    assert error.reason is Reason.FIELD_REQUIRED
    assert error.field == "grantor.id_number"


@pytest.mark.parametrize("area", ["320102", "620102"])
def test_an_elderly_person_registered_in_a_district_coded_in_1983_is_accepted(area: str) -> None:
    """Parents and grandparents born long before 1983 are the usual beneficiaries."""
    id_number = make_id_number(area, "19500101", "123")
    assert validate_id_number(id_number) == id_number


def test_an_id_number_born_in_the_future_is_refused() -> None:
    assert refusal(make_id_number("110101", "20990101", "123")).reason is Reason.INVALID_ID_NUMBER


@pytest.fixture
def host_a_day_behind_china(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone 24 hours behind UTC: its date is always before China's."""
    monkeypatch.setenv("TZ", "BEHIND+24")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_baby_born_today_in_china_is_not_in_the_future_whatever_zone_the_host_keeps(host_a_day_behind_china) -> None:
    today_in_china = datetime.now(CHINA_STANDARD_TIME).date()
    newborn = make_id_number("110101", today_in_china.strftime("%Y%m%d"), "123")
    assert validate_id_number(newborn) == newborn


birth_dates = st.dates(min_value=FIRST_BIRTH_DATE, max_value=LAST_BIRTH_DATE)
sequence_codes = st.integers(min_value=0, max_value=999).map(lambda n: f"{n:03d}")
valid_id_numbers = st.builds(
    make_id_number, st.sampled_from(AREA_CODES), birth_dates.map(lambda d: d.strftime("%Y%m%d")), sequence_codes
)


@settings(deadline=None)  # the first call loads python-stdnum's area-code database
@given(valid_id_numbers)
def test_every_id_number_built_from_valid_parts_is_accepted(id_number: str) -> None:
    assert validate_id_number(id_number) == id_number


def test_the_check_character_changes_whenever_any_single_digit_changes() -> None:
    """Why single-digit errors are always caught: 11 is prime and every weight is 1..10, so a
    change of d (1..9) at any position shifts the weighted sum by w*d, never a multiple of 11."""
    assert all(weight * delta % 11 != 0 for weight in WEIGHTS for delta in range(1, 10))


@settings(deadline=None)
@given(valid_id_numbers, st.integers(min_value=0, max_value=17), st.integers(min_value=1, max_value=10))
def test_changing_any_single_character_of_a_valid_id_number_makes_it_invalid(
    id_number: str, position: int, shift: int
) -> None:
    """GB 11643's MOD 11-2 check detects every single-character substitution, check character included."""
    alphabet = "0123456789X" if position == 17 else "0123456789"
    shift = (shift - 1) % (len(alphabet) - 1) + 1
    replacement = alphabet[(alphabet.index(id_number[position]) + shift) % len(alphabet)]
    changed = id_number[:position] + replacement + id_number[position + 1 :]
    assert changed != id_number
    with pytest.raises(DomainError) as caught:
        validate_id_number(changed)
    assert caught.value.reason is Reason.INVALID_ID_NUMBER


# Administrative division codes (admdvs).


@pytest.mark.parametrize("code", ["110000", "320100", "320102", "620100", "622900", "540100", "810000"])
def test_a_six_digit_code_of_a_known_province_is_a_valid_admdvs(code: str) -> None:
    """A pooling region is a 6-digit GB/T 2260 code; the first two digits are the province."""
    assert validate_admdvs(code) == code


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("32010", id="5-digits"),
        pytest.param("3201020", id="7-digits"),
        pytest.param("32O100", id="letter-O"),
        pytest.param("ABCDEF", id="letters"),
        pytest.param("３２０１００", id="full-width-digits"),
        pytest.param("990100", id="unknown-province"),
        pytest.param("000100", id="province-00"),
    ],
)
def test_a_malformed_or_unknown_admdvs_is_refused_naming_the_field(code: str) -> None:
    with pytest.raises(DomainError) as caught:
        validate_admdvs(code, "institution_admdvs")
    assert caught.value.reason is Reason.INVALID_ADMDVS
    assert caught.value.field == "institution_admdvs"


def test_an_empty_admdvs_is_a_missing_field() -> None:
    with pytest.raises(DomainError) as caught:
        validate_admdvs("", "insured_person.admdvs")
    assert caught.value.reason is Reason.FIELD_REQUIRED
    assert caught.value.field == "insured_person.admdvs"


def test_the_national_code_is_accepted_only_where_a_national_policy_is_meant() -> None:
    """Rule: "000000" names the national default policy, never a person's region."""
    assert validate_admdvs(NATIONAL, "policy.admdvs", allow_national=True) == NATIONAL
    with pytest.raises(DomainError) as caught:
        validate_admdvs(NATIONAL, "admdvs")
    assert caught.value.reason is Reason.INVALID_ADMDVS


def test_the_province_of_a_region_is_its_first_two_digits() -> None:
    assert province_of("320102") == "32"
    assert province_of("622900") == "62"


def test_the_province_code_of_a_region_is_its_province_wide_code() -> None:
    assert province_code("320102") == "320000"
    assert province_code("320100") == "320000"
    assert province_code("320000") == "320000"


@pytest.mark.parametrize(
    ("code", "chain"),
    [
        ("320102", ("320102", "320000", "000000")),
        ("320100", ("320100", "320000", "000000")),
        ("320000", ("320000", "000000")),
        ("000000", ("000000",)),
    ],
)
def test_the_lookup_chain_runs_from_the_region_to_its_province_to_the_national_default(
    code: str, chain: tuple[str, ...]
) -> None:
    """A region's own policy, else its province's, else the national one."""
    assert lookup_chain(code) == chain
