"""The committed stubs match the protos, and the protos pass `buf lint`.

The Python stubs are generated beside the .proto files and committed, so that
an installed package imports without grpc_tools. A proto edited without
regenerating would ship a contract the servers do not speak.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.codegen import PROTO_ROOT, generate, generated_files, proto_files

REGENERATE = "run `python -m services.codegen` and commit the result"


def relative_files(paths: list[Path], root: Path) -> dict[str, Path]:
    return {path.relative_to(root).as_posix(): path for path in paths}


def test_the_committed_stubs_are_exactly_what_the_protos_generate(tmp_path: Path) -> None:
    """The protos are the contract; the stubs under protos/ must be generated from them as they are now."""
    fresh = relative_files(generate(tmp_path), tmp_path)
    committed = relative_files(generated_files(), PROTO_ROOT)

    missing = sorted(set(fresh) - set(committed))
    stale = sorted(set(committed) - set(fresh))
    assert not missing, f"generated files missing under protos/: {missing}; {REGENERATE}"
    assert not stale, f"files under protos/ that no proto generates: {stale}; {REGENERATE}"
    differing = sorted(name for name in fresh if fresh[name].read_bytes() != committed[name].read_bytes())
    assert not differing, f"stubs out of date with their protos: {differing}; {REGENERATE}"


def test_every_proto_has_its_message_service_and_type_stubs() -> None:
    committed = set(relative_files(generated_files(), PROTO_ROOT))
    protos = proto_files()  # the contracts; third_party/ holds another project's file
    assert protos
    for proto in protos:
        stem = proto.relative_to(PROTO_ROOT).with_suffix("").as_posix()
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert f"{stem}{suffix}" in committed, f"{stem}{suffix} is missing; {REGENERATE}"


def find_buf() -> str | None:
    """buf on PATH, else the one the dev extra (buf-bin) put beside this interpreter."""
    return shutil.which("buf") or shutil.which("buf", path=str(Path(sys.executable).parent))


def test_buf_lint_passes_on_the_protos() -> None:
    """buf's STANDARD rules (protos/buf.yaml): naming, UNSPECIFIED zeros, request/response per RPC."""
    binary = find_buf()
    if binary is None:
        message = "buf is not on PATH (pip install 'gongji[dev]' installs buf-bin)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; it is required when CI is set")
        pytest.skip(message)
    result = subprocess.run(
        [binary, "lint"],
        cwd=PROTO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"buf lint found problems:\n{result.stdout}{result.stderr}"
