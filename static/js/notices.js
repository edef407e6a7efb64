// The live `notification` frames: a toast each, and the nav's unread count goes up.
const SHOWN_MS = 8000;

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
