"""Every ErrorInfo.reason the services send is a value of gongji.common.v1.ErrorReason.

The enum (protos/gongji/common/v1/error_reason.proto) is what clients decode the
reason with; its value names are the wire strings, and each value's comment starts
with the gRPC code the reason travels with. These tests keep the enum, the Python
reasons (shared.errors.Reason), the codes the services send (services/common/status.py)
and README.md's Errors table saying the same thing.
"""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2

from gongji.common.v1 import error_reason_pb2
from services.codegen import PROTO_ROOT
from services.common.status import error_info_of, internal_status, status_of
from shared.errors import DomainError, Reason

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / "services"
README = REPO / "README.md"
PROTO = "gongji/common/v1/error_reason.proto"
ENUM = error_reason_pb2.ErrorReason.DESCRIPTOR
ZERO = "ERROR_REASON_UNSPECIFIED"
DOMAIN = "binding.gongji"
CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# Reasons put into ErrorInfo by a literal string, not by a Reason: plain_status(grpc.StatusCode.X, "REASON", ...).
PLAIN_STATUS_CALL = re.compile(r"(?<!def )\bplain_status\(")
PLAIN_STATUS_LITERAL = re.compile(r'\bplain_status\(\s*grpc\.StatusCode\.([A-Z_]+),\s*"([A-Z_]+)"')


def enum_reasons() -> set[str]:
    return {value.name for value in ENUM.values if value.number != 0}


def reasons_sent_as_literals() -> dict[str, grpc.StatusCode]:
    """What the services send without a Reason: internal_status, and every plain_status call."""
    internal = internal_status(DOMAIN)
    sent = {error_info_of(internal).reason: CODE_BY_NUMBER[internal.code]}
    for path in sorted(SERVICES.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        calls = PLAIN_STATUS_CALL.findall(text)
        literals = PLAIN_STATUS_LITERAL.findall(text)
        assert len(literals) == len(calls), (
            f"{path.relative_to(REPO)}: a plain_status call whose code and reason are not literals; "
            "extend this test so it still knows every reason the services send"
        )
        for code, reason in literals:
            sent[reason] = grpc.StatusCode[code]
    return sent


@pytest.fixture(scope="module")
def comments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each ErrorReason value's leading comment, as protoc reads the .proto file."""
    from grpc_tools import protoc  # dev-only dependency, as in tests/test_generated_code.py

    out = tmp_path_factory.mktemp("error_reason") / "descriptor_set.pb"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_ROOT}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            PROTO,
        ]
    )
    assert status == 0, f"protoc failed on {PROTO}"
    (file,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    enum_index = [enum.name for enum in file.enum_type].index(ENUM.name)
    values = file.enum_type[enum_index].value
    found: dict[str, str] = {}
    for location in file.source_code_info.location:
        path = list(location.path)
        # FileDescriptorProto.enum_type = 5, EnumDescriptorProto.value = 2.
        if len(path) == 4 and path[:3] == [5, enum_index, 2]:
            found[values[path[3]].name] = " ".join(location.leading_comments.split())
    return found


def documented_code(comment: str) -> grpc.StatusCode | None:
    match = re.match(r"([A-Z_]+)\. \S", comment)
    return grpc.StatusCode.__members__.get(match.group(1)) if match else None


def readme_errors_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Errors\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def readme_table() -> list[tuple[str, list[str]]]:
    """The Errors table as (gRPC code, reasons) rows."""
    rows = [line for line in readme_errors_section().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    code_column = header.index("gRPC code")
    (reasons_column,) = (index for index, cell in enumerate(header) if "reasons" in cell)
    table = []
    for row in rows[2:]:  # after the header and its |---| line
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        table.append((cells[code_column], re.findall(r"`([A-Z_]+)`", cells[reasons_column])))
    return table


def test_every_python_reason_is_a_value_of_the_error_reason_enum() -> None:
    missing = sorted({reason.value for reason in Reason} - enum_reasons())
    assert not missing, f"add these to ErrorReason in protos/{PROTO} and run `python -m services.codegen`: {missing}"


def test_every_error_reason_value_is_a_reason_the_services_send() -> None:
    sent = {reason.value for reason in Reason} | set(reasons_sent_as_literals())
    unknown = sorted(enum_reasons() - sent)
    assert not unknown, f"ErrorReason values that the services never send (no Reason, no literal): {unknown}"


def test_the_zero_value_is_unspecified_and_no_reason_is_called_that() -> None:
    assert ENUM.values_by_number[0].name == ZERO
    assert ZERO not in {reason.value for reason in Reason}


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_a_reason_travels_with_the_code_its_enum_comment_names(reason: Reason, comments: dict[str, str]) -> None:
    status = status_of(DomainError(reason, "refused"), DOMAIN)
    assert error_info_of(status).reason == ENUM.values_by_name[reason.value].name  # the wire string is the name
    sent = CODE_BY_NUMBER[status.code]
    assert documented_code(comments[reason.value]) == sent, (
        f"{reason.value} is sent with {sent.name}, but its comment in {PROTO} says: {comments[reason.value]!r}"
    )


def test_a_reason_sent_as_a_literal_travels_with_the_code_its_enum_comment_names(comments: dict[str, str]) -> None:
    literals = reasons_sent_as_literals()
    assert "INTERNAL" in literals
    for reason, sent in literals.items():
        assert reason in comments, f"the services send {reason!r}, which is no ErrorReason value"
        assert documented_code(comments[reason]) == sent, (
            f"{reason} is sent with {sent.name}, but its comment in {PROTO} says: {comments[reason]!r}"
        )


def test_every_value_has_a_comment_that_starts_with_its_grpc_code_and_says_more(comments: dict[str, str]) -> None:
    assert set(comments) == {value.name for value in ENUM.values}, "protoc's source info lost some values"
    for name in enum_reasons():
        comment = comments[name]
        assert documented_code(comment) is not None, f"{name}: the comment must start with a gRPC code: {comment!r}"
        assert len(comment.split(". ", 1)[1]) >= 20, f"{name}: say what happened and what the caller can do"


def test_the_services_build_error_info_only_in_status_py() -> None:
    """So that status_of, internal_status and plain_status are every way a reason reaches the wire."""
    builders = sorted(
        path.relative_to(REPO).as_posix()
        for path in SERVICES.rglob("*.py")
        if re.search(r"ErrorInfo\(\s*reason", path.read_text(encoding="utf-8"))
    )
    assert builders == ["services/common/status.py"]


def test_the_readme_says_the_reasons_are_error_reason_values() -> None:
    assert "gongji.common.v1.ErrorReason" in readme_errors_section()


def test_the_readme_errors_table_lists_every_reason_once_with_its_code(comments: dict[str, str]) -> None:
    listed = [(reason, code) for code, reasons in readme_table() for reason in reasons]
    names = [reason for reason, _ in listed]
    assert len(names) == len(set(names)), f"reasons listed twice: {sorted({n for n in names if names.count(n) > 1})}"
    unknown = sorted(set(names) - enum_reasons())
    assert not unknown, f"README lists reasons that are no ErrorReason value: {unknown}"
    unlisted = sorted(enum_reasons() - set(names))
    assert not unlisted, f"README's Errors table lacks: {unlisted}"
    wrong = sorted(
        f"{reason}: README {code}, enum {documented_code(comments[reason]).name}"
        for reason, code in listed
        if documented_code(comments[reason]) is not grpc.StatusCode.__members__.get(code)
    )
    assert not wrong, f"README gives other codes than the enum: {wrong}"
