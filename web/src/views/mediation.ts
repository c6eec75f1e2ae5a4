// 矛盾调解: the mediator's list and one case with its sessions, agreement versions and
// follow-ups. Parties are masked unless the caller holds pii_reader — and then each view is
// a read the hub audits.

import * as api from "../api";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { MediationStatus, PartyRole, Referral, type MediationCase } from "../gen/gridhub/v1/mediation_pb";
import type { Me, View } from "../main";
import { h, clear, busy, toast, cst, actionForm } from "../ui";

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

const REFERRAL: [Referral, string][] = [
  [Referral.LITIGATION, "诉讼"],
  [Referral.ARBITRATION, "仲裁"],
  [Referral.ADMINISTRATIVE_HANDLING, "行政处理"],
  [Referral.PETITION, "信访"],
];

/** Now as a `datetime-local` value (the browser's local time). */
function nowLocal(): string {
  const d = new Date();
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

/**
 * The forms of the steps the hub says are open to the caller (`available_steps`): a session,
 * the outcome (an agreement, or a referral), a corrected agreement, a follow-up visit that may
 * close the case, or closing. Each is a `ui.actionForm` (one request id per intent, stale →
 * reload); the page reloads after each.
 */
function stepForms(m: MediationCase, reload: () => Promise<void>): HTMLElement {
  const base = { id: m.id, expectedVersion: m.version };
  const labelled = (label: string, field: Node) => h("label", {}, label, field);
  const agreementFields = () => {
    const text = h("textarea", { "data-field": "agreement.text", placeholder: "协议内容（必填）" });
    const written = h("input", { type: "checkbox", checked: true });
    const amount = h("input", { type: "number", min: "0", step: "0.01", "data-field": "agreement.amount_fen", placeholder: "金额（元）" });
    const deadline = h("input", { type: "date", "data-field": "agreement.performance_deadline" });
    const read = () => ({
      text: text.value.trim(),
      written: written.checked,
      amountFen: BigInt(Math.round((Number(amount.value) || 0) * 100)),
      performanceDeadline: deadline.value,
    });
    return { fields: [text, labelled("书面协议", written), amount, labelled("履行期限", deadline)], read };
  };
  const forms: HTMLElement[] = [];
  for (const step of m.availableSteps) {
    const button = h("button", { type: "submit", "data-step": step });
    const done = reload;
    switch (step) {
      case "SESSION": {
        button.textContent = "记录调解";
        const held = h("input", { type: "datetime-local", "data-field": "held_at", value: nowLocal() });
        const place = h("input", { "data-field": "place", placeholder: "地点（必填）" });
        const who = h("input", { "data-field": "participants", placeholder: "参加人（以、分隔）" });
        const summary = h("textarea", { "data-field": "summary", placeholder: "调解情况（必填）" });
        forms.push(
          actionForm(
            button,
            [held, place, who, summary],
            (requestId) =>
              api.mediation.recordSession({
                ...base,
                heldAt: held.value ? timestampFromDate(new Date(held.value)) : undefined,
                place: place.value.trim(),
                participants: who.value.split(/[、,，]/).map((x) => x.trim()).filter(Boolean),
                summary: summary.value.trim(),
                requestId,
              }),
            "记录调解",
            done,
            reload,
          ),
        );
        break;
      }
      case "SUCCEED":
      case "CORRECT_AGREEMENT": {
        const label = step === "SUCCEED" ? "调解成功" : "更正协议";
        button.textContent = label;
        const a = agreementFields();
        forms.push(
          actionForm(
            button,
            a.fields,
            (requestId) =>
              api.mediation.recordOutcome({ ...base, outcome: MediationStatus.SUCCEEDED, agreement: a.read(), requestId }),
            label,
            done,
            reload,
          ),
        );
        break;
      }
      case "FAIL": {
        button.textContent = "调解不成";
        const referral = h(
          "select",
          { "data-field": "referral" },
          ...REFERRAL.map(([v, t]) => h("option", { value: String(v) }, t)),
        );
        const note = h("textarea", { "data-field": "referral_note", placeholder: "原因及引导去向" });
        forms.push(
          actionForm(
            button,
            [labelled("引导", referral), note],
            (requestId) =>
              api.mediation.recordOutcome({
                ...base,
                outcome: MediationStatus.FAILED,
                referral: Number(referral.value),
                referralNote: note.value.trim(),
                requestId,
              }),
            "调解不成",
            done,
            reload,
          ),
        );
        break;
      }
      case "FOLLOW_UP": {
        button.textContent = "记录回访";
        const performed = h("input", { type: "checkbox", "data-field": "performed" });
        const close = h("input", { type: "checkbox", "data-field": "close" });
        const note = h("textarea", { "data-field": "note", placeholder: "回访情况" });
        forms.push(
          actionForm(
            button,
            [labelled("已履行", performed), labelled("回访后结案", close), note],
            (requestId) =>
              api.mediation.recordFollowUp({
                ...base,
                performed: performed.checked,
                close: close.checked,
                note: note.value.trim(),
                requestId,
              }),
            "记录回访",
            done,
            reload,
          ),
        );
        break;
      }
      case "CLOSE": {
        button.textContent = "结案";
        // A close only: the follow-up the team may close with is the form above.
        if (m.availableSteps.includes("FOLLOW_UP")) continue;
        forms.push(
          actionForm(
            button,
            [],
            (requestId) => api.mediation.recordFollowUp({ ...base, close: true, note: "", performed: false, requestId }),
            "结案",
            done,
            reload,
          ),
        );
        break;
      }
    }
  }
  return forms.length
    ? h("div", { class: "actions", id: "mediation-actions" }, ...forms)
    : h("p", { class: "empty", id: "mediation-actions" }, "您当前对此调解案件没有可执行的操作。");
}

function detail(m: MediationCase, me: Me, reload: () => Promise<void>): HTMLElement {
  return h(
    "section",
    { class: "mediation-case", id: "mediation-case", "data-case": m.id },
    h("h2", { "data-status": MediationStatus[m.status] }, `${m.caseNo} · ${STATUS[m.status] ?? ""}`),
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
    stepForms(m, reload),
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
      // After a step: the case and the list (its status) again.
      clear(pane, detail(m, me, async () => void (await Promise.all([open(id), loadList()]))));
    } catch (e) {
      toast(api.problem(e).message, "error");
    }
  };
  const loadList = async () => {
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
  };
  void loadList();
  if (args[0]) void open(args[0]);
};
