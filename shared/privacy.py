"""Least data (最小必要): how personal data looks to those who may not see it whole.

An ID number keeps its first six and last four characters (``320102********0118``), a name
its first and last character (``王*国``), a phone its first three and last four digits.
Free text (error messages, log lines) is scrubbed of anything shaped like an ID number or a
mobile number, wherever it came from.
"""

from __future__ import annotations

import re

from shared.identity import birth_date

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])([0-9]{6})[0-9]{8}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")
# Both patterns stop at ASCII letters as well as digits: request ids and trace ids are hex,
# and a run of eleven digits inside one is not a phone number (masking it would break the
# correlation the id exists for). Chinese text around a number still counts as a boundary.
_MOBILE = re.compile(r"(?<![0-9A-Za-z])(1[3-9][0-9])[0-9]{4}([0-9]{4})(?![0-9A-Za-z])")
# Every place an ID number could start, overlapping windows included.
_ID_NUMBER_ANYWHERE = re.compile(r"(?=([0-9]{17}[0-9Xx]))")


def mask_id_number(id_number: str) -> str:
    if len(id_number) <= 10:
        return "*" * len(id_number)
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


def mask_name(name: str) -> str:
    if len(name) <= 1:
        return "*" * len(name)
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_phone(phone: str) -> str:
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def scrub(text: str) -> str:
    """Text with every ID number and mobile number in it masked."""
    text = _ID_NUMBER.sub(lambda m: m.group(1) + "********" + m.group(2), text)
    return _MOBILE.sub(lambda m: m.group(1) + "****" + m.group(2), text)


def scrub_key(key: str) -> str:
    """A caller's key (a request id) as a log line shows it: scrubbed, and an ID number glued to
    the rest of the key (``R3201021990...``, an ID number and a counter) masked too. Only a run
    that is a well-formed ID number (its check character and a real birth date) counts, so a long
    numeric key stays whole almost always and keeps the correlation it is logged for."""
    key = scrub(key)
    starts = [m.start() for m in _ID_NUMBER_ANYWHERE.finditer(key) if birth_date(m.group(1).upper()) is not None]
    if not starts:
        return key
    characters = list(key)
    for start in starts:
        characters[start + 6 : start + 14] = "*" * 8
    return "".join(characters)
