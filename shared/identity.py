"""Resident ID numbers (居民身份证号码, GB 11643): the key of every person.

The first six digits are the place of first registration, never where a person
is insured; region checks use the registry's admdvs instead.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from stdnum import numdb
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from shared.china_time import CHINA_STANDARD_TIME
from shared.errors import DomainError, Reason


def validate_id_number(value: str, field: str = "id_number", today: date | None = None) -> str:
    """Returns the normalised 18-character ID number or refuses it, naming the field. A birth
    date after `today` (by default today in China, whatever zone the host keeps) is refused."""
    if not value:
        raise DomainError(Reason.FIELD_REQUIRED, f"{field} is required", field=field)
    number = _compact(value)
    born, problem = _examine(number)
    if born is None:
        raise DomainError(Reason.INVALID_ID_NUMBER, f"{field} {problem}", field=field)
    if born > (today or datetime.now(CHINA_STANDARD_TIME).date()):
        raise DomainError(Reason.INVALID_ID_NUMBER, f"{field} holds a birth date in the future", field=field)
    return number


def compose_id_number(area: str, born: date, sequence: int) -> str:
    """The 18-character ID number of that area code, birth date and three-digit sequence
    (odd for men), with its check character (test data and generated populations)."""
    body = f"{area}{born:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")


def birth_date(number: str) -> date | None:
    """The birth date a well-formed ID number holds; None for one that is not."""
    return _examine(number)[0]


def _compact(value: str) -> str:
    """The number without spaces and dashes. Cached for the lengths an ID number may be written in,
    as _examine is; a longer value (always refused) is not worth a place in the cache."""
    return _compact_short(value) if len(value) <= _LONGEST_WRITTEN else ric.compact(value)


_LONGEST_WRITTEN = 24  # 18 characters with separators between its groups
_compact_short = lru_cache(maxsize=65536)(ric.compact)


@lru_cache(maxsize=65536)
def _examine(number: str) -> tuple[date | None, str]:
    """The birth date of a well-formed number, or None and what is wrong with it.

    Cached: the same few numbers arrive on every bill of a family.
    """
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        return None, "must be 17 digits and a check character"
    if number[-1] != ric.calc_check_digit(number):
        return None, "has a wrong check character"
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        return None, "holds an impossible birth date"
    if not _area_in_use_since(number[:6], born.year):
        return None, "starts with an unknown area code"
    return born, ""


@lru_cache(maxsize=65536)
def _area_in_use_since(area: str, birth_year: int) -> bool:
    """Whether the area code existed at some time from the birth year on.

    python-stdnum demands the code exist in the birth year itself, which refuses
    people born before their district's code was created (numbers were first
    issued in 1984, under the codes of that time).
    """
    found = {key: text for _, properties in numdb.get("cn/loc").info(area) for key, text in properties.items()}
    counties = found.get("county")
    if not counties:
        return False
    for county in counties.split(","):
        if not county.startswith("["):
            return True
        end = county[1:].split("]")[0].split("-")[1]
        if not end or int(end) >= birth_year:
            return True
    return False
