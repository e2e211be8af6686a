"""The binding service's domain gauges, read from its tables when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Connection, func, select

from services.binding.adapters import orm
from services.common.metrics import gauge
from shared.bindings import BindingState


def read_binding_gauges(connection: Connection) -> Iterator[GaugeMetricFamily]:
    b = orm.bindings
    counts = dict.fromkeys((state.value for state in BindingState), 0)
    for state, count in connection.execute(select(b.c.state, func.count()).group_by(b.c.state)):
        counts[state] = count
    yield gauge("gongji_bindings", "Bindings by state.", ["state"], counts.items())
