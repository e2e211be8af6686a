"""Fresh ids for what the payment use cases record: journal entries, settlements,
transfers, node transactions and violations. The bottom of the service layer's use-case
modules: it imports none of them."""

from __future__ import annotations

import uuid


def new_id() -> str:
    return str(uuid.uuid4())
