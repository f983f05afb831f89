// Profile page (every role): who you are, your password (the current one required), the
// browsers you are signed in on (this one marked; sign any of them out) and where API tokens
// are made. Times are in the business's time zone.
import { api, me, forgetMe, renderNav, roleAtLeast, el, showAlert, clearAlert, showFatal, busy, submitFormWith, FieldError, zoneClock, formatWhen, LOGIN_PAGE } from "/static/app.js";
import { connect as connectLive } from "/static/live.js";

const $ = (id) => document.getElementById(id);

const ROLE_LABEL = { admin: "Admin", owner: "Owner", member: "Member", viewer: "Viewer" };

let clock;

/** A table cell with the column name for the stacked phone layout. */
function cell(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

/** "Chrome on Linux" from a User-Agent header; the raw text when nothing is recognised. */
function browserName(ua) {
  if (!ua) return "Unknown browser";
  const browser = [["Edg/", "Edge"], ["Firefox/", "Firefox"], ["Chrome/", "Chrome"], ["Safari/", "Safari"]]
    .find(([mark]) => ua.includes(mark));
  const system = [["Android", "Android"], ["iPhone", "iPhone"], ["iPad", "iPad"], ["Windows", "Windows"], ["Mac OS", "macOS"], ["Linux", "Linux"]]
    .find(([mark]) => ua.includes(mark));
  if (!browser) return ua.slice(0, 60);
  return system ? `${browser[1]} on ${system[1]}` : browser[1];
}

// ---------------------------------------------------------------- sessions

async function loadSessions() {
  const sessions = await api("GET", "/api/v1/me/sessions");
  const tbody = $("session-list").tBodies[0];
  tbody.replaceChildren(...sessions.map(sessionRow));
  if (sessions.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No browser sessions (you are using an API token).")));
  }
}

function sessionRow(session) {
  const label = session.current ? "Sign out here" : "Sign out";
  const end = el("button", { type: "button", class: "btn btn-small btn-danger", "aria-label": `${label}: ${browserName(session.user_agent)}, signed in ${formatWhen(clock, session.created_at)}` }, label);
  end.addEventListener("click", () => {
    if (session.current && !confirm("Sign out this browser?")) return;
    busy(end, $("sessions-alert"), async () => {
      clearAlert($("sessions-alert"));
      await api("DELETE", `/api/v1/me/sessions/${session.id}`);
      if (session.current) {
        forgetMe();
        location.replace(LOGIN_PAGE);
        return;
      }
      showAlert($("sessions-alert"), `${browserName(session.user_agent)} was signed out.`, "success");
      await loadSessions();
    });
  });
  return el(
    "tr",
    { dataset: { sessionId: session.id, current: String(session.current) } },
    cell("Browser", browserName(session.user_agent), session.current ? el("span", { class: "badge badge-owner" }, "This browser") : ""),
    cell("Address", session.ip || "—"),
    cell("Signed in", formatWhen(clock, session.created_at)),
    cell("Last active", formatWhen(clock, session.last_seen_at)),
    el("td", { class: "actions", "data-label": "" }, end),
  );
}

// ---------------------------------------------------------------- password

/** The field an API refusal of the password change is about. */
function passwordField(err) {
  if (err.code === "wrong_password" || err.code === "rate_limited") return $("current-password");
  if (err.code === "weak_password") return $("new-password");
  return null;
}

$("password-form").addEventListener("submit", (event) =>
  submitFormWith(event, {
    box: $("password-alert"),
    button: $("change-password"),
    build: () => {
      const next = $("new-password").value;
      if (next !== $("confirm-password").value) {
        throw new FieldError("The two new passwords differ.", $("confirm-password"));
      }
      return { current_password: $("current-password").value, new_password: next };
    },
    save: async (body, form) => {
      await api("POST", "/api/v1/me/password", body);
      // The server ended every session and started a new one here: a new CSRF token too.
      forgetMe();
      form.reset();
      showAlert($("password-alert"), "Your password was changed. Other browsers are signed out.", "success");
      await loadSessions();
    },
    fieldFor: passwordField,
  }),
);

// ---------------------------------------------------------------- start

try {
  const current = await me();
  clock = zoneClock(current.tenant.time_zone);
  renderNav(current, "profile");
  $("profile-name").textContent = current.user.display_name;
  $("profile-email").textContent = current.user.email;
  $("profile-role").textContent = ROLE_LABEL[current.user.role] || current.user.role;
  $("profile-tenant").textContent = `${current.tenant.name} (times in ${current.tenant.time_zone})`;
  const owner = roleAtLeast(current.user.role, "owner");
  $("tokens-owner").hidden = !owner;
  $("tokens-other").hidden = owner;
  for (const id of ["profile", "sessions", "my-tokens"]) $(id).hidden = false;
  // No topic: the socket itself is the signal (it closes when this session ends elsewhere).
  connectLive({ topics: [], onResync: () => loadSessions().catch(() => {}) });
  await loadSessions();
} catch (err) {
  if (err.status !== 401) showFatal(err);
}
