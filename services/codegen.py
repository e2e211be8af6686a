"""Generates the Python stubs of protos/ beside the .proto files.

The proto tree mirrors the import path (`protos/gongji/binding/v1/binding.proto`
becomes `gongji.binding.v1.binding_pb2`), as googleapis-common-protos ships
`google/rpc/status.proto` next to `status_pb2.py`. Run after editing a proto:

    python -m services.codegen

The protos import `google/api/field_behavior.proto` (AIP-203 REQUIRED marks). protoc and buf
read the copy under protos/third_party/googleapis/ (buf's second module), which this command
first refreshes from the installed googleapis-common-protos package; the stubs import that
package's `google.api.field_behavior_pb2`, and nothing is generated for the copy.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parents[1] / "protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
# Protos of other projects the contracts import, as buf.yaml's second module: not ours, so
# nothing is generated for them.
THIRD_PARTY = PROTO_ROOT / "third_party"
THIRD_PARTY_ROOT = THIRD_PARTY / "googleapis"
# What the contracts import from googleapis-common-protos.
GOOGLEAPIS_IMPORTS = ("google/api/field_behavior.proto",)


def installed_googleapis_root() -> Path:
    """The directory of the installed googleapis-common-protos that holds google/api/*.proto."""
    from google.api import field_behavior_pb2

    return Path(field_behavior_pb2.__file__).resolve().parents[2]


def refresh_third_party(root: Path = THIRD_PARTY_ROOT) -> list[Path]:
    """Copies GOOGLEAPIS_IMPORTS from the installed package to root; returns the files written."""
    written = []
    for name in GOOGLEAPIS_IMPORTS:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(installed_googleapis_root() / name, target)
        written.append(target)
    return written


def proto_files(root: Path = PROTO_ROOT) -> list[Path]:
    """The contracts: every .proto under root but the copies of other projects' files."""
    return sorted(path for path in root.rglob("*.proto") if "third_party" not in path.relative_to(root).parts)


def generate(out_dir: Path, root: Path = PROTO_ROOT) -> list[Path]:
    """Writes stubs for every proto under root into out_dir; returns the files written."""
    from grpc_tools import protoc  # dev-only dependency, imported where it is needed

    well_known = resources.files("grpc_tools") / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = [str(p.relative_to(root)) for p in proto_files(root)]
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={root}",
            f"--proto_path={THIRD_PARTY_ROOT}",
            f"--proto_path={well_known}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *protos,
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status}")
    for module in out_dir.rglob("*_pb2.py"):
        directory = module.parent
        while directory != out_dir:
            (directory / "__init__.py").touch()
            directory = directory.parent
    return sorted(p for p in out_dir.rglob("*") if p.is_file())


def generated_files(root: Path = PROTO_ROOT) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.is_file() and (p.name.endswith(GENERATED_SUFFIXES) or p.name == "__init__.py")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROTO_ROOT, help="output root (default: beside the protos)")
    args = parser.parse_args(argv)
    refresh_third_party()
    if args.out != PROTO_ROOT:
        written = generate(args.out)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            fresh = generate(Path(scratch))  # fails before anything committed is touched
            for stale in generated_files():
                stale.unlink()
            written = []
            for file in fresh:
                target = PROTO_ROOT / file.relative_to(scratch)
                shutil.copyfile(file, target)
                written.append(target)
    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
