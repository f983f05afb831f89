// Campaigns page (static/campaigns.html). The address's hash picks the view:
//
// - "" : every campaign with its status, progress bar, sent/total and creation time; rows of
//   running and scheduled campaigns move live;
// - "#new": the form (members and above) → POST /campaigns, then PUT …/image (a picture) or …/attachment (another file);
//   the API's 422 is shown above the form and its field is marked. Its type is a broadcast (to
//   every matching lead) or an AI lead distribution (kind "ai": unassigned leads shared among
//   the online devices up to a per-device limit, optionally by niche);
// - "" also shows the upcoming scheduled starts, grouped by day in the tenant's zone;
// - "#<id>": one campaign: Start / Pause / Resume / Cancel / Retry failed / Clone / Delete by
//   status (members and above; "Retry failed" also per device in the devices table), live
//   progress (bar, donut of message states, rate, ETA, a row per device), a preview of
//   rendered messages, the results 50 at a time, and a link to the results as CSV.
//
// Progress arrives over the WebSocket (live.js; topics campaign/<id>, event CAMPAIGN_PROGRESS
// whose data is the same Progress as GET …/progress). While the socket is down the page reads
// progress over REST every few seconds instead, and once more after a reconnect or a seq gap.
import { api, me, renderNav, roleAtLeast, el, showAlert, clearAlert, showFatal, FieldError, clearFormMarks, showFailure, submitFormWith, zoneClock, formatWhen, filePath, fileText } from "/static/app.js";
import { connect as connectLive } from "/static/live.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

/** Results rows per request. */
const RESULTS_PAGE = 50;
/** Devices per request when reading the fleet for names and the picker. */
const DEVICES_PAGE = 200;
/** REST polling period while the WebSocket is down. */
const POLL_MS = 3000;
/** The longest message the form accepts (the textarea's maxlength). */
const MESSAGE_MAX = 4096;

/** Campaign states: label and colour family (the tone-* classes of app.css). */
const CAMPAIGN_STATUS = {
  draft: { label: "Draft", tone: "idle" },
  scheduled: { label: "Scheduled", tone: "pairing" },
  running: { label: "Running", tone: "busy" },
  paused: { label: "Paused", tone: "warn" },
  completed: { label: "Completed", tone: "ok" },
  cancelled: { label: "Cancelled", tone: "bad" },
};
/** Campaigns whose progress can still change, and so are watched live in the list. */
const MOVING = new Set(["scheduled", "running", "paused"]);

/** Message states as charted and tabled, in order: label, colour, count from StatusCounts. */
const MESSAGE_STATES = [
  { key: "waiting", label: "Waiting", color: "#aebac1", of: (c) => c.pending + c.sending },
  { key: "sent", label: "Sent", color: "#53bdeb", of: (c) => c.sent },
  { key: "delivered", label: "Delivered", color: "#25d366", of: (c) => c.delivered },
  { key: "read", label: "Read", color: "#008069", of: (c) => c.read },
  { key: "failed", label: "Failed", color: "#d93025", of: (c) => c.failed },
  { key: "skipped", label: "Skipped", color: "#f0a500", of: (c) => c.skipped },
];

/** Buttons of the detail view: the states they apply to (and `show`, when the campaign must also pass it), and what they ask first. */
const ACTIONS = [
  { name: "start", label: "Start", kind: "btn-primary", when: ["draft", "scheduled"] },
  { name: "pause", label: "Pause", kind: "btn-secondary", when: ["running"] },
  { name: "resume", label: "Resume", kind: "btn-primary", when: ["paused"] },
  {
    name: "cancel",
    label: "Cancel campaign",
    kind: "btn-danger",
    when: ["running", "paused"],
    confirm: "Cancel this campaign for good? Messages not sent yet are skipped.",
  },
  {
    name: "retry-failed",
    label: "Retry failed",
    kind: "btn-secondary",
    when: ["running", "paused", "completed"],
    // Only while something failed.
    show: (c) => Boolean(c.progress && c.progress.counts.failed > 0),
    confirm: "Send the failed messages again?",
  },
  { name: "clone", label: "Clone", kind: "btn-secondary", when: ["draft", "scheduled", "running", "paused", "completed", "cancelled"] },
  {
    name: "delete",
    label: "Delete",
    kind: "btn-danger",
    when: ["draft", "scheduled", "completed", "cancelled"],
    confirm: "Delete this campaign and its results?",
  },
];

/** Campaign kinds as listed. */
const CAMPAIGN_KIND = { broadcast: "Broadcast", ai: "AI lead distribution" };

/** Which form field an API validation message ("target: …") is about. */
const ERROR_FIELD = {
  name: "campaign-name",
  kind: "kind-broadcast",
  per_device_limit: "per-device-limit",
  niches: "target-niches",
  message: "campaign-message",
  target: "target-tags",
  devices: "devices-all",
  pacing: "min-delay",
  scheduled_at: "scheduled-at",
};

const number = new Intl.NumberFormat();
const percentFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

const view = {
  /** /me of the signed-in user. */
  current: null,
  /** Members and above may create and control campaigns. */
  canAct: false,
  /** "When" formatter in the tenant's time zone. */
  clock: null,
  /** Campaigns of the list, by id. */
  campaigns: new Map(),
  /** The campaign of the detail view. */
  detail: null,
  /** Devices of the tenant by id (names for tables, the picker), read once. */
  devices: null,
  /** Results paging: the last row id shown. */
  resultsAfter: 0,
  /** Bumped per route change; answers for an older view are dropped. */
  generation: 0,
  /** The tenth of progress last announced to screen readers (with the status). */
  announced: "",
  /** A message for the next campaign page opened (a picture the server refused). */
  notice: null,
  /** An action (start, pause…) is on its way: the buttons wait. */
  acting: false,
};

// ---------------------------------------------------------------- formatting

/** "26 Nov 2026, 15:04" in the tenant's zone. */
const when = (iso) => formatWhen(view.clock, iso);

/** "45 s", "12 min", "2 h 5 min". */
function duration(secs) {
  if (secs < 60) return `${secs} s`;
  const mins = Math.round(secs / 60);
  if (mins < 60) return `${mins} min`;
  return `${Math.floor(mins / 60)} h ${mins % 60} min`;
}

function statusBadge(status) {
  const info = CAMPAIGN_STATUS[status] || { label: status, tone: "idle" };
  return el("span", { class: `status-badge tone-${info.tone}`, dataset: { status } }, info.label);
}

/** "broadcast" or "ai" (servers before AI lead distribution send no kind). */
const kindOf = (campaign) => campaign.kind || "broadcast";
const kindLabel = (campaign) => CAMPAIGN_KIND[kindOf(campaign)] || kindOf(campaign);

/** Messages WhatsApp accepted (sent, delivered or read). */
const accepted = (counts) => counts.sent + counts.delivered + counts.read;

const deviceName = (id) => {
  if (id === null || id === undefined) return "Waiting for a device";
  const device = view.devices && view.devices.get(id);
  return device ? device.name : `Device #${id}`;
};

/** A table cell labelled with its column for the stacked phone layout. */
const cell = (label, ...children) => el("td", { "data-label": label }, ...children);

/** A progress bar of `percent` (0–100), coloured by the campaign's `status`. */
function progressBar(percent, label, status) {
  const fill = el("span", { class: "progress-fill" });
  fill.style.width = `${percent}%`;
  return el(
    "div",
    {
      class: "progress",
      role: "progressbar",
      dataset: { status },
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": percent,
      "aria-label": label,
    },
    fill,
  );
}

// ---------------------------------------------------------------- routing

function route() {
  view.generation += 1;
  const hash = location.hash.slice(1);
  const id = /^\d+$/.test(hash) ? Number(hash) : null;
  const creating = hash === "new" && view.canAct;
  $("campaigns").hidden = id !== null || creating;
  $("create").hidden = !creating;
  $("detail").hidden = id === null;
  $("timeline").hidden = true;
  view.detail = null;
  if (id !== null) openDetail(id);
  else if (creating) openForm();
  else loadList();
}

/** Reads the current view again (after a reconnect, or while polling). */
function refresh() {
  if (!$("detail").hidden && view.detail) refreshProgress(view.detail.id);
  else if (!$("campaigns").hidden) loadList();
}

// ---------------------------------------------------------------- list

async function loadList() {
  const generation = view.generation;
  let body;
  try {
    body = await api("GET", "/api/v1/campaigns");
    clearAlert($("list-alert"));
  } catch (err) {
    showFailure($("list-alert"), err);
    return;
  }
  if (generation !== view.generation) return;
  view.campaigns = new Map(body.campaigns.map((c) => [c.id, c]));
  const tbody = $("campaign-list").tBodies[0];
  tbody.replaceChildren(...body.campaigns.map(campaignRow));
  if (body.campaigns.length === 0) {
    const hint = view.canAct ? "No campaigns yet. “New campaign” writes the first." : "No campaigns yet.";
    tbody.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, hint)));
  }
  renderTimeline(body.campaigns);
  watch(body.campaigns.filter((c) => MOVING.has(c.status)).map((c) => c.id));
}

/** The day of `iso` in the tenant's zone ("Sat, 5 Dec 2026"), the timeline's group key. */
function dayOf(iso) {
  const options = { weekday: "short", day: "numeric", month: "short", year: "numeric" };
  try {
    return new Intl.DateTimeFormat(undefined, { ...options, timeZone: view.current.tenant.time_zone }).format(new Date(iso));
  } catch {
    return new Intl.DateTimeFormat(undefined, options).format(new Date(iso));
  }
}

/** Upcoming scheduled starts, soonest first, grouped by day in the tenant's zone. */
function renderTimeline(campaigns) {
  const upcoming = campaigns
    .filter((c) => c.status === "scheduled" && c.scheduled_at)
    .sort((a, b) => new Date(a.scheduled_at) - new Date(b.scheduled_at));
  const box = $("timeline-days");
  $("timeline").hidden = false;
  if (upcoming.length === 0) {
    box.replaceChildren(el("p", { class: "muted" }, "No campaign is scheduled."));
    return;
  }
  const days = new Map();
  for (const c of upcoming) {
    const day = dayOf(c.scheduled_at);
    if (!days.has(day)) days.set(day, []);
    days.get(day).push(c);
  }
  box.replaceChildren(
    ...[...days].map(([day, list]) =>
      el(
        "div",
        { class: "timeline-day" },
        el("h3", { class: "timeline-date" }, day),
        el(
          "ul",
          { class: "timeline-items" },
          ...list.map((c) =>
            el(
              "li",
              { dataset: { campaignId: c.id } },
              el("time", { datetime: c.scheduled_at }, when(c.scheduled_at)),
              " ",
              el("a", { href: `#${c.id}` }, c.name),
            ),
          ),
        ),
      ),
    ),
  );
}

function campaignRow(campaign) {
  const p = campaign.progress;
  const percent = p ? p.percent : 0;
  return el(
    "tr",
    { dataset: { campaignId: campaign.id } },
    cell("Name", el("a", { href: `#${campaign.id}`, class: "campaign-link" }, campaign.name)),
    cell("Type", el("span", { class: "badge", dataset: { kind: kindOf(campaign) } }, kindLabel(campaign))),
    cell("Status", statusBadge(campaign.status)),
    cell(
      "Progress",
      el(
        "span",
        { class: "progress-cell" },
        progressBar(percent, `${campaign.name}: ${percentFormat.format(percent)} % done`, campaign.status),
        el("span", { class: "progress-percent" }, `${percentFormat.format(percent)} %`),
      ),
    ),
    cell("Sent / total", p ? `${number.format(accepted(p.counts))} / ${number.format(p.total)}` : "—"),
    cell("Created", when(campaign.created_at)),
  );
}

/** A progress event for a listed campaign: its row is drawn again. */
function listProgress(p) {
  const campaign = view.campaigns.get(p.campaign_id);
  const row = $("campaign-list").querySelector(`tr[data-campaign-id="${p.campaign_id}"]`);
  if (!campaign || !row) return;
  campaign.progress = p;
  campaign.status = p.status;
  row.replaceWith(campaignRow(campaign));
}

// ---------------------------------------------------------------- devices

/** Every device of the tenant (members: theirs), read once per page. */
async function loadDevices() {
  if (view.devices) return view.devices;
  const devices = new Map();
  for (let page = 1; ; page += 1) {
    const body = await api("GET", `/api/v1/devices?page=${page}&per_page=${DEVICES_PAGE}`);
    for (const device of body.items) devices.set(device.id, device);
    if (body.items.length === 0 || devices.size >= body.total) break;
  }
  view.devices = devices;
  return devices;
}

// ---------------------------------------------------------------- form

async function openForm() {
  clearForm();
  $("campaign-name").focus();
  $("schedule-hint").textContent = `In ${view.current.tenant.time_zone} time. Empty: a draft you start yourself.`;
  const box = $("form-alert");
  const [lists, devices] = await Promise.allSettled([loadListChoices(), loadDevices()]);
  if (lists.status === "rejected") showFailure(box, lists.reason);
  if (devices.status === "rejected") showFailure(box, devices.reason);
  else renderDeviceChoices(devices.value);
}

/** Checkboxes of the lead lists, or a field for list ids where the server has no list API. */
async function loadListChoices() {
  let body;
  try {
    body = await api("GET", "/api/v1/lead-lists");
  } catch (err) {
    $("list-ids-field").hidden = false;
    $("list-choices").hidden = true;
    if (err.status === 404) return;
    throw err;
  }
  const lists = Array.isArray(body) ? body : body.lists || [];
  const choices = $("list-choices");
  choices.replaceChildren(
    ...lists.map((list) =>
      el(
        "label",
        { class: "check" },
        el("input", { type: "checkbox", name: "list-id", value: list.id }),
        `${list.name} (${number.format(list.leads ?? 0)})`,
      ),
    ),
  );
  if (lists.length === 0) choices.append(el("p", { class: "muted" }, "No lead lists yet: use tags."));
  choices.hidden = false;
  $("list-ids-field").hidden = true;
}

function renderDeviceChoices(devices) {
  const choices = $("device-choices");
  choices.replaceChildren(
    ...[...devices.values()].map((device) =>
      el(
        "label",
        { class: "check" },
        el("input", { type: "checkbox", name: "device-id", value: device.id }),
        `${device.name} · ${device.status}`,
      ),
    ),
  );
  if (devices.size === 0) choices.append(el("p", { class: "muted" }, "No devices yet."));
}

function updateCount() {
  const length = $("campaign-message").value.length;
  $("message-count").textContent = `${number.format(length)} / ${number.format(MESSAGE_MAX)}`;
}

/** "a, b,,c " → ["a", "b", "c"]. */
const words = (text) =>
  text
    .split(",")
    .map((w) => w.trim())
    .filter(Boolean);

/** Seconds typed → milliseconds for the API (undefined when empty: the tenant's pacing). */
function millis(id) {
  const value = $(id).value.trim();
  return value === "" ? undefined : Math.round(Number(value) * 1000);
}

function whole(id) {
  const value = $(id).value.trim();
  return value === "" ? undefined : Number(value);
}

/** Shows the per-device limit and niches for an AI lead distribution only. */
function updateKind() {
  const ai = $("kind-ai").checked;
  $("ai-fields").hidden = !ai;
  $("per-device-limit").required = ai;
  if (ai) loadPool();
}

/** How many leads wait in the pool and how many devices are online (when the server says). */
async function loadPool() {
  const summary = $("pool-summary");
  try {
    const pool = await api("GET", "/api/v1/lead-pool");
    summary.textContent = `${number.format(pool.unassigned)} lead${pool.unassigned === 1 ? "" : "s"} not yet given to a device; ${number.format(pool.online_devices)} device${pool.online_devices === 1 ? "" : "s"} online.`;
  } catch {
    // Only a hint: the form works without it.
    summary.textContent = "";
  }
}

/** The request body from the form; throws a sentence for what the form itself can tell. */
function formBody() {
  const form = $("campaign-form");
  const checked = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => Number(i.value));
  let listIds = checked("list-id");
  if (!$("list-ids-field").hidden) {
    const typed = words($("target-list-ids").value);
    if (typed.some((w) => !/^\d+$/.test(w))) throw new Error("Lead list ids are numbers, e.g. 3, 7.");
    listIds = typed.map(Number);
  }
  const body = {
    name: $("campaign-name").value.trim(),
    message: $("campaign-message").value,
    target: { list_ids: listIds, tags: words($("target-tags").value), statuses: words($("target-statuses").value) },
    pacing: {
      min_delay_ms: millis("min-delay"),
      max_delay_ms: millis("max-delay"),
      per_minute: whole("per-minute"),
      per_day: whole("per-day"),
    },
    on_device_loss: $("on-device-loss").value,
  };
  // A broadcast sends no kind, so servers without AI lead distribution accept it as before.
  if ($("kind-ai").checked) {
    const limit = $("per-device-limit").value.trim();
    if (!/^\d+$/.test(limit) || Number(limit) < 1) {
      throw new FieldError("Per-device limit: give how many leads each device takes (1 or more).", $("per-device-limit"));
    }
    body.kind = "ai";
    body.per_device_limit = Number(limit);
    body.target.niches = words($("target-niches").value);
  }
  if ($("devices-set").checked) {
    const ids = checked("device-id");
    if (ids.length === 0) throw new Error("Choose at least one device, or send from all online devices.");
    body.devices = { mode: "set", ids };
  }
  if ($("scheduled-at").value) body.scheduled_at = $("scheduled-at").value;
  return body;
}

/** The field a validation message names ("message: unclosed {" → the message box), or null. */
function invalidField(message) {
  const key = String(message).split(":")[0].trim().toLowerCase().replace(/\s+/g, "_");
  return ERROR_FIELD[key] ? $(ERROR_FIELD[key]) : null;
}

/** Hides the form's message and unmarks its fields. */
function clearForm() {
  clearFormMarks($("campaign-form"), $("form-alert"));
}

function submitForm(event) {
  return submitFormWith(event, {
    box: $("form-alert"),
    button: $("create-campaign"),
    build: formBody,
    save: async (body, form) => {
      const created = await api("POST", "/api/v1/campaigns", body);
      const picture = $("campaign-image").files[0];
      let pictureError = null;
      if (picture) {
        try {
          await api("PUT", filePath(`/api/v1/campaigns/${created.id}`, picture), picture);
        } catch (err) {
          pictureError = err;
        }
      }
      form.reset();
      updateCount();
      updateKind();
      if (pictureError) view.notice = `The campaign was saved without its file: ${pictureError.message}`;
      location.hash = String(created.id);
    },
    fieldFor: (err) => (err.status === 422 ? invalidField(err.message) : null),
  });
}

function initForm() {
  $("new-campaign").hidden = !view.canAct;
  if (view.current.user.role === "member") $("devices-all-label").textContent = "All your online devices";
  $("new-campaign").addEventListener("click", () => (location.hash = "new"));
  $("cancel-create").addEventListener("click", () => (location.hash = ""));
  $("campaign-message").addEventListener("input", updateCount);
  const pickDevices = () => ($("device-choices").hidden = !$("devices-set").checked);
  $("devices-all").addEventListener("change", pickDevices);
  $("devices-set").addEventListener("change", pickDevices);
  $("campaign-form").addEventListener("submit", submitForm);
  $("kind-broadcast").addEventListener("change", updateKind);
  $("kind-ai").addEventListener("change", updateKind);
  updateCount();
  updateKind();
}

// ---------------------------------------------------------------- detail

async function openDetail(id) {
  const generation = view.generation;
  const box = $("detail-alert");
  clearAlert(box);
  if (view.notice) showAlert(box, view.notice);
  view.notice = null;
  $("detail-title").textContent = "Loading…";
  let campaign;
  try {
    [campaign] = await Promise.all([api("GET", `/api/v1/campaigns/${id}`), loadDevices().catch(() => null)]);
  } catch (err) {
    if (generation !== view.generation) return;
    $("detail-title").textContent = err.status === 404 ? "Campaign not found" : "Campaign";
    showFailure(box, err);
    return;
  }
  if (generation !== view.generation) return;
  view.detail = campaign;
  view.announced = "";
  $("export-csv").href = `/api/v1/campaigns/${campaign.id}/export.csv`;
  renderDetail();
  renderProgress(campaign.progress || emptyProgress(campaign));
  watch([id]);
  loadPreview(campaign.id);
  loadResults(true);
}

function emptyProgress(campaign) {
  const counts = { pending: 0, sending: 0, sent: 0, delivered: 0, read: 0, failed: 0, skipped: 0 };
  return {
    campaign_id: campaign.id,
    status: campaign.status,
    counts,
    total: 0,
    percent: 0,
    sent_last_minute: 0,
    eta_seconds: null,
    per_device: [],
  };
}

/** Title, status, buttons and facts of the campaign. */
function renderDetail() {
  const c = view.detail;
  document.title = `${c.name} · Campaigns · wafleet`;
  $("detail-title").textContent = c.name;
  $("detail-status").replaceWith(Object.assign(statusBadge(c.status), { id: "detail-status" }));
  renderActions();
  const fact = (term, ...value) => el("div", {}, el("dt", {}, term), el("dd", {}, ...value));
  const target = c.target;
  const targetText = [
    target.list_ids.length ? `Lead lists: ${target.list_ids.join(", ")}` : null,
    target.tags.length ? `Tags: ${target.tags.join(", ")}` : null,
    target.statuses.length ? `Statuses: ${target.statuses.join(", ")}` : null,
    target.niches && target.niches.length ? `Niches: ${target.niches.join(", ")}` : null,
  ].filter(Boolean);
  const facts = [
    fact("Message", el("span", { class: "message-text" }, c.message)),
    fact("Type", kindLabel(c)),
    kindOf(c) === "ai" ? fact("Per-device limit", `${number.format(c.per_device_limit ?? 0)} leads per device`) : null,
    fact("File", c.file ? `${fileText(c.file)}${["voice", "audio"].includes(c.file.kind) ? " (sent without the message text)" : " (the message is its caption)"}` : "No"),
    fact("Leads", targetText.join(" · ")),
    fact("Devices", devicesText(c.devices)),
    fact("Pacing", pacingText(c.pacing)),
    fact("If a device goes offline", c.on_device_loss === "wait" ? "Wait for it" : "Move its messages"),
    c.scheduled_at ? fact("Scheduled", when(c.scheduled_at)) : null,
    c.started_at ? fact("Started", when(c.started_at)) : null,
    c.finished_at ? fact("Finished", when(c.finished_at)) : null,
    fact("Created", when(c.created_at)),
  ];
  $("detail-facts").replaceChildren(...facts.filter(Boolean));
}

function devicesText(choice) {
  if (choice.mode === "set") return choice.ids.map(deviceName).join(", ");
  if (choice.mode === "member") return "The devices of one team member";
  return "All online devices";
}

function pacingText(p) {
  const parts = [];
  if (p.min_delay_ms !== undefined || p.max_delay_ms !== undefined) {
    const secs = (ms) => (ms === undefined ? "usual" : percentFormat.format(ms / 1000));
    const gap = p.min_delay_ms === p.max_delay_ms ? secs(p.min_delay_ms) : `${secs(p.min_delay_ms)}–${secs(p.max_delay_ms)}`;
    parts.push(`${gap} s between messages`);
  }
  if (p.per_minute !== undefined) parts.push(`${number.format(p.per_minute)} a minute`);
  if (p.per_day !== undefined) parts.push(`${number.format(p.per_day)} a day`);
  return parts.length ? `${parts.join(", ")} per device` : "Your usual pacing";
}

/** The buttons for the campaign's state; the same set is kept as it is (and keeps focus). */
function renderActions() {
  const c = view.detail;
  const actions = view.canAct ? ACTIONS.filter((a) => a.when.includes(c.status) && (!a.show || a.show(c))) : [];
  const box = $("detail-actions");
  const names = actions.map((a) => a.name).join(" ");
  if (box.dataset.actions !== names) {
    box.dataset.actions = names;
    box.replaceChildren(
      ...actions.map((a) =>
        el("button", { type: "button", class: `btn ${a.kind}`, dataset: { action: a.name }, onclick: () => act(a) }, a.label),
      ),
    );
  }
  for (const button of box.children) button.disabled = view.acting;
  box.hidden = actions.length === 0;
}

async function act(action) {
  if (view.acting || (action.confirm && !confirm(action.confirm))) return;
  const c = view.detail;
  const before = c.status;
  const box = $("detail-alert");
  clearAlert(box);
  view.acting = true;
  renderActions();
  try {
    if (action.name === "delete") {
      await api("DELETE", `/api/v1/campaigns/${c.id}`);
      location.hash = "";
      return;
    }
    const answer = await api("POST", `/api/v1/campaigns/${c.id}/${action.name}`);
    if (action.name === "clone") {
      view.notice = `A copy of “${c.name}” was saved as a draft.`;
      location.hash = String(answer.id);
      return;
    }
    const fresh = answer.campaign || answer;
    // A live event may have moved the campaign on meanwhile (a short one completes quickly).
    if (view.detail && view.detail.id === fresh.id && view.detail.status === before) {
      view.detail = fresh;
      renderDetail();
      if (fresh.progress) renderProgress(fresh.progress);
      loadResults(true);
    }
  } catch (err) {
    showFailure(box, err);
  } finally {
    view.acting = false;
    if (view.detail) renderActions();
  }
}

async function refreshProgress(id) {
  try {
    applyProgress(await api("GET", `/api/v1/campaigns/${id}/progress`));
  } catch (err) {
    if (err.status !== 401) console.warn(err);
  }
}

/** A Progress from the socket or REST, for whichever view shows that campaign. */
function applyProgress(p) {
  const c = view.detail;
  if (!c || c.id !== p.campaign_id) {
    listProgress(p);
    return;
  }
  renderProgress(p);
  if (p.status !== c.status) {
    // The state moved (completed, paused elsewhere…): buttons, facts and results follow.
    c.status = p.status;
    api("GET", `/api/v1/campaigns/${c.id}`)
      .then((fresh) => {
        // An answer overtaken by a later state change is dropped (that change reads again).
        if (view.detail && view.detail.id === fresh.id && view.detail.status === fresh.status) {
          view.detail = fresh;
          renderDetail();
        }
      })
      .catch((err) => showFailure($("detail-alert"), err));
    renderDetail();
    loadResults(true);
  }
}

function renderProgress(p) {
  if (view.detail && view.detail.id === p.campaign_id) {
    // Buttons that depend on the counts ("Retry failed") follow them.
    view.detail.progress = p;
    renderActions();
  }
  const bar = $("progress-bar");
  bar.dataset.status = p.status;
  bar.setAttribute("aria-valuenow", String(p.percent));
  bar.querySelector(".progress-fill").style.width = `${p.percent}%`;
  $("progress-percent").textContent = `${percentFormat.format(p.percent)} %`;
  const stats = [`${number.format(accepted(p.counts))} of ${number.format(p.total)} sent`];
  if (p.status === "running") {
    stats.push(`${number.format(p.sent_last_minute)} in the last minute`);
    if (p.eta_seconds !== null && p.eta_seconds !== undefined) stats.push(`about ${duration(p.eta_seconds)} left`);
  }
  $("progress-stats").textContent = stats.join(" · ");
  // Screen readers hear each tenth and each change of state, not every event.
  const label = CAMPAIGN_STATUS[p.status] ? CAMPAIGN_STATUS[p.status].label : p.status;
  const announce = `${label}: ${Math.floor(p.percent / 10) * 10} % done`;
  if (announce !== view.announced) {
    view.announced = announce;
    $("progress-announce").textContent = announce;
  }
  renderDonut(p);
  renderDevices(p);
}

/** The donut of message states (one stroked arc per state) and its legend with counts. */
function renderDonut(p) {
  const svg = $("status-donut");
  const shape = (tag, attrs) => {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    return node;
  };
  // r = 100 / 2π: the circumference is 100, so dash lengths are percentages.
  const ring = { cx: 21, cy: 21, r: 15.9155, fill: "none", "stroke-width": 6 };
  const arcs = [shape("circle", { ...ring, stroke: "#e9edef" })];
  let start = 0;
  for (const state of MESSAGE_STATES) {
    const share = p.total ? (state.of(p.counts) * 100) / p.total : 0;
    if (share > 0) {
      arcs.push(
        shape("circle", {
          ...ring,
          stroke: state.color,
          "stroke-dasharray": `${share} ${100 - share}`,
          // Dashes start at 3 o'clock; 25 moves them to 12 o'clock, then clockwise.
          "stroke-dashoffset": 25 - start,
        }),
      );
    }
    start += share;
  }
  const total = shape("text", { x: 21, y: 21, class: "donut-total", "text-anchor": "middle", "dominant-baseline": "central" });
  total.textContent = number.format(p.total);
  svg.replaceChildren(svg.querySelector("title"), ...arcs, total);
  $("status-legend").replaceChildren(
    ...MESSAGE_STATES.map((state) => {
      const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.background = state.color;
      return el(
        "li",
        { dataset: { state: state.key } },
        swatch,
        el("span", {}, state.label),
        el("strong", { class: "legend-count" }, number.format(state.of(p.counts))),
      );
    }),
  );
}

function renderDevices(p) {
  const tbody = $("device-progress").tBodies[0];
  tbody.replaceChildren(
    ...p.per_device.map((d) =>
      el(
        "tr",
        { dataset: { deviceId: d.device_id ?? "" } },
        cell("Device", deviceName(d.device_id)),
        ...MESSAGE_STATES.map((state) => cell(state.label, number.format(state.of(d.counts)))),
        cell("Total", el("strong", {}, number.format(MESSAGE_STATES.reduce((n, s) => n + s.of(d.counts), 0)))),
        cell("", retryDeviceButton(p, d)),
      ),
    ),
  );
  if (p.per_device.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "Devices are picked when the campaign starts.")));
  }
}

/** "Retry" for one device's failed messages (members and above, once started), or nothing. */
function retryDeviceButton(p, d) {
  const started = ["running", "paused", "completed"].includes(p.status);
  if (!view.canAct || !started || d.device_id === null || d.counts.failed === 0) return "";
  return el(
    "button",
    {
      type: "button",
      class: "btn btn-secondary btn-small",
      dataset: { retryDevice: d.device_id },
      onclick: (event) => retryDevice(event.currentTarget, d.device_id),
    },
    "Retry failed",
  );
}

/** Puts one device's failed messages back in the queue. */
async function retryDevice(button, deviceId) {
  const c = view.detail;
  if (!c || !confirm(`Send the failed messages of ${deviceName(deviceId)} again?`)) return;
  const box = $("detail-alert");
  clearAlert(box);
  button.disabled = true;
  try {
    const answer = await api("POST", `/api/v1/campaigns/${c.id}/retry-failed`, { device_id: deviceId });
    showAlert(box, `${number.format(answer.retried)} message${answer.retried === 1 ? "" : "s"} queued again.`, "info");
    if (view.detail && view.detail.id === c.id) {
      view.detail = answer.campaign;
      renderDetail();
      renderProgress(answer.campaign.progress);
      loadResults(true);
    }
  } catch (err) {
    showFailure(box, err);
    button.disabled = false;
  }
}

async function loadPreview(id) {
  const generation = view.generation;
  try {
    const preview = await api("GET", `/api/v1/campaigns/${id}/preview?count=3`);
    if (generation !== view.generation) return;
    const leads = `${number.format(preview.leads)} lead${preview.leads === 1 ? "" : "s"} match`;
    $("preview-summary").textContent = preview.samples.length
      ? `${leads}. As ${preview.samples.length === 1 ? "one of them gets" : "some of them get"} it:`
      : `${leads}.`;
    $("preview").replaceChildren(
      ...preview.samples.map((s) =>
        el(
          "li",
          { class: "preview-item" },
          el("span", { class: "preview-to" }, `${s.name} · +${s.phone}`),
          el("span", { class: "bubble-text" }, s.text),
        ),
      ),
    );
  } catch (err) {
    if (generation === view.generation) showFailure($("detail-alert"), err);
  }
}

/** The first page of results (`reset`), or the next one. */
async function loadResults(reset) {
  const c = view.detail;
  if (!c) return;
  const generation = view.generation;
  const more = $("results-more");
  const after = reset ? 0 : view.resultsAfter;
  more.disabled = true;
  try {
    const page = await api("GET", `/api/v1/campaigns/${c.id}/messages?after=${after}&limit=${RESULTS_PAGE}`);
    if (generation !== view.generation) return;
    const rows = page.messages.map((m) =>
      el(
        "tr",
        { dataset: { messageId: m.id } },
        cell("Phone", `+${m.phone}`),
        cell("Device", m.device_id === null ? "—" : deviceName(m.device_id)),
        cell("Status", el("span", { class: `badge badge-msg-${m.status}` }, m.status)),
        cell("Attempts", number.format(m.attempts)),
        cell("Error", m.error || "—"),
      ),
    );
    const tbody = $("results").tBodies[0];
    if (reset) tbody.replaceChildren(...rows);
    else tbody.append(...rows);
    if (reset && rows.length === 0) {
      tbody.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "Messages are written when the campaign starts.")));
    }
    if (page.messages.length) view.resultsAfter = page.messages[page.messages.length - 1].id;
    more.hidden = page.messages.length < RESULTS_PAGE;
  } catch (err) {
    if (generation === view.generation) showFailure($("detail-alert"), err);
  } finally {
    more.disabled = false;
  }
}

// ---------------------------------------------------------------- live

/** The page's live stream (opened at start), and the REST polling while it is down. */
const live = { stream: null, poll: null };

/** Watches exactly these campaigns: subscribes to the new topics, drops the others. */
function watch(ids) {
  live.stream.setTopics(ids.map((id) => `campaign/${id}`));
}

/** CAMPAIGN_PROGRESS of a watched campaign, for whichever view shows it. */
function onEvent(frame) {
  if (frame.event === "CAMPAIGN_PROGRESS" && frame.data) applyProgress(frame.data);
}

/** After a reconnect or a seq gap the view is read again (the first load came before). */
function onResync(_topics, reason) {
  if (reason !== "subscribed") refresh();
}

/** Polls over REST while the socket is down. */
function onState(state) {
  if (state === "reconnecting" && live.poll === null) live.poll = setInterval(refresh, POLL_MS);
  if (state === "connected") {
    clearInterval(live.poll);
    live.poll = null;
  }
}

// ---------------------------------------------------------------- start

try {
  view.current = await me();
  renderNav(view.current, "campaigns");
  view.canAct = roleAtLeast(view.current.user.role, "member");
  view.clock = zoneClock(view.current.tenant.time_zone);
  initForm();
  $("results-more").addEventListener("click", () => loadResults(false));
  window.addEventListener("hashchange", route);
  live.stream = connectLive({ onEvent, onResync, onState });
  route();
} catch (err) {
  if (err.status !== 401) showFatal(err);
}
