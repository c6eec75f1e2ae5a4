// 统计分析: GetDashboard as charts over a date range (China days), and the alerts.

import * as echarts from "echarts/core";
import { BarChart, PieChart } from "echarts/charts";
import { GridComponent, TooltipComponent, LegendComponent, TitleComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import * as api from "../api";
import type { Dashboard } from "../gen/gridhub/v1/case_pb";
import type { Me, View } from "../main";
import { h, clear, busy, toast, cst, statusName } from "../ui";

echarts.use([BarChart, PieChart, GridComponent, TooltipComponent, LegendComponent, TitleComponent, CanvasRenderer]);

function day(offset: number): string {
  const d = new Date(Date.now() + 8 * 3_600_000 + offset * 86_400_000);
  return d.toISOString().slice(0, 10);
}

/** Midnight of a China day. */
function chinaMidnight(date: string): Date {
  return new Date(`${date}T00:00:00+08:00`);
}

function seconds(d: { seconds: bigint; nanos: number } | undefined): number {
  return d ? Number(d.seconds) + d.nanos / 1e9 : 0;
}

export const dashboardView: View = (root: HTMLElement, me: Me) => {
  const from = h("input", { type: "date", id: "d-from", value: day(-29) });
  const to = h("input", { type: "date", id: "d-to", value: day(0) });
  const figures = h("div", { class: "figures", id: "figures" });
  const charts = h("div", { class: "charts" });
  const alerts = h("section", { class: "alerts", id: "dash-alerts" });
  const instances: echarts.ECharts[] = [];
  root.append(
    h(
      "form",
      {
        class: "filters",
        onsubmit: (e: Event) => {
          e.preventDefault();
          void load();
        },
      },
      h("label", {}, "自 ", from),
      h("label", {}, " 至 ", to),
      h("button", { type: "submit" }, "统计"),
      me.can("CaseService/ExportCases")
        ? h("button", { type: "button", id: "export", onclick: () => void download() }, "导出 CSV")
        : null,
    ),
    figures,
    charts,
    alerts,
  );

  const chart = (title: string, option: echarts.EChartsCoreOption) => {
    const el = h("div", { class: "chart", "data-chart": title });
    charts.append(el);
    const c = echarts.init(el);
    c.setOption({ animation: false, title: { text: title, left: "center", textStyle: { fontSize: 14 } }, tooltip: {}, ...option });
    instances.push(c);
  };

  const bar = (title: string, keys: string[], values: number[], unit = "") =>
    chart(title, {
      grid: { left: 60, right: 20, top: 40, bottom: 60 },
      xAxis: { type: "category", data: keys, axisLabel: { rotate: keys.length > 6 ? 30 : 0 } },
      yAxis: { type: "value", name: unit },
      series: [{ type: "bar", data: values }],
    });

  const draw = (d: Dashboard) => {
    instances.splice(0).forEach((c) => c.dispose());
    clear(charts);
    clear(
      figures,
      ...[
        ["案件总数", String(d.total), "total"],
        ["超期", String(d.overdue), "overdue"],
        ["已结案", String(d.closed), "closed"],
        ["按时结案", String(d.closedOnTime), "closed-on-time"],
        ["按时结案率", `${(d.onTimeRate * 100).toFixed(1)}%`, "on-time-rate"],
      ].map(([k, v, id]) => h("div", { class: "figure" }, h("span", {}, k), h("b", { "data-figure": id }, v))),
      h("span", { class: "as-of" }, `截至 ${cst(d.asOf)}`),
    );
    chart("按状态", {
      series: [
        {
          type: "pie",
          radius: "60%",
          data: d.byStatus.map((c) => ({ name: statusName(c.key), value: Number(c.count) })),
        },
      ],
    });
    bar("按分类", d.byCategory.map((c) => c.key || "待分类"), d.byCategory.map((c) => Number(c.count)));
    bar("按网格", d.byGrid.map((c) => c.key), d.byGrid.map((c) => Number(c.count)));
    bar(
      "承办单位按时结案率",
      d.units.map((u) => u.assignee),
      d.units.map((u) => Math.round(u.onTimeRate * 1000) / 10),
      "%",
    );
    bar(
      "各环节平均用时",
      d.stages.map((s) => s.stage),
      d.stages.map((s) => Math.round(seconds(s.average) / 360) / 10),
      "小时",
    );
  };

  /** The export of the same days, as `gridhub export cases` writes it. */
  const download = async () => {
    try {
      const parts: Uint8Array[] = [];
      const stream = api.cases.exportCases({ regionCode: "", fromDate: from.value, toDate: to.value });
      await busy(root, "正在导出…", (async () => {
        for await (const c of stream) parts.push(c.data);
      })());
      const url = URL.createObjectURL(new Blob(parts as BlobPart[], { type: "text/csv;charset=utf-8" }));
      const a = h("a", { href: url, download: `cases-${me.caller.regionCode || "all"}-${from.value}-${to.value}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      toast(api.problem(e).message, "error");
    }
  };

  const load = async () => {
    try {
      const d = await busy(
        root,
        "正在统计…",
        api.cases.getDashboard({
          regionCode: "",
          startTime: timestampFromDate(chinaMidnight(from.value)),
          endTime: timestampFromDate(new Date(chinaMidnight(to.value).getTime() + 86_400_000)),
        }),
      );
      draw(d);
      if (me.can("CaseService/ListAlerts")) {
        const a = await api.cases.listAlerts({ regionCode: "", kind: "", pageSize: 50, pageToken: "" });
        clear(
          alerts,
          h("h2", {}, `预警（${a.alerts.length}）`),
          ...a.alerts.map((x) =>
            h(
              "div",
              { class: "alert-item", "data-kind": x.kind },
              h("b", {}, x.kind),
              ` ${cst(x.raisedAt)} ${x.message} `,
              x.caseId ? h("a", { href: `#/case/${x.caseId}` }, "案件") : null,
            ),
          ),
        );
      }
    } catch (e) {
      toast(api.problem(e).message, "error");
    }
  };
  const resize = () => instances.forEach((c) => c.resize());
  window.addEventListener("resize", resize);
  void load();
  return () => {
    window.removeEventListener("resize", resize);
    instances.forEach((c) => c.dispose());
  };
};
