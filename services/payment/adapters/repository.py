"""Repositories of the payment service. Account rows are locked in one sorted
order everywhere, so concurrent settlements queue instead of deadlocking."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, insert, or_, select, update

from services.common.database import conflict_aware_insert
from services.common.driver_statements import DriverStatement
from services.common.write_batch import WriteBatch, adding, inserting, updating
from services.payment.adapters import orm
from shared.deduction import PaymentSource
from shared.ledger import Account, AccountKind, JournalEntry
from shared.payers import PayerMode
from shared.policy import UseCategory
from shared.settlements import (
    LIVE_STATES,
    Bill,
    CredentialType,
    PassedOver,
    Settlement,
    SettlementLeg,
    SettlementState,
)

# Statements of the settlement path, built once: building one costs more than running it. Those
# run on every settlement go to psycopg directly on PostgreSQL (see DriverStatement).
_LOCK_ACCOUNTS = (
    select(orm.accounts)
    .where(orm.accounts.c.account_id.in_(bindparam("ids", expanding=True)))
    .order_by(orm.accounts.c.account_id)
    .with_for_update()
)
LOCK_ACCOUNTS = DriverStatement(_LOCK_ACCOUNTS, arrays=("ids",))
# The same lock, with whether a card holder's networked settlement is suspended read alongside
# (a column of every row): one statement where a settlement would run two.
HOLDER_SUSPENDED = (
    select(orm.suspensions.c.active)
    .where(orm.suspensions.c.holder_id_number == bindparam("holder"))
    .scalar_subquery()
    .label("holder_suspended")
)


def _lapsed(now: Any) -> Any:
    """Settlements still authorised whose holds are past their expiry at `now` (a time or a
    bindparam), not yet released (a released one is EXPIRED): the rule of settlements.lapsed, in a
    form the index ix_settlements_open finds."""
    table = orm.settlements
    return and_(table.c.state == SettlementState.AUTHORIZED.value, table.c.expire_time <= now)


# And whether the account holds money for a settlement past its expiry that the sweeper has not
# released yet: found from the few lapsed settlements (their index), once per statement.
_LAPSED_HOLDING = select(orm.settlement_legs.c.account_id).where(
    orm.settlement_legs.c.province == "",
    orm.settlement_legs.c.settlement_id.in_(select(orm.settlements.c.settlement_id).where(_lapsed(bindparam("now")))),
)
HOLD_LAPSED = orm.accounts.c.account_id.in_(_LAPSED_HOLDING).label("hold_lapsed")
LOCK_ACCOUNTS_WITH_HOLDER = DriverStatement(
    _LOCK_ACCOUNTS.add_columns(HOLDER_SUSPENDED, HOLD_LAPSED).with_for_update(of=orm.accounts), arrays=("ids",)
)
_usage = orm.binding_usage
# A year's shared amount, and every hold still open that was placed that year or before: a hold is
# booked to the year it is captured in, so until it is captured or released it reserves the cap and
# quota of each year it stays open in (an inpatient deposit held over New Year included).
USAGE_OF_GRANTORS = DriverStatement(
    select(
        _usage.c.grantor_id_number,
        _usage.c.binding_id,
        func.sum(case((_usage.c.year == bindparam("year"), _usage.c.shared_fen), else_=0)).label("shared_fen"),
        func.sum(_usage.c.held_fen).label("held_fen"),
    )
    .where(
        _usage.c.grantor_id_number.in_(bindparam("grantors", expanding=True)),
        # Earlier years matter only while a hold of theirs is open: their shared amounts are done.
        or_(_usage.c.year == bindparam("year"), and_(_usage.c.year < bindparam("year"), _usage.c.held_fen != 0)),
    )
    .group_by(_usage.c.grantor_id_number, _usage.c.binding_id),
    arrays=("grantors",),
)
SUSPENSION = select(orm.suspensions).where(orm.suspensions.c.holder_id_number == bindparam("holder"))


def _account(row: Any) -> Account:
    return Account(row.account_id, AccountKind(row.kind), row.owner, row.admdvs, row.balance_fen, row.held_fen)


class AccountRepository:
    def __init__(self, connection: Connection, writes: WriteBatch, known: set[str] | None = None) -> None:
        self._connection = connection
        self._writes = writes
        # Ids of accounts committed earlier; accounts are never deleted, so they need no INSERT again.
        self._known = known if known is not None else set()
        self.opened: list[str] = []

    def get(self, account_id: str) -> Account | None:
        row = self._connection.execute(select(orm.accounts).where(orm.accounts.c.account_id == account_id)).first()
        return None if row is None else _account(row)

    def _locked_rows(self, statement: DriverStatement, account_ids: Iterable[str], **params: Any) -> list[Any]:
        wanted = sorted(set(account_ids))
        if not wanted:
            return []
        return statement.rows(self._connection, {"ids": wanted, **params})

    def lock(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Locks the existing accounts among account_ids, in sorted order."""
        return {row.account_id: _account(row) for row in self._locked_rows(LOCK_ACCOUNTS, account_ids)}

    def lock_with_holder(
        self, account_ids: Iterable[str], holder: str, now: datetime
    ) -> tuple[dict[str, Account], bool | None, list[str]]:
        """As `lock`, and, read in the same statement, whether `holder`'s networked settlement is
        suspended (None when no account was found, so nothing was read) and which of the accounts
        hold money for a settlement past its expiry at `now`."""
        rows = self._locked_rows(LOCK_ACCOUNTS_WITH_HOLDER, account_ids, holder=holder, now=now)
        suspended = bool(rows[0].holder_suspended) if rows else None
        lapsed = [row.account_id for row in rows if row.hold_lapsed]
        return {row.account_id: _account(row) for row in rows}, suspended, lapsed

    def ensure(self, account: Account, now: datetime) -> None:
        """Creates the account unless it exists; safe when two transactions race."""
        if account.account_id in self._known:
            return
        self.opened.append(account.account_id)
        values = {
            "account_id": account.account_id,
            "kind": account.kind.value,
            "owner": account.owner,
            "admdvs": account.admdvs,
            "balance_fen": 0,
            "held_fen": 0,
            "create_time": now,
        }
        dialect = self._connection.dialect.name
        self._connection.execute(conflict_aware_insert(dialect, orm.accounts).values(**values).on_conflict_do_nothing())

    def save_amounts(self, accounts: Sequence[Account]) -> None:
        rows = [{"account_id": a.account_id, "balance_fen": a.balance_fen, "held_fen": a.held_fen} for a in accounts]
        self._writes.write(updating(orm.accounts, ("account_id",), rows))


class Journal:
    """Writes balanced entries and keeps tracked accounts' balances in step."""

    def __init__(self, connection: Connection, writes: WriteBatch) -> None:
        self._connection = connection
        self._writes = writes

    def record(self, entry: JournalEntry, locked: dict[str, Account]) -> None:
        head = {
            "entry_id": entry.entry_id,
            "time": entry.time,
            "purpose": entry.purpose.value,
            "settlement_id": entry.settlement_id,
            "transfer_id": entry.transfer_id,
            "institution_code": entry.institution_code,
            "request_id": entry.request_id,
            "memo": entry.memo,
        }
        rows = []
        for posting in entry.postings:
            account = locked.get(posting.account_id)
            balance_after = 0
            if account is not None and account.tracked:
                account.balance_fen += posting.amount_fen
                balance_after = account.balance_fen
            rows.append(
                {
                    "entry_id": entry.entry_id,
                    "account_id": posting.account_id,
                    "amount_fen": posting.amount_fen,
                    "balance_after_fen": balance_after,
                    "counterpart_id_number": posting.counterpart_id_number,
                    "binding_id": posting.binding_id,
                    "time": entry.time,
                }
            )
        self._writes.write(inserting(orm.journal_entries, [head]), inserting(orm.postings, rows))

    def clearing_movements(self, start: datetime, end: datetime) -> dict[str, int]:
        """Sum of each clearing account's postings in [start, end)."""
        p = orm.postings
        rows = self._connection.execute(
            select(p.c.account_id, func.sum(p.c.amount_fen).label("total"))
            .where(p.c.account_id.like("CLEARING:%"), p.c.time >= start, p.c.time < end)
            .group_by(p.c.account_id)
        )
        return {row.account_id: int(row.total) for row in rows}

    def statement(
        self, account_id: str, start: datetime | None, end: datetime | None, before: int | None, limit: int
    ) -> list[Any]:
        p, e = orm.postings, orm.journal_entries
        query = (
            select(p, e.c.purpose, e.c.settlement_id, e.c.transfer_id, e.c.institution_code, e.c.memo)
            .join(e, e.c.entry_id == p.c.entry_id)
            .where(p.c.account_id == account_id)
        )
        if start is not None and end is not None:
            query = query.where(p.c.time >= start, p.c.time < end)
        if before is not None:
            query = query.where(p.c.posting_id < before)
        return list(self._connection.execute(query.order_by(p.c.posting_id.desc()).limit(limit)))


def _settlement_values(s: Settlement) -> dict[str, Any]:
    bill = s.bill
    return {
        "settlement_id": s.settlement_id,
        "request_id": s.request_id,
        "state": s.state.value,
        "patient_id_number": bill.patient_id_number,
        "institution_code": bill.institution_code,
        "institution_admdvs": bill.institution_admdvs,
        "institution_settlement_id": bill.institution_settlement_id,
        "use_category": bill.use_category.value,
        "self_pay_fen": bill.self_pay_fen,
        "chronic_disease": bill.chronic_disease,
        "use_own_account": bill.use_own_account,
        "refuse_cash_part": bill.refuse_cash_part,
        "credential_type": bill.credential_type.value,
        "credential_holder": bill.credential_holder,
        "cash_pay_fen": s.cash_pay_fen,
        "captured_fen": s.captured_fen,
        "refunded_fen": s.refunded_fen,
        "policy_version": s.policy_version,
        "create_time": s.create_time,
        "expire_time": s.expire_time,
        "capture_time": s.capture_time,
        "close_time": s.close_time,
        "passed_over": [[p.binding_id, p.grantor_id_number, p.reason] for p in s.passed_over],
        "payer_mode": s.payer_mode.value,
    }


def _leg_values(settlement_id: str, leg: SettlementLeg) -> dict[str, Any]:
    return {
        "settlement_id": settlement_id,
        "leg_no": leg.leg_no,
        "payer_id_number": leg.payer_id_number,
        "account_id": leg.account_id,
        "source": leg.source.value,
        "binding_id": leg.binding_id,
        "amount_fen": leg.amount_fen,
        "captured_fen": leg.captured_fen,
        "refunded_fen": leg.refunded_fen,
        "policy_version": leg.policy_version,
        "payer_admdvs": leg.payer_admdvs,
        "payer_balance_after_fen": leg.payer_balance_after_fen,
        "province": leg.province,
    }


class SettlementRepository:
    def __init__(self, connection: Connection, writes: WriteBatch) -> None:
        self._connection = connection
        self._writes = writes

    def add(self, settlement: Settlement) -> None:
        # Born CAPTURED only from a Settle (held and captured in one call); save() never changes it.
        one_step = settlement.state is SettlementState.CAPTURED
        row = {**_settlement_values(settlement), "one_step": one_step}
        legs = [_leg_values(settlement.settlement_id, leg) for leg in settlement.legs]
        self._writes.write(inserting(orm.settlements, [row]), inserting(orm.settlement_legs, legs))

    def save(self, settlement: Settlement) -> None:
        """Writes what a settlement's lifecycle changes: its state, times and amounts, and its legs'."""
        legs = [
            {"settlement_id": settlement.settlement_id, "leg_no": leg.leg_no, "captured_fen": leg.captured_fen,
             "refunded_fen": leg.refunded_fen, "payer_balance_after_fen": leg.payer_balance_after_fen}
            for leg in settlement.legs
        ]  # fmt: skip
        self._writes.write(
            updating(orm.settlements, ("settlement_id",), [_settlement_values(settlement)]),
            updating(orm.settlement_legs, ("settlement_id", "leg_no"), legs),
        )

    def get(self, settlement_id: str, for_update: bool = False) -> Settlement | None:
        query = select(orm.settlements).where(orm.settlements.c.settlement_id == settlement_id)
        row = self._connection.execute(query.with_for_update() if for_update else query).first()
        if row is None:
            return None
        legs = self._connection.execute(
            select(orm.settlement_legs)
            .where(orm.settlement_legs.c.settlement_id == settlement_id)
            .order_by(orm.settlement_legs.c.leg_no)
        )
        return _settlement(row, list(legs))

    def live_for_bill(self, institution_code: str, institution_settlement_id: str) -> str | None:
        """The settlement holding or having taken money for an institution's bill, if any."""
        table = orm.settlements
        row = self._connection.execute(
            select(table.c.settlement_id).where(
                table.c.institution_code == institution_code,
                table.c.institution_settlement_id == institution_settlement_id,
                table.c.state.in_(LIVE_STATES),
            )
        ).first()
        return None if row is None else row.settlement_id

    def owner(self, settlement_id: str) -> tuple[str, str] | None:
        """The institution code and region of a settlement, for the access policy."""
        table = orm.settlements
        row = self._connection.execute(
            select(table.c.institution_code, table.c.institution_admdvs).where(table.c.settlement_id == settlement_id)
        ).first()
        return None if row is None else (row.institution_code, row.institution_admdvs)

    def expired_ids(self, now: datetime, limit: int) -> list[str]:
        table = orm.settlements
        rows = self._connection.execute(
            select(table.c.settlement_id).where(_lapsed(now)).order_by(table.c.expire_time).limit(limit)
        )
        return [row.settlement_id for row in rows]

    def expired_ids_on(self, account_ids: Sequence[str], now: datetime, limit: int) -> list[str]:
        """Authorised settlements past their expiry that hold money on any of these accounts (of
        this node): found from the few expired settlements (their index), not from every leg."""
        table, legs = orm.settlements, orm.settlement_legs
        rows = self._connection.execute(
            select(table.c.settlement_id)
            .where(
                _lapsed(now),
                select(legs.c.settlement_id)
                .where(
                    legs.c.settlement_id == table.c.settlement_id,
                    legs.c.account_id.in_(list(account_ids)),
                    legs.c.province == "",
                )
                .exists(),
            )
            .order_by(table.c.expire_time)
            .limit(limit)
        )
        return [row.settlement_id for row in rows]

    def institution_day(self, institution_code: str, start: datetime, end: datetime) -> list[Any]:
        """Settlements of one institution captured or closed in [start, end), a row per leg
        (one row without a leg for an all-cash settlement)."""
        s, legs = orm.settlements, orm.settlement_legs
        query = (
            select(s.c.settlement_id, s.c.capture_time, s.c.close_time, s.c.state, s.c.cash_pay_fen, legs.c.source,
                   legs.c.captured_fen.label("leg_captured_fen"), legs.c.refunded_fen.label("leg_refunded_fen"))
            .outerjoin(legs, legs.c.settlement_id == s.c.settlement_id)
            .where(s.c.institution_code == institution_code)
            .where(
                ((s.c.capture_time >= start) & (s.c.capture_time < end))
                | ((s.c.close_time >= start) & (s.c.close_time < end))
            )
        )  # fmt: skip
        return list(self._connection.execute(query))


def _settlement(row: Any, legs: list[Any]) -> Settlement:
    bill = Bill(
        institution_code=row.institution_code,
        institution_admdvs=row.institution_admdvs,
        patient_id_number=row.patient_id_number,
        credential_type=CredentialType(row.credential_type),
        credential_holder=row.credential_holder,
        use_category=UseCategory(row.use_category),
        self_pay_fen=row.self_pay_fen,
        chronic_disease=row.chronic_disease,
        use_own_account=row.use_own_account,
        institution_settlement_id=row.institution_settlement_id,
        refuse_cash_part=row.refuse_cash_part,
    )
    return Settlement(
        settlement_id=row.settlement_id,
        request_id=row.request_id,
        bill=bill,
        state=SettlementState(row.state),
        legs=[
            SettlementLeg(
                leg_no=leg.leg_no,
                payer_id_number=leg.payer_id_number,
                account_id=leg.account_id,
                source=PaymentSource(leg.source),
                amount_fen=leg.amount_fen,
                binding_id=leg.binding_id,
                policy_version=leg.policy_version,
                payer_admdvs=leg.payer_admdvs,
                payer_balance_after_fen=leg.payer_balance_after_fen,
                captured_fen=leg.captured_fen,
                refunded_fen=leg.refunded_fen,
                province=leg.province,
            )
            for leg in legs
        ],
        cash_pay_fen=row.cash_pay_fen,
        policy_version=row.policy_version,
        create_time=row.create_time,
        expire_time=row.expire_time,
        capture_time=row.capture_time,
        close_time=row.close_time,
        captured_fen=row.captured_fen,
        refunded_fen=row.refunded_fen,
        passed_over=tuple(PassedOver(*item) for item in (row.passed_over or [])),
        payer_mode=PayerMode(row.payer_mode),
    )


class UsageRepository:
    """Per binding and year: what was shared, and what open holds reserve.

    Changes are summed in memory and written in one statement when the
    transaction reads usage again or commits, instead of a round trip each.
    """

    def __init__(self, connection: Connection, writes: WriteBatch) -> None:
        self._connection = connection
        self._writes = writes
        self._pending: dict[tuple[str, int], list[Any]] = {}

    def of_grantors(self, grantor_ids: Sequence[str], year: int) -> dict[str, dict[str, tuple[int, int]]]:
        """grantor → binding → (shared in the year, held by holds still open that were placed in it or
        an earlier year)."""
        if not grantor_ids:
            return {}
        self.flush()
        rows = USAGE_OF_GRANTORS.rows(self._connection, {"grantors": list(grantor_ids), "year": year})
        found: dict[str, dict[str, tuple[int, int]]] = {}
        for row in rows:
            # int(): PostgreSQL sums bigints as numeric.
            found.setdefault(row.grantor_id_number, {})[row.binding_id] = (int(row.shared_fen), int(row.held_fen))
        return found

    def add(self, binding_id: str, year: int, grantor: str, beneficiary: str, shared: int, held: int) -> None:
        """Adds to a binding's year; call with the grantor's account locked."""
        change = self._pending.setdefault((binding_id, year), [grantor, beneficiary, 0, 0])
        change[2] += shared
        change[3] += held

    def discard(self) -> None:
        self._pending.clear()

    def flush(self) -> None:
        if not self._pending:
            return
        rows = [
            {"binding_id": binding_id, "year": year, "grantor_id_number": grantor,
             "beneficiary_id_number": beneficiary, "shared_fen": shared, "held_fen": held}
            for (binding_id, year), (grantor, beneficiary, shared, held) in sorted(self._pending.items())
        ]  # fmt: skip
        self._pending.clear()
        self._writes.write(adding(orm.binding_usage, ("binding_id", "year"), ("shared_fen", "held_fen"), rows))

    def shares_of(self, grantor_id_number: str, year: int) -> list[Any]:
        self.flush()
        table = orm.binding_usage
        return list(
            self._connection.execute(
                select(table)
                .where(table.c.grantor_id_number == grantor_id_number, table.c.year == year)
                .order_by(table.c.binding_id)
            )
        )


class AuditQueries:
    """Whole-ledger reads for CheckLedger."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def unbalanced_entries(self) -> list[tuple[str, int]]:
        p = orm.postings
        rows = self._connection.execute(
            select(p.c.entry_id, func.sum(p.c.amount_fen).label("total"))
            .group_by(p.c.entry_id)
            .having(func.sum(p.c.amount_fen) != 0)
        )
        return [(row.entry_id, int(row.total)) for row in rows]

    def counts(self) -> tuple[int, int]:
        entries = self._connection.execute(select(func.count()).select_from(orm.journal_entries)).scalar_one()
        accounts = self._connection.execute(select(func.count()).select_from(orm.accounts)).scalar_one()
        return int(entries), int(accounts)

    def balance_mismatches(self) -> list[tuple[str, int, int]]:
        a, p = orm.accounts, orm.postings
        sums = select(p.c.account_id, func.sum(p.c.amount_fen).label("total")).group_by(p.c.account_id).subquery()
        rows = self._connection.execute(
            select(a.c.account_id, a.c.balance_fen, func.coalesce(sums.c.total, 0).label("total"))
            .outerjoin(sums, sums.c.account_id == a.c.account_id)
            .where(a.c.kind.in_(["PERSONAL_ACCOUNT", "WALLET"]))
            .where(a.c.balance_fen != func.coalesce(sums.c.total, 0))
        )
        return [(row.account_id, int(row.balance_fen), int(row.total)) for row in rows]

    def held_mismatches(self) -> list[tuple[str, int, int]]:
        a, s, legs = orm.accounts, orm.settlements, orm.settlement_legs
        pt, pl = orm.participant_transactions, orm.participant_legs
        own_holds = (
            select(legs.c.account_id, legs.c.amount_fen)
            .join(s, s.c.settlement_id == legs.c.settlement_id)
            .where(s.c.state == SettlementState.AUTHORIZED.value, legs.c.province == "")
        )
        held_for_others = (
            select(pl.c.account_id, pl.c.amount_fen)
            .join(pt, pt.c.transaction_id == pl.c.transaction_id)
            .where(pt.c.state == "PREPARED")
        )
        every_hold = own_holds.union_all(held_for_others).subquery()
        holds = (
            select(every_hold.c.account_id, func.sum(every_hold.c.amount_fen).label("total"))
            .group_by(every_hold.c.account_id)
            .subquery()
        )
        rows = self._connection.execute(
            select(a.c.account_id, a.c.held_fen, func.coalesce(holds.c.total, 0).label("total"))
            .outerjoin(holds, holds.c.account_id == a.c.account_id)
            .where(a.c.held_fen != func.coalesce(holds.c.total, 0))
        )
        return [(row.account_id, int(row.held_fen), int(row.total)) for row in rows]

    def negative_available(self) -> list[str]:
        a = orm.accounts
        rows = self._connection.execute(
            select(a.c.account_id).where(a.c.kind.in_(["PERSONAL_ACCOUNT", "WALLET"]), a.c.balance_fen < a.c.held_fen)
        )
        return [row.account_id for row in rows]

    def stale_holds(self, older_than: datetime) -> list[str]:
        s = orm.settlements
        rows = self._connection.execute(
            select(s.c.settlement_id).where(s.c.state == SettlementState.AUTHORIZED.value, s.c.expire_time < older_than)
        )
        return [row.settlement_id for row in rows]

    def stale_prepared(self, older_than: datetime) -> list[str]:
        table = orm.participant_transactions
        rows = self._connection.execute(
            select(table.c.transaction_id).where(table.c.state == "PREPARED", table.c.expire_time < older_than)
        )
        return [row.transaction_id for row in rows]

    def clearing_without_counterpart(self) -> list[tuple[str, str]]:
        """(entry, account) of clearing postings no saga, settlement or transfer here accounts for:
        money one province would owe another with nothing to show why."""
        p, j = orm.postings, orm.journal_entries
        s, pt, t, w = orm.settlements, orm.participant_transactions, orm.transfers, orm.wallet_credits
        settled = (j.c.settlement_id != "") & (
            select(s.c.settlement_id).where(s.c.settlement_id == j.c.settlement_id).exists()
            | select(pt.c.transaction_id).where(pt.c.transaction_id == j.c.settlement_id).exists()
        )
        transferred = (j.c.transfer_id != "") & (
            select(t.c.transfer_id).where(t.c.transfer_id == j.c.transfer_id).exists()
            | select(w.c.transfer_id).where((w.c.transfer_id == j.c.transfer_id) & ~w.c.declined).exists()
        )
        rows = self._connection.execute(
            select(j.c.entry_id, p.c.account_id)
            .join(p, p.c.entry_id == j.c.entry_id)
            .where(p.c.account_id.like(f"{AccountKind.CLEARING.value}:%"))
            .where(~(settled | transferred))
        )
        return [(row.entry_id, row.account_id) for row in rows]

    def negative_balances(self) -> list[str]:
        a = orm.accounts
        rows = self._connection.execute(
            select(a.c.account_id).where(
                a.c.kind.in_(["PERSONAL_ACCOUNT", "WALLET"]), (a.c.balance_fen < 0) | (a.c.held_fen < 0)
            )
        )
        return [row.account_id for row in rows]

    def beyond(self, bound_fen: int) -> list[str]:
        """Accounts holding, and postings moving, more than any real account ever could."""
        a, p = orm.accounts, orm.postings
        accounts = self._connection.execute(
            select(a.c.account_id).where(a.c.kind.in_(["PERSONAL_ACCOUNT", "WALLET"]), a.c.balance_fen > bound_fen)
        )
        postings = self._connection.execute(
            select(p.c.entry_id, p.c.account_id).where((p.c.amount_fen > bound_fen) | (p.c.amount_fen < -bound_fen))
        )
        return [f"account {row.account_id}" for row in accounts] + [
            f"entry {row.entry_id} on {row.account_id}" for row in postings
        ]

    def captures_outside_holds(self) -> list[str]:
        """Legs that captured less than nothing or more than they held."""
        legs, pl = orm.settlement_legs, orm.participant_legs
        own = self._connection.execute(
            select(legs.c.settlement_id, legs.c.leg_no).where(
                (legs.c.captured_fen < 0) | (legs.c.captured_fen > legs.c.amount_fen) | (legs.c.refunded_fen < 0)
                | (legs.c.refunded_fen > legs.c.captured_fen)
            )
        )  # fmt: skip
        others = self._connection.execute(
            select(pl.c.transaction_id, pl.c.leg_no).where(
                (pl.c.captured_fen < 0) | (pl.c.captured_fen > pl.c.amount_fen)
            )
        )
        return [f"settlement {r.settlement_id} leg {r.leg_no}" for r in own] + [
            f"cross-node transaction {r.transaction_id} leg {r.leg_no}" for r in others
        ]

    def total_of_all_accounts(self) -> int:
        return int(self._connection.execute(select(func.coalesce(func.sum(orm.postings.c.amount_fen), 0))).scalar_one())


class ViolationRepository:
    """Impersonation violations (冒名就医) and networked-settlement suspensions."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(
        self,
        violation_id: str,
        holder: str,
        patient: str,
        institution_code: str,
        now: datetime,
        since: datetime | None = None,
    ) -> int:
        """Records a violation; returns how many the holder has now (after `since`, when given)."""
        table = orm.violations
        self._connection.execute(
            insert(table).values(
                violation_id=violation_id,
                kind="IMPERSONATION",
                holder_id_number=holder,
                patient_id_number=patient,
                institution_code=institution_code,
                time=now,
            )
        )
        counted = select(func.count()).select_from(table).where(table.c.holder_id_number == holder)
        if since is not None:
            counted = counted.where(table.c.time > since)
        return int(self._connection.execute(counted).scalar_one())

    def page(self, holder: str, after: tuple[datetime, str] | None, limit: int) -> list[Any]:
        table = orm.violations
        query = select(table).where(table.c.holder_id_number == holder)
        if after is not None:
            moment = after[0]
            query = query.where(
                (table.c.time > moment) | ((table.c.time == moment) & (table.c.violation_id > after[1]))
            )
        return list(self._connection.execute(query.order_by(table.c.time, table.c.violation_id).limit(limit)))

    def suspension(self, holder: str, for_update: bool = False) -> Any | None:
        query = SUSPENSION.with_for_update() if for_update else SUSPENSION
        return self._connection.execute(query, {"holder": holder}).first()

    def suspend(self, holder: str, reason: str, operator_id: str, now: datetime) -> None:
        table = orm.suspensions
        values = {"active": True, "reason": reason, "operator_id": operator_id, "suspend_time": now, "lift_time": None}
        changed = self._connection.execute(
            update(table).where(table.c.holder_id_number == holder).values(**values)
        ).rowcount
        if not changed:
            self._connection.execute(insert(table).values(holder_id_number=holder, **values))

    def lift(self, holder: str, operator_id: str, reason: str, now: datetime) -> None:
        table = orm.suspensions
        self._connection.execute(
            update(table)
            .where(table.c.holder_id_number == holder)
            .values(active=False, lift_time=now, operator_id=operator_id, reason=reason)
        )
