// The order ticket: shows only the fields the chosen type and class need, the symbol's live
// quote, and asks /api/v1/orders/validate/ (debounced) for errors, warnings and recommendations.
// With warnings the submit button becomes "Place order anyway": clicking it is the consent
// (it sends confirm_warnings). Without this script the form still works: the server judges
// with the same services and asks for the same confirmation.
import { postJSON } from "./http.js";
import { startLive } from "./live.js";

const form = document.getElementById("order-ticket");
const typeSelect = document.getElementById("type");
const classSelect = document.getElementById("order_class");
const symbolInput = document.getElementById("symbol");
const quoteLine = document.getElementById("ticket-quote");
const confirmBox = document.getElementById("confirm-box");
const submitButton = document.getElementById("submit-order");
const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function showOnly(selector, attribute, value) {
  for (const group of form.querySelectorAll(selector)) {
    const shown = group.getAttribute(attribute).split(" ").includes(value);
    group.hidden = !shown;
    // Hidden fields are disabled so they are not submitted with stale values.
    for (const input of group.querySelectorAll("input, select")) input.disabled = !shown;
  }
}

function arrange() {
  showOnly("[data-for-types]", "data-for-types", typeSelect.value);
  showOnly("[data-for-classes]", "data-for-classes", classSelect.value);
}

// The form's own controls, not the order's (the template's name is for "Save as template").
const PAGE_FIELDS = new Set(["csrfmiddlewaretoken", "confirm_warnings", "template_name"]);

function body() {
  const data = {};
  for (const [key, value] of new FormData(form)) {
    if (PAGE_FIELDS.has(key) || value.trim() === "") continue;
    const [head, leg] = key.split(".");
    if (leg) (data[head] ??= {})[leg] = value.trim();
    else data[key] = value.trim();
  }
  data.extended_hours = form.elements.extended_hours.checked;
  return data;
}

function renderList(container, issues) {
  const list = container.querySelector("ul") || container;
  list.replaceChildren(
    ...issues.map((issue) => {
      const item = document.createElement("li");
      item.dataset.code = issue.code;
      item.textContent = issue.message;
      return item;
    }),
  );
  container.hidden = issues.length === 0;
}

function renderVerdict(verdict) {
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  const unplaced = [];
  for (const error of verdict.errors || []) {
    const slot = error.field && form.querySelector(`[data-error-for="${error.field.replace(".", "__")}"]`);
    if (slot && !slot.closest("[hidden]")) slot.textContent = error.message;
    else unplaced.push(error);
  }
  renderList(document.getElementById("ticket-errors"), unplaced);
  renderList(document.getElementById("ticket-warnings"), verdict.warnings || []);
  renderList(document.getElementById("ticket-recommendations"), verdict.recommendations || []);
  const warned = (verdict.warnings || []).length > 0;
  confirmBox.hidden = !warned;
  submitButton.textContent = warned ? "Place order anyway" : "Submit order";
  if (warned) {
    submitButton.name = "confirm_warnings";
    submitButton.value = "1";
  } else {
    submitButton.removeAttribute("name");
    submitButton.removeAttribute("value");
  }
}

let timer = null;
let sequence = 0;
function validateSoon() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    const mine = ++sequence;
    const data = body();
    if (!data.symbol || !(data.qty || data.notional)) return;
    let result;
    try {
      result = await postJSON("/api/v1/orders/validate/", data);
    } catch {
      return; // validation is a help, not a gate: the server judges the submission anyway
    }
    if (mine !== sequence || !result.body || !("errors" in result.body)) return;
    if (result.status === 200 || result.status === 400) renderVerdict(result.body);
  }, 350);
}

const live = startLive({
  symbols: symbolInput.value ? [symbolInput.value.toUpperCase()] : [],
  streams: ["quotes"],
  onMessage(message) {
    if (message.type !== "quote" || message.symbol !== symbolInput.value.trim().toUpperCase()) return;
    quoteLine.textContent = `${message.symbol} bid ${money.format(Number(message.bid_price))} · ask ${money.format(Number(message.ask_price))}`;
  },
});

let symbolTimer = null;
symbolInput.addEventListener("input", () => {
  clearTimeout(symbolTimer);
  symbolTimer = setTimeout(() => {
    const symbol = symbolInput.value.trim().toUpperCase();
    quoteLine.textContent = "";
    live.setSymbols(/^[A-Z]{1,5}(\.[A-Z]{1,2})?$/.test(symbol) ? [symbol] : []);
  }, 400);
});

form.addEventListener("input", validateSoon);
form.addEventListener("change", (event) => {
  if (event.target === typeSelect || event.target === classSelect) arrange();
  validateSoon();
});

arrange();
form.dataset.enhanced = "1";
