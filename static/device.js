// A device's page (/device/{id}): its status (live over device-status), quarantine (with
// "Lift" for owners), health score and signals, its day against its cap and warm-up day, a
// 7-day chart (GET /api/v1/stats/chart.svg?device_id=…), its history and latest failed sends
// (GET /api/v1/devices/{id}/health), and its actions by role: open chats, reconnect (members),
// drain (a quarantine for the hours asked), log out and lift a quarantine (owners), restart
// (platform admins).
import {
  api, me, renderNav, roleAtLeast, el, showAlert, clearAlert, showFatal, busy, statusLabel, statusTone, tile,
  submitFormWith,
} from "/static/app.js";
import { connect as connectLive } from "/static/live.js";

const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat();
const deviceId = Number(location.pathname.split("/")[2]);
const page = { role: "viewer", report: null, timer: null };

/** "5 Dec, 14:03" in the browser's locale. */
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

/** One fact of the device: a label and a value. */
const fact = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));

/** Draws the whole report. */
function render(report) {
  const device = report.device;
  document.title = `${device.name} · wafleet`;
  $("device-title").textContent = device.name;
  const badge = $("device-status");
  badge.textContent = statusLabel(device.status);
  badge.className = `status-badge tone-${statusTone(device.status)}`;
  const quarantine = $("quarantine");
  quarantine.hidden = !device.quarantined_until;
  quarantine.textContent = device.quarantined_until
    ? `Quarantined until ${when(device.quarantined_until)}: ${device.quarantine_reason || ""}. Campaigns and sequences leave it out until then.`
    : "";
  const phone = device.phone ? `+${device.phone}` : "—";
  $("device-facts").replaceChildren(
    fact("Phone", phone),
    fact("Push name", device.push_name || "—"),
    fact("Last seen", device.status === "online" ? "Now" : when(device.last_seen)),
    fact("Why", device.status_reason || "—"),
  );
  renderActions(device);

  const { health, today } = report;
  const s = health.signals;
  const warmup = today.warmup_days > 0 && today.days_linked < today.warmup_days
    ? `warm-up day ${today.days_linked + 1} of ${today.warmup_days}`
    : "warmed up";
  $("health-tiles").replaceChildren(
    tile("score", "Health score", `${health.score}`, `quarantined below ${health.threshold}`),
    tile("today", "Sent today", `${number.format(today.sent)} / ${number.format(today.cap)}`, warmup),
    tile("failed", "Failed", number.format(s.failed), `of ${number.format(s.sent + s.failed)} attempts`),
    tile("delivered", "Delivered", s.settled ? `${Math.round((100 * s.delivered) / s.settled)}%` : "—", `read ${s.settled ? Math.round((100 * s.read) / s.settled) : 0}%`),
    tile("rate-limits", "Rate limits", number.format(s.rate_limits)),
    tile("disconnects", "Disconnects", number.format(s.disconnects)),
  );
  $("health-tiles").setAttribute("aria-busy", "false");
  $("device-chart").src = `/api/v1/stats/chart.svg?chart=sends&range=7d&device_id=${deviceId}&t=${Date.now()}`;

  const rows = (items, cells, empty) =>
    items.length
      ? items.map((item) => el("tr", {}, cells(item).map((c) => el("td", {}, c))))
      : [el("tr", {}, el("td", { colspan: 3, class: "muted" }, empty))];
  $("history").replaceChildren(
    ...rows(report.history, (e) => [when(e.at), e.kind.replace(/_/g, " "), e.detail || ""], "Nothing yet."),
  );
  $("failures").replaceChildren(
    ...rows(report.recent_failures, (f) => [when(f.queued_at), `+${f.phone}`, f.error || ""], "No failed sends."),
  );
}

/** The buttons the caller's role allows. */
function renderActions(device) {
  const box = $("device-alert");
  const action = (name, label, kind, run) =>
    el("button", {
      type: "button", class: `btn btn-small ${kind}`, dataset: { action: name },
      onclick: (event) => busy(event.currentTarget, box, async () => {
        clearAlert(box);
        const message = await run();
        if (message) showAlert(box, message, "success");
        await load();
      }),
    }, label);
  const buttons = [
    el("a", { class: "btn btn-small btn-primary", href: `/device/${device.id}/whatsapp-web`, dataset: { action: "chats" } }, "Open chats"),
  ];
  if (roleAtLeast(page.role, "member")) {
    buttons.push(action("reconnect", "Reconnect", "btn-secondary", async () => {
      await api("POST", `/api/v1/devices/${device.id}/reconnect`);
      return "Reconnecting…";
    }));
  }
  if (roleAtLeast(page.role, "owner") && device.quarantined_until) {
    buttons.push(action("lift", "Lift quarantine", "btn-secondary", async () => {
      await api("DELETE", `/api/v1/devices/${device.id}/quarantine`);
      return "Campaigns and sequences may use the device again.";
    }));
  }
  if (roleAtLeast(page.role, "admin")) {
    buttons.push(action("restart", "Restart", "btn-secondary", async () => {
      await api("POST", "/api/v1/admin/devices/restart", { ids: [device.id] });
      return "Restarting…";
    }));
  }
  if (roleAtLeast(page.role, "owner") && device.jid) {
    buttons.push(action("logout", "Log out", "btn-danger", async () => {
      if (!confirm(`Log out “${device.name}”? It must be paired again.`)) return null;
      await api("POST", `/api/v1/devices/${device.id}/logout`);
      return "Logged out.";
    }));
  }
  $("device-actions").replaceChildren(...buttons);
  $("drain-form").hidden = !(roleAtLeast(page.role, "owner") && !device.quarantined_until);
}

/** Drains the device for the hours asked; a refusal is shown under the field. */
function drain(event) {
  const box = $("device-alert");
  return submitFormWith(event, {
    box,
    button: $("drain"),
    build: () => ({ hours: Number($("drain-hours").value) }),
    save: async (body) => {
      await api("POST", `/api/v1/devices/${deviceId}/drain`, body);
      showAlert(box, `Drained for ${body.hours} h: its waiting campaign messages move to healthy devices.`, "success");
      await load();
    },
    fieldFor: (err) => (err.code === "invalid_drain" ? $("drain-hours") : null),
  });
}

/** Reads the report again. */
async function load() {
  try {
    page.report = await api("GET", `/api/v1/devices/${deviceId}/health`);
    render(page.report);
  } catch (err) {
    if (err.status === 404) {
      $("device-title").textContent = "Device not found";
      showAlert($("device-alert"), "This device does not exist or is not one of yours.");
    } else if (err.status !== 401) {
      showAlert($("device-alert"), err.message);
    }
  }
}

/** Reads again shortly after a burst of events. */
function soon() {
  clearTimeout(page.timer);
  page.timer = setTimeout(load, 300);
}

try {
  const current = await me();
  page.role = current.user.role;
  renderNav(current, "devices");
  $("drain-form").addEventListener("submit", drain);
  if (!Number.isInteger(deviceId) || deviceId <= 0) throw new Error("No device id in this address.");
  connectLive({
    topics: ["device-status"],
    onEvent: (frame) => {
      if (frame.data && frame.data.device_id === deviceId) soon();
    },
    onResync: soon,
  });
  // Without a subscription by then (no WebSocket), the page loads anyway.
  setTimeout(() => {
    if (!page.report) load();
  }, 1500);
} catch (err) {
  if (err.status !== 401) showFatal(err);
}
