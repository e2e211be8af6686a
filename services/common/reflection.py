"""Server reflection under both names clients ask for: `grpc.reflection.v1` (grpcurl and buf
curl try it first) and the older `grpc.reflection.v1alpha`.

grpcio-reflection serves v1alpha only (grpc/grpc#38576). v1 is the same protocol under a new
package: the same messages with the same field numbers. So the v1 service is the v1alpha
servicer behind the v1 name. Its descriptor, derived from v1alpha's, joins the default pool
when this module is imported (as a generated module's would), where the access policy's
start check and reflection itself find it.

Reflection answers for any type in the default pool, not only the listed services. The
`google.rpc` files are imported here, so a client resolves the `google.rpc.ErrorInfo` in a
refusal's `grpc-status-details-bin` (`FileContainingSymbol`) without local protos, and so is
`gongji.common.v1.ErrorReason`, the enum of every reason an ErrorInfo carries.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection as v1alpha
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

from gongji.common.v1 import error_reason_pb2

V1_FILE = "grpc/reflection/v1/reflection.proto"
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME: str = v1alpha.SERVICE_NAME
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
# The files of the error model every refusal carries (google.rpc.Status, ErrorInfo, BadRequest,
# Code) and gongji's ErrorReason, the values of ErrorInfo.reason.
ERROR_MODEL_FILES = tuple(
    module.DESCRIPTOR.name for module in (status_pb2, error_details_pb2, code_pb2, error_reason_pb2)
)

_V1ALPHA_PACKAGE = v1alpha_pb2.DESCRIPTOR.package
_V1_PACKAGE = "grpc.reflection.v1"


def _v1_file_proto() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto, as upstream declares it, from v1alpha's descriptor."""
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = V1_FILE, _V1_PACKAGE
    old, new = f".{_V1ALPHA_PACKAGE}.", f".{_V1_PACKAGE}."
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name[len(old) :]
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type[len(old) :]
            method.output_type = new + method.output_type[len(old) :]
    proto.options.Clear()
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    proto.options.java_multiple_files = True
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.java_outer_classname = "ServerReflectionProto"
    return proto


def _v1_descriptor() -> FileDescriptor:
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileContainingSymbol(V1_SERVICE_NAME)
    except KeyError:
        pool.AddSerializedFile(_v1_file_proto().SerializeToString())
        return pool.FindFileByName(V1_FILE)


V1_DESCRIPTOR = _v1_descriptor()


class _ReflectionServicer(v1alpha.aio.ReflectionServicer):
    """grpcio-reflection's servicer, which finds no file for a method (grpc/grpc#34743), though
    the protocol names `<package>.<service>.<method>` a symbol: `grpcurl describe` of a method,
    and the GUI clients that ask for the method picked, got NOT_FOUND. A method's file is its
    service's."""

    def _file_containing_symbol(
        self, request: v1alpha_pb2.ServerReflectionRequest, fully_qualified_name: str
    ) -> v1alpha_pb2.ServerReflectionResponse:
        service, _, method = fully_qualified_name.rpartition(".")
        try:
            if method in self._pool.FindServiceByName(service).methods_by_name:
                fully_qualified_name = service
        except KeyError:
            pass  # no service of that name: the symbol is whatever else it may be
        return super()._file_containing_symbol(request, fully_qualified_name)  # type: ignore[no-any-return]


def enable_server_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serves reflection v1 and v1alpha, listing `service_names` and both reflection services."""
    servicer = _ReflectionServicer([*service_names, *SERVICE_NAMES])
    for name in SERVICE_NAMES:
        handlers = {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                # One wire format for both versions, so v1alpha's message classes serve v1 too.
                request_deserializer=v1alpha_pb2.ServerReflectionRequest.FromString,
                response_serializer=v1alpha_pb2.ServerReflectionResponse.SerializeToString,
            )
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
        server.add_registered_method_handlers(name, handlers)
