// 一窗口: the clerk files a request (on a 权责清单 item found by name; 代办 on someone's
// behalf), and the window's requests with their steps, 12345 orders among them.

import * as api from "../api";
import {
  RequestKind,
  ServiceRequestStatus,
  Urgency,
  type CatalogItem,
} from "../gen/gridhub/v1/service_pb";
import type { Me, View } from "../main";
import { h, clear, busy, toast, cst, showFieldErrors } from "../ui";

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

export const windowView: View = (root: HTMLElement, me: Me) => {
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
            h("td", {}, s.requestNo),
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
  void busy(root, "正在加载…", loadList());
};
