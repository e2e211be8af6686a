"""The demo's printed report: numbered steps, each marked done or refused with the reason
the server gave, and the principal who made the call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from services.common.security.natural_callers import Roles
from services.common.status import error_info_of


class Report:
    def __init__(self, roles: Roles | None = None) -> None:
        self._step = 0
        self._keys = 0
        self._roles = roles

    def key(self) -> str:
        self._keys += 1
        return f"demo-{self._keys:04d}"

    def section(self, title: str) -> None:
        print(f"\n== {title}")

    def _caller(self) -> str:
        if self._roles is None:
            return ""
        last = self._roles.last
        return f"  [as {last.path}]" if last else "  [as nobody]"

    def ok(self, text: str, caller: str | None = None) -> None:
        """A step done; `caller` names who made it when that was not a gRPC call of the demo's."""
        self._step += 1
        print(f"  {self._step:2d}. ✓ {text}{self._caller() if caller is None else f'  [as {caller}]'}")

    def declined(self, text: str, err_msg: str, caller: str) -> None:
        """A refusal given as an answer (the national interface's infcode -1), not as an RPC error."""
        self._step += 1
        print(f"  {self._step:2d}. ✗ {text}  [as {caller}]\n        refused: {err_msg}")

    def refused(self, text: str, error: grpc.RpcError) -> None:
        self._step += 1
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        info = error_info_of(status) if status else None
        reason = info.reason if info else "(no status: refused before any call)"
        print(
            f"  {self._step:2d}. ✗ {text}{self._caller()}\n"
            f"        refused: {error.code().name} {reason} — {error.details()}"
        )

    def expect_refusal(self, text: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except grpc.RpcError as error:
            self.refused(text, error)
            return
        raise AssertionError(f"the demo expected a refusal: {text}")
