// Wires a page's live elements to the stream:
//   [data-live-symbol]  rows whose bid/ask/last (and, for positions, value and P&L) follow quotes;
//   [data-live-order]   rows or sections whose status and fills follow the trader's orders.
import { startLive } from "./live.js";

const TERMINAL = new Set(["filled", "canceled", "expired", "replaced", "rejected"]);
const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const percent = new Intl.NumberFormat("en-US", { style: "percent", minimumFractionDigits: 2, signDisplay: "always" });

function setField(root, name, text) {
  const cell = root.querySelector(`[data-field="${name}"]`);
  if (!cell || cell.textContent === text) return null;
  cell.textContent = text;
  cell.classList.remove("flash-update");
  void cell.offsetWidth; // restart the highlight animation
  cell.classList.add("flash-update");
  return cell;
}

function setSign(cell, value) {
  if (!cell) return;
  cell.classList.toggle("neg", value < 0);
  cell.classList.toggle("pos", value >= 0);
}

function updatePosition(row, price) {
  // Display only: the figures of record are the broker's Decimals, rendered by the server.
  const qty = Number(row.dataset.qty);
  const cost = Number(row.dataset.costBasis);
  const value = qty * price;
  const pl = value - cost;
  setField(row, "last", money.format(price));
  setField(row, "market_value", money.format(value));
  setSign(setField(row, "unrealized_pl", money.format(pl)), pl);
  setSign(setField(row, "unrealized_plpc", cost ? percent.format(pl / Math.abs(cost)) : "—"), pl);
}

function onSymbolMessage(message) {
  for (const row of document.querySelectorAll(`[data-live-symbol="${CSS.escape(message.symbol)}"]`)) {
    if (message.type === "quote") {
      setField(row, "bid", money.format(Number(message.bid_price)));
      setField(row, "ask", money.format(Number(message.ask_price)));
      if (message.timestamp) setField(row, "time", new Date(message.timestamp).toISOString().slice(11, 19));
      if (row.dataset.qty && !row.dataset.traded) {
        updatePosition(row, (Number(message.bid_price) + Number(message.ask_price)) / 2);
      }
    } else if (message.type === "trade") {
      row.dataset.traded = "1";
      if (row.dataset.qty) updatePosition(row, Number(message.price));
      else setField(row, "last", money.format(Number(message.price)));
    }
  }
}

function onOrderMessage(message) {
  for (const root of document.querySelectorAll(`[data-live-order="${message.id}"]`)) {
    const status = root.querySelector('[data-field="status"]');
    if (status && status.textContent !== message.status) {
      status.textContent = message.status;
      status.className = `status ${message.status} flash-update`;
    }
    const avg = message.filled_avg_price ? ` @ ${money.format(Number(message.filled_avg_price))}` : "";
    setField(root, "filled", `${Number(message.filled_qty)}${avg}`);
    if (TERMINAL.has(message.status)) {
      root.dataset.open = "0";
      // Nothing left to cancel or replace.
      for (const el of root.querySelectorAll(".actions > *")) el.remove();
      if (root.id === "order") for (const el of document.querySelectorAll("[data-open-only]")) el.remove();
    }
  }
  const timeline = document.getElementById("timeline");
  const detail = document.getElementById("order");
  if (timeline && detail && detail.dataset.liveOrder === String(message.id) && message.event) {
    const item = document.createElement("li");
    const at = message.timestamp ? new Date(message.timestamp).toISOString().replace("T", " ").slice(0, 19) : "";
    item.innerHTML = "<time></time> <strong></strong> → <span></span> <span class=\"muted\">(stream)</span>";
    item.querySelector("time").textContent = at;
    item.querySelector("strong").textContent = message.event;
    item.querySelector("span").textContent = message.status;
    timeline.append(item);
  }
}

for (const cell of document.querySelectorAll("[data-ratio]")) {
  cell.textContent = percent.format(Number(cell.dataset.ratio));
}

const symbols = [...new Set([...document.querySelectorAll("[data-live-symbol]")].map((el) => el.dataset.liveSymbol))];
const hasOrders = document.querySelector("[data-live-order]") !== null;
if (symbols.length || hasOrders) {
  startLive({
    symbols,
    streams: ["quotes", "trades", "orders"],
    orderIds: () => [...document.querySelectorAll('[data-live-order][data-open="1"]')].map((el) => el.dataset.liveOrder),
    onMessage(message) {
      if (message.type === "quote" || message.type === "trade") onSymbolMessage(message);
      else if (message.type === "order") onOrderMessage(message);
    },
  });
}
