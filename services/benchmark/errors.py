"""The benchmark's exceptions: a run that cannot go on, and a call answered with a refusal."""

from __future__ import annotations


class BenchmarkError(Exception):
    """The benchmark could not run; the message says why."""


class CallRefused(Exception):
    """A call answered with a refusal that is not a gRPC error (the gateway's infcode -1, an HTTP
    error status): the load driver counts it as an error, as it counts a failed RPC."""
