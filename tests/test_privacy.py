"""Least data (最小必要): what personal data looks like to those who may not see it whole.

An ID number keeps its first six and last four characters, a name its first and last
character, a mobile number its first three and last four digits; free text is scrubbed of
anything shaped like an ID number or a mobile number."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.status import MAX_MESSAGE, error_info_of, status_of
from shared.errors import DomainError, Reason
from shared.identity import birth_date
from shared.privacy import mask_id_number, mask_name, mask_phone, scrub, scrub_key
from tests.helpers import make_id_number


@pytest.mark.parametrize(
    ("id_number", "shown"),
    [
        ("320102198001010118", "320102********0118"),
        ("11010119900307123X", "110101********123X"),
        ("1234567890", "**********"),
        ("12345678901", "123456*8901"),
        ("", ""),
    ],
)
def test_an_id_number_shows_only_its_area_and_its_last_four_characters(id_number, shown):
    assert mask_id_number(id_number) == shown


@pytest.mark.parametrize(
    ("name", "shown"),
    [("王", "*"), ("王国", "王*"), ("王建国", "王*国"), ("欧阳建国", "欧**国"), ("", "")],
)
def test_a_name_shows_only_its_first_and_last_character(name, shown):
    assert mask_name(name) == shown


@pytest.mark.parametrize(
    ("phone", "shown"),
    [("13912345678", "139****5678"), ("12345678", "123*5678"), ("1234567", "*******"), ("", "")],
)
def test_a_phone_number_shows_only_its_first_three_and_last_four_digits(phone, shown):
    assert mask_phone(phone) == shown


def test_free_text_is_scrubbed_of_id_numbers_and_mobile_numbers_and_nothing_else():
    text = "payer 320102198001010118 (tel 13912345678) owes 12345 fen on bill 2026112900000000000001"
    assert scrub(text) == "payer 320102********0118 (tel 139****5678) owes 12345 fen on bill 2026112900000000000001"


@given(
    area=st.sampled_from(["110101", "320102", "620102", "440305"]),
    birth=st.dates(date(1900, 1, 1), date(2025, 12, 31)).map(lambda day: day.strftime("%Y%m%d")),
    sequence=st.integers(0, 999),
    before=st.text(alphabet=" :,(", max_size=3),
    after=st.text(alphabet=" :,)", max_size=3),
)
def test_no_scrubbed_text_keeps_the_birth_date_and_sequence_of_an_id_number(area, birth, sequence, before, after):
    id_number = make_id_number(area, birth, sequence)
    scrubbed = scrub(f"{before}{id_number}{after}")
    assert id_number[6:14] not in scrubbed
    assert scrubbed == f"{before}{mask_id_number(id_number)}{after}"


def test_a_request_id_whose_hex_holds_eleven_phone_like_digits_is_logged_whole():
    """The CI run that found this: a random UUID ending in ``f13133481523`` was masked."""
    request_id = "04dc42b4-4da8-45df-a5bd-f13133481523"
    assert scrub(f"request_id={request_id}") == f"request_id={request_id}"


@given(st.uuids().map(str))
def test_no_request_id_or_trace_id_is_changed_by_scrubbing(request_id):
    assert scrub(f"request_id={request_id} trace={request_id.replace('-', '')}") == (
        f"request_id={request_id} trace={request_id.replace('-', '')}"
    )


@given(st.uuids().map(str), st.integers(0, 10**20))
def test_a_request_id_of_hex_or_of_digits_that_hold_no_id_number_is_logged_whole(uuid_key, counter):
    assert scrub_key(uuid_key) == uuid_key
    numeric = f"{counter:021d}"
    if not any(birth_date(numeric[i : i + 18]) for i in range(len(numeric) - 17)):
        assert scrub_key(numeric) == numeric


def test_an_id_number_glued_to_letters_or_digits_in_a_request_id_is_masked():
    number = make_id_number("320102", "19800101", 11)
    masked = mask_id_number(number)
    assert scrub_key(f"R{number}") == f"R{masked}"
    assert scrub_key(f"9{number}001") == f"9{masked}001"
    assert scrub_key(f"his-{number}-2") == f"his-{masked}-2"


def test_a_mobile_number_in_chinese_text_is_still_masked():
    assert scrub("电话13912345678，身份证320102198001010118。") == "电话139****5678，身份证320102********0118。"


def test_a_database_failure_is_logged_by_its_class_and_place_never_the_row_the_driver_quotes(databases, caplog):
    """PostgreSQL's DETAIL quotes the row it refused (`Key (name)=(…)`): a name there is no shape
    the log filter knows, so the message itself stays out of the log."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError

    from services.common.interceptors import _log_database_failure

    name = "".join(["欧阳", "秀英"])  # built, so the traceback's source lines cannot show it
    engine = create_engine(databases.url("binding"))
    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE TEMPORARY TABLE named (name VARCHAR(20) UNIQUE)"))
            connection.execute(text("INSERT INTO named VALUES (:name)"), {"name": name})
            with pytest.raises(IntegrityError) as raised:
                connection.execute(text("INSERT INTO named VALUES (:name)"), {"name": name})
    finally:
        engine.dispose()
    with caplog.at_level("ERROR", logger="gongji.rpc"):
        _log_database_failure("/gongji.binding.v1.BindingService/CreateBinding", raised.value)
    logged = caplog.text
    assert "unexpected database failure in /gongji.binding.v1.BindingService/CreateBinding" in logged
    assert type(raised.value.orig).__name__ in logged and "test_privacy.py" in logged
    assert name not in logged


@given(
    birth=st.dates(date(1900, 1, 1), date(2025, 12, 31)).map(lambda day: day.strftime("%Y%m%d")),
    sequence=st.integers(0, 999),
    lead=st.integers(0, MAX_MESSAGE),
)
def test_a_refusal_text_cut_at_its_limit_never_keeps_part_of_an_id_number_the_masking_would_miss(birth, sequence, lead):
    """A refusal's text is shortened before it is scrubbed for another party: a cut inside an ID
    number would leave its area and birth date without the shape the masking looks for."""
    id_number = make_id_number("320102", birth, sequence)
    message = "x" * lead + f" {id_number} is not bound to the patient, see the binding service"
    status = status_of(DomainError(Reason.NOT_PARTY_TO_BINDING, message, metadata={"who": message}), "gongji")
    shown = [scrub(status.message), *(scrub(value) for value in error_info_of(status).metadata.values())]
    assert all(len(text) <= MAX_MESSAGE for text in shown)
    # The mask shows six and four digits; a longer run is part of the birth date and sequence.
    assert not [text for text in shown if re.search(r"[0-9]{7,}", text)]
