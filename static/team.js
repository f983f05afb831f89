// Team page (owners and admins): members (list, add, change role, enable/disable, reset the
// password to a one-time one shown once, assign devices, delete) and API tokens (create with
// scopes, show the secret once, list, revoke).
//
// The device picker never loads the whole fleet: it asks GET /api/v1/devices?q=&page=&per_page=
// for one page at a time (search on the server), keeps the ticked ids, and PUTs them. Device
// status in the picker follows the live device-status topic.
import { api, me, renderNav, roleAtLeast, el, showAlert, clearAlert, showFatal, busy, copyField, zoneClock, formatWhen } from "/static/app.js";
import { connect as connectLive } from "/static/live.js";

const $ = (id) => document.getElementById(id);

/** Devices per picker page. */
const PICKER_PAGE = 20;

const ROLE_LABEL = { admin: "Admin", owner: "Owner", member: "Member", viewer: "Viewer" };
const GRANTABLE = ["member", "viewer", "owner"];

let current;
/** Times in the tenant's zone. */
let clock;

/** A time in the tenant's zone, or "Never". */
function when(iso) {
  return iso ? formatWhen(clock, iso) : "Never";
}

/** A table cell with the column name for the stacked phone layout. */
function cell(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

/** Shows the "owners only" notice instead of the page. */
function notAllowed() {
  for (const id of ["team", "tokens", "assign"]) $(id).hidden = true;
  $("not-allowed").hidden = false;
}

// ---------------------------------------------------------------- members

async function loadMembers() {
  let users;
  try {
    users = await api("GET", "/api/v1/users");
  } catch (err) {
    if (err.status === 403) return notAllowed();
    throw err;
  }
  const tbody = $("members").tBodies[0];
  tbody.replaceChildren(...users.map(memberRow));
  if (users.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No members yet.")));
  }
}

/** A small button for a member's row, named for screen readers with the member's email. */
function rowButton(label, aria, user, kind = "btn-secondary") {
  return el("button", { type: "button", class: `btn btn-small ${kind}`, "aria-label": `${aria} ${user.email}` }, label);
}

/** The role cell: a select for users the caller may change, else a badge. */
function roleCell(user, editable) {
  const badge = el("span", { class: `badge badge-${user.role}` }, ROLE_LABEL[user.role] || user.role);
  if (!editable || user.role === "admin") return cell("Role", badge);
  const id = `role-${user.id}`;
  const select = el(
    "select",
    { id, class: "role-select", "aria-label": `Role of ${user.email}` },
    GRANTABLE.map((role) => el("option", { value: role, selected: role === user.role }, ROLE_LABEL[role])),
  );
  select.addEventListener("change", () =>
    busy(select, $("team-alert"), async () => {
      clearAlert($("team-alert"));
      try {
        const changed = await api("PATCH", `/api/v1/users/${user.id}`, { role: select.value });
        showAlert($("team-alert"), `${changed.email} is now ${ROLE_LABEL[changed.role]}.`, "success");
      } finally {
        await loadMembers();
      }
    }),
  );
  return cell("Role", select);
}

function memberRow(user) {
  const isSelf = user.id === current.user.id;
  const untouchable = isSelf || (user.role === "admin" && current.user.role !== "admin");
  const box = $("team-alert");
  const actions = el("td", { class: "actions", "data-label": "" });
  if (!untouchable) {
    if (user.role === "member") {
      const devices = rowButton("Devices", "Assign devices to", user);
      devices.addEventListener("click", () => busy(devices, box, () => openPicker(user)));
      actions.append(devices);
    }
    const reset = rowButton("Reset password", "Reset the password of", user);
    reset.addEventListener("click", () => {
      if (!confirm(`Give ${user.email} a one-time password? Their sessions end at once.`)) return;
      busy(reset, box, async () => {
        clearAlert(box);
        const made = await api("POST", `/api/v1/users/${user.id}/password-reset`);
        $("one-time-who").textContent = user.display_name || user.email;
        $("one-time-value").value = made.password;
        $("one-time").hidden = false;
        $("one-time-value").select();
      });
    });
    const toggle = rowButton(user.is_active ? "Deactivate" : "Activate", user.is_active ? "Deactivate" : "Activate", user);
    toggle.addEventListener("click", () =>
      busy(toggle, box, async () => {
        clearAlert(box);
        await api("PATCH", `/api/v1/users/${user.id}`, { is_active: !user.is_active });
        showAlert(box, `${user.display_name} is now ${user.is_active ? "deactivated" : "active"}.`, "success");
        await loadMembers();
      }),
    );
    const remove = rowButton("Delete", "Delete", user, "btn-danger");
    remove.addEventListener("click", () => {
      if (!confirm(`Delete ${user.email}? Their sessions and API tokens end at once.`)) return;
      busy(remove, box, async () => {
        clearAlert(box);
        await api("DELETE", `/api/v1/users/${user.id}`);
        showAlert(box, `${user.email} was deleted.`, "success");
        await loadMembers();
      });
    });
    actions.append(reset, toggle, remove);
  } else if (isSelf) {
    actions.append(el("a", { href: "/static/profile.html" }, "You: your profile"));
  }
  return el(
    "tr",
    { dataset: { userId: user.id }, class: user.is_active ? "" : "inactive" },
    cell("Name", user.display_name),
    cell("Email", el("span", { class: "email" }, user.email)),
    roleCell(user, !untouchable),
    cell("Status", user.is_active ? "Active" : "Deactivated"),
    cell("Last sign-in", el("span", { class: "last-login", dataset: { at: user.last_login_at || "" } }, when(user.last_login_at))),
    actions,
  );
}

$("add-member-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const box = $("team-alert");
  clearAlert(box);
  if (!form.reportValidity()) return;
  const body = {
    email: $("member-email").value.trim(),
    display_name: $("member-name").value.trim(),
    password: $("member-password").value,
    role: $("member-role").value,
  };
  busy($("add-member"), box, async () => {
    const user = await api("POST", "/api/v1/users", body);
    form.reset();
    showAlert(box, `${user.email} was added as ${ROLE_LABEL[user.role] || user.role}.`, "success");
    await loadMembers();
  });
});

$("copy-one-time").addEventListener("click", () => copyField($("one-time-value"), $("copy-one-time")));
$("dismiss-one-time").addEventListener("click", () => {
  $("one-time-value").value = "";
  $("one-time").hidden = true;
});

// ---------------------------------------------------------------- device picker

const picker = {
  user: null,
  /** Ticked devices: id → {id, name, status}. */
  chosen: new Map(),
  query: "",
  page: 1,
  total: 0,
};

/** Opens the picker for `user` with their assignments. */
async function openPicker(user) {
  const assigned = await api("GET", `/api/v1/users/${user.id}/devices`);
  picker.user = user;
  picker.chosen = new Map(assigned.devices.map((d) => [d.id, d]));
  clearAlert($("assign-alert"));
  $("assign-who").textContent = user.display_name || user.email;
  $("device-search").value = "";
  $("assign").hidden = false;
  renderChosen();
  await search("");
  $("assign").scrollIntoView();
  $("device-search").focus();
}

/** The ticked devices as removable chips. */
function renderChosen() {
  $("assigned-count").textContent = String(picker.chosen.size);
  const chips = [...picker.chosen.values()].map((d) => {
    const remove = el("button", { type: "button", class: "chip", "aria-label": `Remove ${d.name}` }, d.name, el("span", { "aria-hidden": "true" }, "×"));
    remove.addEventListener("click", () => {
      picker.chosen.delete(d.id);
      renderChosen();
      const box = document.querySelector(`#device-results input[value="${d.id}"]`);
      if (box) box.checked = false;
      $("device-search").focus();
    });
    return el("li", { dataset: { deviceId: d.id } }, remove);
  });
  $("assigned").replaceChildren(...(chips.length ? chips : [el("li", { class: "muted" }, "None yet: tick devices below.")]));
}

/** One found device: a labelled checkbox. */
function resultRow(device) {
  const box = el("input", { type: "checkbox", value: String(device.id), checked: picker.chosen.has(device.id) });
  box.addEventListener("change", () => {
    if (box.checked) picker.chosen.set(device.id, { id: device.id, name: device.name, status: device.status });
    else picker.chosen.delete(device.id);
    renderChosen();
  });
  return el(
    "li",
    { dataset: { deviceId: device.id } },
    el(
      "label",
      {},
      box,
      el("span", { class: "picker-name" }, device.name, device.phone ? el("span", { class: "muted" }, ` · +${device.phone}`) : ""),
      el("span", { class: "badge device-status" }, device.status.replace(/_/g, " ")),
    ),
  );
}

/** Loads the first page for `query` (or, with `more`, appends the next page). */
async function search(query, more = false) {
  picker.query = query;
  picker.page = more ? picker.page + 1 : 1;
  const params = new URLSearchParams({ page: String(picker.page), per_page: String(PICKER_PAGE) });
  if (query) params.set("q", query);
  const page = await api("GET", `/api/v1/devices?${params}`);
  // A newer search was typed meanwhile: its answer wins.
  if (query !== picker.query) return;
  picker.total = page.total;
  const rows = page.items.map(resultRow);
  if (more) $("device-results").append(...rows);
  else $("device-results").replaceChildren(...rows);
  const shown = $("device-results").children.length;
  $("device-results-summary").textContent = page.total === 0
    ? (query ? `No device matches "${query}".` : "This business has no devices yet.")
    : `Showing ${shown} of ${page.total} device${page.total === 1 ? "" : "s"}${query ? ` matching "${query}"` : ""}.`;
  $("device-more").hidden = shown >= page.total;
}

let typing = null;
$("device-search").addEventListener("input", () => {
  clearTimeout(typing);
  // The server searches; wait for a pause in typing rather than asking on every key.
  typing = setTimeout(() => search($("device-search").value.trim()).catch((err) => showFatal(err)), 250);
});
$("device-search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(typing);
  busy($("device-search-go"), $("assign-alert"), () => search($("device-search").value.trim()));
});
$("device-more").addEventListener("click", () =>
  busy($("device-more"), $("assign-alert"), () => search(picker.query, true)),
);
$("save-assign").addEventListener("click", () =>
  busy($("save-assign"), $("assign-alert"), async () => {
    clearAlert($("assign-alert"));
    const saved = await api("PUT", `/api/v1/users/${picker.user.id}/devices`, { device_ids: [...picker.chosen.keys()] });
    picker.chosen = new Map(saved.devices.map((d) => [d.id, d]));
    renderChosen();
    const who = picker.user.display_name || picker.user.email;
    showAlert($("assign-alert"), `${who} now sees ${saved.devices.length} device${saved.devices.length === 1 ? "" : "s"}.`, "success");
  }),
);
$("cancel-assign").addEventListener("click", () => {
  $("assign").hidden = true;
  picker.user = null;
  $("team").scrollIntoView();
});
$("assign").addEventListener("keydown", (event) => {
  if (event.key === "Escape") $("cancel-assign").click();
});

/** DEVICE_STATUS: the picker's rows show the new status. */
function onEvent(frame) {
  if (frame.event !== "DEVICE_STATUS" || !frame.data) return;
  const row = document.querySelector(`#device-results li[data-device-id="${frame.data.device_id}"] .device-status`);
  if (row && frame.data.status) row.textContent = String(frame.data.status).replace(/_/g, " ");
}

// ---------------------------------------------------------------- tokens

async function loadTokens() {
  let tokens;
  try {
    tokens = await api("GET", "/api/v1/tokens");
  } catch (err) {
    if (err.status === 403) return notAllowed();
    throw err;
  }
  const tbody = $("token-list").tBodies[0];
  tbody.replaceChildren(...tokens.map(tokenRow));
  if (tokens.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No tokens yet.")));
  }
}

function tokenRow(token) {
  const revoke = el(
    "button",
    { type: "button", class: "btn btn-small btn-danger", "aria-label": `Revoke ${token.name}` },
    "Revoke",
  );
  revoke.addEventListener("click", () => {
    if (!confirm(`Revoke "${token.name}"? Integrations using it stop working at once.`)) return;
    busy(revoke, $("tokens-alert"), async () => {
      clearAlert($("tokens-alert"));
      await api("DELETE", `/api/v1/tokens/${token.id}`);
      showAlert($("tokens-alert"), `"${token.name}" was revoked.`, "success");
      await loadTokens();
    });
  });
  return el(
    "tr",
    { dataset: { tokenId: token.id } },
    cell("Name", token.name),
    cell("Token", el("code", {}, `${token.prefix}…`)),
    cell("Scopes", el("span", {}, token.scopes.map((s) => el("span", { class: "badge" }, s)))),
    cell("Last used", when(token.last_used_at)),
    cell("Created", when(token.created_at)),
    el("td", { class: "actions", "data-label": "" }, revoke),
  );
}

$("create-token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const box = $("tokens-alert");
  clearAlert(box);
  if (!form.reportValidity()) return;
  const scopes = [...form.querySelectorAll('input[name="scopes"]:checked')].map((i) => i.value);
  if (scopes.length === 0) {
    showAlert(box, "Choose at least one scope.");
    return;
  }
  busy($("create-token"), box, async () => {
    const created = await api("POST", "/api/v1/tokens", { name: $("token-name").value.trim(), scopes });
    form.reset();
    $("new-token-value").value = created.token;
    $("new-token").hidden = false;
    $("new-token-value").select();
    await loadTokens();
  });
});

$("copy-token").addEventListener("click", () => copyField($("new-token-value"), $("copy-token")));

$("dismiss-token").addEventListener("click", () => {
  $("new-token-value").value = "";
  $("new-token").hidden = true;
});

// ---------------------------------------------------------------- start

const activeTab = () => (location.hash === "#tokens" ? "tokens" : "team");

try {
  current = await me();
  clock = zoneClock(current.tenant.time_zone);
  renderNav(current, activeTab());
  window.addEventListener("hashchange", () => {
    renderNav(current, activeTab());
    if (activeTab() === "tokens") $("tokens").scrollIntoView();
  });
  if (!roleAtLeast(current.user.role, "owner")) {
    notAllowed();
  } else {
    $("scope-admin-label").hidden = current.user.role !== "admin";
    $("team").hidden = false;
    $("tokens").hidden = false;
    connectLive({ topics: ["device-status"], onEvent });
    await Promise.all([loadMembers(), loadTokens()]);
    if (activeTab() === "tokens") $("tokens").scrollIntoView();
  }
} catch (err) {
  if (err.status !== 401) showFatal(err);
}
