// Webhooks page (owners): endpoints (add, send a test event, switch on/off, rotate the secret,
// delete), the signing secret shown once, and the delivery log (filters, older pages, the body
// sent, replay). Refreshes the log every few seconds while the tab is visible.
import { api, me, renderNav, roleAtLeast, el, showAlert, clearAlert, showFatal, showFailure, busy, copyField } from "/static/app.js";

const $ = (id) => document.getElementById(id);
const LOG_PAGE = 50;
const LOG_REFRESH_MS = 5000;
const STATUS_LABEL = { pending: "Waiting", delivering: "Sending", delivered: "Delivered", dead: "Given up" };

/** "2025-01-31 14:05:07 UTC". */
function when(iso) {
  return iso ? `${iso.slice(0, 19).replace("T", " ")} UTC` : "";
}

/** A table cell with the column name for the stacked phone layout. */
function cell(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

function notAllowed() {
  $("endpoints").hidden = true;
  $("deliveries").hidden = true;
  $("not-allowed").hidden = false;
}

function showSecret(secret) {
  $("new-secret-value").value = secret;
  $("new-secret").hidden = false;
  $("new-secret-value").select();
}

// ---------------------------------------------------------------- endpoints

let endpoints = [];

async function loadEndpoints() {
  endpoints = await api("GET", "/api/v1/webhooks/endpoints");
  const tbody = $("endpoint-list").tBodies[0];
  tbody.replaceChildren(...endpoints.map(endpointRow));
  if (endpoints.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No endpoints yet: add one below.")));
  }
  const filter = $("filter-endpoint");
  const chosen = filter.value;
  filter.replaceChildren(
    el("option", { value: "" }, "All endpoints"),
    ...endpoints.map((e) => el("option", { value: String(e.id) }, e.description || e.url)),
  );
  filter.value = endpoints.some((e) => String(e.id) === chosen) ? chosen : "";
}

function statusOf(endpoint) {
  if (!endpoint.active) {
    return el("span", { class: "badge badge-off" }, endpoint.disabled_reason ? `Off: ${endpoint.disabled_reason}` : "Off");
  }
  if (endpoint.failing_since) {
    return el("span", { class: "badge badge-warn" }, `Failing since ${when(endpoint.failing_since)}`);
  }
  return el("span", { class: "badge badge-ok" }, "Active");
}

function endpointRow(endpoint) {
  const box = $("endpoints-alert");
  const button = (label, aria, kind = "btn-secondary") =>
    el("button", { type: "button", class: `btn btn-small ${kind}`, "aria-label": `${aria} ${endpoint.url}` }, label);
  const test = button("Send test", "Send a test event to");
  test.addEventListener("click", () =>
    busy(test, box, async () => {
      clearAlert(box);
      const queued = await api("POST", `/api/v1/webhooks/endpoints/${endpoint.id}/test`);
      showAlert(box, `Test event queued (delivery ${queued.delivery_id}); watch it in the log below.`, "success");
      await loadLog();
    }),
  );
  const toggle = button(endpoint.active ? "Switch off" : "Switch on", endpoint.active ? "Switch off" : "Switch on");
  toggle.addEventListener("click", () =>
    busy(toggle, box, async () => {
      clearAlert(box);
      await api("PATCH", `/api/v1/webhooks/endpoints/${endpoint.id}`, { active: !endpoint.active });
      await loadEndpoints();
    }),
  );
  const rotate = button("New secret", "Make a new secret for");
  rotate.addEventListener("click", () => {
    if (!confirm("Make a new signing secret? The current one stops working at once.")) return;
    busy(rotate, box, async () => {
      clearAlert(box);
      const rotated = await api("POST", `/api/v1/webhooks/endpoints/${endpoint.id}/secret`);
      showSecret(rotated.secret);
    });
  });
  const remove = button("Delete", "Delete", "btn-danger");
  remove.addEventListener("click", () => {
    if (!confirm(`Delete ${endpoint.url} and its delivery log? Nothing more is sent to it.`)) return;
    busy(remove, box, async () => {
      clearAlert(box);
      await api("DELETE", `/api/v1/webhooks/endpoints/${endpoint.id}`);
      showAlert(box, `${endpoint.url} was deleted.`, "success");
      await Promise.all([loadEndpoints(), loadLog()]);
    });
  });
  return el(
    "tr",
    { dataset: { endpointId: endpoint.id }, class: endpoint.active ? "" : "inactive" },
    cell("URL", el("span", { class: "url-cell" }, endpoint.url), endpoint.description ? el("div", { class: "muted" }, endpoint.description) : ""),
    cell("Events", endpoint.events.length ? endpoint.events.join(", ") : "All"),
    cell("Devices", endpoint.device_ids.length ? endpoint.device_ids.join(", ") : "All"),
    cell("Status", statusOf(endpoint)),
    el("td", { class: "actions", "data-label": "" }, test, toggle, rotate, remove),
  );
}

async function loadEventTypes() {
  const types = await api("GET", "/api/v1/webhooks/event-types");
  $("event-types").replaceChildren(
    ...types.map((t) =>
      el(
        "label",
        { class: "check", title: t.meaning },
        el("input", { type: "checkbox", name: "events", value: t.type }),
        t.type,
      ),
    ),
  );
  $("filter-event").append(...types.map((t) => el("option", { value: t.type }, t.type)), el("option", { value: "webhook.test" }, "webhook.test"));
}

$("add-endpoint-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const box = $("endpoints-alert");
  clearAlert(box);
  if (!form.reportValidity()) return;
  const devices = $("endpoint-devices").value.split(",").map((d) => d.trim()).filter(Boolean);
  if (devices.some((d) => !/^\d+$/.test(d))) {
    showAlert(box, "Devices: write device ids (numbers) separated by commas.");
    $("endpoint-devices").focus();
    return;
  }
  const body = {
    url: $("endpoint-url").value.trim(),
    description: $("endpoint-description").value.trim(),
    events: [...form.querySelectorAll('input[name="events"]:checked')].map((i) => i.value),
    device_ids: devices.map(Number),
  };
  busy($("add-endpoint"), box, async () => {
    const created = await api("POST", "/api/v1/webhooks/endpoints", body);
    form.reset();
    showSecret(created.secret);
    showAlert(box, `${created.endpoint.url} was added.`, "success");
    await loadEndpoints();
  });
});

$("copy-secret").addEventListener("click", () => copyField($("new-secret-value"), $("copy-secret")));

$("dismiss-secret").addEventListener("click", () => {
  $("new-secret-value").value = "";
  $("new-secret").hidden = true;
});

// ---------------------------------------------------------------- delivery log

let cursor = null;

function logQuery(before) {
  const params = new URLSearchParams({ limit: String(LOG_PAGE) });
  for (const [key, id] of [["endpoint_id", "filter-endpoint"], ["status", "filter-status"], ["event_type", "filter-event"]]) {
    if ($(id).value) params.set(key, $(id).value);
  }
  if (before) params.set("cursor", String(before));
  return `/api/v1/webhooks/deliveries?${params}`;
}

/** Loads the newest page (or, with `older`, appends the next older one). */
async function loadLog(older = false) {
  const page = await api("GET", logQuery(older ? cursor : null));
  const tbody = $("delivery-list").tBodies[0];
  const rows = page.items.map(deliveryRow);
  if (older) tbody.append(...rows);
  else tbody.replaceChildren(...rows);
  if (!older && page.items.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No deliveries yet.")));
  }
  cursor = page.next_cursor;
  $("more-log").hidden = !cursor;
}

function answerOf(d) {
  const parts = [];
  if (d.response_status) parts.push(`HTTP ${d.response_status}`);
  if (d.latency_ms !== null && d.latency_ms !== undefined) parts.push(`${d.latency_ms} ms`);
  if (d.error) parts.push(d.error);
  return parts.join(" · ");
}

function deliveryRow(d) {
  const endpoint = endpoints.find((e) => e.id === d.endpoint_id);
  const show = el("button", { type: "button", class: "btn btn-small btn-secondary", "aria-label": `Show the body of delivery ${d.id}` }, "Body");
  show.addEventListener("click", () =>
    busy(show, $("deliveries-alert"), async () => {
      const full = await api("GET", `/api/v1/webhooks/deliveries/${d.id}`);
      const pre = $("delivery-payload");
      pre.textContent = JSON.stringify(full.payload, null, 2);
      pre.hidden = false;
      pre.focus();
    }),
  );
  const actions = el("td", { class: "actions", "data-label": "" }, show);
  if (d.status !== "delivering") {
    const replay = el("button", { type: "button", class: "btn btn-small btn-secondary", "aria-label": `Replay delivery ${d.id}` }, "Replay");
    replay.addEventListener("click", () =>
      busy(replay, $("deliveries-alert"), async () => {
        clearAlert($("deliveries-alert"));
        await api("POST", `/api/v1/webhooks/deliveries/${d.id}/replay`);
        showAlert($("deliveries-alert"), `Delivery ${d.id} queued again.`, "success");
        await loadLog();
      }),
    );
    actions.append(replay);
  }
  return el(
    "tr",
    { dataset: { deliveryId: d.id, status: d.status } },
    cell("Queued", when(d.created_at)),
    cell("Event", el("code", {}, d.event_type)),
    cell("Endpoint", endpoint ? endpoint.description || endpoint.url : `#${d.endpoint_id}`),
    cell("Status", el("span", { class: `badge badge-${d.status}` }, STATUS_LABEL[d.status] || d.status)),
    cell("Attempts", String(d.attempts)),
    cell("Answer", el("span", { class: "muted" }, answerOf(d))),
    actions,
  );
}

$("log-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadLog().catch((err) => showFailure($("deliveries-alert"), err));
});
for (const id of ["filter-endpoint", "filter-status", "filter-event"]) {
  $(id).addEventListener("change", () => loadLog().catch((err) => showFailure($("deliveries-alert"), err)));
}
$("more-log").addEventListener("click", () =>
  busy($("more-log"), $("deliveries-alert"), () => loadLog(true)),
);

// ---------------------------------------------------------------- start

try {
  const current = await me();
  renderNav(current, "webhooks");
  if (!roleAtLeast(current.user.role, "owner")) {
    notAllowed();
  } else {
    $("endpoints").hidden = false;
    $("deliveries").hidden = false;
    await Promise.all([loadEventTypes(), loadEndpoints()]);
    await loadLog();
    // The newest page stays current while someone watches it (not while paging back).
    setInterval(() => {
      if (document.visibilityState === "visible" && !cursor) loadLog().catch(() => {});
    }, LOG_REFRESH_MS);
  }
} catch (err) {
  showFatal(err);
}
