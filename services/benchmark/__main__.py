"""The helper processes the benchmark starts: `python -m services.benchmark echo …` (the echo
baseline's server) and `… profile …` (a `gongji serve` process under cProfile)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from services.benchmark.echo import serve_echo
from services.benchmark.profiling import run_profiled
from services.serving import main as serve_main


def main(argv: list[str]) -> int:
    """`python -m services.benchmark echo ADDRESS CERT KEY CA` or `… profile PATH CLOCK GONGJI-SERVE-ARGS…`:
    the helper processes the benchmark starts."""
    if len(argv) == 5 and argv[0] == "echo":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_echo(argv[1], Path(argv[2]), Path(argv[3]), Path(argv[4])))
        return 0
    if len(argv) >= 3 and argv[0] == "profile":
        # `gongji [--log-level LEVEL] serve …` as the CLI runs it, without importing the CLI,
        # which imports this package.
        return run_profiled(argv[1], argv[2], lambda: serve_main(argv[3:]))
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
