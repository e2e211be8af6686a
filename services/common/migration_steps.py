"""Schema steps both services' migrations take. A step, once released, is never changed:
a later change is a new step, so every database walks the same path."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_KEY_COLUMNS = "request_id, method, fingerprint, succeeded, payload, create_time, reversed_by"


def _idempotency_table(name: str, scoped: bool) -> None:
    columns = [
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reversed_by", sa.String(length=128), nullable=True),
    ]
    if scoped:
        columns.insert(0, sa.Column("principal", sa.String(length=255), nullable=False))
    key = ("principal", "request_id") if scoped else ("request_id",)
    op.create_table(name, *columns, sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"))


def scope_idempotency_keys_by_principal() -> None:
    """Keys become (principal, request_id). Keys stored before callers had identities keep
    the empty principal, which no caller has, so they can no longer be replayed to anyone."""
    _idempotency_table("idempotency_keys_scoped", scoped=True)
    op.execute(
        f"INSERT INTO idempotency_keys_scoped (principal, {_KEY_COLUMNS}) "
        f"SELECT '', {_KEY_COLUMNS} FROM idempotency_keys"
    )
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_scoped", "idempotency_keys")


def unscope_idempotency_keys() -> None:
    """Back to one key space; of keys two principals shared, one is kept."""
    _idempotency_table("idempotency_keys_unscoped", scoped=False)
    op.execute(
        f"INSERT INTO idempotency_keys_unscoped ({_KEY_COLUMNS}) SELECT {_KEY_COLUMNS} FROM idempotency_keys k "
        "WHERE k.principal = (SELECT MIN(o.principal) FROM idempotency_keys o WHERE o.request_id = k.request_id)"
    )
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_unscoped", "idempotency_keys")
