// 案件: the case list with the API's filters and pages.

import * as api from "../api";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListCasesRequestSchema } from "../gen/gridhub/v1/case_pb";
import type { View } from "../main";
import { h, clear, busy, toast, cst, statusName, STATUS_NAMES } from "../ui";

export const casesView: View = (root) => {
  const status = h(
    "select",
    { id: "f-status", "aria-label": "状态" },
    h("option", { value: "" }, "全部状态"),
    ...Object.entries(STATUS_NAMES).map(([k, v]) => h("option", { value: k }, v)),
  );
  const category = h("input", { id: "f-category", placeholder: "统一分类代码", size: "10" });
  const overdue = h("input", { id: "f-overdue", type: "checkbox" });
  const tbody = h("tbody");
  const more = h("button", { id: "more", hidden: true }, "加载更多");
  let token = "";

  const query = (): MessageInitShape<typeof ListCasesRequestSchema> => ({
    statuses: status.value ? [status.value] : [],
    unifiedCategory: category.value.trim(),
    overdueOnly: overdue.checked,
    pageSize: 50,
    pageToken: token,
  });

  const load = async (reset: boolean) => {
    if (reset) {
      token = "";
      clear(tbody);
    }
    try {
      const r = await busy(root, "正在加载案件…", api.cases.listCases(query()));
      for (const c of r.cases) {
        tbody.append(
          h(
            "tr",
            { class: c.flags.includes("OVERDUE") ? "urgent" : "", "data-case": c.caseId },
            h("td", {}, h("a", { href: `#/case/${c.caseId}` }, c.caseNo)),
            h("td", {}, statusName(c.status)),
            h("td", {}, c.unifiedCategory || "待分类"),
            h("td", {}, c.gridCode),
            h("td", {}, c.assignee || "—"),
            h("td", {}, cst(c.deadline)),
            h("td", {}, c.flags.join(" ")),
            h("td", {}, cst(c.lastReportedAt)),
          ),
        );
      }
      token = r.nextPageToken;
      more.hidden = !token;
      if (tbody.children.length === 0) tbody.append(h("tr", {}, h("td", { colspan: "8", class: "empty" }, "没有符合条件的案件")));
    } catch (e) {
      toast(api.problem(e).message, "error");
    }
  };

  more.addEventListener("click", () => load(false));
  root.append(
    h(
      "form",
      {
        class: "filters",
        onsubmit: (e: Event) => {
          e.preventDefault();
          void load(true);
        },
      },
      status,
      category,
      h("label", {}, overdue, " 只看超期"),
      h("button", { type: "submit" }, "查询"),
    ),
    h(
      "table",
      { class: "list", id: "case-list" },
      h(
        "thead",
        {},
        h("tr", {}, ...["编号", "状态", "分类", "网格", "承办单位", "处置时限", "标记", "最近上报"].map((t) => h("th", {}, t))),
      ),
      tbody,
    ),
    more,
  );
  void load(true);
};
