// The console's measurements (docs/benchmarks.md, "The command centre's console"): a county
// of 2,000 grids and 50,000 open cases, the map's time from navigation to usable, and the
// live feed's time from a case event committed to it being on screen at 50 events/s, with the
// page's longest frames. Not part of the test suite (it takes a few minutes):
//
//   cargo build --release && scripts/build-console
//   node web/tests/perf.mjs            # GRIDHUB_BIN defaults to target/release/gridhub
//
// It seeds a fresh database with SQL (regions, grids and open cases as rows: the map's reads
// are what is measured, not the intake), starts the hub, and drives Chromium like the tests.

import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import net from "node:net";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { ReportService, ReportSource } from "./gen/gridhub/v1/report_pb.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const BIN = process.env.GRIDHUB_BIN ?? path.join(root, "target/release/gridhub");
const DB_SERVER = process.env.GRIDHUB_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const RATE = Number(process.env.RATE ?? 50);
const SECONDS = Number(process.env.SECONDS ?? 20);

const SEED = `
INSERT INTO regions (code, name, level, parent_code) VALUES
  ('50', '重庆市', 1, NULL), ('5001', '市辖区', 2, '50'), ('500110', '綦江区', 3, '5001');
INSERT INTO regions (code, name, level, parent_code)
  SELECT '500110' || t, '镇' || t, 4, '500110' FROM generate_series(201, 210) t;
INSERT INTO regions (code, name, level, parent_code)
  SELECT '500110' || t || v, '村' || t || '-' || v, 5, '500110' || t
    FROM generate_series(201, 210) t, generate_series(201, 210) v;
-- 20 grids per village: 2,000 cells of 0.01° on a 50 × 40 lattice.
INSERT INTO regions (code, name, level, parent_code, boundary, fallback_owner)
  SELECT village || lpad(k::text, 3, '0'), '网格' || g, 6, village,
         ST_Multi(ST_MakeEnvelope(106.3 + (g % 50) * 0.01, 28.6 + (g / 50) * 0.01,
                                  106.3 + (g % 50 + 1) * 0.01, 28.6 + (g / 50 + 1) * 0.01, 4326)),
         village || '-ZZB'
    FROM (SELECT '500110' || t || v AS village, k, ((t - 201) * 10 + (v - 201)) * 20 + (k - 1) AS g
            FROM generate_series(201, 210) t, generate_series(201, 210) v, generate_series(1, 20) k) s;
-- 25 open cases per grid, every status before CLOSED, one in ten overdue.
INSERT INTO cases (case_id, case_no, status, unified_category, grid_code, region_code, lat, lng,
                   first_reported_at, last_reported_at, report_count, flags)
  SELECT gen_random_uuid(), 'P-' || g || '-' || i,
         (ARRAY['REPORTED', 'REGISTERED', 'DISPATCHED', 'SIGNED', 'HANDLED'])[1 + i % 5], '0101',
         code, code, 28.6 + (g / 50) * 0.01 + 0.001 + (i / 5) * 0.002,
         106.3 + (g % 50) * 0.01 + 0.001 + (i % 5) * 0.002,
         now() - interval '1 day', now() - interval '1 day', 1,
         CASE WHEN i % 10 = 0 THEN ARRAY['OVERDUE'] ELSE '{}'::text[] END
    FROM (SELECT code, (substr(code, 7, 3)::int - 201) * 200 + (substr(code, 10, 3)::int - 201) * 20
                       + substr(code, 13, 3)::int - 1 AS g
            FROM regions WHERE level = 6) s, generate_series(0, 24) i;
ANALYZE;
`;

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function psql(url, sql) {
  execFileSync("psql", [url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql], { stdio: ["ignore", "pipe", "inherit"] });
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function startHub(args) {
  const hub = spawn(BIN, [...args, "serve"], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  hub.stderr.on("data", (d) => (log += d));
  const base = `http://${args[args.indexOf("--listen") + 1]}`;
  for (let i = 0; i < 600; i++) {
    if (hub.exitCode !== null) throw new Error(log);
    try {
      if ((await fetch(`${base}/config.json`)).ok) return { hub, base };
    } catch {
      /* starting */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no hub:\n${log}`);
}

async function stop(hub) {
  const exited = new Promise((r) => hub.once("exit", r));
  hub.kill("SIGTERM");
  await exited;
}

const dist = path.join(root, "web/dist/assets");
let gz = 0;
let raw = 0;
for (const f of fs.readdirSync(dist)) {
  if (!/\.(m?js|css)$/.test(f) || f.includes("worker")) continue;
  const b = fs.readFileSync(path.join(dist, f));
  raw += b.length;
  gz += zlib.gzipSync(b, { level: 9 }).length;
}
const dashboard = fs
  .readdirSync(dist)
  .filter((f) => f.startsWith("echarts") || f.startsWith("dashboard"))
  .reduce((n, f) => n + zlib.gzipSync(fs.readFileSync(path.join(dist, f)), { level: 9 }).length, 0);
const worker = fs.readdirSync(dist).find((f) => f.includes("worker"));
const workerGz = worker ? zlib.gzipSync(fs.readFileSync(path.join(dist, worker)), { level: 9 }).length : 0;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "gridhub-perf-"));
const db = `gridhub_perf_${process.pid}`;
psql(DB_SERVER, `CREATE DATABASE ${db}`);
const url = new URL(DB_SERVER);
url.pathname = `/${db}`;
const port = await freePort();
const args = ["--data-dir", dataDir, "--database-url", url.toString(), "--listen", `127.0.0.1:${port}`, "--console-dir", path.join(root, "web/dist")];
execFileSync(BIN, [...args, "migrate"], { stdio: "ignore" });
const t = Date.now();
psql(url.toString(), SEED);
console.log(`seeded 2,000 grids and 50,000 open cases in ${Date.now() - t} ms`);
const { hub, base } = await startHub(args);

const tokenOf = (...a) => execFileSync(BIN, ["--data-dir", dataDir, "token", "issue", ...a], { encoding: "utf8" }).trim();
const op = tokenOf("--sub", "perf-op", "--roles", "town_operator", "--region", "500110", "--ttl", "1h");
const worker_ = tokenOf("--sub", "perf-worker", "--roles", "grid_worker", "--region", "500110", "--ttl", "1h");
const reports = createClient(
  ReportService,
  createGrpcWebTransport({
    baseUrl: base,
    interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${worker_}`), next(req))],
  }),
);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"],
});
const results = { navToUsable: [], navToAllPoints: [] };
for (let run = 0; run < 3; run++) {
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 } });
  await context.addInitScript((tok) => sessionStorage.setItem("gridhub.token", tok), op);
  const page = await context.newPage();
  const t0 = Date.now();
  await page.goto(`${base}/#/map`);
  await page.waitForSelector("#map[data-ready=true]", { timeout: 60_000 });
  results.navToUsable.push(Date.now() - t0);
  await page.waitForSelector("#map[data-complete=true]", { timeout: 120_000 });
  results.navToAllPoints.push(Date.now() - t0);
  if (run < 2) await context.close();
  else {
    // The feed at RATE events/s: when each event is on screen, and the page's longest frames.
    await page.waitForSelector("#feed-state.live");
    await page.evaluate(() => {
      window.__seen = new Map();
      window.__frames = [];
      new MutationObserver((ms) => {
        const now = Date.now();
        for (const m of ms)
          for (const n of m.addedNodes) {
            const id = n.dataset?.case;
            if (id && !window.__seen.has(id)) window.__seen.set(id, now);
          }
      }).observe(document.querySelector("#feed"), { childList: true });
      new PerformanceObserver((l) => {
        for (const e of l.getEntries()) window.__frames.push(e.duration);
      }).observe({ type: "long-animation-frame", buffered: false });
    });
    // The page at rest first (the map drawn, no events): its frames are the floor.
    await page.waitForTimeout(5_000);
    const idle = await page.evaluate(() => window.__frames.splice(0));
    // One repaint forced by a pan, for the cost of drawing the map itself on this machine.
    const pan = await page.evaluate(async () => {
      const t0 = performance.now();
      document.querySelector("#map canvas").dispatchEvent(new WheelEvent("wheel", { deltaY: -100, bubbles: true }));
      await new Promise((r) => setTimeout(r, 1500));
      return { frames: window.__frames.splice(0), ms: performance.now() - t0 };
    });
    results.idle = { longest: idle.length ? Math.max(...idle) : 0, over200: idle.filter((d) => d > 200).length, zoomLongest: pan.frames.length ? Math.max(...pan.frames) : 0 };
    const committed = new Map();
    const sends = [];
    const n = RATE * SECONDS;
    const start = Date.now();
    for (let i = 0; i < n; i++) {
      const due = start + (i * 1000) / RATE;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const g = i % 2000;
      sends.push(
        reports
          .submitReport({
            report: {
              clientReportId: crypto.randomUUID(),
              source: ReportSource.GRID_APP,
              categoryCode: "0202",
              title: "压测上报",
              description: "",
              location: { lat: 28.6 + Math.floor(g / 50) * 0.01 + 0.0095, lng: 106.3 + (g % 50) * 0.01 + 0.0005 + Math.floor(i / 2000) * 0.002 },
              occurredAt: timestampNow(),
              reporterId: "perf-worker",
            },
          })
          .then((r) => committed.set(r.caseId, Date.now())),
      );
    }
    await Promise.all(sends);
    const sendSeconds = (Date.now() - start) / 1000;
    await page.waitForTimeout(3_000);
    const { seen, frames } = await page.evaluate(() => ({ seen: [...window.__seen.entries()], frames: window.__frames }));
    const seenAt = new Map(seen);
    const lat = [];
    let missing = 0;
    for (const [id, at] of committed) {
      const s = seenAt.get(id);
      if (s === undefined) missing++;
      else lat.push(Math.max(0, s - at));
    }
    results.feed = {
      events: committed.size,
      rate: committed.size / sendSeconds,
      p50: pct(lat, 50),
      p95: pct(lat, 95),
      max: Math.max(...lat),
      missing,
      longestFrame: frames.length ? Math.max(...frames) : 0,
      framesOver200: frames.filter((d) => d > 200).length,
    };
    await page.screenshot({ path: path.join(root, "target/console/perf-map.png") });
    await context.close();
  }
}
await browser.close();
await stop(hub);
psql(DB_SERVER, `DROP DATABASE ${db} WITH (FORCE)`);
fs.rmSync(dataDir, { recursive: true, force: true });

console.log(`bundle, gzip -9: first load (console + map, js+css) ${((gz - dashboard) / 1024).toFixed(0)} KiB; ` +
  `the dashboard's charts (loaded when opened) ${(dashboard / 1024).toFixed(0)} KiB; the map's worker ${(workerGz / 1024).toFixed(0)} KiB; all js+css ${(raw / 1024).toFixed(0)} KiB raw`);
console.log(`navigation → usable map (grids + newest 10,000 points), 3 runs: ${results.navToUsable.join(", ")} ms`);
console.log(`navigation → all 50,000 points, 3 runs: ${results.navToAllPoints.join(", ")} ms`);
const f = results.feed;
console.log(`at rest 5 s: longest frame ${results.idle.longest.toFixed(0)} ms (${results.idle.over200} over 200 ms); one zoom: longest frame ${results.idle.zoomLongest.toFixed(0)} ms`);
console.log(`feed at ${f.rate.toFixed(1)} events/s (${f.events} events): committed → on screen p50 ${f.p50} ms, p95 ${f.p95} ms, max ${f.max} ms, missing ${f.missing}; longest frame ${f.longestFrame.toFixed(0)} ms, frames over 200 ms: ${f.framesOver200}`);
