// Live data for the pages: the broker stream over a WebSocket, or polling when it is unavailable.
//
// The stream (/api/v1/broker/stream) wants a JWT: the page asks /accounts/stream-token/ for a
// short-lived one on every (re)connect. When the socket can't be opened (no stream server, e.g.
// a WSGI-only deployment) or drops, quotes are polled from /api/v1/market/quotes/latest/ and
// order statuses from /orders/status/ every few seconds, and the socket is retried with backoff.
//
// Every page's notifications ride the same connection (the `orders` stream's group): a
// `notification` frame becomes a toast (notices.js), whatever the page listens for.
import { getJSON, postJSON } from "./http.js";
import { pollNotices, showNotice } from "./notices.js";

const POLL_MS = 3000;
const MAX_RETRY_MS = 60000;
let started = false;

// Whether this page opened the stream already (desk.js opens one for pages that don't).
export function liveStarted() {
  return started;
}

export function startLive({ symbols = [], streams = ["quotes", "trades", "orders"], orderIds = () => [], onMessage }) {
  started = true;
  let wanted = new Set(symbols);
  let socket = null;
  let pollTimer = null;
  let retryMs = 2000;
  const state = document.getElementById("live-state");

  function show(mode) {
    if (!state) return;
    state.hidden = false;
    state.dataset.mode = mode;
    state.textContent = mode === "live" ? "● Live" : "● Updating every few seconds";
  }

  async function poll() {
    try {
      if (wanted.size) {
        const data = await getJSON(`/api/v1/market/quotes/latest/?symbols=${[...wanted].join(",")}`);
        for (const quote of Object.values(data.quotes || {})) onMessage({ type: "quote", ...quote });
      }
      const ids = orderIds();
      if (ids.length && streams.includes("orders")) {
        const data = await getJSON(`/orders/status/?ids=${ids.join(",")}`);
        for (const order of data.orders) onMessage({ type: "order", ...order });
      }
      if (streams.includes("orders")) await pollNotices();
    } catch (error) {
      console.debug("live: poll failed", error);
    }
  }

  function startPolling() {
    show("polling");
    if (pollTimer === null) {
      poll();
      pollTimer = setInterval(poll, POLL_MS);
    }
  }

  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = null;
  }

  async function connect() {
    let token;
    try {
      token = (await postJSON("/accounts/stream-token/")).body.access;
    } catch (error) {
      token = null;
    }
    if (!token) {
      startPolling();
      return;
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ token, streams: streams.join(",") });
    if (wanted.size) query.set("symbols", [...wanted].join(","));
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/broker/stream?${query}`);
    socket.addEventListener("open", () => {
      show("live");
      stopPolling();
      retryMs = 2000;
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      for (const message of Array.isArray(frame) ? frame : [frame]) {
        if (message.type === "notification") showNotice(message);
        else onMessage(message);
      }
    });
    socket.addEventListener("close", () => {
      socket = null;
      startPolling();
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    });
  }

  connect();

  return {
    setSymbols(next) {
      const nextSet = new Set(next.filter(Boolean));
      const added = [...nextSet].filter((s) => !wanted.has(s));
      const removed = [...wanted].filter((s) => !nextSet.has(s));
      wanted = nextSet;
      if (socket && socket.readyState === WebSocket.OPEN) {
        if (removed.length) socket.send(JSON.stringify({ action: "unsubscribe", symbols: removed }));
        if (added.length) socket.send(JSON.stringify({ action: "subscribe", symbols: added, streams: ["quotes", "trades"] }));
      } else if (pollTimer !== null && added.length) {
        poll();
      }
    },
  };
}
