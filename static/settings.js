// Settings page: the business's name and time zone, broadcast defaults (pacing, caps, quiet
// hours, warm-up, default country, opt-out keywords), the lead webhook's signing secret and the
// daemon's data retention (read-only). Owners change them; members read them; viewers see what
// the API lets them (the broadcast defaults answer 403 to viewers, the webhook secret to
// everyone but owners). Every refusal is shown under the field the API names.
import { api, me, forgetMe, renderNav, roleAtLeast, el, showAlert, clearAlert, showFatal, busy, copyField, submitFormWith, FieldError, zoneClock, formatWhen } from "/static/app.js";
import { connect as connectLive } from "/static/live.js";

const $ = (id) => document.getElementById(id);

let current;
let owner = false;

/**
 * The field an API message names by its first word ("time_zone: …", "per_day must be …"), or
 * null. `fields` maps the API's field names to element ids.
 */
function namedField(err, fields) {
  const match = /^\s*([a-z_]+)/i.exec(String(err.message));
  const key = match ? match[1].toLowerCase() : "";
  return fields[key] ? $(fields[key]) : null;
}

// ---------------------------------------------------------------- business

/** Ticks the "time there now" clock in `zone`. */
function showZoneNow(zone) {
  const now = new Date();
  const node = $("zone-now");
  node.dateTime = now.toISOString();
  node.dataset.zone = zone;
  node.textContent = formatWhen(zoneClock(zone), now.toISOString());
}

async function loadBusiness() {
  const tenant = await api("GET", "/api/v1/tenant");
  $("tenant-name").value = tenant.name;
  $("tenant-zone").value = tenant.time_zone;
  showZoneNow(tenant.time_zone);
}

$("business-form").addEventListener("submit", (event) =>
  submitFormWith(event, {
    box: $("business-alert"),
    button: $("save-business"),
    build: () => ({ name: $("tenant-name").value.trim(), time_zone: $("tenant-zone").value.trim() }),
    save: async (body) => {
      const tenant = await api("PATCH", "/api/v1/tenant", body);
      // /me carries the zone every page formats times with.
      forgetMe();
      current = await me();
      renderNav(current, "settings");
      showZoneNow(tenant.time_zone);
      showAlert($("business-alert"), `Saved. Times now show in ${tenant.time_zone}.`, "success");
    },
    fieldFor: (err) => namedField(err, { name: "tenant-name", time_zone: "tenant-zone" }),
  }),
);

// ---------------------------------------------------------------- broadcast defaults

/** Form fields of the pacing: API name → [element id, milliseconds shown as seconds]. */
const PACING = {
  min_delay_ms: ["min-delay", true],
  max_delay_ms: ["max-delay", true],
  per_minute: ["per-minute", false],
  per_day: ["per-day", false],
  warmup_days: ["warmup-days", false],
  warmup_first_day: ["warmup-first-day", false],
};

/** API field names → element ids, for the refusals. */
const BROADCAST_FIELDS = {
  ...Object.fromEntries(Object.entries(PACING).map(([key, [id]]) => [key, id])),
  quiet_hours: "quiet-hours",
  default_country: "default-country",
  opt_out_keywords: "opt-out-keywords",
};

/** The last answer of the settings route: what is in force and what the tenant stored. */
let broadcast = null;

function showBroadcast(view) {
  broadcast = view;
  const { effective } = view;
  for (const [key, [id, ms]] of Object.entries(PACING)) {
    $(id).value = ms ? String(effective.pacing[key] / 1000) : String(effective.pacing[key]);
  }
  $("quiet-hours").value = effective.pacing.quiet_hours || "";
  $("typing").checked = Boolean(effective.pacing.typing);
  $("default-country").value = effective.default_country;
  $("opt-out-keywords").value = effective.opt_out_keywords.join("\n");
}

async function loadBroadcast() {
  try {
    showBroadcast(await api("GET", "/api/v1/settings/broadcast"));
  } catch (err) {
    if (err.status !== 403) throw err;
    // Viewers: the API keeps these to members and owners.
    $("broadcast").hidden = true;
  }
}

/**
 * The overrides to store: a value the tenant stored before stays stored; a value equal to the
 * configured default is left to follow the configuration.
 */
function broadcastBody() {
  const { effective, stored } = broadcast;
  const pacing = {};
  const number = (id) => {
    const value = Number($(id).value);
    if ($(id).value.trim() === "" || !Number.isFinite(value) || value < 0) {
      throw new FieldError("Give a number, 0 or more.", $(id));
    }
    return value;
  };
  for (const [key, [id, ms]] of Object.entries(PACING)) {
    const value = ms ? Math.round(number(id) * 1000) : Math.round(number(id));
    if (value !== effective.pacing[key] || key in (stored.pacing || {})) pacing[key] = value;
  }
  const quiet = $("quiet-hours").value.trim();
  if (quiet !== (effective.pacing.quiet_hours || "") || "quiet_hours" in (stored.pacing || {})) pacing.quiet_hours = quiet;
  const typing = $("typing").checked;
  if (typing !== effective.pacing.typing || "typing" in (stored.pacing || {})) pacing.typing = typing;
  const body = { pacing };
  const country = $("default-country").value.trim().toUpperCase();
  if (country !== effective.default_country || stored.default_country) body.default_country = country;
  const keywords = $("opt-out-keywords").value.split(/[\n,]/).map((k) => k.trim()).filter(Boolean);
  if (keywords.join("\n") !== effective.opt_out_keywords.join("\n") || stored.opt_out_keywords) {
    body.opt_out_keywords = keywords;
  }
  return body;
}

$("broadcast-form").addEventListener("submit", (event) =>
  submitFormWith(event, {
    box: $("broadcast-alert"),
    button: $("save-broadcast"),
    build: broadcastBody,
    save: async (body) => {
      showBroadcast(await api("PUT", "/api/v1/settings/broadcast", body));
      showAlert($("broadcast-alert"), "Saved. New campaigns and sequence messages use these defaults.", "success");
    },
    fieldFor: (err) => namedField(err, BROADCAST_FIELDS),
  }),
);

// ---------------------------------------------------------------- lead webhook

async function loadWebhook() {
  const hook = await api("GET", "/api/v1/settings/webhook");
  $("webhook-status").textContent = hook.configured
    ? `A secret is set (made ${formatWhen(zoneClock(current.tenant.time_zone), hook.created_at)}). Senders put ${hook.tenant_id} in X-Wafleet-Tenant.`
    : `No secret yet: the lead webhook refuses every delivery until you make one. Senders put ${hook.tenant_id} in X-Wafleet-Tenant.`;
}

$("rotate-webhook").addEventListener("click", () => {
  if (!confirm("Make a new signing secret? Senders using the current one are refused from now on.")) return;
  busy($("rotate-webhook"), $("webhook-alert"), async () => {
    clearAlert($("webhook-alert"));
    const made = await api("POST", "/api/v1/settings/webhook/secret");
    $("webhook-secret-value").value = made.secret;
    $("webhook-secret").hidden = false;
    $("webhook-secret-value").select();
    await loadWebhook();
  });
});
$("copy-webhook-secret").addEventListener("click", () => copyField($("webhook-secret-value"), $("copy-webhook-secret")));
$("dismiss-webhook-secret").addEventListener("click", () => {
  $("webhook-secret-value").value = "";
  $("webhook-secret").hidden = true;
});

// ---------------------------------------------------------------- retention

const RETENTION = [
  ["messages_days", "Chat messages"],
  ["outbox_days", "Campaign and sequence messages (counts stay in reports)"],
  ["audit_days", "Audit log"],
  ["webhooks_days", "Outbound webhook deliveries"],
  ["stats_days", "Home page figures and device history"],
];

async function loadRetention() {
  const r = await api("GET", "/api/v1/settings/retention");
  const days = (n) => (n === 0 ? "Kept" : `${n} day${n === 1 ? "" : "s"}`);
  $("retention-list").replaceChildren(
    ...RETENTION.flatMap(([key, label]) => [el("dt", {}, label), el("dd", { dataset: { key } }, days(r[key]))]),
    el("dt", {}, "Sweep"),
    el("dd", {}, `every ${r.interval_hours} hour${r.interval_hours === 1 ? "" : "s"}`),
  );
}

// ---------------------------------------------------------------- start

/** Everything the caller may read, again (after a reconnect). */
function loadAll() {
  const loads = [loadBusiness(), loadBroadcast(), loadRetention()];
  if (owner) loads.push(loadWebhook());
  return Promise.all(loads);
}

try {
  current = await me();
  owner = roleAtLeast(current.user.role, "owner");
  renderNav(current, "settings");
  if (typeof Intl.supportedValuesOf === "function") {
    $("zone-names").replaceChildren(...Intl.supportedValuesOf("timeZone").map((z) => el("option", { value: z })));
  }
  for (const id of ["business-fields", "broadcast-fields"]) $(id).disabled = !owner;
  $("read-only-note").hidden = owner;
  $("lead-webhook").hidden = !owner;
  for (const id of ["business", "broadcast", "retention"]) $(id).hidden = false;
  await loadAll();
  setInterval(() => showZoneNow($("zone-now").dataset.zone), 30000);
  connectLive({ topics: [], onResync: (_, reason) => reason === "reconnected" && loadAll().catch(() => {}) });
} catch (err) {
  if (err.status !== 401) showFatal(err);
}
