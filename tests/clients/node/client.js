#!/usr/bin/env node
// Calls gongji's binding service from Node.js over mutual TLS: one call that succeeds and one
// the access policy refuses, whose google.rpc.Status and ErrorInfo it decodes from the
// grpc-status-details-bin trailer. Prints a JSON summary on stdout.
//
//   node client.js ADDRESS CA_PEM CERT_PEM KEY_PEM [PROTO_DIR ...]
//
// The certificate must name an operator of Beijing (spiffe://gongji/operator/110000/<id>).
// PROTO_DIRs hold google/protobuf/*.proto and google/rpc/*.proto (grpcio-tools and
// googleapis-common-protos ship them); the repository's protos/ is always searched.
// tests/test_other_language_clients.py runs it in CI.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const [address, caFile, certFile, keyFile, ...extraDirs] = process.argv.slice(2);
if (!keyFile) {
  console.error("usage: node client.js ADDRESS CA_PEM CERT_PEM KEY_PEM [PROTO_DIR ...]");
  process.exit(2);
}
const includeDirs = [path.resolve(__dirname, "../../../protos"), ...extraDirs];

// Fields as the .proto spells them (id_number, not idNumber), int64 (fen) as decimal strings as
// in proto3 JSON, enums by name.
const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs };

const definition = protoLoader.loadSync("gongji/binding/v1/binding_service.proto", LOADER_OPTIONS);
const { BindingService } = grpc.loadPackageDefinition(definition).gongji.binding.v1;

// The error model, for the trailer: google.rpc.Status whose details are Anys (ErrorInfo, BadRequest).
const errorModel = new protobuf.Root();
errorModel.resolvePath = (origin, target) => {
  for (const dir of includeDirs) {
    const candidate = path.join(dir, target);
    if (fs.existsSync(candidate)) return candidate;
  }
  return target; // google/protobuf/*: protobufjs has the well-known types built in
};
errorModel.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
const Status = errorModel.lookupType("google.rpc.Status");
const TO_OBJECT = { longs: String, enums: String, defaults: true };

function decodeStatus(error) {
  const [bytes] = error.metadata.get("grpc-status-details-bin");
  if (!bytes) return null;
  const status = Status.decode(bytes);
  const details = status.details.map((any) => {
    // type.googleapis.com/google.rpc.ErrorInfo -> google.rpc.ErrorInfo
    const type = errorModel.lookupType(any.type_url.slice(any.type_url.lastIndexOf("/") + 1));
    return { "@type": type.fullName.replace(/^\./, ""), ...type.toObject(type.decode(any.value), TO_OBJECT) };
  });
  return { code: status.code, message: status.message, details };
}

const credentials = grpc.credentials.createSsl(
  fs.readFileSync(caFile),
  fs.readFileSync(keyFile),
  fs.readFileSync(certFile),
);
const client = new BindingService(address, credentials);

function call(method, request) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + 15000);
    client[method](request, { deadline }, (error, response) => resolve({ error, response }));
  });
}

function person(idNumber, name, admdvs) {
  return {
    id_number: idNumber,
    name,
    insurance_type: "INSURANCE_TYPE_EMPLOYEE",
    status: "INSURANCE_STATUS_NORMAL",
    admdvs,
    has_personal_account: true,
  };
}

async function main() {
  const summary = {};

  // Allowed: a Beijing operator registers a person insured in Dongcheng (110101).
  const ok = await call("UpsertInsuredPerson", {
    request_id: crypto.randomUUID(),
    insured_person: person("110101198001010109", "王建国", "110101"),
  });
  if (ok.error) {
    summary.ok = { error: ok.error.code, grpc_status: grpc.status[ok.error.code], details: ok.error.details };
  } else {
    const { insured_person, created } = ok.response;
    summary.ok = {
      method: "UpsertInsuredPerson",
      id_number: insured_person.id_number,
      admdvs: insured_person.admdvs,
      insurance_type: insured_person.insurance_type,
      created,
    };
  }

  // Refused: the same operator may not register a person insured in Nanjing (320102).
  const refused = await call("UpsertInsuredPerson", {
    request_id: crypto.randomUUID(),
    insured_person: person("320102198502020116", "李秀英", "320102"),
  });
  if (!refused.error) {
    summary.refused = { unexpectedly_ok: true };
  } else {
    const status = decodeStatus(refused.error);
    const info = status && status.details.find((detail) => detail["@type"] === "google.rpc.ErrorInfo");
    summary.refused = {
      method: "UpsertInsuredPerson",
      code: refused.error.code,
      grpc_status: grpc.status[refused.error.code],
      message: refused.error.details,
      status,
      error_info: info ? { reason: info.reason, domain: info.domain, metadata: info.metadata } : null,
    };
  }

  client.close();
  process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
