// Devices view of the dashboard (<section id="devices"> of index.html):
//
// - status counts as filter chips, a debounced search (name or phone), a grid of device cards
//   loaded 200 at a time ("Load more"), actions by role (show QR / code, reconnect, log out,
//   delete);
// - the "Add device" dialog: name → POST /devices → the QR code (reloaded on each QR_UPDATED)
//   or a pairing code for a phone number; it closes itself once the device comes online;
// - live status over the WebSocket (topic device-status, through live.js): cards change in place
//   on DEVICE_STATUS; the first subscription loads the list, a seq gap or a reconnect re-reads
//   the loaded pages over REST; #live-indicator says "Live" or "Reconnecting…".
import { api, ApiError, me, roleAtLeast, el, showAlert, clearAlert, showFatal, showFailure, busy, STATUS, statusLabel, statusTone } from "/static/app.js";
import { connect as connectLive } from "/static/live.js";

const $ = (id) => document.getElementById(id);

/** Devices per request (a 3,000-device fleet loads in 15 steps, on demand). */
const PER_PAGE = 200;
/** Quiet time after typing before the search runs. */
const SEARCH_DELAY_MS = 300;
/** Without a subscription by then, the list loads anyway (live updates follow when they can). */
const FIRST_LOAD_WAIT_MS = 1500;

/** Statuses that end a pairing attempt without success. */
const PAIRING_STOPPED = new Set(["logged_out", "failed", "banned", "parked"]);

const number = new Intl.NumberFormat();

/** "+60123456789" from stored digits. */
function phoneText(phone) {
  if (!phone) return "—";
  return phone.startsWith("+") ? phone : `+${phone}`;
}

/** "just now", "5 min ago", "3 h ago", "2025-01-31". */
function ago(iso) {
  if (!iso) return "Never";
  const then = Date.parse(iso);
  if (!Number.isFinite(then)) return "—";
  const secs = Math.max(0, Math.round((Date.now() - then) / 1000));
  if (secs < 60) return "just now";
  if (secs < 3600) return `${Math.floor(secs / 60)} min ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ago`;
  if (secs < 7 * 86400) return `${Math.floor(secs / 86400)} d ago`;
  return iso.slice(0, 10);
}

/** "ABCD-EFGH" from an 8-character code. */
function pairCodeText(code) {
  const plain = String(code || "").replace(/[^0-9A-Za-z]/g, "").toUpperCase();
  return plain.length === 8 ? `${plain.slice(0, 4)}-${plain.slice(4)}` : plain;
}

/** Search text as the API matches it: a phone number typed with +, spaces or dashes → digits. */
function searchTerm(text) {
  const t = text.trim();
  return /^[+\d\s()-]+$/.test(t) && /\d/.test(t) ? t.replace(/\D/g, "") : t;
}

/** Runs `fn` at most once at a time: calls while it runs (or waits) merge into one more run. */
function coalesce(fn, waitMs) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) console.warn(err);
    } finally {
      running = false;
      if (again) {
        again = false;
        trigger();
      }
    }
  };
  const trigger = () => {
    if (timer === null) timer = setTimeout(run, waitMs);
  };
  return trigger;
}

// ---------------------------------------------------------------- state

const view = {
  /** /me of the signed-in user. */
  current: null,
  role: "viewer",
  /** Filter: status ("" = all) and search text as sent. */
  status: "",
  q: "",
  /** Filter: only the devices assigned to this member (user id as text; "" = everyone's). */
  member: "",
  /** Pages loaded so far, matching devices, counts per status (whole fleet). */
  page: 0,
  total: 0,
  counts: {},
  /** Loaded devices and their cards, by id (Map keeps the list's order). */
  devices: new Map(),
  cards: new Map(),
  /** Bumped by every full load; answers of older loads are dropped. */
  generation: 0,
  loadedOnce: false,
  loadingMore: false,
  /** Devices being created here, and the status events of unknown devices meanwhile. */
  creating: 0,
  early: null,
};

// ---------------------------------------------------------------- loading

/** One page of the list for the current filter. */
function fetchPage(page) {
  const params = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
  if (view.status) params.set("status", view.status);
  if (view.q) params.set("q", view.q);
  if (view.member) params.set("member_id", view.member);
  return api("GET", `/api/v1/devices?${params}`);
}

/** Whether a filter narrows the list (status, search or member). */
function filtering() {
  return Boolean(view.status || view.q || view.member);
}

/**
 * (Re)loads pages 1..`pages` for the current filter and swaps the grid in one go: the first
 * load, a filter change (pages = 1), or a re-read after missed events (the pages shown).
 */
async function load(pages = 1) {
  const generation = ++view.generation;
  $("device-grid").setAttribute("aria-busy", "true");
  const items = [];
  let body = null;
  try {
    for (let page = 1; page <= pages; page += 1) {
      body = await fetchPage(page);
      if (generation !== view.generation) return;
      items.push(...body.items);
      if (page * PER_PAGE >= body.total) break;
    }
  } catch (err) {
    if (generation === view.generation) showFailure($("devices-alert"), err);
    return;
  } finally {
    if (generation === view.generation) $("device-grid").setAttribute("aria-busy", "false");
  }
  view.loadedOnce = true;
  view.page = Math.max(1, Math.ceil(items.length / PER_PAGE));
  view.total = body.total;
  view.counts = body.counts || {};
  view.devices.clear();
  view.cards.clear();
  const fragment = document.createDocumentFragment();
  for (const device of items) {
    if (view.devices.has(device.id)) continue;
    view.devices.set(device.id, device);
    const card = deviceCard(device);
    view.cards.set(device.id, card);
    fragment.append(card);
  }
  $("device-grid").replaceChildren(fragment);
  renderChips();
  renderSummary();
}

/** Appends the next page. */
async function loadMore() {
  if (view.loadingMore) return;
  const generation = view.generation;
  const button = $("load-more");
  view.loadingMore = true;
  button.disabled = true;
  button.textContent = "Loading…";
  try {
    const body = await fetchPage(view.page + 1);
    if (generation !== view.generation) return;
    view.page += 1;
    view.total = body.total;
    view.counts = body.counts || view.counts;
    const fragment = document.createDocumentFragment();
    for (const device of body.items) {
      if (view.devices.has(device.id)) continue;
      view.devices.set(device.id, device);
      const card = deviceCard(device);
      view.cards.set(device.id, card);
      fragment.append(card);
    }
    $("device-grid").append(fragment);
    renderChips();
  } catch (err) {
    if (err.status !== 401) showAlert($("devices-alert"), err.message || String(err));
  } finally {
    view.loadingMore = false;
    button.disabled = false;
    renderSummary();
  }
}

/** Re-reads what is shown (missed events, a reconnect, a device added elsewhere). */
const scheduleRefresh = coalesce(() => load(Math.max(1, view.page)), 250);

/** Re-reads the per-status counts only (after status events), at most every 2 s. */
const scheduleCounts = coalesce(async () => {
  const body = await api("GET", "/api/v1/devices?per_page=1");
  view.counts = body.counts || {};
  renderChips();
}, 2000);

// ---------------------------------------------------------------- rendering

/** The chips: All, then each status present (and the selected one). */
function renderChips() {
  const all = Object.values(view.counts).reduce((sum, n) => sum + n, 0);
  const chips = [chip("", "All", all)];
  for (const status of Object.keys(STATUS)) {
    const count = view.counts[status] || 0;
    if (count > 0 || status === view.status) chips.push(chip(status, statusLabel(status), count));
  }
  $("status-chips").replaceChildren(...chips);
}

function chip(status, label, count) {
  const pressed = view.status === status;
  return el(
    "button",
    {
      type: "button",
      class: `chip${status ? ` chip-${statusTone(status)}` : ""}`,
      "aria-pressed": pressed ? "true" : "false",
      dataset: { status },
      onclick: () => {
        if (view.status === status) return;
        view.status = status;
        renderChips();
        load(1);
      },
    },
    el("span", {}, label),
    el("span", { class: "chip-count" }, number.format(count)),
  );
}

/** "Showing 200 of 3,000 devices", the empty state and the "Load more" button. */
function renderSummary() {
  const shown = view.devices.size;
  const filtered = Boolean(filtering());
  const summary = $("devices-summary");
  if (view.total === 0) {
    summary.textContent = "";
    $("devices-empty").hidden = false;
    $("devices-empty-text").textContent = filtered
      ? "No devices match this filter."
      : roleAtLeast(view.role, "owner")
        ? "No devices yet. Add one to link a WhatsApp account."
        : "No devices yet.";
  } else {
    $("devices-empty").hidden = true;
    const noun = view.total === 1 ? "device" : "devices";
    summary.textContent =
      shown < view.total
        ? `Showing ${number.format(shown)} of ${number.format(view.total)} ${noun}`
        : `${number.format(view.total)} ${noun}${filtered ? " match" : ""}`;
  }
  const more = $("load-more");
  const left = view.total - shown;
  more.hidden = left <= 0;
  if (!view.loadingMore) {
    more.textContent = `Load ${number.format(Math.min(PER_PAGE, left))} more`;
  }
}

/** One device card. */
function deviceCard(device) {
  const status = device.status;
  const online = status === "online";
  const meta = el(
    "dl",
    { class: "device-meta" },
    el("div", {}, el("dt", {}, "Phone"), el("dd", {}, phoneText(device.phone))),
    el("div", {}, el("dt", {}, "Push name"), el("dd", {}, device.push_name || "—")),
    el(
      "div",
      {},
      el("dt", {}, "Last seen"),
      el(
        "dd",
        { class: "last-seen", title: device.last_seen || "", dataset: { at: device.last_seen || "" } },
        online ? "Now" : ago(device.last_seen),
      ),
    ),
  );
  return el(
    "article",
    {
      class: `device-card tone-${statusTone(status)}`,
      dataset: { deviceId: device.id, status },
      "aria-label": `${device.name}: ${statusLabel(status)}`,
    },
    el(
      "div",
      { class: "device-head" },
      el(
        "h3",
        { class: "device-name", title: device.name },
        el("a", { href: `/device/${device.id}`, "aria-label": `Open the page of ${device.name}` }, device.name),
      ),
      el("span", { class: `status-badge tone-${statusTone(status)}` }, statusLabel(status)),
    ),
    meta,
    device.status_reason ? el("p", { class: "device-reason" }, device.status_reason) : null,
    quarantined(device)
      ? el(
          "p",
          { class: "device-quarantine", role: "status" },
          `Quarantined until ${new Date(device.quarantined_until).toLocaleString()}: ${device.quarantine_reason || ""}`,
        )
      : null,
    deviceActions(device),
  );
}

/** Whether campaigns and sequences leave the device out now. */
function quarantined(device) {
  return Boolean(device.quarantined_until) && Date.parse(device.quarantined_until) > Date.now();
}

/** The card's buttons for the caller's role. */
function deviceActions(device) {
  const buttons = [];
  const member = roleAtLeast(view.role, "member");
  const owner = roleAtLeast(view.role, "owner");
  const action = (name, label, kind, handler) =>
    el(
      "button",
      {
        type: "button",
        class: `btn btn-small ${kind}`,
        dataset: { action: name },
        "aria-label": `${label}: ${device.name}`,
        onclick: (event) => handler(device, event.currentTarget),
      },
      label,
    );
  if (member && device.status === "awaiting_qr") {
    buttons.push(action("qr", "Show QR", "btn-primary", (d) => openPairing(d, "qr")));
  }
  if (member && device.status === "awaiting_pair_code") {
    buttons.push(action("code", "Show code", "btn-primary", (d) => openPairing(d, "code")));
  }
  buttons.push(
    el(
      "a",
      { class: "btn btn-small btn-secondary", href: `/device/${device.id}/whatsapp-web`, dataset: { action: "chats" }, "aria-label": `Chats: ${device.name}` },
      "Chats",
    ),
  );
  if (member) buttons.push(action("reconnect", "Reconnect", "btn-secondary", reconnectDevice));
  if (owner && quarantined(device)) buttons.push(action("lift", "Lift quarantine", "btn-secondary", liftQuarantine));
  if (owner && device.jid) buttons.push(action("logout", "Log out", "btn-danger", logoutDevice));
  if (owner) buttons.push(action("delete", "Delete", "btn-danger", deleteDevice));
  return buttons.length ? el("div", { class: "device-actions" }, buttons) : null;
}

/** Redraws a device's card in place, keeping keyboard focus on the same button. */
function redraw(device) {
  const old = view.cards.get(device.id);
  if (!old) return;
  const focused = old.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  const card = deviceCard(device);
  old.replaceWith(card);
  view.cards.set(device.id, card);
  if (focused) card.querySelector(`[data-action="${focused}"]`)?.focus();
}

/** Keeps "5 min ago" true while the page stays open. */
function refreshTimes() {
  for (const node of document.querySelectorAll(".device-card:not([data-status='online']) .last-seen")) {
    node.textContent = ago(node.dataset.at);
  }
}

// ---------------------------------------------------------------- card actions

function reconnectDevice(device, button) {
  const box = $("devices-alert");
  busy(button, box, async () => {
    clearAlert(box);
    await api("POST", `/api/v1/devices/${device.id}/reconnect`);
    showAlert(box, `Reconnecting “${device.name}”…`, "info");
  });
}

function liftQuarantine(device, button) {
  const box = $("devices-alert");
  busy(button, box, async () => {
    clearAlert(box);
    const updated = await api("DELETE", `/api/v1/devices/${device.id}/quarantine`);
    if (view.devices.has(device.id)) {
      view.devices.set(device.id, updated);
      redraw(updated);
    }
    showAlert(box, `“${device.name}” takes campaign and sequence sends again.`, "success");
  });
}

function logoutDevice(device, button) {
  if (!confirm(`Log out “${device.name}”? It is unlinked from its phone and must be paired again.`)) return;
  const box = $("devices-alert");
  busy(button, box, async () => {
    clearAlert(box);
    const updated = await api("POST", `/api/v1/devices/${device.id}/logout`);
    if (view.devices.has(device.id)) {
      view.devices.set(device.id, updated);
      redraw(updated);
    }
    showAlert(box, `“${device.name}” was logged out.`, "success");
    scheduleCounts();
  });
}

function deleteDevice(device, button) {
  if (!confirm(`Delete “${device.name}”? Its session and chats are removed; this cannot be undone.`)) return;
  const box = $("devices-alert");
  busy(button, box, async () => {
    clearAlert(box);
    await api("DELETE", `/api/v1/devices/${device.id}`);
    view.cards.get(device.id)?.remove();
    view.cards.delete(device.id);
    if (view.devices.delete(device.id)) view.total = Math.max(0, view.total - 1);
    if (pairing.device && pairing.device.id === device.id) $("add-device-dialog").close();
    renderSummary();
    showAlert(box, `“${device.name}” was deleted.`, "success");
    scheduleCounts();
  });
}

// ---------------------------------------------------------------- add device and pairing

/** The device being linked in the dialog, and the state of its QR image. */
const pairing = {
  device: null,
  mode: "qr",
  /** Bumped to cancel pending QR retries. */
  qrToken: 0,
  qrRetryMs: 1000,
  qrTimer: null,
};

function openAddDialog() {
  resetDialog();
  $("add-device-title").textContent = "Add device";
  $("add-device-form").hidden = false;
  $("add-device-form").reset();
  $("add-device-dialog").showModal();
  $("device-name").focus();
}

/** Back to a closed, empty dialog. */
function resetDialog() {
  pairing.device = null;
  pairing.mode = "qr";
  pairing.qrToken += 1;
  clearTimeout(pairing.qrTimer);
  clearAlert($("dialog-alert"));
  $("pairing").hidden = true;
  $("qr-image").hidden = true;
  $("qr-image").removeAttribute("src");
  $("qr-waiting").hidden = false;
  $("qr-waiting").textContent = "Waiting for the QR code…";
  $("pair-code-form").reset();
  $("pair-code-form").hidden = false;
  $("pair-code-box").hidden = true;
  $("pair-code").textContent = "";
  $("pair-status").textContent = "";
  $("restart-pairing").hidden = true;
}

/** Shows the pairing part of the dialog for `device`: its QR code, or its pairing code. */
async function openPairing(device, mode) {
  const dialog = $("add-device-dialog");
  if (!dialog.open) {
    resetDialog();
    dialog.showModal();
  }
  pairing.device = device;
  $("add-device-title").textContent = `Link “${device.name}”`;
  $("add-device-form").hidden = true;
  $("pairing").hidden = false;
  if (mode === "code") {
    showCodeStep();
    try {
      const fresh = await api("GET", `/api/v1/devices/${device.id}`);
      if (pairing.device !== device) return;
      if (!fresh.live) {
        pairingStopped(NOT_RUNNING);
      } else if (fresh.live.pair_code) {
        showPairCode(fresh.live.pair_code);
      }
    } catch (err) {
      if (err.status !== 401) showAlert($("dialog-alert"), err.message);
    }
  } else {
    showQrStep();
  }
}

function showQrStep() {
  pairing.mode = "qr";
  $("qr-step").hidden = false;
  $("use-pair-code").hidden = false;
  $("qr-help").hidden = false;
  $("restart-pairing").hidden = true;
  $("code-step").hidden = true;
  $("pair-status").textContent = "";
  pairing.qrRetryMs = 1000;
  loadQr();
  $("done-pairing").focus();
}

function showCodeStep() {
  pairing.mode = "code";
  pairing.qrToken += 1;
  clearTimeout(pairing.qrTimer);
  $("qr-step").hidden = true;
  $("code-step").hidden = false;
  $("pair-phone").focus();
}

function showPairCode(code) {
  $("pair-code").textContent = pairCodeText(code);
  $("pair-code-box").hidden = false;
  $("pair-code-form").hidden = true;
  $("pair-status").textContent = "Waiting for the code to be entered on the phone…";
}

/**
 * Points #qr-image at a fresh qr.svg. Until the device has a QR code (it can take a moment after
 * creation) the image fails with 409; it is then retried with a growing pause. QR_UPDATED events
 * call this again, so the image follows the code as it changes.
 */
function loadQr() {
  if (!pairing.device || pairing.mode !== "qr") return;
  const token = ++pairing.qrToken;
  clearTimeout(pairing.qrTimer);
  const image = $("qr-image");
  image.onload = () => {
    if (token !== pairing.qrToken) return;
    pairing.qrRetryMs = 1000;
    image.hidden = false;
    $("qr-waiting").hidden = true;
  };
  image.onerror = async () => {
    if (token !== pairing.qrToken) return;
    image.hidden = true;
    $("qr-waiting").hidden = false;
    // No QR yet (just created), or none coming (pairing not running): ask the device.
    if (pairing.qrRetryMs >= 2000 && !(await pairingRuns(token))) return;
    if (token !== pairing.qrToken) return;
    pairing.qrTimer = setTimeout(() => {
      if (token === pairing.qrToken) loadQr();
    }, pairing.qrRetryMs);
    pairing.qrRetryMs = Math.min(pairing.qrRetryMs * 2, 8000);
  };
  image.alt = `QR code to link ${pairing.device.name}`;
  image.src = `/api/v1/devices/${pairing.device.id}/qr.svg?t=${Date.now()}`;
}

/**
 * Whether the dialog's device has a running pairing (its actor answers with a pairing status).
 * If not, says so and offers to start it again (a reconnect).
 */
async function pairingRuns(token) {
  const device = pairing.device;
  let fresh;
  try {
    fresh = await api("GET", `/api/v1/devices/${device.id}`);
  } catch (err) {
    if (err.status !== 401) showAlert($("dialog-alert"), err.message);
    return false;
  }
  if (token !== pairing.qrToken || pairing.device !== device) return false;
  const live = fresh.live;
  if (live && live.status === "awaiting_pair_code" && live.pair_code) {
    showCodeStep();
    showPairCode(live.pair_code);
    return false;
  }
  if (live && (live.qr || ["new", "connecting", "awaiting_qr", "reconnecting"].includes(live.status))) {
    return true;
  }
  pairingStopped(live ? stoppedText(live.status, live.reason) : NOT_RUNNING);
  return false;
}

/** Shows that no QR code (or pairing code) is coming, with a button to start pairing again. */
function pairingStopped(message) {
  pairing.qrToken += 1;
  clearTimeout(pairing.qrTimer);
  $("qr-step").hidden = false;
  $("code-step").hidden = true;
  $("use-pair-code").hidden = true;
  $("qr-help").hidden = true;
  $("qr-image").hidden = true;
  $("qr-waiting").hidden = false;
  $("qr-waiting").textContent = "No QR code right now.";
  $("pair-status").textContent = message;
  $("restart-pairing").hidden = false;
}

/** Why pairing ended, for people. */
function stoppedText(status, reason) {
  return `Pairing stopped: ${statusLabel(status)}${reason ? ` (${reason})` : ""}.`;
}

/** Said when the device has no running actor (e.g. the server restarted during pairing). */
const NOT_RUNNING = "This device is not pairing right now (the server may have restarted).";

/** "Start pairing again": reconnects the device, then waits for its new QR code. */
function restartPairing() {
  const device = pairing.device;
  if (!device) return;
  const box = $("dialog-alert");
  clearAlert(box);
  busy($("restart-pairing"), box, async () => {
    await api("POST", `/api/v1/devices/${device.id}/reconnect`);
    if (pairing.device !== device) return;
    $("restart-pairing").hidden = true;
    $("qr-waiting").textContent = "Waiting for the QR code…";
    showQrStep();
  });
}

/** A status change of the device in the dialog. */
function pairingStatus(data) {
  const device = pairing.device;
  const status = $("pair-status");
  if (data.status === "online") {
    $("add-device-dialog").close();
    showAlert($("devices-alert"), `“${device.name}” is linked and online.`, "success");
    return;
  }
  if (PAIRING_STOPPED.has(data.status)) {
    pairingStopped(stoppedText(data.status, data.reason));
  } else if (data.status === "connecting") {
    status.textContent = "Linking…";
  } else if (data.status === "reconnecting") {
    status.textContent = `Connection lost${data.reason ? ` (${data.reason})` : ""}; trying again…`;
  } else if (data.status === "awaiting_qr") {
    status.textContent = "";
    $("restart-pairing").hidden = true;
    if (pairing.mode === "qr" && $("qr-image").hidden) {
      $("qr-waiting").textContent = "Waiting for the QR code…";
      pairing.qrRetryMs = 1000;
      loadQr();
    }
  }
}

function initDialog() {
  const dialog = $("add-device-dialog");
  $("add-device").addEventListener("click", openAddDialog);
  for (const id of ["close-dialog", "cancel-add", "done-pairing"]) {
    $(id).addEventListener("click", () => dialog.close());
  }
  // Pairing goes on in the background after the dialog closes; the card shows how it ends.
  dialog.addEventListener("close", resetDialog);

  $("add-device-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const box = $("dialog-alert");
    clearAlert(box);
    if (!form.reportValidity()) return;
    const name = $("device-name").value.trim();
    if (!name) {
      showAlert(box, "Give the device a name.");
      return;
    }
    busy($("create-device"), box, async () => {
      // Events of the new device can overtake this answer: they wait in `early` meanwhile.
      view.early = view.early || new Map();
      view.creating += 1;
      let device;
      try {
        device = await api("POST", "/api/v1/devices", { name });
        addCard(device);
      } finally {
        view.creating -= 1;
        if (view.creating === 0) replayEarly();
      }
      scheduleCounts();
      await openPairing(device, "qr");
    });
  });

  $("use-pair-code").addEventListener("click", showCodeStep);
  $("restart-pairing").addEventListener("click", restartPairing);

  $("pair-code-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const box = $("dialog-alert");
    clearAlert(box);
    if (!event.currentTarget.reportValidity() || !pairing.device) return;
    const phone = $("pair-phone").value.replace(/\D/g, "");
    if (phone.length < 8 || phone.length > 15) {
      showAlert(box, "Enter the phone number with its country code: 8 to 15 digits.");
      return;
    }
    const device = pairing.device;
    busy($("get-pair-code"), box, async () => {
      const { code } = await api("POST", `/api/v1/devices/${device.id}/pair-code`, { phone });
      if (pairing.device === device) showPairCode(code);
    });
  });
}

/** Applies the status events that arrived while a device was being created here. */
function replayEarly() {
  const early = view.early;
  view.early = null;
  for (const { data, ts } of early ? early.values() : []) deviceStatus(data, ts);
}

/** Shows a device created here, when the list is at its end and unfiltered. */
function addCard(device) {
  if (view.devices.has(device.id)) return;
  if (filtering()) return;
  const atEnd = view.devices.size >= view.total;
  view.total += 1;
  view.counts[device.status] = (view.counts[device.status] || 0) + 1;
  renderChips();
  if (atEnd) {
    view.devices.set(device.id, device);
    const card = deviceCard(device);
    view.cards.set(device.id, card);
    $("device-grid").append(card);
  }
  renderSummary();
}

// ---------------------------------------------------------------- live updates

/** A live-stream event of device-status. */
function onEvent(frame) {
  const data = frame.data || {};
  if (frame.event === "DEVICE_STATUS" || frame.event === "DEVICE_LOGGED_OUT") {
    deviceStatus(data, frame.ts);
  } else if (frame.event === "DEVICE_QUARANTINED" || frame.event === "DEVICE_QUARANTINE_LIFTED") {
    const device = view.devices.get(data.device_id);
    if (device) {
      device.quarantined_until = data.quarantined_until ?? null;
      device.quarantine_reason = data.reason ?? null;
      redraw(device);
    }
  } else if (frame.event === "QR_UPDATED") {
    if (pairing.device && pairing.device.id === data.device_id && pairing.mode === "qr") {
      pairing.qrRetryMs = 1000;
      loadQr();
    }
  }
}

/**
 * Reads the list again: once subscribed (this is also the first load, so no event falls between
 * the two), after a reconnect, and on a seq gap. Members hear only their assigned devices, so
 * their seq skips the others' events: no gap means anything for them.
 */
function onResync(_topics, reason) {
  if (reason === "gap" && view.role === "member") return;
  scheduleRefresh();
}

/** A refused subscription: live updates will not come. */
function onError(frame) {
  if (frame.topic === "device-status") {
    showAlert($("devices-alert"), `Live updates are unavailable: ${frame.error.message}`);
  }
}

/** DEVICE_STATUS: the card changes in place; counts follow shortly. */
function deviceStatus(data, ts) {
  const device = view.devices.get(data.device_id);
  if (device) {
    const changed = device.status !== data.status || device.status_reason !== (data.reason ?? null);
    if (device.status !== data.status) {
      // Counts follow at once for listed devices; the re-read below confirms them.
      view.counts[device.status] = Math.max(0, (view.counts[device.status] || 0) - 1);
      view.counts[data.status] = (view.counts[data.status] || 0) + 1;
      renderChips();
    }
    const linked = data.status === "online" && !device.push_name;
    device.status = data.status;
    device.status_reason = data.reason ?? null;
    device.jid = data.jid ?? null;
    if (data.phone !== undefined) device.phone = data.phone;
    if (data.status === "online" && ts) device.last_seen = ts;
    if (ts) device.updated_at = ts;
    if (changed || data.status === "online") redraw(device);
    // Events carry no profile name: read it once for a newly linked device.
    if (linked) fillProfile(device.id);
  } else if (view.creating > 0) {
    // Perhaps the device being created here: decided once its id is known (replayEarly).
    view.early.set(data.device_id, { data, ts });
    return;
  } else if (view.loadedOnce && !filtering() && view.devices.size >= view.total) {
    // A device this page has not listed yet (added elsewhere) at the end of a complete list.
    scheduleRefresh();
  }
  scheduleCounts();
  if (pairing.device && pairing.device.id === data.device_id) pairingStatus(data);
}

/** Reads one device again for the fields status events lack (push name, last seen). */
async function fillProfile(id) {
  try {
    const fresh = await api("GET", `/api/v1/devices/${id}`);
    const device = view.devices.get(id);
    if (!device) return;
    device.push_name = fresh.push_name;
    device.last_seen = fresh.last_seen;
    redraw(device);
  } catch (err) {
    if (err.status !== 401 && err.status !== 404) console.warn(err);
  }
}

// ---------------------------------------------------------------- start

function initFilters() {
  const input = $("device-search");
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const q = searchTerm(input.value);
      if (q === view.q) return;
      view.q = q;
      load(1);
    }, SEARCH_DELAY_MS);
  });
  $("load-more").addEventListener("click", loadMore);
  if (roleAtLeast(view.role, "owner")) initMemberFilter();
  if (roleAtLeast(view.role, "admin")) initBulkActions();
}

/** Owners: a select of the tenant's members narrows the list to one member's devices. */
async function initMemberFilter() {
  const select = $("member-filter");
  try {
    const users = await api("GET", "/api/v1/users");
    const members = (users.items || users).filter((u) => u.role === "member");
    if (!members.length) return;
    select.replaceChildren(
      el("option", { value: "" }, "Every member"),
      ...members.map((u) => el("option", { value: String(u.id) }, u.display_name || u.email)),
    );
    select.hidden = false;
    select.addEventListener("change", () => {
      view.member = select.value;
      load(1);
    });
  } catch (err) {
    if (err.status !== 401) console.warn(err);
  }
}

/** Platform admins: restart or log out every device the list shows (filter first). */
function initBulkActions() {
  const box = $("devices-alert");
  const shown = () => [...view.devices.values()];
  const restart = $("restart-shown");
  const logout = $("logout-shown");
  restart.hidden = false;
  logout.hidden = false;
  restart.addEventListener("click", () => {
    const ids = shown().map((d) => d.id);
    if (!ids.length || !confirm(`Restart the ${number.format(ids.length)} devices shown?`)) return;
    busy(restart, box, async () => {
      clearAlert(box);
      const report = await api("POST", "/api/v1/admin/devices/restart", { ids });
      showAlert(box, `Restarting ${number.format(report.restarted.length)} devices…`, "info");
    });
  });
  logout.addEventListener("click", () => {
    const linked = shown().filter((d) => d.jid);
    if (!linked.length) {
      showAlert(box, "None of the devices shown is linked to a phone.", "info");
      return;
    }
    if (!confirm(`Log out the ${number.format(linked.length)} linked devices shown? Each must be paired again.`)) return;
    busy(logout, box, async () => {
      clearAlert(box);
      let done = 0;
      for (const device of linked) {
        await api("POST", `/api/v1/devices/${device.id}/logout`);
        done += 1;
        showAlert(box, `Logged out ${number.format(done)} of ${number.format(linked.length)}…`, "info");
      }
      showAlert(box, `Logged out ${number.format(done)} devices.`, "success");
      scheduleCounts();
    });
  });
}

try {
  view.current = await me();
  view.role = view.current.user.role;
  $("add-device").hidden = !roleAtLeast(view.role, "owner");
  initFilters();
  initDialog();
  connectLive({ topics: ["device-status"], onEvent, onResync, onError });
  // The list loads once subscribed (so no event falls between the two), or anyway soon after.
  setTimeout(() => {
    if (!view.loadedOnce && view.generation === 0) load(1);
  }, FIRST_LOAD_WAIT_MS);
  setInterval(refreshTimes, 60000);
} catch (err) {
  if (err.status !== 401) showFatal(err);
}
