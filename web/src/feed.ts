// The live feed (WatchCases): a server stream that resumes after a drop from the last event's
// resume token, so no event is missed or shown twice.

import { Code, ConnectError } from "@connectrpc/connect";
import * as api from "./api";
import type { CaseEvent } from "./gen/gridhub/v1/case_pb";

export interface FeedHandle {
  stop(): void;
}

/**
 * Follows the caller's feed, calling `onEvent` for each event in order and `onState` when the
 * connection drops or comes back. Reconnects with backoff until stopped; never shows an event
 * twice (it resumes after the last one seen).
 */
export function follow(
  regionCode: string,
  onEvent: (e: CaseEvent) => void,
  onState: (live: boolean, message?: string) => void,
): FeedHandle {
  let stopped = false;
  let abort = new AbortController();
  let resume = "";
  let delay = 500;
  (async () => {
    while (!stopped) {
      try {
        const stream = api.cases.watchCases(
          { regionCode, resumeToken: resume, statuses: [], unifiedCategory: "", excludeAlerts: false },
          {
            signal: abort.signal,
            // The stream's start: resuming from it after a drop before any event misses nothing.
            onHeader: (h) => {
              resume ||= h.get("gridhub-resume-token") ?? "";
            },
          },
        );
        onState(true);
        for await (const e of stream) {
          delay = 500;
          resume = e.resumeToken;
          onEvent(e);
        }
      } catch (e) {
        if (stopped) return;
        const err = ConnectError.from(e);
        if (err.code === Code.Unauthenticated || err.code === Code.PermissionDenied) {
          onState(false, err.rawMessage);
          return;
        }
        onState(false, "实时推送已断开，正在重连…");
      }
      if (stopped) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
      abort = new AbortController();
    }
  })();
  return {
    stop() {
      stopped = true;
      abort.abort();
    },
  };
}

/** What an event says, in words. */
export function describe(e: CaseEvent): string {
  const KINDS: Record<string, string> = {
    CREATED: "新案件",
    REPORT_ADDED: "新增上报",
    REGISTER: "立案",
    DISPATCH: "派遣",
    SIGN: "签收",
    FEEDBACK: "处置反馈",
    VERIFY_OK: "核查通过",
    VERIFY_FAIL: "核查不通过",
    RETURN: "退回",
    REQUEST_EXTENSION: "申请延期",
    APPROVE_EXTENSION: "批准延期",
    REJECT_EXTENSION: "驳回延期",
    URGE: "催办",
    SUPERVISE: "督办",
    REOPEN: "重办",
    VOID: "作废",
    MERGED: "合并",
    ABSORBED: "并入",
    SPLIT: "拆分",
    OVERDUE: "超期",
    SIGN_OVERDUE: "签收超时",
    AUTO_URGE: "自动催办",
    ESCALATE: "通报",
    ALERT: "预警",
  };
  return KINDS[e.kind] ?? e.kind;
}

/** Events the command centre must not miss. */
export function urgent(e: CaseEvent): boolean {
  return ["OVERDUE", "SIGN_OVERDUE", "AUTO_URGE", "ESCALATE", "SUPERVISE", "ALERT"].includes(e.kind);
}
