// Small DOM helpers: elements from data (text is always set as text, never parsed as HTML),
// a busy indicator for long loads, messages, and the form every workflow step uses.

import { Code } from "@connectrpc/connect";
import { problem, requestId as newRequestId } from "./api";

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | ((e: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren(...children.filter((c): c is Node | string => !!c));
}

/** Shows `label` with a spinner inside `el` until `work` settles. */
export async function busy<T>(el: Element, label: string, work: Promise<T>): Promise<T> {
  const b = h("div", { class: "busy", role: "status" }, h("span", { class: "spinner" }), label);
  el.append(b);
  try {
    return await work;
  } finally {
    b.remove();
  }
}

/** A message at the top of the page (errors stay until closed; others fade). */
export function toast(message: string, kind: "info" | "error" = "info"): void {
  const box = document.getElementById("toasts") ?? document.body;
  const t = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  t.append(h("button", { class: "close", "aria-label": "关闭", onclick: () => t.remove() }, "×"));
  box.append(t);
  if (kind === "info") setTimeout(() => t.remove(), 4000);
}

/** Shows field violations next to their fields (inputs with `data-field`); returns the rest. */
export function showFieldErrors(form: Element, fields: Map<string, string>): string[] {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const old of form.querySelectorAll(".invalid")) old.classList.remove("invalid");
  const unplaced: string[] = [];
  for (const [field, text] of fields) {
    const input = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
    if (input) {
      input.classList.add("invalid");
      input.insertAdjacentElement("afterend", h("div", { class: "field-error", "data-error-for": field }, text));
    } else {
      unplaced.push(`${field}：${text}`);
    }
  }
  return unplaced;
}

const CST = new Intl.DateTimeFormat("zh-CN", {
  timeZone: "Asia/Shanghai",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});

/** A time in China Standard Time. */
export function cst(t: { seconds: bigint; nanos: number } | undefined): string {
  if (!t) return "—";
  return CST.format(new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)));
}

export const STATUS_NAMES: Record<string, string> = {
  REPORTED: "待受理",
  REGISTERED: "已立案",
  DISPATCHED: "已派遣",
  SIGNED: "已签收",
  HANDLED: "已处置",
  CLOSED: "已结案",
  VOID: "已作废",
  MERGED: "已合并",
};

export function statusName(s: string): string {
  return STATUS_NAMES[s] ?? s;
}

/**
 * A form that acts once per intent: `act` gets a request id made for this form (a new one
 * only after success, so a resend replays instead of acting twice), the button is disabled
 * while in flight, field violations show beside their fields, and a stale view (ABORTED)
 * offers `reload` instead of acting again. `done` runs after success with `label`'s toast.
 */
export function actionForm(
  button: HTMLButtonElement,
  fields: (Node | null)[],
  act: (requestId: string) => Promise<unknown>,
  label: string,
  done: () => Promise<void>,
  reload?: () => Promise<void>,
): HTMLFormElement {
  let requestId = newRequestId();
  const form: HTMLFormElement = h(
    "form",
    {
      class: "action",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        button.disabled = true;
        try {
          await act(requestId);
          requestId = newRequestId();
          toast(`${label}：已完成`);
          await done();
        } catch (err) {
          const p = problem(err);
          toast([p.message, ...showFieldErrors(form, p.fields)].join(" "), "error");
          if (p.code === Code.Aborted && reload) {
            form.append(h("button", { type: "button", class: "reload", onclick: () => void reload() }, "刷新"));
          } else {
            button.disabled = false;
          }
        }
      },
    },
    button,
    ...fields,
  );
  return form;
}
