// wafleet dashboard: the module every page imports.
//
// - api(method, path, body, options): JSON over fetch with the session cookie and, on writes,
//   the X-CSRF-Token header (the token comes from GET /api/v1/me, fetched once per page and
//   cached). Error bodies {"error":{"code","message"}} become ApiError with a readable message.
//   A 401 sends the browser to the sign-in page (unless the caller opts out, as sign-in does).
// - me(): the cached /api/v1/me answer (user, tenant, assigned_devices, csrf_token).
// - renderNav(me, active): the top bar, with links shown by role; the user's name links to
//   their profile.
// - el(), showAlert(), clearAlert(): small DOM helpers that never use innerHTML with data.

/** Where signed-out browsers are sent. */
export const LOGIN_PAGE = "/static/login.html";

/** Roles from least to most powerful (the server orders them the same way). */
const ROLE_RANK = { viewer: 0, member: 1, owner: 2, admin: 3 };

/** Whether `role` is `least` or above. */
export function roleAtLeast(role, least) {
  return (ROLE_RANK[role] ?? -1) >= ROLE_RANK[least];
}

/** An API failure: HTTP status, the server's error code, a sentence for people. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfterSecs = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfterSecs = retryAfterSecs;
  }
}

/** Sentences for codes whose server message is terse or technical. */
const FRIENDLY = {
  invalid_credentials: () => "Wrong email or password.",
  rate_limited: (e) =>
    e.retryAfterSecs
      ? `Too many failed sign-ins. Try again in ${waitText(e.retryAfterSecs)}.`
      : "Too many failed sign-ins. Try again in a minute.",
  csrf_failed: () => "Your session changed in another tab. Reload the page and try again.",
  email_taken: () => "An account with this email already exists.",
  unauthenticated: () => "Your session has ended. Please sign in again.",
  internal: () => "The server hit an error. Try again; if it persists, check the server log.",
};

/** "45 seconds", "2 minutes". */
export function waitText(secs) {
  if (secs < 90) return `${secs} second${secs === 1 ? "" : "s"}`;
  return `${Math.ceil(secs / 60)} minutes`;
}

/** Capitalised sentence with a final full stop. */
function sentence(text) {
  const t = String(text || "").trim();
  if (!t) return t;
  const s = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

/** Builds an ApiError from a failed response. */
async function toError(res) {
  let code = `http_${res.status}`;
  let message = "";
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || "";
    }
  } catch {
    // Not JSON (a proxy's error page, say): fall back to the status line.
  }
  const retry = Number.parseInt(res.headers.get("Retry-After") || "", 10);
  const err = new ApiError(res.status, code, "", Number.isFinite(retry) ? retry : null);
  const friendly = FRIENDLY[code];
  err.message = friendly
    ? friendly(err)
    : sentence(message) || `Request failed (${res.status} ${res.statusText}).`;
  return err;
}

/** Sends the browser to the sign-in page, remembering where it was. */
export function goToLogin() {
  const here = location.pathname + location.search + location.hash;
  const next = here === "/" ? "" : `?next=${encodeURIComponent(here)}`;
  location.replace(LOGIN_PAGE + next);
}

let mePromise = null;

/** The signed-in caller, fetched once per page (a 401 goes to the sign-in page). */
export function me() {
  if (!mePromise) {
    mePromise = api("GET", "/api/v1/me", undefined, { csrf: false }).catch((e) => {
      mePromise = null;
      throw e;
    });
  }
  return mePromise;
}

/** Forgets the cached /me answer (after the session or CSRF token changed). */
export function forgetMe() {
  mePromise = null;
}

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * Calls the API. `body` (if not undefined) is sent as JSON, or as it is when it is a Blob (a
 * File from an <input type="file">, with its own content type). Resolves to the parsed JSON
 * body, or null for 204. Rejects with ApiError.
 *
 * options.csrf (default: true for writes) adds X-CSRF-Token from /me; sign-in turns it off.
 * options.redirectOn401 (default true) sends the browser to the sign-in page on 401.
 * options.contentType sends `body` as is (a File or text) with that Content-Type instead of JSON.
 */
export async function api(method, path, body, options = {}) {
  method = method.toUpperCase();
  const { csrf = WRITE_METHODS.has(method), redirectOn401 = true, retried = false, contentType } = options;
  const headers = { Accept: "application/json" };
  const raw = body instanceof Blob;
  if (raw) headers["Content-Type"] = contentType || body.type || "application/octet-stream";
  else if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
  if (csrf) {
    const current = await me();
    if (current.csrf_token) headers["X-CSRF-Token"] = current.csrf_token;
  }
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: raw || contentType || body === undefined ? body : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "Cannot reach the server. Check the connection and try again.");
  }
  if (res.status === 401 && redirectOn401) {
    goToLogin();
    throw await toError(res);
  }
  if (!res.ok) {
    const err = await toError(res);
    // The session was replaced (e.g. a password change in another tab): one fresh token, one retry.
    if (err.code === "csrf_failed" && csrf && !retried) {
      forgetMe();
      return api(method, path, body, { ...options, retried: true });
    }
    // A one-time password must be replaced first: the sign-in page asks for a new one.
    if (err.code === "password_change_required" && redirectOn401) goToLogin();
    throw err;
  }
  if (res.status === 204) return null;
  const type = res.headers.get("Content-Type") || "";
  return type.includes("json") ? res.json() : res.text();
}

/**
 * Creates an element: el("a", {href: "/", class: "x", onclick: fn}, "text", child...).
 * Text children are text nodes, so data is never parsed as HTML.
 */
/** Picture types the server prepares (resized JPEG); other files go as they are. */
const PICTURE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/**
 * Where a campaign's or step's file goes under `base` (`/api/v1/campaigns/7`,
 * `/api/v1/sequences/3/steps/1`): a picture to `…/image`, anything else to `…/attachment` with
 * its kind (an OGG is a voice note, other audio an audio file, video a video, the rest a
 * document with its name).
 */
export function filePath(base, file) {
  if (PICTURE_TYPES.includes(file.type)) return `${base}/image`;
  const ogg = file.type === "audio/ogg" || /\.(ogg|opus)$/i.test(file.name);
  const kind = ogg ? "voice" : file.type.startsWith("audio/") ? "audio" : file.type.startsWith("video/") ? "video" : "document";
  const name = kind === "document" ? `&file_name=${encodeURIComponent(file.name)}` : "";
  return `${base}/attachment?kind=${kind}${name}`;
}

/** How a campaign's or step's file reads in a summary; null without one. */
export function fileText(file) {
  if (!file) return null;
  const what = { image: "a picture", document: `the document ${file.file_name || ""}`.trim(), video: "a video", voice: "a voice note", audio: "an audio file", sticker: "a sticker" };
  return what[file.kind] || "a file";
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(key, "");
    } else {
      node.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Shows a message in `box` (kind: "error", "success" or "info"). */
export function showAlert(box, message, kind = "error") {
  box.textContent = message;
  box.className = `alert alert-${kind}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.hidden = false;
}

/** Hides the message in `box`. */
export function clearAlert(box) {
  box.textContent = "";
  box.hidden = true;
}

/** A mistake a form can tell before asking the server, with the field (element) to mark. */
export class FieldError extends Error {
  constructor(message, field) {
    super(message);
    this.field = field;
  }
}

/**
 * Marks `field` (an element, or nothing) as the one the form's message is about; with a
 * `message`, also writes it right under the field (a `.field-error` the field points to).
 */
export function markField(field, message) {
  if (!field) return;
  let errorId = "form-alert";
  if (message && field.id) {
    errorId = `${field.id}-error`;
    const note = document.getElementById(errorId) || el("small", { id: errorId, class: "field-error" });
    note.textContent = message;
    if (!note.isConnected) (field.closest(".field") || field).append(note);
  }
  field.setAttribute("aria-invalid", "true");
  field.setAttribute("aria-errormessage", errorId);
  field.focus();
}

/** Hides the form's message (`box`) and unmarks the fields of `form`. */
export function clearFormMarks(form, box) {
  clearAlert(box);
  for (const field of form.querySelectorAll("[aria-invalid]")) {
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-errormessage");
  }
  for (const note of form.querySelectorAll(".field-error")) note.remove();
}

/** A date-and-time format in `zone` (the browser's own zone when the name is unknown). */
export function zoneClock(zone) {
  const options = { dateStyle: "medium", timeStyle: "short" };
  try {
    return new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone });
  } catch {
    // An unknown zone name: the browser's own zone beats no times at all.
    return new Intl.DateTimeFormat(undefined, options);
  }
}

/** `iso` formatted with `clock` (see zoneClock), or "—" when missing or invalid. */
export function formatWhen(clock, iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "—" : clock.format(at);
}

/** Shows a failed request's message in `box` (a 401 already sent the user to sign in). */
export function showFailure(box, err) {
  if (err.status !== 401) showAlert(box, err instanceof ApiError ? err.message : String(err));
}

/**
 * Runs a form's submit event: stops the page load, clears earlier marks, lets the browser check
 * required fields and builds the body with `build` (a thrown FieldError marks its field). Then
 * `save(body, form)` runs with `button` disabled; if it fails, the error is shown in `box` and
 * the field `fieldFor(err)` names (or none) is marked.
 */
export async function submitFormWith(event, { box, button, build, save, fieldFor }) {
  event.preventDefault();
  const form = event.currentTarget;
  clearFormMarks(form, box);
  if (!form.reportValidity()) return;
  let body;
  try {
    body = build();
  } catch (err) {
    showAlert(box, err.message);
    if (err instanceof FieldError) markField(err.field, err.message);
    return;
  }
  button.disabled = true;
  try {
    await save(body, form);
  } catch (err) {
    showFailure(box, err);
    markField(fieldFor(err), err.message);
  } finally {
    button.disabled = false;
  }
}

/** Renders the top bar into `<header id="topbar">`: brand, links by role, user, sign out. */
export function renderNav(current, active) {
  const bar = document.getElementById("topbar");
  if (!bar) return;
  const role = current.user.role;
  const links = [
    { id: "devices", href: "/", label: "Devices", show: true },
    { id: "leads", href: "/static/leads.html", label: "Leads", show: true },
    { id: "campaigns", href: "/static/campaigns.html", label: "Campaigns", show: true },
    { id: "sequences", href: "/static/sequences.html", label: "Sequences", show: true },
    { id: "team", href: "/static/team.html", label: "Team", show: roleAtLeast(role, "owner") },
    { id: "tokens", href: "/static/team.html#tokens", label: "Tokens", show: roleAtLeast(role, "owner") },
    { id: "webhooks", href: "/static/webhooks.html", label: "Webhooks", show: roleAtLeast(role, "owner") },
    { id: "settings", href: "/static/settings.html", label: "Settings", show: true },
  ];
  const signOut = el(
    "button",
    { type: "button", class: "nav-signout", id: "signout" },
    "Sign out",
  );
  signOut.addEventListener("click", async () => {
    signOut.disabled = true;
    try {
      await api("POST", "/api/v1/auth/logout", undefined, { redirectOn401: false });
    } catch {
      // Already signed out or the server is unreachable; the sign-in page copes either way.
    }
    forgetMe();
    location.replace(LOGIN_PAGE);
  });
  bar.replaceChildren(
    el("a", { class: "brand", href: "/" }, el("span", { class: "brand-mark", "aria-hidden": "true" }), "wafleet"),
    el(
      "nav",
      { class: "nav", "aria-label": "Main" },
      links
        .filter((l) => l.show)
        .map((l) =>
          el(
            "a",
            { href: l.href, id: `nav-${l.id}`, "aria-current": l.id === active ? "page" : false },
            l.label,
          ),
        ),
    ),
    el(
      "div",
      { class: "nav-user" },
      el(
        "a",
        { class: "nav-name", id: "nav-profile", href: "/static/profile.html", title: `${current.user.email}: your profile`, "aria-current": active === "profile" ? "page" : false },
        current.user.display_name || current.user.email,
      ),
      signOut,
    ),
  );
  bar.hidden = false;
}

// ---------------------------------------------------------------- device statuses

/** Label and colour family per device status, in the order the devices view shows them. */
export const STATUS = {
  online: { label: "Online", tone: "ok" },
  connecting: { label: "Connecting", tone: "busy" },
  reconnecting: { label: "Reconnecting", tone: "busy" },
  awaiting_qr: { label: "Waiting for QR scan", tone: "pairing" },
  awaiting_pair_code: { label: "Waiting for code", tone: "pairing" },
  new: { label: "New", tone: "idle" },
  logged_out: { label: "Logged out", tone: "idle" },
  parked: { label: "Parked", tone: "warn" },
  failed: { label: "Failed", tone: "bad" },
  banned: { label: "Banned", tone: "bad" },
};
export const statusLabel = (status) => (STATUS[status] ? STATUS[status].label : status);
export const statusTone = (status) => (STATUS[status] ? STATUS[status].tone : "idle");

/** One figure of a `<dl class="tiles">`: a label, the figure and a note under it. */
export function tile(name, label, value, note) {
  return el(
    "div",
    { class: "tile", dataset: { tile: name } },
    el("dt", {}, label),
    el("dd", {}, el("span", { class: "tile-value" }, value), note ? el("small", { class: "tile-note" }, note) : null),
  );
}

/** Runs `action` with `button` disabled; failures go to the alert `box`. */
export async function busy(button, box, action) {
  button.disabled = true;
  try {
    await action();
  } catch (err) {
    showFailure(box, err);
  } finally {
    // A button whose row was redrawn meanwhile is gone; nothing to re-enable.
    if (button.isConnected) button.disabled = false;
  }
}

/** Copies a secret `input`'s value, saying so on `button` for two seconds. */
export async function copyField(input, button) {
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    // Clipboard API unavailable (plain http on a LAN): the selected text can be copied by hand.
    input.select();
    document.execCommand("copy");
  }
  button.textContent = "Copied";
  setTimeout(() => (button.textContent = "Copy"), 2000);
}

/** Shows an unexpected failure at the top of the page instead of failing silently. */
export function showFatal(err) {
  const box = document.getElementById("page-alert");
  if (box) showAlert(box, err && err.message ? err.message : String(err));
}

window.addEventListener("unhandledrejection", (event) => {
  // A 401 already navigates away; anything else should be visible, not only in the console.
  if (event.reason instanceof ApiError && event.reason.status === 401) return;
  showFatal(event.reason);
});
