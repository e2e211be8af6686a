"""3201 reconciliation (对账) as arithmetic over the settlements the gateway relayed: the
period, the centre's totals, what gongji's books should show, and the comparison."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.gateway.service_layer import refusals as why
from services.gateway.service_layer.account_pay import AccountPayRules
from services.gateway.service_layer.ports import REVERSED, SETTLED, UNDONE, RelayedSettlement
from services.gateway.service_layer.refusals import Refused
from shared.china_time import CHINA_STANDARD_TIME
from shared.ledger import EARLIEST_YEAR, LATEST_YEAR

MAX_PERIOD_DAYS = 31


def period(begin: str, end: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(begin, "%Y-%m-%d").replace(tzinfo=CHINA_STANDARD_TIME)
        last = datetime.strptime(end, "%Y-%m-%d").replace(tzinfo=CHINA_STANDARD_TIME)
    except ValueError:
        raise Refused(why.FIELD_INVALID, "stmt_begndate and stmt_enddate: expected yyyy-MM-dd") from None
    if not (EARLIEST_YEAR <= start.year <= LATEST_YEAR and EARLIEST_YEAR <= last.year <= LATEST_YEAR):
        raise Refused(why.FIELD_INVALID, f"stmt_begndate and stmt_enddate: years {EARLIEST_YEAR} to {LATEST_YEAR} only")
    if last < start:
        raise Refused(why.FIELD_INVALID, "stmt_enddate is before stmt_begndate")
    if (last - start).days >= MAX_PERIOD_DAYS:
        raise Refused(why.PERIOD_TOO_LONG, f"a reconciliation covers at most {MAX_PERIOD_DAYS} days")
    return start, last + timedelta(days=1)


def _within(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= moment < end


def totals(
    relayed: list[RelayedSettlement],
    start: datetime,
    end: datetime,
    clr_type: str,
    with_undone: bool,
    rules: AccountPayRules,
    admdvs: str,
) -> tuple[int, int, int, int]:
    """(count, medfee, fund, acct_pay) of the settlements settled in the period that still
    stand; with refd_setl_flag "1" an undone one counts too, with its undo (amounts net nil)."""
    count = medfee = fund = acct = 0
    for found in relayed:
        if not _within(found.settle_time, start, end) or (clr_type not in ("", "99") and found.clr_type != clr_type):
            continue
        if found.state == SETTLED:
            count += 1
            medfee, fund = medfee + found.medfee_fen, fund + found.fund_fen
            acct += rules.acct_pay(admdvs, found.own_account_fen, found.mutual_aid_fen)
        elif found.state == UNDONE and with_undone:
            count += 2
    return count, medfee, fund, acct


def net_in_gongji(relayed: list[RelayedSettlement], start: datetime, end: datetime) -> int:
    """What gongji's ReconcileInstitution should show as net_fen for the period, by the
    gateway's record: settled on the settling day, taken back on the closing day."""
    net = 0
    for found in relayed:
        if not found.in_gongji:
            continue
        moved = found.own_account_fen + found.mutual_aid_fen
        if _within(found.settle_time, start, end):
            net += moved
        if found.state in (UNDONE, REVERSED) and _within(found.close_time, start, end):
            net -= moved
    return net


def compare(ours: tuple[int, ...], theirs: tuple[int, ...]) -> tuple[str, str]:
    if ours == theirs:
        return "0", "balanced"
    if all(o >= t for o, t in zip(ours, theirs, strict=True)):
        return "1", "the centre has more"
    if all(o <= t for o, t in zip(ours, theirs, strict=True)):
        return "2", "the institution has more"
    return "3", "inconsistent"
