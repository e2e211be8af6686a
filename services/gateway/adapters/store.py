"""The gateway's store on SQLAlchemy. The work is short and synchronous; each call runs on a
worker thread so the event loop keeps serving. Concurrent duplicates meet at primary keys:
the first insert wins and the others read what it stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from services.common.database import conflict_aware_insert
from services.gateway.adapters.orm import answers, reversals, settlements, sign_ins, stays
from services.gateway.service_layer.ports import Hold, RelayedSettlement, Stay, StoredAnswer, StoreUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)


# The answer stored for (institution, msgid).
ANSWER = select(answers.c.request_digest, answers.c.answer, answers.c.infno).where(
    answers.c.institution_code == bindparam("institution_code"), answers.c.msgid == bindparam("msgid")
)


def _stored(row: Any) -> StoredAnswer:
    return StoredAnswer(row.request_digest, bytes(row.answer), row.infno)


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    async def _run(self, work: Callable[[Connection], T]) -> T:
        def transaction() -> T:
            with self._engine.begin() as connection:
                return work(connection)

        try:
            return await asyncio.to_thread(transaction)
        except SQLAlchemyError as error:
            # The driver's text may quote the values written: only the class reaches the log.
            log.warning("gateway store failed: %s", type(error).__name__)
            raise StoreUnavailable(type(error).__name__) from None

    async def answer(self, institution_code: str, msgid: str) -> StoredAnswer | None:
        def work(connection: Connection) -> StoredAnswer | None:
            row = connection.execute(ANSWER, {"institution_code": institution_code, "msgid": msgid}).first()
            return None if row is None else _stored(row)

        return await self._run(work)

    async def claim(self, institution_code: str, msgid: str, infno: str, digest: str, at: datetime) -> StoredAnswer:
        def work(connection: Connection) -> StoredAnswer:
            # The claim is a row whose answer is still empty; the first body's insert wins.
            insert = conflict_aware_insert(self._dialect, answers).values(
                institution_code=institution_code, msgid=msgid, infno=infno, request_digest=digest,
                answer=b"", create_time=at,
            )  # fmt: skip
            connection.execute(insert.on_conflict_do_nothing(index_elements=["institution_code", "msgid"]))
            return _stored(connection.execute(ANSWER, {"institution_code": institution_code, "msgid": msgid}).one())

        return await self._run(work)

    async def keep_answer(
        self, institution_code: str, msgid: str, infno: str, digest: str, answer: bytes, at: datetime
    ) -> StoredAnswer:
        def work(connection: Connection) -> StoredAnswer:
            key = {"institution_code": institution_code, "msgid": msgid}
            insert = conflict_aware_insert(self._dialect, answers).values(
                **key, infno=infno, request_digest=digest, answer=answer, create_time=at
            )
            connection.execute(insert.on_conflict_do_nothing(index_elements=list(key)))
            # Only into this body's claim, and only while it holds no answer yet.
            connection.execute(
                update(answers)
                .where(
                    answers.c.institution_code == institution_code, answers.c.msgid == msgid,
                    answers.c.request_digest == digest, func.length(answers.c.answer) == 0,
                )
                .values(infno=infno, answer=answer)
            )  # fmt: skip
            return _stored(connection.execute(ANSWER, key).one())

        return await self._run(work)

    async def sign_in(
        self, institution_code: str, opter: str, day: str, sign_no: str, at: datetime
    ) -> tuple[str, datetime]:
        def work(connection: Connection) -> tuple[str, datetime]:
            key = {"institution_code": institution_code, "opter": opter, "sign_day": day}
            insert = conflict_aware_insert(self._dialect, sign_ins).values(**key, sign_no=sign_no, sign_time=at)
            connection.execute(insert.on_conflict_do_nothing(index_elements=list(key)))
            row = connection.execute(
                select(sign_ins.c.sign_no, sign_ins.c.sign_time).where(
                    *(sign_ins.c[name] == value for name, value in key.items())
                )
            ).one()
            return row.sign_no, row.sign_time

        return await self._run(work)

    async def signed_in(self, institution_code: str, sign_no: str) -> bool:
        def work(connection: Connection) -> bool:
            found = connection.execute(
                select(sign_ins.c.sign_no)
                .where(sign_ins.c.institution_code == institution_code, sign_ins.c.sign_no == sign_no)
                .limit(1)
            ).first()
            return found is not None

        return await self._run(work)

    async def record_settlement(self, settlement: RelayedSettlement) -> None:
        def work(connection: Connection) -> None:
            insert = conflict_aware_insert(self._dialect, settlements).values(**asdict(settlement))
            # Any conflict, not only on setl_id: a concurrent duplicate inserting the same row may
            # meet it first on settle_msgid, which PostgreSQL would raise for a named target.
            connection.execute(insert.on_conflict_do_nothing())

        await self._run(work)

    async def settlement(self, institution_code: str, setl_id: str) -> RelayedSettlement | None:
        return await self._one(settlements.c.institution_code == institution_code, settlements.c.setl_id == setl_id)

    async def settlement_of_msgid(self, institution_code: str, msgid: str) -> RelayedSettlement | None:
        return await self._one(
            settlements.c.institution_code == institution_code,
            or_(settlements.c.settle_msgid == msgid, settlements.c.undo_msgid == msgid),
        )

    async def _one(self, *conditions: Any) -> RelayedSettlement | None:
        def work(connection: Connection) -> RelayedSettlement | None:
            row = connection.execute(select(settlements).where(*conditions)).first()
            return None if row is None else RelayedSettlement(**row._asdict())

        return await self._run(work)

    async def change_state(
        self, institution_code: str, setl_id: str, state: str, undo_msgid: str | None, close_time: datetime | None
    ) -> None:
        def work(connection: Connection) -> None:
            connection.execute(
                update(settlements)
                .where(settlements.c.institution_code == institution_code, settlements.c.setl_id == setl_id)
                .values(state=state, undo_msgid=undo_msgid, close_time=close_time)
            )

        await self._run(work)

    async def settlements_touching(
        self, institution_code: str, start: datetime, end: datetime
    ) -> list[RelayedSettlement]:
        def work(connection: Connection) -> list[RelayedSettlement]:
            rows = connection.execute(
                select(settlements)
                .where(
                    settlements.c.institution_code == institution_code,
                    or_(
                        (settlements.c.settle_time >= start) & (settlements.c.settle_time < end),
                        (settlements.c.close_time >= start) & (settlements.c.close_time < end),
                    ),
                )
                .order_by(settlements.c.settle_time, settlements.c.setl_id)
            ).all()
            return [RelayedSettlement(**row._asdict()) for row in rows]

        return await self._run(work)

    async def record_reversal(self, institution_code: str, omsgid: str, msgid: str, at: datetime) -> None:
        def work(connection: Connection) -> None:
            insert = conflict_aware_insert(self._dialect, reversals).values(
                institution_code=institution_code, omsgid=omsgid, msgid=msgid, reverse_time=at
            )
            connection.execute(insert.on_conflict_do_nothing(index_elements=["institution_code", "omsgid"]))

        await self._run(work)

    async def reversed(self, institution_code: str, msgid: str) -> bool:
        def work(connection: Connection) -> bool:
            found = connection.execute(
                select(reversals.c.msgid).where(
                    reversals.c.institution_code == institution_code, reversals.c.omsgid == msgid
                )
            ).first()
            return found is not None

        return await self._run(work)

    async def stay(self, institution_code: str, mdtrt_id: str) -> Stay | None:
        return await self._stay_where(stays.c.institution_code == institution_code, stays.c.mdtrt_id == mdtrt_id)

    async def stay_held_by(self, institution_code: str, msgid: str) -> Stay | None:
        return await self._stay_where(stays.c.institution_code == institution_code, stays.c.hold_msgid == msgid)

    async def _stay_where(self, *conditions: Any) -> Stay | None:
        def work(connection: Connection) -> Stay | None:
            row = connection.execute(select(stays).where(*conditions)).first()
            if row is None:
                return None
            hold = None
            if row.hold_settlement_id is not None:
                hold = Hold(row.hold_settlement_id, row.hold_msgid, row.held_fen, row.expire_time)
            return Stay(row.institution_code, row.mdtrt_id, row.psn_no, hold, row.discharged)

        return await self._run(work)

    async def swap_hold(
        self, institution_code: str, mdtrt_id: str, psn_no: str, expected: str | None, hold: Hold | None, at: datetime
    ) -> bool:
        values = {
            "hold_settlement_id": hold.settlement_id if hold else None, "hold_msgid": hold.msgid if hold else None,
            "held_fen": hold.held_fen if hold else 0, "expire_time": hold.expire_time if hold else None,
            "update_time": at,
        }  # fmt: skip

        def work(connection: Connection) -> bool:
            key = (stays.c.institution_code == institution_code, stays.c.mdtrt_id == mdtrt_id)
            # The stay first, holding nothing; then the hold swapped in, if it is still as expected.
            insert = conflict_aware_insert(self._dialect, stays).values(
                institution_code=institution_code, mdtrt_id=mdtrt_id, psn_no=psn_no, hold_settlement_id=None,
                hold_msgid=None, held_fen=0, expire_time=None, discharged=False, update_time=at,
            )  # fmt: skip
            connection.execute(insert.on_conflict_do_nothing(index_elements=["institution_code", "mdtrt_id"]))
            current = stays.c.hold_settlement_id
            matches = current.is_(None) if expected is None else current == expected
            changed = connection.execute(update(stays).where(*key, matches).values(**values))
            return changed.rowcount == 1

        return await self._run(work)

    async def set_discharged(self, institution_code: str, mdtrt_id: str, discharged: bool, at: datetime) -> None:
        def work(connection: Connection) -> None:
            connection.execute(
                update(stays)
                .where(stays.c.institution_code == institution_code, stays.c.mdtrt_id == mdtrt_id)
                .values(discharged=discharged, update_time=at)
            )

        await self._run(work)
