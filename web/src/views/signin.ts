// Sign-in: paste a token (development: `gridhub token issue …`; `scripts/serve --demo` prints
// some). It is kept in this tab's session storage only.

import * as session from "../session";
import { h } from "../ui";

export function signInView(root: HTMLElement, reason: string, done: () => void): void {
  const input = h("textarea", {
    id: "token",
    rows: "5",
    placeholder: "eyJhbGciOi…",
    "aria-label": "令牌",
    autocomplete: "off",
    spellcheck: "false",
  });
  const error = h("p", { class: "field-error", id: "signin-error" }, reason);
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: (e: Event) => {
        e.preventDefault();
        const t = input.value.trim();
        const c = session.claimsOf(t);
        if (!c) {
          error.textContent = "这不是有效的令牌（应为 JWT：三段以点分隔）。";
          return;
        }
        if (session.expired(c)) {
          error.textContent = "此令牌已过期，请换一个。";
          return;
        }
        session.signIn(t);
        done();
      },
    },
    h("h1", {}, "镇村治理一张网 · 指挥中心"),
    h("label", { for: "token" }, "令牌（开发环境：gridhub token issue 或 scripts/serve --demo 打印的令牌）"),
    input,
    error,
    h("button", { type: "submit", id: "signin" }, "登录"),
    h("p", { class: "hint" }, "令牌只保存在本标签页的会话存储中，关闭即失效。"),
  );
  root.append(form);
  input.focus();
}
