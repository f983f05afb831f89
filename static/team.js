// Team page (owners and admins): members (list, add, enable/disable, delete) and API tokens
// (create with scopes, show the secret once, list, revoke).
import { api, me, renderNav, roleAtLeast, el, showAlert, clearAlert, showFatal, showFailure } from "/static/app.js";

const $ = (id) => document.getElementById(id);

/** "2025-01-31 14:05 UTC" (times in the tenant's zone come with the shared formatter later). */
function when(iso) {
  if (!iso) return "Never";
  return `${iso.slice(0, 16).replace("T", " ")} UTC`;
}

const ROLE_LABEL = { admin: "Admin", owner: "Owner", member: "Member", viewer: "Viewer" };

/** A table cell with the column name for the stacked phone layout. */
function cell(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

/** Shows the "owners only" notice instead of the page. */
function notAllowed() {
  $("team").hidden = true;
  $("tokens").hidden = true;
  $("not-allowed").hidden = false;
}

/** Runs `action` with `button` disabled; errors go to `box`. */
async function busy(button, box, action) {
  button.disabled = true;
  try {
    await action();
  } catch (err) {
    showFailure(box, err);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- members

let current;

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

function memberRow(user) {
  const isSelf = user.id === current.user.id;
  const untouchable = isSelf || (user.role === "admin" && current.user.role !== "admin");
  const actions = el("td", { class: "actions", "data-label": "" });
  if (!untouchable) {
    const toggle = el(
      "button",
      { type: "button", class: "btn btn-small btn-secondary" },
      user.is_active ? "Disable" : "Enable",
    );
    toggle.addEventListener("click", () =>
      busy(toggle, $("team-alert"), async () => {
        clearAlert($("team-alert"));
        await api("PATCH", `/api/v1/users/${user.id}`, { is_active: !user.is_active });
        showAlert($("team-alert"), `${user.display_name} is now ${user.is_active ? "disabled" : "enabled"}.`, "success");
        await loadMembers();
      }),
    );
    const remove = el(
      "button",
      { type: "button", class: "btn btn-small btn-danger", "aria-label": `Delete ${user.email}` },
      "Delete",
    );
    remove.addEventListener("click", () => {
      if (!confirm(`Delete ${user.email}? Their sessions and API tokens end at once.`)) return;
      busy(remove, $("team-alert"), async () => {
        clearAlert($("team-alert"));
        await api("DELETE", `/api/v1/users/${user.id}`);
        showAlert($("team-alert"), `${user.email} was deleted.`, "success");
        await loadMembers();
      });
    });
    actions.append(toggle, remove);
  } else if (isSelf) {
    actions.append(el("span", { class: "muted" }, "You"));
  }
  return el(
    "tr",
    { dataset: { userId: user.id }, class: user.is_active ? "" : "inactive" },
    cell("Name", user.display_name),
    cell("Email", el("span", { class: "email" }, user.email)),
    cell("Role", el("span", { class: `badge badge-${user.role}` }, ROLE_LABEL[user.role] || user.role)),
    cell("Status", user.is_active ? "Active" : "Disabled"),
    cell("Last sign-in", when(user.last_login_at)),
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

$("copy-token").addEventListener("click", async () => {
  const input = $("new-token-value");
  const button = $("copy-token");
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    // Clipboard API unavailable (plain http on a LAN): the selected text can be copied by hand.
    input.select();
    document.execCommand("copy");
  }
  button.textContent = "Copied";
  setTimeout(() => (button.textContent = "Copy"), 2000);
});

$("dismiss-token").addEventListener("click", () => {
  $("new-token-value").value = "";
  $("new-token").hidden = true;
});

// ---------------------------------------------------------------- start

const activeTab = () => (location.hash === "#tokens" ? "tokens" : "team");

try {
  current = await me();
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
    await Promise.all([loadMembers(), loadTokens()]);
    if (activeTab() === "tokens") $("tokens").scrollIntoView();
  }
} catch (err) {
  if (err.status !== 401) showFatal(err);
}
