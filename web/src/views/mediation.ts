// 矛盾调解: the mediator's list and one case with its sessions, agreement versions and
// follow-ups. Parties are masked unless the caller holds pii_reader — and then each view is
// a read the hub audits.

import * as api from "../api";
import { MediationStatus, PartyRole, type MediationCase } from "../gen/gridhub/v1/mediation_pb";
import type { Me, View } from "../main";
import { h, clear, busy, toast, cst } from "../ui";

const STATUS: Record<number, string> = {
  [MediationStatus.REGISTERED]: "已登记",
  [MediationStatus.IN_MEDIATION]: "调解中",
  [MediationStatus.SUCCEEDED]: "调解成功",
  [MediationStatus.FAILED]: "调解不成",
  [MediationStatus.CLOSED_MEDIATION]: "已结案",
};

const ROLE: Record<number, string> = {
  [PartyRole.APPLICANT]: "申请人",
  [PartyRole.RESPONDENT]: "被申请人",
  [PartyRole.THIRD_PARTY]: "第三人",
};

function detail(m: MediationCase, me: Me): HTMLElement {
  return h(
    "section",
    { class: "mediation-case", id: "mediation-case", "data-case": m.id },
    h("h2", {}, `${m.caseNo} · ${STATUS[m.status] ?? ""}`),
    h("p", {}, `纠纷类型：${m.disputeType} · 调解组织：${m.team} · 调解员：${m.mediators.join("、")}`),
    m.linkedCaseId ? h("p", {}, "关联案件：", h("a", { href: `#/case/${m.linkedCaseId}` }, m.linkedCaseId)) : null,
    h("p", {}, m.summary),
    h(
      "p",
      { class: "hint" },
      me.caller.piiReader ? "您持有 pii_reader：当事人信息完整显示，本次查看已记入审计。" : "当事人信息已脱敏。",
    ),
    h(
      "table",
      { class: "list", id: "parties" },
      h("thead", {}, h("tr", {}, ...["角色", "姓名", "身份证号", "电话", "地址"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        ...m.parties.map((p) =>
          h(
            "tr",
            {},
            h("td", {}, ROLE[p.role] ?? ""),
            h("td", { "data-party": "name" }, p.name),
            h("td", { "data-party": "id_number" }, p.idNumber),
            h("td", { "data-party": "phone" }, p.phone),
            h("td", { "data-party": "address" }, p.address),
          ),
        ),
      ),
    ),
    h("h3", {}, `调解记录（${m.sessions.length}）`),
    h("ol", {}, ...m.sessions.map((s) => h("li", {}, `${cst(s.heldAt)} ${s.place}：${s.summary}`))),
    h("h3", {}, "调解协议"),
    h(
      "ol",
      {},
      ...[...m.agreementHistory, ...(m.agreement ? [m.agreement] : [])]
        .filter((a, i, all) => all.findIndex((b) => b.version === a.version) === i)
        .map((a) =>
          h("li", {}, `第 ${a.version} 版${a.written ? "（书面）" : "（口头）"} ${a.text}${a.amountFen ? `，金额 ${Number(a.amountFen) / 100} 元` : ""}`),
        ),
    ),
    h("h3", {}, "回访"),
    h(
      "ol",
      {},
      ...m.followUps.map((f) =>
        h("li", { class: f.overdue ? "urgent" : "" }, `${f.dueOn} ${f.doneAt ? (f.performed ? "已履行" : "未履行") : f.overdue ? "逾期未回访" : "待回访"} ${f.note}`),
      ),
    ),
  );
}

export const mediationView: View = (root: HTMLElement, me: Me, args: string[]) => {
  const list = h("tbody");
  const pane = h("div", { id: "mediation-detail" });
  root.append(
    h("h1", {}, "矛盾纠纷调解"),
    h(
      "table",
      { class: "list", id: "mediation-list" },
      h("thead", {}, h("tr", {}, ...["编号", "类型", "状态", "当事人", "登记时间"].map((t) => h("th", {}, t)))),
      list,
    ),
    pane,
  );
  const open = async (id: string) => {
    try {
      const m = await busy(pane, "正在加载…", api.mediation.getMediationCase({ id }));
      clear(pane, detail(m, me));
    } catch (e) {
      toast(api.problem(e).message, "error");
    }
  };
  void (async () => {
    try {
      const r = await busy(root, "正在加载…", api.mediation.listMediationCases({ regionCode: "", pageSize: 50, pageToken: "" }));
      clear(
        list,
        ...r.mediationCases.map((m) =>
          h(
            "tr",
            {},
            h("td", {}, h("a", { href: `#/mediation/${m.id}` }, m.caseNo)),
            h("td", {}, m.disputeType),
            h("td", {}, STATUS[m.status] ?? ""),
            h("td", {}, m.parties.map((p) => p.name).join("、")),
            h("td", {}, cst(m.registeredAt)),
          ),
        ),
      );
    } catch (e) {
      toast(api.problem(e).message, "error");
    }
  })();
  if (args[0]) void open(args[0]);
};
