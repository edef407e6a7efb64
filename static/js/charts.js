// Position, account-equity, portfolio and intraday charts (TradingView's lightweight-charts, from npm).
import { CandlestickSeries, createChart, LineSeries } from "lightweight-charts";

const css = getComputedStyle(document.documentElement);
const colour = (name) => css.getPropertyValue(name).trim();
const options = {
  autoSize: true,
  layout: { background: { color: "transparent" }, textColor: colour("--muted") },
  grid: { vertLines: { color: colour("--line") }, horzLines: { color: colour("--line") } },
  timeScale: { timeVisible: true, secondsVisible: false },
  rightPriceScale: { borderVisible: false },
};

function points(id, field) {
  const element = document.getElementById(id);
  if (!element) return [];
  // Decimal strings become numbers only here, for plotting.
  return JSON.parse(element.textContent).map((p) => ({ time: p.time, value: Number(p[field]) }));
}

function lineChart(containerId, series) {
  const container = document.getElementById(containerId);
  if (!container) return;
  const chart = createChart(container, options);
  for (const { data, color, title, format } of series) {
    const style = { color, lineWidth: 2, title, ...(format ? { priceFormat: format } : {}) };
    chart.addSeries(LineSeries, style).setData(data);
  }
  chart.timeScale().fitContent();
  container.dataset.loaded = String(series.length);
}

lineChart("position-chart", [
  { data: points("position-points", "market_value"), color: colour("--accent"), title: "Value" },
  { data: points("position-points", "unrealized_pl"), color: colour("--pos"), title: "P&L" },
]);
// Equity per broker account, from the portfolio history API (one line each, so two accounts
// never give two points at one time on one line).
async function equity() {
  const container = document.getElementById("portfolio-chart");
  const accounts = document.getElementById("equity-accounts");
  if (!container || !accounts) return;
  const palette = [colour("--accent"), colour("--pos"), colour("--warn"), colour("--neg")];
  const series = [];
  for (const [index, account] of JSON.parse(accounts.textContent).entries()) {
    const query = new URLSearchParams({ period: container.dataset.period, broker_account: account.id });
    const response = await fetch(`${container.dataset.historyUrl}?${query}`, { credentials: "same-origin" });
    if (!response.ok) continue;
    const history = await response.json();
    series.push({
      data: history.timestamp.map((time, i) => ({ time, value: Number(history.equity[i]) })),
      color: palette[index % palette.length],
      title: account.label,
    });
  }
  lineChart("portfolio-chart", series);
}

equity();

// The portfolio page: equity, and beneath it the drawdown from the running peak (in %).
lineChart("equity-chart", [
  { data: points("equity-points", "equity"), color: colour("--accent"), title: "Equity" },
]);
lineChart("drawdown-chart", [
  {
    data: points("equity-points", "drawdown").map((p) => ({ time: p.time, value: p.value * 100 })),
    color: colour("--neg"),
    title: "Drawdown %",
    format: { type: "percent" },
  },
]);

async function candles() {
  const container = document.getElementById("bars-chart");
  const status = document.getElementById("bars-status");
  if (!container) return;
  const query = new URLSearchParams({ symbol: container.dataset.symbol, timeframe: "1Min" });
  const response = await fetch(`${container.dataset.barsUrl}?${query}`, { credentials: "same-origin" });
  if (!response.ok) {
    status.textContent = `No bars for ${container.dataset.symbol} (${response.status}).`;
    return;
  }
  const { bars } = await response.json();
  const chart = createChart(container, options);
  chart
    .addSeries(CandlestickSeries, {
      upColor: colour("--pos"), downColor: colour("--neg"), borderVisible: false,
      wickUpColor: colour("--pos"), wickDownColor: colour("--neg"),
    })
    .setData(bars.map((bar) => ({
      time: Math.floor(Date.parse(bar.timestamp) / 1000),
      open: Number(bar.open), high: Number(bar.high), low: Number(bar.low), close: Number(bar.close),
    })));
  chart.timeScale().fitContent();
  status.textContent = `${bars.length} one-minute bars, times in UTC.`;
  container.dataset.loaded = String(bars.length);
}

candles();
