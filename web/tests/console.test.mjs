// The console in a real browser (Debian's Chromium driven by playwright-core) against the real
// hub (target/debug/gridhub serve --demo) on a fresh database: the journeys of issue 19.
// Run by scripts/test after the Rust tests; screenshots go to target/console/.
//
// Environment: GRIDHUB_TEST_DATABASE_URL (a PostgreSQL server whose user may create
// databases), GRIDHUB_BIN (default ../target/debug/gridhub), CHROMIUM (default
// /usr/bin/chromium).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { CaseService, CaseAction } from "./gen/gridhub/v1/case_pb.js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AttachmentChunkSchema,
  AttachmentSchema,
  ReportService,
  ReportSource,
} from "./gen/gridhub/v1/report_pb.js";
import { AuditService } from "./gen/gridhub/v1/audit_pb.js";
import { MediationService, MediationSource, MediationKind, PartyRole } from "./gen/gridhub/v1/mediation_pb.js";
import { HotlineService, RequestKind, ServiceRequestService, TransitionServiceRequestRequest_Action as Step } from "./gen/gridhub/v1/service_pb.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const BIN = process.env.GRIDHUB_BIN ?? path.join(root, "target/debug/gridhub");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const DB_SERVER = process.env.GRIDHUB_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const SHOTS = path.join(root, "target/console");
const TOWN = "500110111";
const MAJING = "500110111201";
const TEAM = "500110111201-TWH";
const ZFJ = "500110111-ZFJ";
/** A point in 马颈村's first grid (the Rust tests' WALL). */
const WALL = { lat: 28.83, lng: 106.745 };

let hub;
let base;
let dataDir;
let dbName;
let browser;
let env;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

function psql(sql) {
  execFileSync("psql", [DB_SERVER, "-qAtc", sql], { stdio: ["ignore", "pipe", "pipe"] });
}

function gridhub(...args) {
  return execFileSync(BIN, ["--data-dir", dataDir, ...args], { encoding: "utf8" }).trim();
}

/** A token from the hub's own CLI (same secret as the server). */
function token(sub, roles, region, unit = "", ttl = "1h") {
  return gridhub("token", "issue", "--sub", sub, "--roles", roles.join(","), "--region", region, "--unit", unit, "--ttl", ttl);
}

function client(service, tok) {
  const transport = createGrpcWebTransport({
    baseUrl: base,
    interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${tok}`), next(req))],
  });
  return createClient(service, transport);
}

/** A 2×2 PNG: what a phone's photo is to the hub. */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==",
  "base64",
);

/**
 * UploadAttachment is client-streaming, which gRPC-Web clients do not offer: the test sends
 * the frames of one chunk in one gRPC-Web request, as the hub accepts.
 */
async function upload(bytes, contentType, tok) {
  const msg = toBinary(AttachmentChunkSchema, create(AttachmentChunkSchema, { contentType, data: bytes }));
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  Buffer.from(msg).copy(frame, 5);
  const r = await fetch(`${base}/gridhub.v1.ReportService/UploadAttachment`, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", authorization: `Bearer ${tok}` },
    body: frame,
  });
  const body = Buffer.from(await r.arrayBuffer());
  assert.equal(body[0], 0, `a data frame first: ${body.toString("latin1")}`);
  return fromBinary(AttachmentSchema, body.subarray(5, 5 + body.readUInt32BE(1)));
}

async function submitReport(title = "路面塌陷", at = WALL, attachments = []) {
  const r = await client(ReportService, env.WORKER_TOKEN).submitReport({
    report: {
      clientReportId: crypto.randomUUID(),
      source: ReportSource.GRID_APP,
      categoryCode: "0101",
      title,
      description: "现场情况",
      location: at,
      occurredAt: timestampNow(),
      reporterId: "W-MJ-001",
      attachments,
    },
  });
  return r;
}

async function signedIn(tok, hash = "") {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: "zh-CN" });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("pageerror:", e.message));
  await page.goto(`${base}/${hash}`);
  await page.fill("#token", tok);
  await page.click("#signin");
  await page.waitForSelector("nav .who");
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

let hubArgs;
let hubLog = "";

/** Starts the hub with `extra` arguments (the demo's first start), on the same port each time. */
function startHub(extra = []) {
  hub = spawn(BIN, [...hubArgs, "serve", ...extra], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  hub.stdout.on("data", (d) => (hubLog += d));
  hub.stderr.on("data", (d) => (hubLog += d));
}

async function stopHub() {
  if (hub && hub.exitCode === null) {
    const exited = new Promise((r) => hub.once("exit", r));
    hub.kill("SIGTERM");
    await exited;
  }
}

async function serving() {
  for (let i = 0; i < 300; i++) {
    if (hub.exitCode !== null) throw new Error(`the hub exited:\n${hubLog}`);
    try {
      if ((await fetch(`${base}/config.json`)).ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the hub did not start:\n${hubLog}`);
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "gridhub-console-"));
  dbName = `gridhub_console_${process.pid}_${Date.now()}`;
  psql(`CREATE DATABASE ${dbName}`);
  const url = new URL(DB_SERVER);
  url.pathname = `/${dbName}`;
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  hubArgs = ["--data-dir", dataDir, "--database-url", url.toString(), "--listen", `127.0.0.1:${port}`, "--console-dir", path.join(root, "web/dist")];
  startHub(["--demo"]);
  const envFile = path.join(dataDir, "demo.env");
  for (let i = 0; i < 300 && !fs.existsSync(envFile); i++) {
    if (hub.exitCode !== null) throw new Error(`the hub exited:\n${hubLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(fs.existsSync(envFile), `the demo did not load:\n${hubLog}`);
  await serving();
  env = Object.fromEntries(
    fs.readFileSync(envFile, "utf8").trim().split("\n").map((l) => l.replace(/^export /, "").split("=")),
  );
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Root in CI: no sandbox. WebGL (MapLibre) on the CPU: SwiftShader.
    args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"],
  });
});

after(async () => {
  await browser?.close();
  await stopHub();
  if (dbName) psql(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

test("sign in with a dev token: the map shows 打通镇's grids", async () => {
  const page = await signedIn(env.TOKEN);
  await page.waitForSelector("#map[data-ready=true]", { timeout: 20_000 });
  assert.equal(await page.getAttribute("#map", "data-grids"), "34");
  await page.waitForSelector("#feed-state.live");
  await shot(page, "map");
  // The token lives in session storage only, never in the URL.
  assert.ok(!page.url().includes(env.TOKEN.slice(0, 20)));
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  await page.context().close();
});

test("a report submitted over gRPC appears in the feed and on the map within 2 s; a dropped feed resumes without gaps", async () => {
  const page = await signedIn(env.TOKEN);
  await page.waitForSelector("#map[data-ready=true]", { timeout: 20_000 });
  await page.waitForSelector("#feed-state.live");
  const before = Number(await page.getAttribute("#map", "data-cases"));
  const t0 = Date.now();
  const r = await submitReport("路灯损坏");
  await page.waitForSelector(`#feed li[data-case="${r.caseId}"]`, { timeout: 2_000 });
  await page.waitForFunction(
    (n) => Number(document.querySelector("#map")?.getAttribute("data-cases")) === n,
    before + 1,
    { timeout: 2_000 - Math.min(1_900, Date.now() - t0) },
  );
  console.log(`report → on screen: ${Date.now() - t0} ms`);

  // The connection drops (the hub restarts) and the console cannot reconnect for a while;
  // what commits meanwhile arrives once when it does (it resumes after the last event).
  await page.route("**/gridhub.v1.CaseService/WatchCases", (route) => route.abort());
  await stopHub();
  await page.waitForSelector("#feed-state.down", { timeout: 10_000 });
  startHub();
  await serving();
  const missed = await submitReport("井盖缺失", { lat: WALL.lat + 0.001, lng: WALL.lng });
  await page.unroute("**/gridhub.v1.CaseService/WatchCases");
  await page.waitForSelector(`#feed li[data-case="${missed.caseId}"]`, { timeout: 15_000 });
  await page.waitForSelector("#feed-state.live");
  assert.equal(await page.locator(`#feed li[data-case="${missed.caseId}"]`).count(), 1, "once, not twice");
  assert.equal(await page.locator(`#feed li[data-case="${r.caseId}"]`).count(), 1, "the earlier event not replayed");
  await shot(page, "feed");
  await page.context().close();
});

test("a feed dropped before its first event resumes from its start", async () => {
  const page = await signedIn(env.TOKEN);
  await page.waitForSelector("#feed-state.live");
  // No event has come yet; the connection drops; a case is reported while it is down.
  await page.route("**/gridhub.v1.CaseService/WatchCases", (route) => route.abort());
  await stopHub();
  await page.waitForSelector("#feed-state.down", { timeout: 10_000 });
  startHub();
  await serving();
  const missed = await submitReport("垃圾堆放", { lat: WALL.lat - 0.001, lng: WALL.lng });
  await page.unroute("**/gridhub.v1.CaseService/WatchCases");
  await page.waitForSelector(`#feed li[data-case="${missed.caseId}"]`, { timeout: 15_000 });
  assert.equal(await page.locator(`#feed li[data-case="${missed.caseId}"]`).count(), 1);
  await page.context().close();
});

test("the operator registers and dispatches through the buttons; the handler signs; stale and double clicks", async () => {
  const photo = await upload(PNG, "image/png", env.WORKER_TOKEN);
  const r = await submitReport("占道经营", { lat: WALL.lat, lng: WALL.lng + 0.006 }, [photo.attachmentId]);
  const op = await signedIn(env.TOKEN, `#/case/${r.caseId}`);
  await op.waitForSelector('h1[data-status="REPORTED"]');
  // The report's photo, downloaded over gRPC-Web and shown.
  await op.waitForFunction(
    (id) => document.querySelector(`[data-attachment="${id}"] img`)?.naturalWidth === 2,
    photo.attachmentId,
  );
  await shot(op, "case");
  // A double click on 立案 acts once.
  await op.dblclick('button[data-action="REGISTER"]');
  await op.waitForSelector('h1[data-status="REGISTERED"]');
  const audit = await client(AuditService, env.TOKEN).listAuditEvents({ entityType: "case", entityId: r.caseId, pageSize: 100 });
  const registers = audit.events.filter((e) => e.action === "case.transition" && JSON.parse(e.afterJson || "{}").kind === "REGISTER");
  assert.equal(registers.length, 1, "one REGISTER in the audit trail");

  // 派遣 with a unit and a time limit.
  const dispatch = op.locator('form.action:has(button[data-action="DISPATCH"])');
  await dispatch.locator("select").selectOption(ZFJ);
  await dispatch.locator('input[name="days"]').fill("3");
  await dispatch.locator('button[data-action="DISPATCH"]').click();
  await op.waitForSelector('h1[data-status="DISPATCHED"]');

  // The handler's console offers 签收 and it works.
  const handler = await signedIn(env.HANDLER_TOKEN, `#/case/${r.caseId}`);
  await handler.waitForSelector('button[data-action="SIGN"]');
  assert.equal(await handler.locator('button[data-action="DISPATCH"]').count(), 0, "not the command centre's steps");
  await handler.click('button[data-action="SIGN"]');
  await handler.waitForSelector('h1[data-status="SIGNED"]');
  await shot(handler, "case-handler");

  // The operator's screen is now stale: 催办 at the old version says to reload.
  await op.click('button[data-action="URGE"]');
  await op.waitForSelector(".toast.error:has-text('已被他人更改')");
  await op.waitForSelector("button.reload");
  await shot(op, "case-stale");
  await op.click("button.reload");
  await op.waitForSelector('h1[data-status="SIGNED"]');
  await op.context().close();
  await handler.context().close();
});

test("the command centre splits a report out of its case and merges it back", async () => {
  const at = { lat: WALL.lat - 0.003, lng: WALL.lng };
  const first = await submitReport("河道漂浮物", at);
  const second = await submitReport("河道漂浮物", at);
  assert.equal(second.caseId, first.caseId, "the second report joined the first's case");
  const page = await signedIn(env.TOKEN, `#/case/${first.caseId}`);
  await page.waitForSelector("button[data-split]");
  await page.locator("button[data-split]").last().click();
  await page.waitForFunction((id) => !location.hash.includes(id), first.caseId);
  await page.waitForSelector('h1[data-status="REPORTED"]');
  const split = decodeURIComponent(page.url().split("#/case/")[1]);
  assert.notEqual(split, first.caseId);
  // Back: the new case merged into the first, from the first's page.
  await page.goto(`${base}/#/case/${first.caseId}`);
  await page.waitForSelector(`#merge-sources option[value="${split}"]`);
  await page.selectOption("#merge-sources", split);
  await page.click("#merge");
  await page.waitForSelector(".toast:has-text('合并：已完成')");
  const merged = await client(CaseService, env.TOKEN).getCase({ caseId: split });
  assert.equal(merged.status, "MERGED");
  assert.equal(merged.mergedInto, first.caseId);
  await shot(page, "case-merge");
  await page.context().close();
});

test("the dashboard's figures equal GetDashboard's", async () => {
  const fresh = await submitReport("垃圾堆放", { lat: WALL.lat, lng: WALL.lng + 0.003 });
  const page = await signedIn(env.TOKEN, "#/dashboard");
  await page.waitForSelector('[data-figure="total"]');
  await page.waitForSelector('.chart canvas');
  const from = await page.inputValue("#d-from");
  const to = await page.inputValue("#d-to");
  const d = await client(CaseService, env.TOKEN).getDashboard({
    startTime: timestampFromDate(new Date(`${from}T00:00:00+08:00`)),
    endTime: timestampFromDate(new Date(new Date(`${to}T00:00:00+08:00`).getTime() + 86_400_000)),
  });
  const shown = async (id) => page.textContent(`[data-figure="${id}"]`);
  assert.equal(await shown("total"), String(d.total));
  assert.equal(await shown("overdue"), String(d.overdue));
  assert.equal(await shown("closed"), String(d.closed));
  assert.equal(await shown("on-time-rate"), `${(d.onTimeRate * 100).toFixed(1)}%`);
  assert.ok(d.total >= 1n, "at least this test's report");
  // The CSV export of the same days downloads from here.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export")]);
  const csv = fs.readFileSync(await download.path(), "utf8");
  assert.ok(csv.startsWith("\ufeff案件编号,状态,"), csv.slice(0, 40));
  assert.ok(csv.includes(fresh.caseNo), "this test's case is in the file");
  await shot(page, "dashboard");
  await page.context().close();
});

test("the clerk files a 代办 request; a field error shows beside its field", async () => {
  const page = await signedIn(env.CLERK_TOKEN, "#/window");
  await page.waitForSelector("#request-form");
  await page.waitForFunction(() => document.querySelectorAll("#catalog-items option").length > 0);
  await page.fill("#catalog-search", "高龄老人津贴申请受理");
  await page.fill("#applicant-name", "刘德明");
  await page.fill("#applicant-phone", "1380000");
  await page.fill("#content", "代父亲办理高龄津贴申领");
  await page.fill("#region", MAJING);
  await page.check("#on-behalf");
  await page.click("#file-request");
  await page.waitForSelector('[data-error-for="applicant.phone"]');
  assert.ok(await page.locator("#applicant-phone.invalid").count());
  await shot(page, "window-error");
  await page.fill("#applicant-phone", "13800001234");
  await page.click("#file-request");
  await page.waitForSelector(".toast:has-text('已受理')");
  await page.waitForSelector('#request-list td:has-text("代办")');
  assert.equal(await page.locator('[data-error-for="applicant.phone"]').count(), 0);
  await shot(page, "window");
  // Its steps: the window assigns it to the enforcement team, whose handler signs for it.
  const no = (await page.textContent(".toast:has-text('已受理')")).match(/已受理：(\S+)/)[1].replace("×", "");
  await page.click(`tr[data-request="${no}"] a`);
  await page.waitForSelector('button[data-step="ASSIGN"]');
  const assignForm = page.locator('form.action:has(button[data-step="ASSIGN"])');
  await assignForm.locator('input[data-field="assignee"]').fill(ZFJ);
  await assignForm.locator('button[data-step="ASSIGN"]').click();
  await page.waitForSelector('#request-detail h2:has-text("已交办")');
  const requestUrl = page.url();
  const handler = await signedIn(env.HANDLER_TOKEN, `#/window/${requestUrl.split("#/window/")[1]}`);
  await handler.waitForSelector('button[data-step="SIGN"]');
  await handler.click('button[data-step="SIGN"]');
  await handler.waitForSelector('#request-detail h2:has-text("已签收")');
  await shot(handler, "window-request");
  await handler.context().close();
  await page.context().close();
});

test("a 12345 order's page shows what the hub told 12345 and how each push went", async () => {
  const pushed = await client(HotlineService, env.HOTLINE_TOKEN).pushWorkOrder({
    orderNo: `WO-${Date.now()}`,
    version: 1,
    kind: RequestKind.HELP,
    caller: { name: "刘先生", phone: "13800001111", idNumber: "" },
    content: "路边围墙垮塌，影响通行",
    address: "马颈村公路边",
    regionCode: MAJING,
  });
  const sr = pushed.request;
  const clerkPage = await signedIn(env.CLERK_TOKEN, `#/window/${sr.id}`);
  await clerkPage.waitForSelector(`#request-detail h2:has-text("${sr.requestNo}")`);
  await clerkPage.waitForSelector("#hotline-updates.empty");
  // 分办 over gRPC; the handler signs on the screen: 签收 is owed to 12345.
  await client(ServiceRequestService, env.CLERK_TOKEN).transitionServiceRequest({
    id: sr.id,
    action: Step.ASSIGN,
    expectedVersion: sr.version,
    assignee: ZFJ,
    requestId: crypto.randomUUID(),
  });
  const handler = await signedIn(env.HANDLER_TOKEN, `#/window/${sr.id}`);
  await handler.click('button[data-step="SIGN"]');
  await handler.waitForSelector('#request-detail h2:has-text("已签收")');
  // The update is owed once the audit trail has chained the step (tens of ms after commit):
  // reopened until it shows.
  const row = handler.locator("#hotline-updates tbody tr");
  for (let i = 0; i < 20 && !(await row.count()); i++) {
    await handler.waitForTimeout(250);
    await handler.reload();
    await handler.waitForSelector('#request-detail h2:has-text("已签收")');
  }
  assert.equal(await row.count(), 1);
  assert.match(await row.first().textContent(), /签收/);
  // No 12345 endpoint is configured in the demo: the update waits to be pulled or pushed.
  assert.equal(await row.first().getAttribute("data-delivery"), "PENDING");
  await shot(handler, "window-12345");
  await handler.context().close();
  await clerkPage.context().close();
});

test("a mediator sees parties masked; with pii_reader unmasked, and the audit trail has the read", async () => {
  const mediator = token("med-li", ["mediator"], TOWN, TEAM);
  // A dispute a grid report brought in: linked to its case.
  const reported = await submitReport("邻里排水纠纷", { lat: WALL.lat + 0.004, lng: WALL.lng });
  const m = await client(MediationService, mediator).createMediationCase({
    source: MediationSource.GRID_REPORT,
    linkedCaseId: reported.caseId,
    disputeType: "邻里",
    parties: [
      { name: "张大山", role: PartyRole.APPLICANT, idNumber: "500110195003071234", phone: "13811112222", address: "马颈村三组" },
      { name: "李小河", role: PartyRole.RESPONDENT, idNumber: "500110198001015670", phone: "13933334444", address: "马颈村三组" },
    ],
    team: TEAM,
    mediators: ["med-li"],
    kind: MediationKind.PEOPLE,
    regionCode: MAJING,
    summary: "上下游两户因排水沟堵塞发生纠纷",
    requestId: crypto.randomUUID(),
  });
  const masked = await signedIn(mediator, `#/mediation/${m.id}`);
  await masked.waitForSelector("#parties");
  const names = await masked.locator('#parties [data-party="name"]').allTextContents();
  assert.deepEqual(names, ["张**", "李**"]);
  assert.ok(!(await masked.content()).includes("13811112222"));
  await shot(masked, "mediation-masked");
  // The case links its mediation.
  await masked.goto(`${base}/#/case/${reported.caseId}`);
  await masked.click(`a[data-link="mediation"]:has-text("${m.caseNo}")`);
  await masked.waitForSelector(`#mediation-case[data-case="${m.id}"]`);
  await masked.context().close();

  const reader = token("med-li", ["mediator", "pii_reader"], TOWN, TEAM);
  const whole = await signedIn(reader, `#/mediation/${m.id}`);
  await whole.waitForSelector("#parties");
  assert.deepEqual(await whole.locator('#parties [data-party="name"]').allTextContents(), ["张大山", "李小河"]);
  assert.equal(await whole.textContent('#parties tr:first-child [data-party="phone"]'), "13811112222");
  await shot(whole, "mediation-whole");
  await whole.context().close();
  const audit = await client(AuditService, env.TOKEN).listAuditEvents({ entityType: "mediation_case", entityId: m.id, pageSize: 100 });
  const reads = audit.events.filter((e) => e.action === "pii.read" && e.actor === "med-li");
  assert.ok(reads.length >= 1, "the unmasked view is an audited read");
});

test("the mediator records a session, an agreement and a follow-up that closes the case", async () => {
  const mediator = token("med-li", ["mediator"], TOWN, TEAM);
  const m = await client(MediationService, mediator).createMediationCase({
    source: MediationSource.WALK_IN,
    disputeType: "损害赔偿",
    parties: [
      { name: "王一", role: PartyRole.APPLICANT, phone: "13811110001" },
      { name: "赵二", role: PartyRole.RESPONDENT, phone: "13811110002" },
    ],
    team: TEAM,
    mediators: ["med-li"],
    kind: MediationKind.PEOPLE,
    regionCode: MAJING,
    summary: "散养家禽啄食邻居菜地",
    requestId: crypto.randomUUID(),
  });
  const page = await signedIn(mediator, `#/mediation/${m.id}`);
  await page.waitForSelector('h2[data-status="REGISTERED"]');
  // Only the steps the hub offers: a session first.
  assert.deepEqual(
    await page.locator("#mediation-actions button[data-step]").evaluateAll((bs) => bs.map((b) => b.dataset.step)),
    ["SESSION"],
  );
  const session = page.locator('form.action:has(button[data-step="SESSION"])');
  await session.locator('[data-field="summary"]').fill("双方到场，说明情况");
  await session.locator('button[data-step="SESSION"]').click();
  await page.waitForSelector('[data-error-for="place"]');
  await session.locator('[data-field="place"]').fill("马颈村调委会");
  await session.locator('button[data-step="SESSION"]').click();
  await page.waitForSelector('h2[data-status="IN_MEDIATION"]');
  assert.match(await page.textContent("#mediation-case"), /马颈村调委会：双方到场，说明情况/);

  const outcome = page.locator('form.action:has(button[data-step="SUCCEED"])');
  await outcome.locator('[data-field="agreement.text"]').fill("赵二赔偿菜苗损失并圈养家禽");
  await outcome.locator('[data-field="agreement.amount_fen"]').fill("300");
  await outcome.locator('button[data-step="SUCCEED"]').click();
  await page.waitForSelector('h2[data-status="SUCCEEDED"]');
  assert.match(await page.textContent("#mediation-case"), /第 1 版（书面） 赵二赔偿菜苗损失并圈养家禽，金额 300 元/);
  await shot(page, "mediation-record");

  const visit = page.locator('form.action:has(button[data-step="FOLLOW_UP"])');
  await visit.locator('[data-field="performed"]').check();
  await visit.locator('[data-field="close"]').check();
  await visit.locator('[data-field="note"]').fill("已赔偿，家禽已圈养");
  await visit.locator('button[data-step="FOLLOW_UP"]').click();
  await page.waitForSelector('h2[data-status="CLOSED_MEDIATION"]');
  await page.waitForSelector("#mediation-actions.empty");
  // The list follows.
  await page.waitForSelector(`#mediation-list tr:has(a:text("${m.caseNo}")) td:text("已结案")`);
  const got = await client(MediationService, mediator).getMediationCase({ id: m.id });
  assert.equal(got.sessions.length, 1);
  assert.equal(got.agreement.amountFen, 30_000n);
  assert.ok(got.followUps[0].performed);
  await page.context().close();
});

test("an expired token sends the user back to sign in with a clear message", async () => {
  const short = token("op-short", ["town_operator"], TOWN, "", "3s");
  const page = await signedIn(short);
  await page.waitForSelector("#map");
  await page.waitForTimeout(3_500);
  await page.goto(`${base}/#/cases`);
  await page.waitForSelector("#signin");
  assert.match(await page.textContent("#signin-error"), /过期|失效/);
  await shot(page, "signin-expired");
  await page.context().close();
});
