#!/usr/bin/env python3
"""End-to-end checks of gridhub from another gRPC implementation (Python grpcio).

Messages are built from the server's own reflection descriptors, so nothing here is generated
from our .proto files: the wire format is checked by someone else's code.
Usage: e2e.py HOST:PORT OPERATOR_TOKEN WORKER_TOKEN
"""
import sys
import time
import uuid

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status
from google.rpc import error_details_pb2

addr, op_token, worker_token = sys.argv[1:4]
channel = grpc.insecure_channel(addr)
pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))


def msg(type_name, **fields):
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"gridhub.v1.{type_name}"))
    return cls(**fields)


def call(service, method, request, token, response_type):
    resp_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"gridhub.v1.{response_type}"))
    stub = channel.unary_unary(
        f"/gridhub.v1.{service}/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=resp_cls.FromString,
    )
    metadata = [("authorization", f"Bearer {token}")] if token else []
    return stub(request, metadata=metadata, timeout=10)


def expect_error(code, fn):
    try:
        fn()
    except grpc.RpcError as e:
        assert e.code() == code, f"expected {code}, got {e.code()}: {e.details()}"
        return e
    raise AssertionError(f"expected {code}, call succeeded")


health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
assert health.status == health_pb2.HealthCheckResponse.SERVING, health

r = call("RegionService", "GetRegion", msg("GetRegionRequest", code="500110111201"), op_token, "Region")
assert r.name == "马颈村村民委员会" and r.parent_code == "500110111", r
assert r.created_at.seconds > 0

codes, token = [], ""
while True:
    page = call("RegionService", "ListRegions", msg("ListRegionsRequest", parent_code="500110111", page_size=6, page_token=token),
                op_token, "ListRegionsResponse")
    codes += [x.code for x in page.regions]
    token = page.next_page_token
    if not token:
        break
assert len(codes) == 17 and codes == sorted(codes), codes

g = call("RegionService", "LocateGrid", msg("LatLng", lat=28.83, lng=106.745), op_token, "Region")
assert g.code == "500110111201001", g.code

expect_error(grpc.StatusCode.UNAUTHENTICATED,
             lambda: call("RegionService", "GetRegion", msg("GetRegionRequest", code="500110111201"), None, "Region"))
expect_error(grpc.StatusCode.PERMISSION_DENIED,
             lambda: call("RegionService", "GetRegion", msg("GetRegionRequest", code="500110111200"), worker_token, "Region"))

bad = msg("UpsertWorkerRequest", worker=msg("Worker", worker_id="W-PY-1", name="李", phone="12", region_code="500110111201"))
e = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: call("RegionService", "UpsertWorker", bad, op_token, "Worker"))
status = rpc_status.from_call(e)
fields = []
for detail in status.details:
    if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
        br = error_details_pb2.BadRequest()
        detail.Unpack(br)
        fields += [v.field for v in br.field_violations]
assert fields == ["worker.phone"], fields

rid = str(uuid.uuid4())
good = msg("UpsertWorkerRequest", request_id=rid,
           worker=msg("Worker", worker_id="W-PY-1", name="李", phone="13712345678", region_code="500110111201",
                      grid_codes=["500110111201001"], active=True))
first = call("RegionService", "UpsertWorker", good, op_token, "Worker")
again = call("RegionService", "UpsertWorker", good, op_token, "Worker")
assert first.phone == "137****5678", first.phone
assert first.SerializeToString() == again.SerializeToString()

# Reports: nested messages, a Timestamp, a oneof per result, google.rpc.Status inside it.
Timestamp = message_factory.GetMessageClass(pool.FindMessageTypeByName("google.protobuf.Timestamp"))
now = Timestamp(seconds=int(time.time()) - 60)


def report(lat, lng, **extra):
    return msg("Report", client_report_id=str(uuid.uuid4()), source=1, category_code="0202", title="路边围墙倒塌",
               location=msg("LatLng", lat=lat, lng=lng), occurred_at=now, **extra)


wall = report(28.83, 106.745)
first = call("ReportService", "SubmitReport", msg("SubmitReportRequest", report=wall), worker_token, "SubmitReportResult")
assert first.outcome == 1 and first.case_no.startswith("500110111-"), first  # CREATED
again = call("ReportService", "SubmitReport", msg("SubmitReportRequest", report=wall), worker_token, "SubmitReportResult")
assert again.SerializeToString() == first.SerializeToString()
batch = call("ReportService", "SyncReports",
             msg("SyncReportsRequest", reports=[report(28.8301, 106.745), report(95.0, 106.745)]),
             worker_token, "SyncReportsResponse")
assert batch.results[0].WhichOneof("result") == "ok" and batch.results[0].ok.outcome == 3, batch  # MERGED
assert batch.results[0].ok.case_id == first.case_id
err = batch.results[1].error
assert batch.results[1].WhichOneof("result") == "error" and err.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], batch
bad_fields = []
for d in err.details:
    if d.type_url.endswith("google.rpc.BadRequest"):
        br = error_details_pb2.BadRequest()
        br.ParseFromString(d.value)
        bad_fields += [v.field for v in br.field_violations]
assert bad_fields == ["location.lat"], bad_fields

v = call("AuditService", "VerifyAuditChain", msg("VerifyAuditChainRequest"), op_token, "VerifyAuditChainResponse")
assert v.ok and v.events_checked >= 2, v

print("python e2e: all checks passed")
