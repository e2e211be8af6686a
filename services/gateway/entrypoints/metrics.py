"""The gateway's Prometheus metrics: requests by transaction and outcome, and, read from its
tables when Prometheus scrapes, the settlements it relayed by state. No label is personal, and
none grows with what callers send: infno is one of the served transactions (else empty), reason
bounded to known shapes, outcomes to infcode or the HTTP status."""

from __future__ import annotations

from collections.abc import Collection, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Connection, func, select

from services.common.metrics import bounded_reason, gauge
from services.gateway.adapters import orm


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry, served: Collection[str]) -> None:
        # Any four digits pass the envelope's check: labelling each would let one caller make
        # ten thousand series (times the histogram's buckets) by inventing infnos.
        self._served = frozenset(served)
        self._requests = Counter(
            "gongji_gateway_requests_total",
            "Requests to the national interface, by infno and outcome (infcode 0 or -1, else the HTTP status).",
            ["infno", "outcome", "reason"], registry=registry,
        )  # fmt: skip
        self._seconds = Histogram(
            "gongji_gateway_request_seconds", "Time from a request's arrival to its answer.", ["infno"],
            registry=registry,
        )  # fmt: skip

    def handled(self, infno: str, outcome: str, reason: str, seconds: float) -> None:
        infno = infno if infno in self._served else ""
        reason = bounded_reason(reason) if reason else ""
        self._requests.labels(infno, outcome, reason).inc()
        self._seconds.labels(infno).observe(seconds)


def read_gateway_gauges(connection: Connection) -> Iterator[GaugeMetricFamily]:
    s = orm.settlements
    rows = connection.execute(select(s.c.infno, s.c.state, func.count()).group_by(s.c.infno, s.c.state)).all()
    yield gauge(
        "gongji_gateway_relayed_settlements", "Settlements relayed by the gateway, by infno and state.",
        ["infno", "state"], rows,
    )  # fmt: skip
