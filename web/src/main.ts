// The command centre's console: sign-in, then the screens the caller's roles open (the hub
// says which through WhoAmI), routed by the URL's hash so every screen has a link.

import "maplibre-gl/dist/maplibre-gl.css";
import "./styles.css";
import { ConnectError } from "@connectrpc/connect";
import * as api from "./api";
import * as session from "./session";
import { h, clear, toast } from "./ui";
import type { Caller } from "./gen/gridhub/v1/session_pb";
import { signInView } from "./views/signin";
import { mapView } from "./views/map";
import { casesView } from "./views/cases";
import { caseView } from "./views/case";
import { windowView } from "./views/window";
import { mediationView } from "./views/mediation";

/** What the current user is and may call, from the hub. */
export interface Me {
  caller: Caller;
  can(method: string): boolean;
}

/** A screen: draws into `root`; returns a function that stops what it started (streams). */
export type View = (root: HTMLElement, me: Me, args: string[]) => (() => void) | void;

interface Screen {
  path: string;
  title: string;
  needs: string;
  view: View;
  nav: boolean;
}

const SCREENS: Screen[] = [
  { path: "map", title: "一张图", needs: "CaseService/GetCaseMap", view: mapView, nav: true },
  { path: "cases", title: "案件", needs: "CaseService/ListCases", view: casesView, nav: true },
  { path: "case", title: "案件详情", needs: "CaseService/GetCase", view: caseView, nav: false },
  // The charts' library loads with the dashboard, not with the map.
  {
    path: "dashboard",
    title: "统计分析",
    needs: "CaseService/GetDashboard",
    view: (root, me, args) => {
      let stop: (() => void) | void;
      let stopped = false;
      import("./views/dashboard")
        .then((m) => {
          if (!stopped) stop = m.dashboardView(root, me, args);
        })
        .catch((e) => toast(String(e), "error"));
      return () => {
        stopped = true;
        if (stop) stop();
      };
    },
    nav: true,
  },
  { path: "window", title: "一窗口", needs: "ServiceRequestService/ListServiceRequests", view: windowView, nav: true },
  { path: "mediation", title: "矛盾调解", needs: "MediationService/ListMediationCases", view: mediationView, nav: true },
];

const app = document.getElementById("app")!;
let me: Me | null = null;
let stop: (() => void) | void;

api.whenSignedOut((message) => {
  if (!session.token()) return;
  session.signOut(`登录已失效（${message}），请重新登录。`);
  me = null;
  route();
});

async function who(): Promise<Me> {
  const caller = await api.sessions.whoAmI({});
  const methods = new Set(caller.methods);
  return { caller, can: (m) => methods.has(`/gridhub.v1.${m}`) };
}

function layout(m: Me, current: string): HTMLElement {
  const main = h("main", { id: "screen" });
  const nav = h(
    "nav",
    {},
    h("span", { class: "brand" }, "镇村治理一张网"),
    ...SCREENS.filter((s) => s.nav && m.can(s.needs)).map((s) =>
      h("a", { href: `#/${s.path}`, class: s.path === current ? "active" : "" }, s.title),
    ),
    h(
      "span",
      { class: "who" },
      `${m.caller.subject} · ${m.caller.regionCode || "全国"} · ${m.caller.roles.join("、")}`,
      m.caller.piiReader ? h("span", { class: "badge", title: "查看个人信息的操作均被审计" }, "可见个人信息") : null,
    ),
    h(
      "button",
      {
        class: "link",
        onclick: () => {
          session.signOut();
          me = null;
          location.hash = "";
          route();
        },
      },
      "退出",
    ),
  );
  clear(app, nav, h("div", { id: "toasts" }), main);
  return main;
}

async function route(): Promise<void> {
  if (stop) stop();
  stop = undefined;
  const token = session.token();
  const claims = token ? session.claimsOf(token) : null;
  if (!token || !claims) {
    clear(app);
    signInView(app, session.takeReason(), () => route());
    return;
  }
  if (session.expired(claims)) {
    session.signOut("登录已过期，请重新登录。");
    route();
    return;
  }
  if (!me) {
    try {
      me = await who();
    } catch (e) {
      session.signOut(`无法登录：${ConnectError.from(e).rawMessage}`);
      route();
      return;
    }
  }
  const [path, ...args] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const open = SCREENS.filter((s) => me!.can(s.needs));
  const screen = open.find((s) => s.path === path) ?? open.find((s) => s.nav);
  if (!screen) {
    const main = layout(me, "");
    main.append(h("p", { class: "empty" }, "您的角色在此控制台没有可用的功能。"));
    return;
  }
  const main = layout(me, screen.path);
  document.title = `${screen.title} · 镇村治理一张网`;
  try {
    stop = screen.view(main, me, args);
  } catch (e) {
    toast(String(e), "error");
  }
}

window.addEventListener("hashchange", () => route());
route();
