"""Tables of cross-node work: the coordinator's saga log, a participant's
prepared legs, wallet transfers and the wallet credits a node received."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, and_, bindparam, func, insert, or_, select, text, true, update

from services.common.database import conflict_aware_insert
from services.common.write_batch import WriteBatch, inserting, updating
from services.payment.adapters import orm

# Statements of the cross-node settlement path, built once: building one costs more than running it.
_sagas, _participants, _legs = orm.node_transactions, orm.participant_transactions, orm.participant_legs
INSERT_SAGA = insert(_sagas)
SAGA = select(_sagas).where(_sagas.c.transaction_id == bindparam("id"))
SAGA_FOR_UPDATE = SAGA.with_for_update()
SAGA_LEAVES_PREPARING = (
    update(_sagas)
    .where(_sagas.c.transaction_id == bindparam("id"), _sagas.c.state == "PREPARING")
    .values(state=bindparam("state"), participants=bindparam("participants"), acknowledged=[],
            update_time=bindparam("now"))
)  # fmt: skip
SAGA_ACKNOWLEDGED = (
    update(_sagas)
    .where(_sagas.c.transaction_id == bindparam("id"), _sagas.c.state == bindparam("phase"))
    .values(state=bindparam("state"), acknowledged=bindparam("acknowledged"), update_time=bindparam("now"))
)
PARTICIPANT = (
    select(_participants, _legs.c.leg_no, _legs.c.payer_id_number, _legs.c.account_id, _legs.c.binding_id,
           _legs.c.amount_fen, _legs.c.captured_fen)
    .outerjoin(_legs, _legs.c.transaction_id == _participants.c.transaction_id)
    .where(_participants.c.transaction_id == bindparam("id"))
    .order_by(_legs.c.leg_no)
)  # fmt: skip
PARTICIPANT_FOR_UPDATE = PARTICIPANT.with_for_update(of=_participants)
GRANTOR_CREDITS_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def advisory_key(namespace: str, value: str) -> int:
    """A PostgreSQL advisory lock key (a signed 64-bit number) naming `value` within `namespace`."""
    digest = hashlib.blake2b(f"{namespace}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# Where a page of a recovery queue ended: the last record's ordering time and id. Recovery reads
# the next page past it, so records it cannot finish yet do not fill every pass.
PageEnd = tuple[datetime, str]


def _past(time: Column[datetime], key: Column[str], after: PageEnd | None) -> ColumnElement[bool]:
    """Rows that come after `after` in (time, key) order; every row when None."""
    if after is None:
        return true()
    at, last = after
    return or_(time > at, and_(time == at, key > last))


COORDINATOR_OF = select(_participants.c.coordinator_province).where(_participants.c.transaction_id == bindparam("id"))


@dataclass
class NodeTransaction:
    """Coordinator side. participants: province → legs on that province's node."""

    transaction_id: str
    kind: str
    state: str
    participants: dict[str, list[dict[str, Any]]]
    coordinator_province: str
    beneficiary_id_number: str
    institution_code: str
    expire_time: datetime
    create_time: datetime
    update_time: datetime
    acknowledged: list[str] = field(default_factory=list)


class NodeTransactionLog:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, txn: NodeTransaction) -> None:
        self._connection.execute(
            INSERT_SAGA,
            {
                "transaction_id": txn.transaction_id,
                "kind": txn.kind,
                "state": txn.state,
                "participants": txn.participants,
                "acknowledged": txn.acknowledged,
                "coordinator_province": txn.coordinator_province,
                "beneficiary_id_number": txn.beneficiary_id_number,
                "institution_code": txn.institution_code,
                "expire_time": txn.expire_time,
                "create_time": txn.create_time,
                "update_time": txn.update_time,
            },
        )

    def get(self, transaction_id: str, for_update: bool = False) -> NodeTransaction | None:
        row = self._connection.execute(SAGA_FOR_UPDATE if for_update else SAGA, {"id": transaction_id}).first()
        if row is None:
            return None
        return NodeTransaction(
            row.transaction_id, row.kind, row.state, dict(row.participants), row.coordinator_province,
            row.beneficiary_id_number, row.institution_code, row.expire_time, row.create_time, row.update_time,
            list(row.acknowledged),
        )  # fmt: skip

    def save(self, txn: NodeTransaction, now: datetime) -> None:
        table = orm.node_transactions
        txn.update_time = now
        self._connection.execute(
            update(table)
            .where(table.c.transaction_id == txn.transaction_id)
            .values(state=txn.state, participants=txn.participants, acknowledged=txn.acknowledged, update_time=now)
        )

    def leave_preparing(
        self, transaction_id: str, state: str, participants: dict[str, list[dict[str, Any]]], now: datetime
    ) -> bool:
        """Moves a saga from PREPARING to `state` with these legs; False when it is no longer PREPARING."""
        changed = self._connection.execute(
            SAGA_LEAVES_PREPARING, {"id": transaction_id, "state": state, "participants": participants, "now": now}
        )
        return changed.rowcount == 1  # type: ignore[attr-defined]

    def acknowledge(self, transaction_id: str, phase: str, state: str, acknowledged: list[str], now: datetime) -> bool:
        """Notes the participants that applied `phase` and the state that follows; False when the saga
        is no longer in `phase`."""
        changed = self._connection.execute(
            SAGA_ACKNOWLEDGED,
            {"id": transaction_id, "phase": phase, "state": state, "acknowledged": acknowledged, "now": now},
        )
        return changed.rowcount == 1  # type: ignore[attr-defined]

    def unfinished(
        self, states: list[str], limit: int, idle: tuple[datetime, datetime] | None = None, after: PageEnd | None = None
    ) -> list[PageEnd]:
        """Sagas in `states`, oldest first, past `after`; with `idle` (since, unless_after), only
        those last touched at or before `since` or after `unless_after` (stamped by a clock that
        has since been stepped back). Ordered by what never changes, so paging reaches every one."""
        table = orm.node_transactions
        query = select(table.c.create_time, table.c.transaction_id).where(
            table.c.state.in_(states), _past(table.c.create_time, table.c.transaction_id, after)
        )
        if idle is not None:
            since, unless_after = idle
            query = query.where(or_(table.c.update_time <= since, table.c.update_time > unless_after))
        rows = self._connection.execute(query.order_by(table.c.create_time, table.c.transaction_id).limit(limit))
        return [(row.create_time, row.transaction_id) for row in rows]


@dataclass
class PreparedLeg:
    leg_no: int
    payer_id_number: str
    account_id: str
    binding_id: str
    amount_fen: int
    captured_fen: int = 0


@dataclass
class ParticipantTransaction:
    transaction_id: str
    coordinator_province: str
    state: str
    beneficiary_id_number: str
    institution_code: str
    expire_time: datetime
    legs: list[PreparedLeg]
    create_time: datetime | None = None
    # When its state last changed: a COMMITTED record's is the time its legs were captured.
    update_time: datetime | None = None
    # The most the bill may take from these legs together; None: no per-use limit (or prepared
    # before it was kept).
    per_use_bound_fen: int | None = None


class ParticipantLog:
    def __init__(self, connection: Connection, writes: WriteBatch) -> None:
        self._connection = connection
        self._writes = writes
        # (transaction id, coordinating province) of the records this unit of work added.
        self.added: list[tuple[str, str]] = []

    def get(self, transaction_id: str, for_update: bool = False) -> ParticipantTransaction | None:
        query = PARTICIPANT_FOR_UPDATE if for_update else PARTICIPANT
        rows = self._connection.execute(query, {"id": transaction_id}).all()
        if not rows:
            return None
        row = rows[0]
        return ParticipantTransaction(
            row.transaction_id, row.coordinator_province, row.state, row.beneficiary_id_number, row.institution_code,
            row.expire_time,
            [PreparedLeg(r.leg_no, r.payer_id_number, r.account_id, r.binding_id, r.amount_fen, r.captured_fen)
             for r in rows if r.leg_no is not None],
            row.create_time,
            row.update_time,
            row.per_use_bound_fen,
        )  # fmt: skip

    def coordinator_of(self, transaction_id: str) -> str | None:
        """The province whose node coordinates the transaction, without its legs."""
        return self._connection.execute(COORDINATOR_OF, {"id": transaction_id}).scalar_one_or_none()

    def add(self, txn: ParticipantTransaction, now: datetime) -> None:
        self.added.append((txn.transaction_id, txn.coordinator_province))
        row = {
            "transaction_id": txn.transaction_id,
            "coordinator_province": txn.coordinator_province,
            "state": txn.state,
            "beneficiary_id_number": txn.beneficiary_id_number,
            "institution_code": txn.institution_code,
            "expire_time": txn.expire_time,
            "create_time": now,
            "update_time": now,
            "per_use_bound_fen": txn.per_use_bound_fen,
        }
        legs = [
            {"transaction_id": txn.transaction_id, "leg_no": leg.leg_no, "payer_id_number": leg.payer_id_number,
             "account_id": leg.account_id, "binding_id": leg.binding_id, "amount_fen": leg.amount_fen,
             "captured_fen": leg.captured_fen}
            for leg in txn.legs
        ]  # fmt: skip
        self._writes.write(inserting(_participants, [row]), inserting(_legs, legs))

    def save(self, txn: ParticipantTransaction, now: datetime) -> None:
        """Writes the record's new state and what each leg captured."""
        row = {"transaction_id": txn.transaction_id, "state": txn.state, "update_time": now}
        legs = [
            {"transaction_id": txn.transaction_id, "leg_no": leg.leg_no, "captured_fen": leg.captured_fen}
            for leg in txn.legs
        ]
        self._writes.write(
            updating(_participants, ("transaction_id",), [row]),
            updating(_legs, ("transaction_id", "leg_no"), legs),
        )

    def expired_prepared(self, now: datetime, limit: int, after: PageEnd | None = None) -> list[ParticipantTransaction]:
        """Prepared transactions past their expiry, the earliest expired first, past `after`."""
        table = orm.participant_transactions
        rows = self._connection.execute(
            select(table.c.transaction_id)
            .where(
                table.c.state == "PREPARED",
                table.c.expire_time <= now,
                _past(table.c.expire_time, table.c.transaction_id, after),
            )
            .order_by(table.c.expire_time, table.c.transaction_id)
            .limit(limit)
        )
        found = [self.get(row.transaction_id) for row in rows]
        return [txn for txn in found if txn is not None]


class TransferRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, values: dict[str, Any]) -> None:
        self._connection.execute(insert(orm.transfers).values(**values))

    def get(self, transfer_id: str, for_update: bool = False) -> Any | None:
        query = select(orm.transfers).where(orm.transfers.c.transfer_id == transfer_id)
        return self._connection.execute(query.with_for_update() if for_update else query).first()

    def set_state(self, transfer_id: str, state: str, complete_time: datetime | None) -> None:
        table = orm.transfers
        self._connection.execute(
            update(table).where(table.c.transfer_id == transfer_id).values(state=state, complete_time=complete_time)
        )

    def of_grantor_since(self, grantor_id_number: str, since: datetime) -> list[Any]:
        table = orm.transfers
        return list(
            self._connection.execute(
                select(table).where(table.c.grantor_id_number == grantor_id_number, table.c.create_time >= since)
            )
        )

    def pending_of_grantor(self, grantor_id_number: str) -> list[Any]:
        table = orm.transfers
        return list(
            self._connection.execute(
                select(table).where(table.c.grantor_id_number == grantor_id_number, table.c.state == "PENDING")
            )
        )

    def pending(self, limit: int, after: PageEnd | None = None) -> list[Any]:
        """Transfers still waiting for the receiving node, oldest first, past `after`."""
        table = orm.transfers
        return list(
            self._connection.execute(
                select(table)
                .where(table.c.state == "PENDING", _past(table.c.create_time, table.c.transfer_id, after))
                .order_by(table.c.create_time, table.c.transfer_id)
                .limit(limit)
            )
        )

    def credited(self, transfer_id: str, source_province: str) -> Any | None:
        """The receiving side's record of the transfer the node of `source_province` sent under this
        id: credited, or declined (refunded by the sender)."""
        table = orm.wallet_credits
        return self._connection.execute(
            select(table).where(table.c.transfer_id == transfer_id, table.c.source_province == source_province)
        ).first()

    def senders_of(self, transfer_id: str) -> list[str]:
        """The sending provinces of the transfers received here under this id (credited or declined)."""
        table = orm.wallet_credits
        rows = self._connection.execute(select(table.c.source_province).where(table.c.transfer_id == transfer_id))
        return sorted(row.source_province for row in rows)

    def lock_credits_of_grantor(self, grantor: str) -> None:
        """Keeps, to the end of this transaction, every other credit from `grantor` from counting
        the grantor's credits: two credits into different wallets (each locked apart) would
        otherwise both count the day before either is written. SQLite's writers hold the whole
        database already (BEGIN IMMEDIATE); PostgreSQL takes a transaction-scoped advisory lock."""
        if self._connection.dialect.name == "postgresql":
            self._connection.execute(GRANTOR_CREDITS_LOCK, {"key": advisory_key("wallet-credits", grantor)})

    def credits_of_grantor_since(self, grantor: str, since: datetime) -> int:
        """How many transfers from `grantor` this node credited (not declined) since `since`."""
        table = orm.wallet_credits
        return self._connection.execute(
            select(func.count())
            .select_from(table)
            .where(table.c.grantor_id_number == grantor, table.c.time >= since, ~table.c.declined)
        ).scalar_one()

    def claim_credit(
        self, transfer_id: str, beneficiary: str, amount: int, source_province: str, now: datetime, declined: bool,
        grantor: str = "",
    ) -> bool:  # fmt: skip
        """Records the one outcome a received transfer gets; False when it has one already.

        Credit and decline claim the same key, so whichever commits first wins and
        the other waits for it, then finds its row.
        """
        table = orm.wallet_credits
        statement = (
            conflict_aware_insert(self._connection.dialect.name, table)
            .values(
                transfer_id=transfer_id,
                beneficiary_id_number=beneficiary,
                amount_fen=amount,
                source_province=source_province,
                time=now,
                declined=declined,
                grantor_id_number=grantor,
            )
            .on_conflict_do_nothing()
            .returning(table.c.transfer_id)
        )
        return self._connection.execute(statement).first() is not None
