// 一窗口: the clerk files a request (on a 权责清单 item found by name; 代办 on someone's
// behalf), and the window's requests with their steps, 12345 orders among them.

import * as api from "../api";
import {
  RequestKind,
  Satisfaction,
  ServiceRequestStatus,
  TransitionServiceRequestRequest_Action as Step,
  UpdateKind,
  Urgency,
  type CatalogItem,
  type HotlineUpdate,
  type ServiceRequest,
} from "../gen/gridhub/v1/service_pb";
import type { Me, View } from "../main";
import { h, clear, busy, toast, cst, showFieldErrors, actionForm } from "../ui";

const KINDS: [RequestKind, string][] = [
  [RequestKind.SERVICE, "办事"],
  [RequestKind.ENQUIRY, "咨询"],
  [RequestKind.HELP, "求助"],
  [RequestKind.COMPLAINT, "投诉"],
  [RequestKind.SUGGESTION, "建议"],
  [RequestKind.TIP_OFF, "举报"],
];

const STATUSES: Record<number, string> = {
  [ServiceRequestStatus.ACCEPTED]: "已受理",
  [ServiceRequestStatus.ASSIGNED]: "已交办",
  [ServiceRequestStatus.SIGNED_FOR]: "已签收",
  [ServiceRequestStatus.REPLIED]: "已答复",
  [ServiceRequestStatus.VISITED]: "已回访",
  [ServiceRequestStatus.ARCHIVED]: "已办结",
};

const STEPS: Record<number, { label: string; needs?: "unit" | "text" | "days" | "satisfaction" }> = {
  [Step.ASSIGN]: { label: "分办", needs: "unit" },
  [Step.SIGN]: { label: "签收" },
  [Step.REPLY]: { label: "办结回复", needs: "text" },
  [Step.RETURN]: { label: "退回", needs: "text" },
  [Step.REQUEST_EXTENSION]: { label: "申请延期", needs: "days" },
  [Step.APPROVE_EXTENSION]: { label: "批准延期" },
  [Step.REJECT_EXTENSION]: { label: "驳回延期" },
  [Step.URGE]: { label: "催办" },
  [Step.SUPERVISE]: { label: "督办" },
  [Step.RECORD_SATISFACTION]: { label: "回访", needs: "satisfaction" },
  [Step.REOPEN]: { label: "重办" },
  [Step.ARCHIVE]: { label: "归档" },
};

/** One request with its steps open to the caller (the hub's `available_actions`). */
async function requestDetail(pane: HTMLElement, id: string, changed: () => Promise<void>): Promise<void> {
  let s: ServiceRequest;
  try {
    s = await busy(pane, "正在加载…", api.requests.getServiceRequest({ id }));
  } catch (e) {
    clear(pane, h("p", { class: "error" }, api.problem(e).message));
    return;
  }
  const form = (step: Step): HTMLElement => {
    const spec = STEPS[step] ?? { label: Step[step] };
    const text = h("input", { "data-field": "comment", placeholder: spec.needs === "text" ? "答复 / 理由（必填）" : "意见（选填）" });
    const unit = h("input", { "data-field": "assignee", placeholder: "承办单位代码" });
    const days = h("input", { type: "number", min: "1", max: "60", "data-field": "extension_working_days", placeholder: "工作日" });
    const sat = h(
      "select",
      { "data-field": "satisfaction" },
      h("option", { value: String(Satisfaction.SATISFIED) }, "满意"),
      h("option", { value: String(Satisfaction.BASICALLY_SATISFIED) }, "基本满意"),
      h("option", { value: String(Satisfaction.DISSATISFIED) }, "不满意"),
    );
    const button = h("button", { type: "submit", "data-step": Step[step] }, spec.label);
    const f = actionForm(
      button,
      [
        spec.needs === "unit" ? unit : null,
        spec.needs === "days" ? days : null,
        spec.needs === "satisfaction" ? sat : null,
        text,
      ],
      (requestId) =>
        api.requests.transitionServiceRequest({
          id: s.id,
          action: step,
          expectedVersion: s.version,
          assignee: unit.value.trim(),
          comment: text.value.trim(),
          extensionWorkingDays: Number(days.value) || 0,
          satisfaction: spec.needs === "satisfaction" ? Number(sat.value) : Satisfaction.SATISFACTION_UNSPECIFIED,
          requestId,
        }),
      spec.label,
      async () => {
        await Promise.all([requestDetail(pane, id, changed), changed()]);
      },
      () => requestDetail(pane, id, changed),
    );
    return f;
  };
  clear(
    pane,
    h("h2", { "data-status": String(s.status) }, `${s.requestNo} · ${STATUSES[s.status] ?? ""}`),
    h("p", {}, `申请人：${s.applicant ? `${s.applicant.name} ${s.applicant.phone}` : ""}${s.onBehalf ? "（代办）" : ""}`),
    h("p", {}, s.content),
    h("p", {}, `承办单位：${s.assignee || "—"} · 时限：${cst(s.deadline)}`),
    s.hotlineOrderNo ? h("p", {}, `12345 工单 ${s.hotlineOrderNo}（第 ${s.hotlineVersion} 版）`) : null,
    s.hotlineOrderNo ? hotlineUpdates(s.hotlineUpdates) : null,
    s.caseId ? h("p", {}, "关联案件：", h("a", { href: `#/case/${s.caseId}` }, s.caseId)) : null,
    s.reply ? h("p", {}, `答复：${s.reply}`) : null,
    s.availableActions.length
      ? h("div", { class: "actions", id: "request-actions" }, ...s.availableActions.map(form))
      : h("p", { class: "empty", id: "request-actions" }, "您当前对此办件没有可执行的操作。"),
  );
}

const UPDATE_KINDS: Record<number, string> = {
  [UpdateKind.UPDATE_SIGNED]: "签收",
  [UpdateKind.UPDATE_REPLIED]: "回复",
  [UpdateKind.UPDATE_RETURNED]: "退回",
  [UpdateKind.UPDATE_EXTENSION_REQUESTED]: "延期申请",
};
const DELIVERY: Record<string, string> = { PENDING: "待推送", DELIVERED: "已推送", DEAD: "推送失败（待运维重推）" };

/** What the hub has told 12345 about the order, and whether each push arrived. */
function hotlineUpdates(updates: HotlineUpdate[]): HTMLElement {
  if (!updates.length) return h("p", { class: "empty", id: "hotline-updates" }, "尚无回传 12345 的进展。");
  return h(
    "table",
    { id: "hotline-updates" },
    h("caption", {}, "回传 12345 的进展"),
    h("thead", {}, h("tr", {}, h("th", {}, "时间"), h("th", {}, "事项"), h("th", {}, "内容"), h("th", {}, "推送"))),
    h(
      "tbody",
      {},
      ...updates.map((u) =>
        h(
          "tr",
          { "data-update": u.updateId, "data-delivery": u.delivery },
          h("td", {}, cst(u.occurredAt)),
          h("td", {}, UPDATE_KINDS[u.kind] ?? ""),
          h("td", {}, u.extensionWorkingDays ? `${u.text}（${u.extensionWorkingDays} 个工作日）` : u.text),
          h(
            "td",
            { class: u.delivery === "DEAD" ? "flag" : "" },
            `${DELIVERY[u.delivery] ?? u.delivery}${u.delivery === "DELIVERED" ? ` ${cst(u.deliveredAt)}` : u.attempts ? `（已尝试 ${u.attempts} 次）` : ""}`,
          ),
        ),
      ),
    ),
  );
}

export const windowView: View = (root: HTMLElement, me: Me, args: string[]) => {
  const list = h("tbody");
  const town = me.caller.regionCode.length >= 9 ? me.caller.regionCode.slice(0, 9) : "";

  const loadList = async () => {
    try {
      const r = await api.requests.listServiceRequests({ regionCode: "", pageSize: 50, pageToken: "" });
      clear(
        list,
        ...r.serviceRequests.map((s) =>
          h(
            "tr",
            { "data-request": s.requestNo },
            h("td", {}, h("a", { href: `#/window/${s.id}` }, s.requestNo)),
            h("td", {}, KINDS.find(([k]) => k === s.kind)?.[1] ?? ""),
            h("td", {}, s.applicant ? `${s.applicant.name} ${s.applicant.phone}` : ""),
            h("td", {}, s.content.slice(0, 40)),
            h("td", {}, STATUSES[s.status] ?? ""),
            h("td", {}, s.onBehalf ? "代办" : ""),
            h("td", {}, s.hotlineOrderNo ? `12345：${s.hotlineOrderNo}` : ""),
            h("td", {}, cst(s.deadline)),
          ),
        ),
      );
    } catch (e) {
      toast(api.problem(e).message, "error");
    }
  };

  root.append(h("h1", {}, "一窗口"));
  if (me.can("ServiceRequestService/CreateServiceRequest")) {
    let items: CatalogItem[] = [];
    let requestId = api.requestId();
    const kind = h("select", { name: "kind", "data-field": "kind" }, ...KINDS.map(([k, l]) => h("option", { value: String(k) }, l)));
    const search = h("input", { id: "catalog-search", "data-field": "catalog_item_code", placeholder: "按名称搜索权责清单事项", list: "catalog-items" });
    const options = h("datalist", { id: "catalog-items" });
    const name = h("input", { id: "applicant-name", "data-field": "applicant.name", placeholder: "申请人姓名" });
    const phone = h("input", { id: "applicant-phone", "data-field": "applicant.phone", placeholder: "联系电话" });
    const idNo = h("input", { id: "applicant-id", "data-field": "applicant.id_number", placeholder: "身份证号（选填）" });
    const content = h("textarea", { id: "content", "data-field": "content", rows: "3", placeholder: "事项内容" });
    const address = h("input", { id: "address", "data-field": "address", placeholder: "地址（选填）" });
    const region = h("input", { id: "region", "data-field": "region_code", value: me.caller.regionCode, placeholder: "所在村（社区）代码" });
    const onBehalf = h("input", { id: "on-behalf", type: "checkbox", "data-field": "on_behalf" });
    const submit = h("button", { type: "submit", id: "file-request" }, "受理");
    if (town) {
      api.catalog
        .listCatalogItems({ townCode: town, pageSize: 1000, pageToken: "" })
        .then((r) => {
          items = r.items;
          clear(options, ...items.map((i) => h("option", { value: `${i.name}（${i.code}）` })));
        })
        .catch(() => {});
    }
    const form = h(
      "form",
      {
        class: "request-form",
        id: "request-form",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          submit.disabled = true;
          const picked = items.find((i) => search.value.includes(`（${i.code}）`) || i.name === search.value.trim());
          try {
            const r = await api.requests.createServiceRequest({
              kind: Number(kind.value),
              urgency: Urgency.NORMAL,
              catalogItemCode: picked?.code ?? "",
              applicant: { name: name.value, phone: phone.value, idNumber: idNo.value },
              content: content.value,
              regionCode: region.value.trim(),
              onBehalf: onBehalf.checked,
              address: address.value,
              requestId,
            });
            requestId = api.requestId();
            showFieldErrors(form, new Map());
            toast(`已受理：${r.requestNo}`);
            form.reset();
            region.value = me.caller.regionCode;
            await loadList();
          } catch (err) {
            const p = api.problem(err);
            const rest = showFieldErrors(form, p.fields);
            toast([p.message, ...rest].join(" "), "error");
          } finally {
            submit.disabled = false;
          }
        },
      },
      h("h2", {}, "受理"),
      h("label", {}, "类别 ", kind),
      h("label", {}, "权责清单事项 ", search, options),
      name,
      phone,
      idNo,
      content,
      address,
      region,
      h("label", {}, onBehalf, " 代办（代他人申请）"),
      submit,
    );
    root.append(form);
  }
  root.append(
    h("h2", {}, "办件"),
    h(
      "table",
      { class: "list", id: "request-list" },
      h("thead", {}, h("tr", {}, ...["编号", "类别", "申请人", "内容", "状态", "", "来源", "时限"].map((t) => h("th", {}, t)))),
      list,
    ),
  );
  const pane = h("section", { id: "request-detail" });
  root.append(pane);
  if (args[0]) void requestDetail(pane, args[0], loadList);
  void busy(root, "正在加载…", loadList());
};
