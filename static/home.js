// Home overview (<section id="overview"> of index.html): what the fleet did today, in 7 or 30
// days, in the tenant's zone — tiles (sent, delivered, read, replies, failed, opt-outs), three
// SVG charts drawn by the server (in the same answer: GET /api/v1/stats/overview?charts=true) and the campaign,
// sequence and device summaries. Loaded when the range changes and every REFRESH_MS while the
// page is in view (the figures are hourly sums: a live stream per send would cost more than
// it shows; device status stays live in the devices view below).
import { api, showFailure, clearAlert, tile } from "/static/app.js";

const $ = (id) => document.getElementById(id);
/** How often the figures are read again while the page is visible. */
const REFRESH_MS = 30000;
const number = new Intl.NumberFormat();

const state = { range: "today", loading: false };

/** "3 running · 1 scheduled" from a status → count map, in a fixed order. */
function counts(map, order) {
  const parts = order.filter((name) => map[name]).map((name) => `${number.format(map[name])} ${name.replace("_", " ")}`);
  return parts.length ? parts.join(" · ") : "none";
}

/** Shows the figures of one overview answer. */
function render(view) {
  const t = view.totals;
  $("tiles").replaceChildren(
    tile("sent", "Sent", number.format(t.sent)),
    tile("delivered", "Delivered", `${view.rates.delivered}%`, `${number.format(t.delivered)} messages`),
    tile("read", "Read", `${view.rates.read}%`, `${number.format(t.read)} messages`),
    tile("replies", "Replies", number.format(t.replies), `${view.rates.replied}% of sent`),
    tile("failed", "Failed", number.format(t.failed)),
    tile("opt-outs", "Opt-outs", number.format(view.opt_outs)),
  );
  $("tiles").setAttribute("aria-busy", "false");
  $("overview-zone").textContent = `Times in ${view.time_zone}.`;
  $("overview-summary").textContent =
    `Campaigns: ${counts(view.campaigns_by_status, ["running", "scheduled", "paused", "draft", "completed", "cancelled"])}. ` +
    `Sequence enrolments in progress: ${number.format(view.open_enrollments)}. ` +
    `Devices: ${counts(view.devices_by_status, ["online", "connecting", "reconnecting", "awaiting_qr", "logged_out", "failed", "banned"])}.`;
  // The charts come with the figures (one request), drawn by the server from the same numbers.
  for (const name of ["sends", "rates", "devices"]) {
    $(`chart-${name}`).src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(view.charts[name])}`;
  }
}

/** Loads the figures of the chosen range. */
async function load() {
  if (state.loading) return;
  state.loading = true;
  try {
    const view = await api("GET", `/api/v1/stats/overview?range=${state.range}&charts=true`);
    clearAlert($("overview-alert"));
    render(view);
  } catch (err) {
    if (err.status !== 401) showFailure($("overview-alert"), err);
  } finally {
    state.loading = false;
  }
}

for (const button of $("range-tabs").querySelectorAll("button[data-range]")) {
  button.addEventListener("click", () => {
    state.range = button.dataset.range;
    for (const other of $("range-tabs").querySelectorAll("button")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    load();
  });
}

document.addEventListener("wafleet:me", () => {
  load();
  setInterval(() => {
    if (document.visibilityState === "visible") load();
  }, REFRESH_MS);
});
