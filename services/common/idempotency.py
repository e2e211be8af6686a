"""Idempotency keys (AIP-155): a retry returns the first answer, failures included.

Keys belong to the caller: the key is (principal, request_id), so two callers may use the
same request_id without ever seeing, blocking or reversing each other's requests.

The key is claimed in the same transaction as the request's effect, so an
answer is stored exactly when its effect is. A concurrent retry with the same
key waits on the claim (primary key) and then reads the stored answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)

from services.common.converters import printable
from services.common.database import conflict_aware_insert
from services.common.driver_statements import DriverStatement
from services.common.types import UtcDateTime
from services.common.write_batch import WriteBatch, updating
from shared.errors import DomainError, Reason


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        # The SPIFFE ID of the caller whose key it is.
        Column("principal", String(255), primary_key=True),
        Column("request_id", String(128), primary_key=True),
        Column("method", String(128), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        # NULL while the claiming transaction runs; never visible to others then.
        Column("succeeded", Boolean, nullable=True),
        # The serialized response, or the serialized google.rpc.Status of a refusal.
        Column("payload", LargeBinary, nullable=True),
        Column("create_time", UtcDateTime, nullable=False),
        # Set by a reversal (冲正): the request's effect was cancelled, and a
        # late or repeated arrival of it is refused with REQUEST_REVERSED.
        Column("reversed_by", String(128), nullable=True),
    )


MAX_REQUEST_ID_LENGTH = 128


def check_request_id(value: str, field: str) -> str:
    """An idempotency key as stored: present, at most 128 characters, all printable, neither
    blank nor with whitespace before or after it (check_printable_key)."""
    if not value:
        raise DomainError(Reason.FIELD_REQUIRED, f"{field} (an idempotency key) is required", field=field)
    if len(value) > MAX_REQUEST_ID_LENGTH:
        raise DomainError(
            Reason.FIELD_INVALID, f"{field} is longer than {MAX_REQUEST_ID_LENGTH} characters", field=field
        )
    return check_printable_key(value, field)


def check_printable_key(value: str, field: str) -> str:
    """A key neither blank nor padded (check_unpadded_key) whose every character is printable:
    no control character (C0, DEL or C1, which a terminal obeys), no invisible format character
    (a zero-width space, a right-to-left override, a byte-order mark) that makes two keys look
    alike in the access log and in a caller's own records, no line separator, nothing unassigned.
    A space within the key is printable; other spaces (U+3000, U+00A0) are not."""
    check_unpadded_key(value, field)
    return printable(value, field)


def check_unpadded_key(value: str, field: str) -> str:
    """A non-empty key of only whitespace, or with whitespace before or after it, is refused as
    FIELD_INVALID naming the field (an empty one is left to the caller's own check).

    A blank key is no key: every caller that sends one would share it, each retry of one
    request would meet another's answer. Padding is a caller's bug too (a fixed-width field
    copied as is, a stray space): ReverseRequest trims original_request_id before it looks a
    key up, so a key stored padded could never be reversed, and padding is invisible in the
    access log's request_id. str.strip() trims every Unicode space, U+3000 and U+00A0 too."""
    trimmed = value.strip()
    if trimmed == value:
        return value
    if not trimmed:
        message = f"{field} is only whitespace; send a key unique to the request, such as a UUID"
    else:
        message = f"{field} has whitespace before or after it; send the key without it"
    raise DomainError(Reason.FIELD_INVALID, message, field=field)


def fingerprint(method: str, request_bytes: bytes) -> str:
    return hashlib.sha256(method.encode() + b"\0" + request_bytes).hexdigest()


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    payload: bytes


@dataclass(frozen=True)
class StoredRequest:
    principal: str
    request_id: str
    method: str
    fingerprint: str
    outcome: Outcome | None
    reversed_by: str | None = None


@cache
def _lookup(table: Table, for_update: bool) -> Any:
    """The key's row, built once per table: building a statement costs more than running it."""
    key = (table.c.principal == bindparam("principal")) & (table.c.request_id == bindparam("request_id"))
    query = select(table).where(key)
    return query.with_for_update() if for_update else query


class IdempotencyStore:
    def __init__(self, connection: Connection, table: Table, writes: WriteBatch) -> None:
        self._connection = connection
        self._table = table
        self._writes = writes

    def _key(self, principal: str, request_id: str) -> Any:
        return (self._table.c.principal == principal) & (self._table.c.request_id == request_id)

    def get(self, principal: str, request_id: str, for_update: bool = False) -> StoredRequest | None:
        query = _lookup(self._table, for_update)
        row = self._connection.execute(query, {"principal": principal, "request_id": request_id}).first()
        if row is None:
            return None
        outcome = None if row.succeeded is None else Outcome(row.succeeded, row.payload)
        return StoredRequest(row.principal, row.request_id, row.method, row.fingerprint, outcome, row.reversed_by)

    def claim(
        self,
        principal: str,
        request_id: str,
        method: str,
        fingerprint: str,
        now: datetime,
        outcome: Outcome | None = None,
    ) -> bool:
        """Takes the key for this transaction; False when it is taken already.

        A twin claiming the same key concurrently waits here until this
        transaction ends (PostgreSQL waits on the uncommitted key; SQLite
        writers queue), so a False always means a committed answer exists.
        """
        values = {
            "principal": principal,
            "request_id": request_id,
            "method": method,
            "fingerprint": fingerprint,
            "create_time": now,
        }
        if outcome is not None:
            values |= {"succeeded": outcome.succeeded, "payload": outcome.payload}
        return bool(_claim(self._table, self._connection.dialect.name).rows(self._connection, values))

    def complete(self, principal: str, request_id: str, outcome: Outcome) -> None:
        """Stores the answer under the key claimed; one of the transaction's writes."""
        row = {"principal": principal, "request_id": request_id, "succeeded": outcome.succeeded}
        self._writes.write(updating(self._table, _KEY, [row | {"payload": outcome.payload}]))

    def mark_reversed(self, principal: str, request_id: str, reversal_id: str, refusal: Outcome) -> None:
        """Replaces a request's stored answer by the reversal's refusal."""
        self._connection.execute(
            update(self._table)
            .where(self._key(principal, request_id))
            .values(succeeded=False, payload=refusal.payload, reversed_by=reversal_id)
        )

    def tombstone(self, principal: str, request_id: str, reversal_id: str, refusal: Outcome, now: datetime) -> None:
        """Reserves the key of a request reversed before it arrived, so it is refused if it ever does."""
        self._connection.execute(
            insert(self._table).values(
                principal=principal,
                request_id=request_id,
                method=REVERSED_BEFORE_ARRIVAL,
                fingerprint="",
                succeeded=False,
                payload=refusal.payload,
                create_time=now,
                reversed_by=reversal_id,
            )
        )


_KEY = ("principal", "request_id")


@cache
def _claim(table: Table, dialect: str) -> Any:
    """Built once per table: every mutating request runs it, and building costs more than running."""
    return DriverStatement(conflict_aware_insert(dialect, table).on_conflict_do_nothing().returning(table.c.request_id))


REVERSED_BEFORE_ARRIVAL = "(reversed before arrival)"


def check_same_request(stored: StoredRequest, method: str, fingerprint_: str) -> None:
    if stored.reversed_by is not None:
        return  # any arrival of a reversed request gets the reversal's refusal
    if stored.method != method or stored.fingerprint != fingerprint_:
        raise DomainError(
            Reason.IDEMPOTENCY_KEY_REUSED,
            "this request_id was already used for a different request; use a new request_id",
            field="request_id",
        )
