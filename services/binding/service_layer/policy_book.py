"""All regional policy versions, cached in the process.

Policies change rarely and are effective-dated, usually ahead of time, so each
process rereads them at most every `max_age` seconds (and at once after its own
PutRegionPolicy). This keeps ResolvePayers at one database round trip.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from services.binding.service_layer.unit_of_work import BindingUnitOfWork
from shared.policy import PolicyIndex, RegionPolicy


class PolicySnapshot:
    def __init__(self, policies: list[RegionPolicy]) -> None:
        self.policies = policies
        self._index = PolicyIndex(policies)

    def for_region(self, admdvs: str, at: datetime) -> RegionPolicy:
        return self._index.for_region(admdvs, at)

    def next_change_after(self, at: datetime) -> datetime | None:
        return self._index.next_change_after(at)


class PolicyBook:
    def __init__(self, max_age: float = 5.0) -> None:
        self._max_age = max_age
        self._lock = threading.Lock()
        self._snapshot: PolicySnapshot | None = None
        self._loaded_at = 0.0
        self._invalidations = 0

    def snapshot(self, uow: BindingUnitOfWork) -> PolicySnapshot:
        with self._lock:
            if self._snapshot is not None and time.monotonic() - self._loaded_at < self._max_age:
                return self._snapshot
            invalidations = self._invalidations
        fresh = PolicySnapshot(uow.policies.all())
        with self._lock:
            # Read before an invalidation (a version committed meanwhile), it is not kept.
            if self._invalidations == invalidations:
                self._snapshot, self._loaded_at = fresh, time.monotonic()
        return fresh

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None
            self._invalidations += 1
