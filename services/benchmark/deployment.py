"""Who and where in the benchmark's deployment: the payment nodes and the provinces each serves,
the callers (a national operator, the national app, the hospitals) and the regions the families
live in. Who may make which call is the shipped access policy's
(services/common/security/access_policy.json)."""

from __future__ import annotations

from shared.bindings import Channel
from shared.principals import channel_principal, operator, payment_node

ADMDVS = "320100"  # Nanjing
WEST_ADMDVS = "620100"  # Lanzhou: the cross-node families' fathers
EAST_PROVINCES = ("11", "12", "31", "32", "33", "34", "35", "36", "44")
WEST_PROVINCES = ("37", "41", "42", "50", "51", "61", "62", "63", "64", "65")


def institutions(admdvs: str) -> tuple[str, ...]:
    """A region's eight hospitals, H{admdvs}01 … H{admdvs}08 (as `gongji populate` names them too)."""
    return tuple(f"H{admdvs}{n:02d}" for n in range(1, 9))


INSTITUTIONS = institutions(ADMDVS)
# The same hospitals' HIS systems through the gateway: fixmedins_code is 12 characters there.
GATEWAY_INSTITUTIONS = tuple(f"H320100{n:05d}" for n in range(1, 9))

OPERATOR = operator("000000", "bench-ops")  # national: registers people and policies, credits, checks ledgers
APP = channel_principal(Channel.NATIONAL_APP)  # makes the bindings and payer orders (request channel NATIONAL_APP)
EAST = payment_node("east")  # the payment server of the single-node phase, and east of the cross-node one
WEST = payment_node("west")
