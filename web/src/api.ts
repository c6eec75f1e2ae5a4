// The hub's RPCs over gRPC-Web, typed from proto/ (generated into src/gen at build time, so a
// change of the contract breaks the build, not the screen). Every call carries the signed-in
// user's token; the hub decides what it may see and do.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb";
import { CaseService } from "./gen/gridhub/v1/case_pb";
import { RegionService } from "./gen/gridhub/v1/region_pb";
import { ReportService } from "./gen/gridhub/v1/report_pb";
import { AuditService } from "./gen/gridhub/v1/audit_pb";
import { CatalogService, ServiceRequestService, HotlineService } from "./gen/gridhub/v1/service_pb";
import { MediationService } from "./gen/gridhub/v1/mediation_pb";
import { SessionService } from "./gen/gridhub/v1/session_pb";
import * as session from "./session";

/** Called when the hub no longer accepts the token (expired, revoked, forged). */
let onUnauthenticated: (message: string) => void = () => {};

export function whenSignedOut(f: (message: string) => void): void {
  onUnauthenticated = f;
}

const auth: Interceptor = (next) => async (req) => {
  const t = session.token();
  if (t) req.header.set("authorization", `Bearer ${t}`);
  try {
    return await next(req);
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code === Code.Unauthenticated) onUnauthenticated(err.rawMessage);
    throw err;
  }
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  interceptors: [auth],
});

function client<T extends DescService>(s: T): Client<T> {
  return createClient(s, transport);
}

export const cases = client(CaseService);
export const regions = client(RegionService);
export const reports = client(ReportService);
export const audit = client(AuditService);
export const catalog = client(CatalogService);
export const requests = client(ServiceRequestService);
export const hotline = client(HotlineService);
export const mediation = client(MediationService);
export const sessions = client(SessionService);

/** A new idempotency key: one per click, so a double click acts once. */
export function requestId(): string {
  return crypto.randomUUID();
}

/** What went wrong, as people read it. */
export interface Problem {
  /** One sentence for the whole call. */
  message: string;
  /** Field violations by field path (shown next to the field). */
  fields: Map<string, string>;
  code: Code;
}

export function problem(e: unknown): Problem {
  const err = ConnectError.from(e);
  const fields = new Map<string, string>();
  for (const d of err.findDetails(BadRequestSchema)) {
    for (const v of d.fieldViolations) fields.set(v.field, v.description);
  }
  let message: string;
  switch (err.code) {
    case Code.InvalidArgument:
      message = fields.size > 0 ? "请检查标出的字段。" : `输入有误：${err.rawMessage}`;
      break;
    case Code.PermissionDenied:
      message = "您无权执行此操作。";
      break;
    case Code.Unauthenticated:
      message = "登录已失效，请重新登录。";
      break;
    case Code.Aborted:
      message = "此案件已被他人更改，请刷新后再操作。";
      break;
    case Code.FailedPrecondition:
      message = `当前状态不允许此操作：${err.rawMessage}`;
      break;
    case Code.NotFound:
      message = "未找到（或不在您的辖区内）。";
      break;
    case Code.AlreadyExists:
      message = `已存在：${err.rawMessage}`;
      break;
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      message = "服务暂时不可用，请稍后重试。";
      break;
    default:
      message = `出错了（${Code[err.code]}）：${err.rawMessage}`;
  }
  return { message, fields, code: err.code };
}
