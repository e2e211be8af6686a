"""Administrative division codes (admdvs, GB/T 2260) and pooling regions (统筹区).

A code has six digits; the first two name the province. A pooling region is
usually a prefecture-level city and is named by its own code.
"""

from __future__ import annotations

from shared.errors import DomainError, Reason

NATIONAL = "000000"

# Province-level prefixes of GB/T 2260 (mainland, Taiwan, Hong Kong, Macao).
PROVINCES: frozenset[str] = frozenset(
    [
        "11",
        "12",
        "13",
        "14",
        "15",
        "21",
        "22",
        "23",
        "31",
        "32",
        "33",
        "34",
        "35",
        "36",
        "37",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "50",
        "51",
        "52",
        "53",
        "54",
        "61",
        "62",
        "63",
        "64",
        "65",
        "71",
        "81",
        "82",
    ]
)


def validate_admdvs(value: str, field: str = "admdvs", allow_national: bool = False) -> str:
    """Returns the code if it is six digits of a known province, else refuses it."""
    if not value:
        raise DomainError(Reason.FIELD_REQUIRED, f"{field} is required", field=field)
    if allow_national and value == NATIONAL:
        return value
    if len(value) != 6 or not value.isascii() or not value.isdigit():
        raise DomainError(Reason.INVALID_ADMDVS, f"{field} must be a 6-digit division code, got {value!r}", field=field)
    if value[:2] not in PROVINCES:
        raise DomainError(Reason.INVALID_ADMDVS, f"{field} {value!r} names no province", field=field)
    return value


def validate_province(value: str, field: str) -> str:
    if value not in PROVINCES:
        raise DomainError(Reason.INVALID_ADMDVS, f"{field} {value!r} is not a 2-digit province code", field=field)
    return value


def province_of(admdvs: str) -> str:
    return admdvs[:2]


def province_code(admdvs: str) -> str:
    """The province-wide code of a region: "320100" → "320000"."""
    return province_of(admdvs) + "0000"


def is_province_wide(admdvs: str) -> bool:
    return admdvs != NATIONAL and admdvs.endswith("0000")


def lookup_chain(admdvs: str) -> tuple[str, ...]:
    """Codes whose policy may apply to a region, most specific first."""
    if admdvs == NATIONAL:
        return (NATIONAL,)
    if is_province_wide(admdvs):
        return (admdvs, NATIONAL)
    return (admdvs, province_code(admdvs), NATIONAL)
