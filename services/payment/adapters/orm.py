"""The payment service's tables."""

from __future__ import annotations

from sqlalchemy import MetaData

from services.common.idempotency import idempotency_table

metadata = MetaData()

idempotency_keys = idempotency_table(metadata)
