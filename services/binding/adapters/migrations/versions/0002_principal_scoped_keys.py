"""Idempotency keys belong to the calling principal: (principal, request_id).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from services.common.migration_steps import scope_idempotency_keys_by_principal, unscope_idempotency_keys

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    scope_idempotency_keys_by_principal()


def downgrade() -> None:
    unscope_idempotency_keys()
