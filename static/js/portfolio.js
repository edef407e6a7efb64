// The portfolio page's equity curve and the drawdown beneath it (lightweight-charts, from npm).
// The same numbers are in the page's tables, which work without this script.
import { AreaSeries, createChart, LineSeries } from "lightweight-charts";

const css = getComputedStyle(document.documentElement);
const colour = (name) => css.getPropertyValue(name).trim();
const options = {
  autoSize: true,
  layout: { background: { color: "transparent" }, textColor: colour("--muted") },
  grid: { vertLines: { color: colour("--line") }, horzLines: { color: colour("--line") } },
  timeScale: { timeVisible: true, secondsVisible: false },
  rightPriceScale: { borderVisible: false },
};

const element = document.getElementById("equity-points");
const rows = element ? JSON.parse(element.textContent) : [];
// Decimal strings become numbers only here, for plotting.
const series = (field) => rows.map((p) => ({ time: p.time, value: Number(p[field]) }));

function chart(id, add) {
  const container = document.getElementById(id);
  if (!container || !rows.length) return null;
  const made = createChart(container, options);
  add(made);
  made.timeScale().fitContent();
  container.dataset.loaded = String(rows.length);
  return made;
}

chart("equity-chart", (c) =>
  c.addSeries(LineSeries, { color: colour("--accent"), lineWidth: 2, title: "Equity" }).setData(series("equity")),
);
chart("drawdown-chart", (c) =>
  c
    .addSeries(AreaSeries, {
      lineColor: colour("--neg"), topColor: "rgba(179,38,30,0.05)", bottomColor: "rgba(179,38,30,0.35)",
      lineWidth: 1, title: "Drawdown", priceFormat: { type: "percent" },
    })
    .setData(rows.map((p) => ({ time: p.time, value: Number(p.drawdown) * 100 }))),
);
