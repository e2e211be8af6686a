"""gongji from other languages, as a partner's system calls it: a Node.js client (grpc-js,
tests/clients/node) and buf curl (Go) over mutual TLS, against the real binding service.
They find the contracts by server reflection v1 and read a refusal's google.rpc.ErrorInfo
from the grpc-status-details-bin trailer.

Without `node`, or before `npm ci --prefix tests/clients/node`, the Node.js case skips with a
message, unless CI is set; so does the buf case without buf (the dev extra installs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc_tools
import pytest
from google.protobuf import descriptor_database, descriptor_pb2, descriptor_pool, message_factory
from google.rpc import status_pb2

from services.binding.app import BindingSettings, start_binding_server
from services.common import reflection
from services.common.hosting import BackgroundServer
from services.common.security.development_pki import DevelopmentPKI
from services.common.server import ServerSecurity
from shared.principals import BINDING_SERVICE, operator

NODE_CLIENT = Path(__file__).parent / "clients" / "node"
# The Node.js client registers a person of Dongcheng (110101), then is refused one of Nanjing.
BEIJING_OPERATOR = operator("110000", "node-client")
BINDING = "gongji.binding.v1.BindingService"


def _require(problem: str | None) -> None:
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI needs {problem}")
    pytest.skip(f"{problem} (set CI to make this a failure)")


@pytest.fixture(scope="module")
def binding_address(pki: DevelopmentPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A binding service of its own on SQLite; the calls here touch no other data."""
    database = tmp_path_factory.mktemp("other-languages") / "binding.db"
    settings = BindingSettings(
        database_url=f"sqlite:///{database}",
        security=ServerSecurity(pki.transport(BINDING_SERVICE)),
        address="127.0.0.1:0",
    )
    with BackgroundServer(lambda: start_binding_server(settings)) as server:
        # Its certificate names localhost too; an IP address as TLS server name makes Node.js warn.
        yield f"localhost:{server.port}"


def _proto_dirs() -> list[str]:
    """Where the venv keeps google/protobuf/*.proto (grpcio-tools) and google/rpc/*.proto
    (googleapis-common-protos)."""
    return [str(Path(grpc_tools.__file__).parent / "_proto"), str(Path(status_pb2.__file__).parents[2])]


def test_a_node_js_client_calls_over_mutual_tls_and_decodes_the_error_info_of_a_refusal(binding_address, pki):
    node = shutil.which("node")
    _require(None if node else "Node.js: `node` is not on PATH")
    _require(
        None
        if (NODE_CLIENT / "node_modules" / "@grpc" / "grpc-js").is_dir()
        else "the Node.js client's packages: run `npm ci --prefix tests/clients/node`"
    )
    files = pki.files(BEIJING_OPERATOR)
    assert node is not None
    result = subprocess.run(
        [node, str(NODE_CLIENT / "client.js"), binding_address, str(files.ca), str(files.cert), str(files.key),
         *_proto_dirs()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)

    assert summary["ok"] == {
        "method": "UpsertInsuredPerson",
        "id_number": "110101198001010109",
        "admdvs": "110101",
        "insurance_type": "INSURANCE_TYPE_EMPLOYEE",  # enums: String
        "created": True,
    }
    refused = summary["refused"]
    assert (refused["code"], refused["grpc_status"]) == (
        grpc.StatusCode.PERMISSION_DENIED.value[0],
        "PERMISSION_DENIED",
    )
    assert refused["status"]["code"] == refused["code"]
    assert refused["error_info"] == {
        "reason": "OUT_OF_SCOPE",
        "domain": "binding.gongji",
        "metadata": {"principal": BEIJING_OPERATOR.spiffe_id, "field": "insured_person.admdvs"},
    }
    assert "outside 110000" in refused["message"]


def _buf_curl(pki: DevelopmentPKI, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    buf = shutil.which("buf")
    _require(None if buf else "buf (pip install -e '.[dev]' installs buf-bin)")
    assert buf is not None
    files = pki.files(BEIJING_OPERATOR)
    tls = ["--cacert", str(files.ca), "--cert", str(files.cert), "--key", str(files.key)]
    return subprocess.run(
        [buf, "curl", "--protocol", "grpc", *tls, *args[:-1], f"https://{address}{args[-1]}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
def test_buf_curl_lists_the_services_by_reflection_v1_and_v1alpha(binding_address, pki, protocol):
    result = _buf_curl(pki, binding_address, "--list-services", "--reflect-protocol", protocol, "")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {BINDING, "grpc.health.v1.Health", *reflection.SERVICE_NAMES}


def test_buf_curl_calls_by_reflection_and_gets_a_refusal_with_its_error_info(binding_address, pki):
    answer = _buf_curl(pki, binding_address, "-d", '{"admdvs": "110101"}', f"/{BINDING}/GetRegionPolicy")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["policy"]["admdvs"]

    person = {"id_number": "320102198502020116", "name": "李秀英", "admdvs": "320102"}
    refused = _buf_curl(
        pki, binding_address, "-d", json.dumps({"request_id": "buf-curl-1", "insured_person": person}),
        f"/{BINDING}/UpsertInsuredPerson",
    )  # fmt: skip
    # buf curl exits with the gRPC code shifted left by three bits.
    assert refused.returncode == grpc.StatusCode.PERMISSION_DENIED.value[0] << 3, refused.stderr
    error = json.loads(refused.stderr)
    assert error["code"] == "permission_denied"
    assert [detail["type"] for detail in error["details"]] == ["google.rpc.ErrorInfo"]


def _reflection_v1(channel: grpc.Channel, symbols: list[str]) -> list[descriptor_pb2.FileDescriptorProto]:
    """Asks grpc.reflection.v1 for the files declaring `symbols`, with v1's own message types."""
    pool = reflection.V1_DESCRIPTOR.pool
    request_type = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionRequest")
    )
    response_type = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionResponse")
    )
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    files: list[descriptor_pb2.FileDescriptorProto] = []
    for response in call(iter([request_type(file_containing_symbol=symbol) for symbol in symbols]), timeout=10):
        assert response.WhichOneof("message_response") == "file_descriptor_response", response
        files += map(
            descriptor_pb2.FileDescriptorProto.FromString, response.file_descriptor_response.file_descriptor_proto
        )
    return files


def test_reflection_v1_serves_the_google_rpc_error_model_so_clients_need_no_local_protos(binding_address, pki):
    with pki.channel(binding_address, BEIJING_OPERATOR) as channel:
        files = _reflection_v1(
            channel,
            ["google.rpc.ErrorInfo", "google.rpc.Status", "google.rpc.Code", "gongji.common.v1.ErrorReason", BINDING],
        )
    assert set(reflection.ERROR_MODEL_FILES) <= {file.name for file in files}
    database = descriptor_database.DescriptorDatabase()
    for file in {file.name: file for file in files}.values():
        database.Add(file)
    pool = descriptor_pool.DescriptorPool(database)
    error_info = pool.FindMessageTypeByName("google.rpc.ErrorInfo")
    assert {"reason", "domain", "metadata"} <= set(error_info.fields_by_name)
    assert pool.FindServiceByName(BINDING).methods_by_name["UpsertInsuredPerson"]


def test_reflection_finds_the_file_of_a_method_as_grpcurl_describe_asks_for_it(binding_address, pki):
    """grpcio-reflection found no file for `<service>.<method>` (grpc/grpc#34743)."""
    with pki.channel(binding_address, BEIJING_OPERATOR) as channel:
        files = _reflection_v1(channel, [f"{BINDING}.ResolvePayers"])
    assert "gongji/binding/v1/binding_service.proto" in {file.name for file in files}


def test_reflection_v1_admits_only_callers_the_access_policy_names(binding_address, pki):
    foreign = pki.ca.issue_uri("spiffe://elsewhere.example/workload/browser", "foreign-reflection-client")
    credentials = grpc.ssl_channel_credentials(
        pki.ca_file.read_bytes(), foreign.key.read_bytes(), foreign.cert.read_bytes()
    )
    with grpc.secure_channel(binding_address, credentials) as channel, pytest.raises(grpc.RpcError) as refused:
        _reflection_v1(channel, ["google.rpc.ErrorInfo"])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
