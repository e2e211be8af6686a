"""The one exception the benchmark raises for a run that cannot go on."""

from __future__ import annotations


class BenchmarkError(Exception):
    """The benchmark could not run; the message says why."""
