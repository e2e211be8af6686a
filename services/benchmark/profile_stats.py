"""Reading the profiled servers' stats: the top functions, and own time by layer of the stack
(SQLAlchemy, psycopg, asyncio …), normalised per settlement."""

from __future__ import annotations

import os
import pstats
import sys
from collections import Counter
from typing import Any

from services.benchmark.options import Options


def _short(filename: str) -> str:
    if filename == "~":
        return ""
    for prefix in sorted({*sys.path, os.getcwd()}, key=len, reverse=True):
        if prefix and filename.startswith(prefix.rstrip("/") + "/"):
            return filename[len(prefix.rstrip("/")) + 1 :]
    return filename


def profile_rows(path: str, sort: str, limit: int, per: int) -> list[dict[str, Any]]:
    """The top functions of a cProfile dump; `per` normalises times to per-settlement ms."""
    raw = pstats.Stats(path).stats  # type: ignore[attr-defined]
    key_index = 3 if sort == "cumulative" else 2
    rows = sorted(raw.items(), key=lambda item: item[1][key_index], reverse=True)[:limit]
    result = []
    for (filename, line, function), (_primitive, calls, own, cumulative, _callers) in rows:
        where = _short(filename)
        result.append(
            {
                "function": f"{where}:{line}({function})" if where else function,
                "calls": calls,
                "tottime_s": round(own, 4),
                "cumtime_s": round(cumulative, 4),
                "tottime_ms_per_settlement": round(own / per * 1000, 4) if per else None,
                "cumtime_ms_per_settlement": round(cumulative / per * 1000, 4) if per else None,
            }
        )
    return result


_LAYERS = (
    ("/sqlalchemy/", "sqlalchemy"),
    ("/psycopg", "psycopg"),
    ("/grpc", "grpc (Python side)"),
    ("/google/protobuf/", "protobuf"),
    ("/asyncio/", "asyncio"),
    ("/selectors.py", "asyncio"),
    ("/logging/", "logging"),
    ("/stdnum/", "stdnum (ID numbers)"),
    ("/concurrent/futures/", "thread pool"),
    ("/threading.py", "thread pool"),
    ("/queue.py", "thread pool"),
    ("/services/", "gongji services"),
    ("/shared/", "gongji domain"),
    ("/gongji/", "generated stubs"),
)


def _layer(filename: str) -> str:
    for needle, layer in _LAYERS:
        if needle in filename:
            return layer
    return "other Python"


def profile_layers(path: str, per: int) -> list[dict[str, Any]]:
    """Own time summed by library: which layer of the stack the time is spent in. Time in
    C built-ins (len, isinstance, socket calls …) goes to the layer that called them."""
    raw = pstats.Stats(path).stats  # type: ignore[attr-defined]
    totals: Counter[str] = Counter()
    for (filename, _line, _function), row in raw.items():
        if filename != "~":
            totals[_layer(filename)] += row[2]
            continue
        callers = {caller: values[2] for caller, values in row[4].items() if caller[0] != "~"}
        attributed = sum(callers.values())
        for caller, own in callers.items():
            totals[_layer(caller[0])] += own
        if row[2] - attributed > 1e-9:
            totals["C built-ins"] += row[2] - attributed
    whole = sum(totals.values()) or 1.0
    return [
        {
            "layer": layer,
            "own_s": round(own, 3),
            "percent": round(own / whole * 100, 1),
            "ms_per_settlement": round(own / per * 1000, 3) if per else None,
        }
        for layer, own in totals.most_common()
    ]


def collect_profile(options: Options, settlements: int) -> dict[str, Any] | None:
    """Both services' profiles for the summary (None when not profiled)."""
    if not options.profile:
        return None
    result: dict[str, Any] = {"clock": options.profile_clock, "settle_calls": settlements}
    for name, path in (("payment", options.profile), ("binding", f"{options.profile}.binding")):
        if not os.path.exists(path):
            result[name] = {"path": path, "missing": True}
            continue
        result[name] = {
            "path": path,
            "top_cumulative": profile_rows(path, "cumulative", 25, settlements),
            "top_self": profile_rows(path, "tottime", 15, settlements),
            "layers": profile_layers(path, settlements),
        }
    return result
