"""Who calls gongji: every caller is a principal named by a SPIFFE ID.

The ID sits in the caller's certificate (its URI SAN) and has one of these forms:

- ``spiffe://gongji/institution/<code>``: a designated hospital's or pharmacy's billing system
  (定点医药机构), by its institution code;
- ``spiffe://gongji/channel/<CHANNEL>``: a person-facing front end that did the real-name check
  (the national app, WeChat, Alipay, the provincial web site, the offline counter);
- ``spiffe://gongji/operator/<admdvs>/<operator_id>``: staff of a medical-security agency, acting
  within a region: ``000000`` is national, ``PP0000`` a whole province, any other code one
  pooling region (统筹区);
- ``spiffe://gongji/service/binding`` and ``spiffe://gongji/service/payment/<node>``: gongji's
  own services, the latter one province's payment node;
- ``spiffe://gongji/service/gateway``: gongji's national-interface gateway, which takes the
  institutions' HIS transactions (国家医疗保障信息平台 接口) and calls the services for them,
  each call in the name of the institution it acts for (``gongji-acting-for``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from shared.bindings import Channel
from shared.regions import NATIONAL, PROVINCES, is_province_wide, province_of

TRUST_DOMAIN = "gongji"
SPIFFE_PREFIX = f"spiffe://{TRUST_DOMAIN}/"

# The front ends' names in their SPIFFE IDs; the provincial web site is WEB in the contracts,
# but only PROVINCIAL_WEB in an ID: one principal has one ID, the one its access lines name.
CHANNEL_OF_NAME: dict[str, Channel] = {
    ("PROVINCIAL_WEB" if channel is Channel.WEB else channel.value): channel for channel in Channel
}

_INSTITUTION_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_OPERATOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


class PrincipalKind(StrEnum):
    """Kinds of caller; the names are those of the access policy."""

    INSTITUTION = "institution"
    CHANNEL = "channel"
    OPERATOR = "operator"
    BINDING_SERVICE = "service/binding"
    PAYMENT_NODE = "service/payment"
    GATEWAY = "service/gateway"


class NotAPrincipal(ValueError):
    """A URI that names no gongji principal."""


@dataclass(frozen=True)
class Principal:
    """One caller. Only the fields of its kind are set."""

    kind: PrincipalKind
    institution_code: str = ""
    channel: Channel | None = None
    admdvs: str = ""
    operator_id: str = ""
    node: str = ""

    @property
    def spiffe_id(self) -> str:
        return SPIFFE_PREFIX + self.path

    @property
    def path(self) -> str:
        """The ID after ``spiffe://gongji/``, e.g. ``institution/H37010001``."""
        match self.kind:
            case PrincipalKind.INSTITUTION:
                return f"institution/{self.institution_code}"
            case PrincipalKind.CHANNEL:
                assert self.channel is not None
                return f"channel/{channel_name(self.channel)}"
            case PrincipalKind.OPERATOR:
                return f"operator/{self.admdvs}/{self.operator_id}"
            case PrincipalKind.BINDING_SERVICE:
                return "service/binding"
            case PrincipalKind.PAYMENT_NODE:
                return f"service/payment/{self.node}"
            case PrincipalKind.GATEWAY:
                return "service/gateway"

    @property
    def file_stem(self) -> str:
        """The name its certificate and key files get: the path with '/' as '-'."""
        return self.path.replace("/", "-")

    def covers(self, admdvs: str) -> bool:
        """Whether an operator may act on a region: anywhere when national, within its
        province when province-wide, else only its own pooling region."""
        if self.kind is not PrincipalKind.OPERATOR:
            return False
        if self.admdvs == NATIONAL:
            return True
        if is_province_wide(self.admdvs):
            return province_of(admdvs) == province_of(self.admdvs)
        return admdvs == self.admdvs

    def __str__(self) -> str:
        return self.spiffe_id


def channel_name(channel: Channel) -> str:
    return "PROVINCIAL_WEB" if channel is Channel.WEB else channel.value


def institution(code: str) -> Principal:
    return parse_spiffe_id(f"{SPIFFE_PREFIX}institution/{code}")


def channel_principal(channel: Channel) -> Principal:
    return Principal(PrincipalKind.CHANNEL, channel=channel)


def operator(admdvs: str, operator_id: str) -> Principal:
    return parse_spiffe_id(f"{SPIFFE_PREFIX}operator/{admdvs}/{operator_id}")


def payment_node(node: str) -> Principal:
    return parse_spiffe_id(f"{SPIFFE_PREFIX}service/payment/{node}")


BINDING_SERVICE = Principal(PrincipalKind.BINDING_SERVICE)
GATEWAY = Principal(PrincipalKind.GATEWAY)


@lru_cache(maxsize=4096)
def parse_spiffe_id(uri: str) -> Principal:
    """The principal a SPIFFE ID names; NotAPrincipal (with the reason) for anything else."""
    if not uri.startswith(SPIFFE_PREFIX):
        raise NotAPrincipal(f"not an ID of trust domain {TRUST_DOMAIN!r}")
    parts = uri.removeprefix(SPIFFE_PREFIX).split("/")
    match parts:
        case ["institution", code] if _INSTITUTION_CODE.fullmatch(code):
            return Principal(PrincipalKind.INSTITUTION, institution_code=code)
        case ["channel", name] if name in CHANNEL_OF_NAME:
            return Principal(PrincipalKind.CHANNEL, channel=CHANNEL_OF_NAME[name])
        case ["operator", admdvs, operator_id] if _is_operator_region(admdvs) and _OPERATOR_ID.fullmatch(operator_id):
            return Principal(PrincipalKind.OPERATOR, admdvs=admdvs, operator_id=operator_id)
        case ["service", "binding"]:
            return BINDING_SERVICE
        case ["service", "gateway"]:
            return GATEWAY
        case ["service", "payment", node] if _NODE_NAME.fullmatch(node):
            return Principal(PrincipalKind.PAYMENT_NODE, node=node)
    raise NotAPrincipal("names no institution, channel, operator or gongji service")


def _is_operator_region(admdvs: str) -> bool:
    return admdvs == NATIONAL or (
        len(admdvs) == 6 and admdvs.isascii() and admdvs.isdigit() and admdvs[:2] in PROVINCES
    )
