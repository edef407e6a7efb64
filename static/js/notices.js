// The live `notification` frames: a toast each, and the nav's unread count goes up. While the
// page polls (no stream), the newest notifications are polled too and shown the same way.
import { getJSON } from "./http.js";

const SHOWN_MS = 8000;
let newestSeen = null; // while polling: the newest notification id known (null: not looked yet)

export async function pollNotices() {
  const { results } = await getJSON("/api/v1/notifications/?page_size=5");
  const known = newestSeen;
  newestSeen = Math.max(newestSeen ?? 0, ...results.map((n) => n.id));
  if (known === null) return; // the first look only sets the mark: those are on the page already
  for (const n of results.filter((n) => n.id > known).reverse()) {
    showNotice({ type: "notification", count: 1, ...n });
  }
}

export function showNotice(message) {
  const count = document.getElementById("unread-count");
  if (count) {
    const unread = Number(count.dataset.count || 0) + (message.count || 1);
    count.dataset.count = String(unread);
    count.firstChild.textContent = String(unread);
    count.hidden = false;
  }
  const toasts = document.getElementById("toasts");
  if (!toasts) return;
  const toast = document.createElement("div");
  toast.className = `toast ${message.kind}`;
  toast.dataset.notification = message.id ?? "";
  const title = document.createElement("a");
  title.href = message.url || "/accounts/notifications/";
  title.textContent = message.title;
  toast.append(title);
  if (message.body) {
    const body = document.createElement("p");
    body.textContent = message.body;
    toast.append(body);
  }
  toasts.append(toast);
  setTimeout(() => toast.remove(), SHOWN_MS);
}
