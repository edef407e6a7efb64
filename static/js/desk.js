// Behaviour every page shares: confirmations on destructive forms, and the live notifications
// (a page that opens no stream of its own gets one for the user's orders group).
import { liveStarted, startLive } from "./live.js";

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// Module scripts have all run by now: the page's own startLive, if it has one, came first.
document.addEventListener("DOMContentLoaded", () => {
  if (!liveStarted()) startLive({ streams: ["orders"], onMessage() {} });
});
