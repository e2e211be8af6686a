"""Which node coordinates each recent cross-node transaction this node takes part in, kept in memory.

A participant record's coordinating province never changes once written. So the access
policy's check that a commit, abort or refund comes from the transaction's coordinator needs no
database read when this process wrote the record, as it usually did: a coordinator's calls
for one transaction travel on one connection, to the process that prepared it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable


class CoordinatorMemory:
    """The coordinating province of the last `capacity` transactions written or read here.
    Only committed records are remembered (see PaymentUnitOfWork.commit)."""

    def __init__(self, capacity: int = 65_536) -> None:
        self._capacity = capacity
        self._provinces: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()  # worker threads remember, the event loop asks

    def province_of(self, transaction_id: str) -> str | None:
        with self._lock:
            return self._provinces.get(transaction_id)

    def remember(self, facts: Iterable[tuple[str, str]]) -> None:
        """(transaction id, coordinating province) pairs read from or committed to the database."""
        with self._lock:
            for transaction_id, province in facts:
                self._provinces[transaction_id] = province
                self._provinces.move_to_end(transaction_id)
            while len(self._provinces) > self._capacity:
                self._provinces.popitem(last=False)
