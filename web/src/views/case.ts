// 案件详情: one case with its reports (and why they were merged), photos' references, grid,
// deadline in China time, history, and the workflow's next steps the hub says are open to
// the caller as buttons. Every click carries the version the user saw and a request id made
// once per form, so a double click acts once and a stale screen is told to reload.

import * as api from "../api";
import { CaseAction, type Case } from "../gen/gridhub/v1/case_pb";
import type { Me, View } from "../main";
import { h, clear, busy, toast, cst, statusName, actionForm as stepForm } from "../ui";

const ACTIONS: Record<number, { label: string; needs?: ("unit" | "days" | "extension")[]; danger?: boolean }> = {
  [CaseAction.REGISTER]: { label: "立案" },
  [CaseAction.DISPATCH]: { label: "派遣", needs: ["unit", "days"] },
  [CaseAction.SIGN]: { label: "签收" },
  [CaseAction.FEEDBACK]: { label: "处置反馈" },
  [CaseAction.VERIFY_OK]: { label: "核查通过（结案）" },
  [CaseAction.VERIFY_FAIL]: { label: "核查不通过" },
  [CaseAction.RETURN]: { label: "退回", danger: true },
  [CaseAction.REQUEST_EXTENSION]: { label: "申请延期", needs: ["extension"] },
  [CaseAction.APPROVE_EXTENSION]: { label: "批准延期" },
  [CaseAction.REJECT_EXTENSION]: { label: "驳回延期" },
  [CaseAction.URGE]: { label: "催办" },
  [CaseAction.SUPERVISE]: { label: "督办" },
  [CaseAction.REOPEN]: { label: "重办", needs: ["days"] },
  [CaseAction.VOID]: { label: "作废", danger: true },
};

/** An attachment's bytes as an object URL (photos shown as images, audio as a player). */
async function attachmentUrl(id: string): Promise<{ url: string; type: string }> {
  const parts: Uint8Array[] = [];
  let type = "";
  for await (const chunk of api.reports.downloadAttachment({ attachmentId: id })) {
    if (chunk.contentType) type = chunk.contentType;
    parts.push(chunk.data);
  }
  return { url: URL.createObjectURL(new Blob(parts as BlobPart[], { type })), type };
}

function attachments(ids: string[]): HTMLElement {
  const box = h("div", { class: "photos" });
  for (const id of ids) {
    const slot = h("span", { class: "photo", "data-attachment": id }, "加载中…");
    box.append(slot);
    attachmentUrl(id)
      .then(({ url, type }) =>
        clear(
          slot,
          type.startsWith("audio/")
            ? h("audio", { controls: true, src: url })
            : h("a", { href: url, target: "_blank", rel: "noopener" }, h("img", { src: url, alt: "现场照片" })),
        ),
      )
      .catch((e) => clear(slot, api.problem(e).message));
  }
  return box;
}

/** Statuses of a case not finished: it may merge or take others in. */
const OPEN = ["REPORTED", "REGISTERED", "DISPATCHED", "SIGNED", "HANDLED"];

/** Working days left, as the hub's calendar counts them. */
function remaining(c: Case): string {
  if (!c.deadline) return "";
  const n = c.workingDaysLeft;
  if (n > 0) return `（剩余 ${n} 个工作日）`;
  if (n < 0) return `（已超期 ${-n} 个工作日）`;
  return Number(c.deadline.seconds) * 1000 < Date.now() ? "（已超期）" : "（今日到期）";
}

export const caseView: View = (root: HTMLElement, me: Me, args: string[]) => {
  const id = args[0] ?? "";
  const body = h("div", { class: "case" });
  root.append(h("p", {}, h("a", { href: "#/cases" }, "← 案件列表")), body);
  let units: { code: string; name: string }[] | null = null;

  const actionForm = (c: Case, action: CaseAction): HTMLElement => {
    const spec = ACTIONS[action];
    const comment = h("input", { name: "comment", "data-field": "comment", placeholder: "意见（选填）" });
    const unit = h("select", { name: "assignee", "data-field": "assignee", "aria-label": "承办单位" });
    const days = h("input", {
      name: "days",
      type: "number",
      min: "1",
      max: "60",
      "data-field": "time_limit_working_days",
      placeholder: "处置时限（工作日）",
    });
    const ext = h("input", {
      name: "extension",
      type: "number",
      min: "1",
      max: "60",
      "data-field": "extension_working_days",
      placeholder: "延期工作日",
    });
    const button = h(
      "button",
      { type: "submit", class: spec.danger ? "danger" : "", "data-action": CaseAction[action] },
      spec.label,
    );
    const form = stepForm(
      button,
      [
        spec.needs?.includes("unit") ? unit : null,
        spec.needs?.includes("days") ? days : null,
        spec.needs?.includes("extension") ? ext : null,
        comment,
      ],
      (requestId) =>
        api.cases.transitionCase({
          caseId: c.caseId,
          action,
          expectedVersion: c.version,
          requestId,
          comment: comment.value.trim(),
          assignee: unit.value,
          timeLimitWorkingDays: Number(days.value) || 0,
          extensionWorkingDays: Number(ext.value) || 0,
        }),
      spec.label,
      show,
      show,
    );
    if (spec.needs?.includes("unit")) {
      void (async () => {
        units ??= (await api.regions.listDepartments({ regionCode: "", pageSize: 200, pageToken: "" })).departments
          .filter((d) => d.active)
          .map((d) => ({ code: d.code, name: d.name }));
        clear(unit, h("option", { value: "" }, "选择承办单位"), ...units.map((u) => h("option", { value: u.code }, u.name)));
      })().catch(() => {});
    }
    return form;
  };

  /** 合并: other open cases of the same grid merged into this one. */
  const mergeForm = (c: Case): HTMLElement => {
    const pick = h("select", { id: "merge-sources", multiple: true, "data-field": "source_case_ids", size: "4" });
    const comment = h("input", { "data-field": "comment", placeholder: "合并理由" });
    const button = h("button", { type: "submit", id: "merge" }, "并入本案");
    const form = stepForm(
      button,
      [h("span", {}, "同网格未结案件："), pick, comment],
      (requestId) =>
        api.cases.mergeCases({
          targetCaseId: c.caseId,
          sourceCaseIds: [...pick.selectedOptions].map((o) => o.value),
          comment: comment.value,
          requestId,
        }),
      "合并",
      show,
      show,
    );
    void api.cases
      .listCases({ statuses: OPEN, pageSize: 200 })
      .then((r) => {
        const same = r.cases.filter((x) => x.gridCode === c.gridCode && x.caseId !== c.caseId);
        if (same.length === 0) form.replaceChildren(h("span", { class: "empty" }, "同网格没有可并入的案件。"));
        else clear(pick, ...same.map((x) => h("option", { value: x.caseId }, `${x.caseNo} ${x.unifiedCategory}`)));
      })
      .catch(() => form.remove());
    return form;
  };

  /** 拆分: one report out into a case of its own. */
  const splitButton = (reportId: string): HTMLElement =>
    h(
      "button",
      {
        class: "split",
        "data-split": reportId,
        onclick: async (e: Event) => {
          const b = e.currentTarget as HTMLButtonElement;
          b.disabled = true;
          try {
            const n = await api.cases.splitReport({ reportId, comment: "人工拆分", requestId: api.requestId() });
            toast(`已拆分为新案件 ${n.caseNo}`);
            location.hash = `#/case/${n.caseId}`;
          } catch (err) {
            toast(api.problem(err).message, "error");
            b.disabled = false;
          }
        },
      },
      "拆分为新案件",
    );

  /** The 12345 requests and mediation cases of this case, when the caller may read them. */
  const links = async (c: Case, box: Element) => {
    const items: HTMLElement[] = [];
    try {
      if (me.can("ServiceRequestService/ListServiceRequests")) {
        const r = await api.requests.listServiceRequests({ caseId: c.caseId, pageSize: 20 });
        for (const s of r.serviceRequests)
          items.push(h("li", {}, "12345 工单 ", h("a", { href: `#/window/${s.id}`, "data-link": "request" }, s.hotlineOrderNo || s.requestNo)));
      }
      if (me.can("MediationService/ListMediationCases")) {
        const m = await api.mediation.listMediationCases({ linkedCaseId: c.caseId, pageSize: 20 });
        for (const x of m.mediationCases)
          items.push(h("li", {}, "调解案件 ", h("a", { href: `#/mediation/${x.id}`, "data-link": "mediation" }, x.caseNo)));
      }
    } catch {
      /* links are extra: the case stands without them */
    }
    if (items.length) box.append(h("h2", {}, "关联"), h("ul", { class: "links" }, ...items));
  };

  const show = async () => {
    try {
      const c = await busy(body, "正在加载案件…", api.cases.getCase({ caseId: id }));
      // The case's reports in one call (ListReports by case), in the case's order.
      const listed = await api.reports.listReports({ caseId: c.caseId, pageSize: 1000 }).catch(() => null);
      const byId = new Map((listed?.reports ?? []).map((r) => [r.reportId, r]));
      const reports = c.reportIds.map((r) => byId.get(r) ?? null);
      clear(
        body,
        h(
          "h1",
          { "data-version": String(c.version), "data-status": c.status },
          `案件 ${c.caseNo} `,
          h("span", { class: `status ${c.status}` }, statusName(c.status)),
          ...c.flags.map((f) => h("span", { class: `flag ${f}` }, f)),
        ),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "分类"), h("dd", {}, c.unifiedCategory || "待分类"),
          h("dt", {}, "网格"), h("dd", {}, c.gridCode, c.owner ? `（属地：${c.owner}）` : ""),
          h("dt", {}, "位置"), h("dd", {}, c.location ? `${c.location.lat.toFixed(6)}, ${c.location.lng.toFixed(6)}` : "—"),
          h("dt", {}, "承办单位"), h("dd", {}, c.assignee || "—"),
          h("dt", {}, "签收时限"), h("dd", {}, cst(c.signDeadline)),
          h("dt", {}, "处置时限"), h("dd", {}, cst(c.deadline), remaining(c)),
          h("dt", {}, "催办次数"), h("dd", {}, String(c.urgeCount)),
          h("dt", {}, "版本"), h("dd", {}, String(c.version)),
          c.mergedInto ? h("dt", {}, "并入") : null,
          c.mergedInto ? h("dd", {}, h("a", { href: `#/case/${c.mergedInto}` }, c.mergedInto)) : null,
        ),
        h("h2", {}, "下一步"),
        c.availableActions.length
          ? h("div", { class: "actions", id: "actions" }, ...c.availableActions.map((a) => actionForm(c, a)))
          : h("p", { class: "empty", id: "actions" }, "您当前对此案件没有可执行的操作。"),
        me.can("CaseService/MergeCases") && OPEN.includes(c.status) ? mergeForm(c) : null,
        h("div", { id: "links" }),
        h("h2", {}, `上报（${c.reportIds.length}）`),
        h(
          "ol",
          { class: "reports" },
          ...reports.map((r, i) => {
            const reason = c.mergeReasonsJson[i] ? JSON.parse(c.mergeReasonsJson[i]) : {};
            return h(
              "li",
              {},
              r ? h("b", {}, r.title || "（无标题）") : h("b", {}, c.reportIds[i]),
              // A 12345 work order's report names its order (reporter `12345:<order no>`).
              r && r.reporterId.startsWith("12345:")
                ? h("span", { class: "flag", "data-order": r.reporterId.slice(6) }, `12345 工单 ${r.reporterId.slice(6)}`)
                : null,
              r ? ` ${r.description}` : "",
              r ? h("div", { class: "meta" }, `${cst(r.occurredAt)} · ${r.reporterId} · ${r.reporterPhone || "无电话"}`) : null,
              r && r.attachments.length && me.can("ReportService/DownloadAttachment") ? attachments(r.attachments) : null,
              h("div", { class: "meta" }, `并案依据：${reason.decision ?? "—"}${reason.distance_m !== undefined ? `，距离 ${Math.round(reason.distance_m)} 米` : ""}`),
              me.can("CaseService/SplitReport") && c.reportIds.length > 1 ? splitButton(c.reportIds[i]) : null,
            );
          }),
        ),
        h("h2", {}, "流转"),
        h(
          "ol",
          { class: "timeline" },
          ...[
            ["首次上报", c.firstReportedAt],
            ["立案", c.registeredAt],
            ["派遣", c.dispatchedAt],
            ["签收", c.signedAt],
            ["处置", c.handledAt],
            ["结案", c.closedAt],
          ]
            .filter(([, t]) => t)
            .map(([l, t]) => h("li", {}, `${cst(t as Case["closedAt"])} ${l as string}`)),
        ),
        me.can("AuditService/ListAuditEvents") ? h("div", { id: "history" }) : null,
      );
      void links(c, body.querySelector("#links")!);
      if (me.can("AuditService/ListAuditEvents")) {
        const hist = body.querySelector("#history")!;
        const ev = await api.audit.listAuditEvents({ entityType: "case", entityId: c.caseId, pageSize: 100, pageToken: "", regionCode: "" });
        hist.append(
          h("h2", {}, "审计记录"),
          h(
            "table",
            { class: "list", id: "audit" },
            ...ev.events.map((e) =>
              h("tr", {}, h("td", {}, cst(e.occurredAt)), h("td", {}, e.action), h("td", {}, e.actor), h("td", {}, e.outcome)),
            ),
          ),
        );
      }
    } catch (e) {
      clear(body, h("p", { class: "error" }, api.problem(e).message));
    }
  };
  void show();
};
