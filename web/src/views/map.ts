// 一张图: the caller's grids coloured by open and overdue cases, open cases as clustered
// points, alerts highlighted, and the live feed beside it: new and changed cases appear
// without a reload.

import * as maplibregl from "maplibre-gl";
import type { GeoJSONSource, MapLayerMouseEvent, StyleSpecification } from "maplibre-gl";
import workerUrl from "maplibre-gl/dist/maplibre-gl-worker.mjs?url";
import * as api from "../api";
import { config } from "../config";
import { follow, describe, urgent } from "../feed";
import type { CaseEvent, MapCase, MapGrid } from "../gen/gridhub/v1/case_pb";
import type { Me, View } from "../main";
import { h, clear, busy, toast, cst, statusName } from "../ui";

maplibregl.setWorkerUrl(workerUrl);

const FINISHED = new Set(["CLOSED", "VOID", "MERGED"]);
/** The shortest time between two draws of the map's data. */
const DRAW_EVERY_MS = 1000;
/** Feed events kept in the panel. */
const FEED_MAX = 200;

interface Point {
  id: string;
  no: string;
  lat: number;
  lng: number;
  status: string;
  category: string;
  grid: string;
  overdue: boolean;
  escalated: boolean;
}

function style(tiles: string | null): StyleSpecification {
  const base: StyleSpecification = {
    version: 8,
    sources: {},
    layers: [{ id: "background", type: "background", paint: { "background-color": "#eef1f4" } }],
  };
  if (tiles) {
    base.sources.base = { type: "raster", tiles: [tiles], tileSize: 256 };
    base.layers.push({ id: "base", type: "raster", source: "base" });
  }
  return base;
}

function gridFeatures(grids: MapGrid[], shapes: unknown[], points: Map<string, Point>, alerted: Set<string>) {
  const open = new Map<string, number>();
  const overdue = new Map<string, number>();
  for (const p of points.values()) {
    open.set(p.grid, (open.get(p.grid) ?? 0) + 1);
    if (p.overdue) overdue.set(p.grid, (overdue.get(p.grid) ?? 0) + 1);
  }
  return {
    type: "FeatureCollection" as const,
    features: grids.map((g, i) => ({
      type: "Feature" as const,
      id: i,
      geometry: shapes[i] as { type: "Polygon" | "MultiPolygon"; coordinates: number[][][] | number[][][][] },
      properties: {
        code: g.code,
        name: g.name,
        open: open.get(g.code) ?? 0,
        overdue: overdue.get(g.code) ?? 0,
        alert: alerted.has(g.code),
      },
    })),
  };
}

function pointFeature(p: Point) {
  return {
    type: "Feature" as const,
    geometry: { type: "Point" as const, coordinates: [p.lng, p.lat] },
    properties: { id: p.id, no: p.no, status: p.status, overdue: p.overdue, escalated: p.escalated },
  };
}

function pointFeatures(points: Map<string, Point>) {
  return { type: "FeatureCollection" as const, features: [...points.values()].map(pointFeature) };
}

function bounds(grids: MapGrid[]): maplibregl.LngLatBounds | null {
  const b = new maplibregl.LngLatBounds();
  let any = false;
  const walk = (c: unknown): void => {
    if (Array.isArray(c) && typeof c[0] === "number") {
      b.extend([c[0] as number, c[1] as number]);
      any = true;
    } else if (Array.isArray(c)) c.forEach(walk);
  };
  for (const g of grids) walk(JSON.parse(g.boundaryGeojson).coordinates);
  return any ? b : null;
}

function toPoint(c: MapCase): Point {
  return {
    id: c.caseId,
    no: c.caseNo,
    lat: c.lat,
    lng: c.lng,
    status: c.status,
    category: c.unifiedCategory,
    grid: c.gridCode,
    overdue: c.overdue,
    escalated: c.escalated,
  };
}

export const mapView: View = (root: HTMLElement, me: Me) => {
  const mapEl = h("div", { id: "map", class: "map" });
  const side = h("aside", { class: "side" });
  const feedState = h("span", { class: "feed-state", id: "feed-state" }, "连接中…");
  const feedList = h("ol", { class: "feed", id: "feed", "aria-live": "polite" });
  const detail = h("section", { class: "detail", id: "grid-detail" });
  const alertsBox = h("section", { class: "alerts", id: "alerts" });
  side.append(
    h("h2", {}, "实时动态 ", feedState),
    feedList,
    detail,
    alertsBox,
  );
  root.append(h("div", { class: "map-screen" }, mapEl, side));

  const points = new Map<string, Point>();
  let grids: MapGrid[] = [];
  const alerted = new Set<string>();
  /** Cases the feed saw finish: a page read before it must not bring them back. */
  const finished = new Set<string>();
  let map: maplibregl.Map | null = null;
  let ready = false;
  let pending: CaseEvent[] = [];
  let dirty = false;
  let stopped = false;

  /** The grid counts last drawn, by feature id. */
  const drawn: { open: number; overdue: number; alert: boolean }[] = [];
  /** The grids' shapes, parsed once. */
  let shapes: unknown[] = [];
  /** Points changed since the last draw: only these go to the map's worker (updateData). */
  const changed = new Set<string>();
  /**
   * Cases that opened since the map was drawn: a small source of their own, so a busy feed
   * does not make the map re-cluster its tens of thousands of points for each new case.
   */
  const recent = new Set<string>();
  let drawnOnce = false;

  /** Adds or changes a point. */
  const put = (p: Point) => {
    if (drawnOnce && !points.has(p.id)) recent.add(p.id);
    points.set(p.id, p);
    changed.add(p.id);
  };
  /** Takes a point off the map. */
  const drop = (id: string) => {
    points.delete(id);
    changed.add(id);
  };

  const redraw = (full = false) => {
    if (!map || !ready) return;
    const cases = map.getSource("cases") as GeoJSONSource;
    if (full) {
      cases.setData(pointFeatures(points));
      drawnOnce = true;
    } else if (changed.size) {
      const add = [];
      const remove = [];
      let fresh = false;
      for (const id of changed) {
        if (recent.has(id)) {
          fresh = true;
          if (!points.has(id)) recent.delete(id);
          continue;
        }
        const p = points.get(id);
        remove.push(id);
        if (p) add.push(pointFeature(p));
      }
      if (remove.length) void cases.updateData({ remove, add });
      if (fresh) {
        const features = [...recent].flatMap((id) => {
          const p = points.get(id);
          return p ? [pointFeature(p)] : [];
        });
        (map.getSource("recent") as GeoJSONSource).setData({ type: "FeatureCollection", features });
      }
    }
    changed.clear();
    // Counts and alerts as feature state: the shapes stay where they are (no re-tiling).
    const f = gridFeatures(grids, shapes, points, alerted).features;
    for (const g of f) {
      const prev = drawn[g.id];
      const { open, overdue, alert } = g.properties;
      if (!prev || prev.open !== open || prev.overdue !== overdue || prev.alert !== alert) {
        map.setFeatureState({ source: "grids", id: g.id }, { open, overdue, alert });
        drawn[g.id] = { open, overdue, alert };
      }
    }
    mapEl.dataset.cases = String(points.size);
    mapEl.dataset.grids = String(grids.length);
  };
  // At most one draw a second, however fast the feed runs (each sends only what changed): on a
  // screen without a GPU a repaint costs ~150 ms of the main thread (docs/benchmarks.md).
  let last = 0;
  const schedule = () => {
    if (dirty) return;
    dirty = true;
    setTimeout(() => {
      dirty = false;
      last = performance.now();
      redraw();
    }, Math.max(0, DRAW_EVERY_MS - (performance.now() - last)));
  };

  /** New cases whose place is not in the event: read once, in a batch. */
  const unknown = new Set<string>();
  let fetching = false;
  const fetchUnknown = async () => {
    if (fetching || unknown.size === 0) return;
    fetching = true;
    const ids = [...unknown].slice(0, 20);
    ids.forEach((id) => unknown.delete(id));
    await Promise.all(
      ids.map(async (id) => {
        try {
          const c = await api.cases.getCase({ caseId: id });
          if (FINISHED.has(c.status) || !c.location) return;
          put({
            id,
            no: c.caseNo,
            lat: c.location.lat,
            lng: c.location.lng,
            status: c.status,
            category: c.unifiedCategory,
            grid: c.gridCode,
            overdue: c.flags.includes("OVERDUE"),
            escalated: c.flags.includes("ESCALATED") || c.flags.includes("SUPERVISED"),
          });
        } catch {
          /* gone or out of scope: nothing to draw */
        }
      }),
    );
    fetching = false;
    schedule();
    if (unknown.size > 0) void fetchUnknown();
  };

  const apply = (e: CaseEvent) => {
    if (e.kind === "ALERT" && e.alert) {
      alerted.add(e.alert.regionCode);
      showAlert(e.alert.kind, e.alert.message, e.alert.regionCode);
    }
    if (!e.caseId) return;
    const p = points.get(e.caseId);
    if (e.toStatus && FINISHED.has(e.toStatus)) {
      drop(e.caseId);
      finished.add(e.caseId);
    } else if (!p) {
      if (e.kind !== "ALERT") unknown.add(e.caseId);
    } else {
      if (e.toStatus) p.status = e.toStatus;
      if (e.kind === "OVERDUE") p.overdue = true;
      if (e.kind === "ESCALATE" || e.kind === "SUPERVISE") p.escalated = true;
      if (e.kind === "RETURN") {
        p.overdue = false;
        p.escalated = false;
      }
      put(p);
    }
  };

  const showEvent = (e: CaseEvent) => {
    const li = h(
      "li",
      { class: urgent(e) ? "urgent" : "", "data-case": e.caseId, "data-kind": e.kind },
      h("time", {}, cst(e.occurredAt)),
      " ",
      h("b", {}, describe(e)),
      " ",
      e.caseId ? h("a", { href: `#/case/${e.caseId}` }, e.caseNo || e.caseId.slice(0, 8)) : null,
      e.toStatus ? ` → ${statusName(e.toStatus)}` : "",
      e.alert ? ` ${e.alert.message}` : "",
    );
    feedList.prepend(li);
    while (feedList.children.length > FEED_MAX) feedList.lastElementChild?.remove();
  };

  const showAlert = (kind: string, message: string, region: string) => {
    alertsBox.prepend(h("div", { class: "alert-item", "data-region": region }, h("b", {}, kind), " ", message));
  };

  // The feed first, so nothing committed while the map loads is missed; its events wait
  // until the map is there, then apply (applying one twice changes nothing).
  const feed = follow(
    "",
    (e) => {
      showEvent(e);
      if (!ready) {
        pending.push(e);
        return;
      }
      apply(e);
      schedule();
      void fetchUnknown();
    },
    (live, message) => {
      feedState.textContent = live ? "实时" : message ?? "已断开";
      feedState.className = live ? "feed-state live" : "feed-state down";
    },
  );

  const load = async () => {
    const [cfg, m] = await busy(
      root,
      "正在加载地图…",
      Promise.all([config(), api.cases.getCaseMap({ regionCode: "" })]),
    );
    if (stopped) return;
    grids = m.grids;
    shapes = grids.map((g) => JSON.parse(g.boundaryGeojson));
    for (const c of m.cases) points.set(c.caseId, toPoint(c));
    // The map is usable with the newest cases; older ones arrive in pages behind it.
    let next = m.nextPageToken;
    const rest = async () => {
      while (next && !stopped) {
        const p = await api.cases.getCaseMap({ regionCode: "", pageToken: next });
        // A case the feed finished meanwhile stays off the map.
        for (const c of p.cases) if (!points.has(c.caseId) && !finished.has(c.caseId)) put(toPoint(c));
        next = p.nextPageToken;
        schedule();
      }
      mapEl.dataset.complete = "true";
    };
    if (me.can("CaseService/ListAlerts")) {
      try {
        const a = await api.cases.listAlerts({ regionCode: "", kind: "", pageSize: 50, pageToken: "" });
        for (const x of a.alerts.slice().reverse()) {
          alerted.add(x.regionCode);
          showAlert(x.kind, x.message, x.regionCode);
        }
      } catch {
        /* alerts are extra: the map works without them */
      }
    }
    const b = bounds(grids);
    map = new maplibregl.Map({
      container: mapEl,
      style: style(cfg.map_tiles),
      bounds: b ?? undefined,
      center: b ? undefined : [106.65, 29.03],
      zoom: b ? undefined : 11,
      fitBoundsOptions: { padding: 30 },
      attributionControl: false,
    });
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
    map.on("load", () => {
      const mm = map!;
      mm.addSource("grids", { type: "geojson", data: gridFeatures(grids, shapes, points, alerted) });
      mm.addSource("cases", {
        type: "geojson",
        data: pointFeatures(points),
        promoteId: "id",
        cluster: true,
        clusterRadius: 60,
        clusterMaxZoom: 15,
        clusterProperties: { overdue: ["+", ["case", ["get", "overdue"], 1, 0]] },
      });
      mm.addLayer({
        id: "grid-fill",
        type: "fill",
        source: "grids",
        paint: {
          "fill-color": [
            "case",
            [">", ["coalesce", ["feature-state", "overdue"], 0], 0], "#e5484d",
            [">", ["coalesce", ["feature-state", "open"], 0], 0], "#f5a524",
            "#4cc38a",
          ],
          "fill-opacity": 0.35,
        },
      });
      mm.addLayer({
        id: "grid-line",
        type: "line",
        source: "grids",
        paint: {
          "line-color": ["case", ["boolean", ["feature-state", "alert"], false], "#b4001e", "#3b5b7c"],
          "line-width": ["case", ["boolean", ["feature-state", "alert"], false], 3, 1],
        },
      });
      mm.addLayer({
        id: "clusters",
        type: "circle",
        source: "cases",
        filter: ["has", "point_count"],
        paint: {
          "circle-color": ["case", [">", ["get", "overdue"], 0], "#e5484d", "#2f6fde"],
          "circle-radius": ["step", ["get", "point_count"], 12, 10, 16, 100, 22, 1000, 30],
          "circle-opacity": 0.8,
          "circle-stroke-color": "#fff",
          "circle-stroke-width": 2,
        },
      });
      mm.addLayer({
        id: "case-points",
        type: "circle",
        source: "cases",
        filter: ["!", ["has", "point_count"]],
        paint: {
          "circle-color": [
            "case",
            ["get", "escalated"], "#8e1b1b",
            ["get", "overdue"], "#e5484d",
            "#2f6fde",
          ],
          "circle-radius": 7,
          "circle-stroke-color": "#fff",
          "circle-stroke-width": 2,
        },
      });
      mm.addSource("recent", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
      mm.addLayer({
        id: "recent-points",
        type: "circle",
        source: "recent",
        // A county's worth of new cases would hide the grids: they show from town zoom in
        // (their grids' colours and the feed say it before).
        minzoom: 11,
        paint: {
          "circle-color": ["case", ["get", "escalated"], "#8e1b1b", ["get", "overdue"], "#e5484d", "#2f6fde"],
          "circle-radius": 7,
          "circle-stroke-color": "#ffd400",
          "circle-stroke-width": 2,
        },
      });
      mm.on("click", "recent-points", (ev: MapLayerMouseEvent) => {
        const id = ev.features?.[0]?.properties?.id;
        if (id) location.hash = `#/case/${id}`;
      });
      mm.on("click", "case-points", (ev: MapLayerMouseEvent) => {
        const id = ev.features?.[0]?.properties?.id;
        if (id) location.hash = `#/case/${id}`;
      });
      mm.on("click", "clusters", async (ev: MapLayerMouseEvent) => {
        const f = ev.features?.[0];
        if (!f) return;
        const src = mm.getSource("cases") as GeoJSONSource;
        const zoom = await src.getClusterExpansionZoom(f.properties.cluster_id);
        mm.easeTo({ center: (f.geometry as { coordinates: [number, number] }).coordinates, zoom });
      });
      mm.on("click", "grid-fill", (ev: MapLayerMouseEvent) => {
        if (mm.queryRenderedFeatures(ev.point, { layers: ["case-points", "recent-points", "clusters"] }).length) return;
        const code = ev.features?.[0]?.properties?.code;
        const g = grids.find((x) => x.code === code);
        if (g) showGrid(g);
      });
      for (const l of ["case-points", "recent-points", "clusters", "grid-fill"]) {
        mm.on("mouseenter", l, () => (mm.getCanvas().style.cursor = "pointer"));
        mm.on("mouseleave", l, () => (mm.getCanvas().style.cursor = ""));
      }
      ready = true;
      for (const e of pending) apply(e);
      pending = [];
      redraw(true);
      void fetchUnknown();
      mapEl.dataset.ready = "true";
      rest().catch((e) => toast(api.problem(e).message, "error"));
    });
  };

  const showGrid = (g: MapGrid) => {
    const inGrid = [...points.values()].filter((p) => p.grid === g.code);
    clear(
      detail,
      h("h3", {}, `${g.name}（${g.code}）`),
      h("p", {}, `网格员：${g.workers.length ? g.workers.join("、") : "未配置"}`),
      h("p", {}, `未结案件 ${inGrid.length} 件，其中超期 ${inGrid.filter((p) => p.overdue).length} 件`),
      h(
        "ul",
        { class: "grid-cases" },
        ...inGrid.slice(0, 50).map((p) =>
          h("li", { class: p.overdue ? "urgent" : "" }, h("a", { href: `#/case/${p.id}` }, p.no), ` ${statusName(p.status)}`),
        ),
      ),
    );
  };

  load().catch((e) => toast(api.problem(e).message, "error"));

  return () => {
    stopped = true;
    feed.stop();
    map?.remove();
  };
};
