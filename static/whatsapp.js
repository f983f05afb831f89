// WhatsApp-Web-like view of one device (/device/<id>/whatsapp-web): chat list with search,
// conversation with infinite history, ticks, replies, reactions, edits and deletions, every kind
// of file in and out, a media gallery per chat, live over the WebSocket.
//
// Data flow: REST loads the chat list and pages of a conversation; the WebSocket topic
// `messages/<id>` pushes NEW_MESSAGE (a message view), MESSAGE_UPDATED (a message view after a
// reaction, edit or deletion), CHAT_UPDATED (a chat view),
// CHAT_REMOVED ({jid, merged_into}: a LID chat merged into its phone's) and MESSAGE_ACK
// ({ids, status}), through live.js. Once subscribed, after a reconnect or a gap in
// `seq` the page re-fetches over REST (debounced). Time labels come from the server (tenant
// zone); nothing is parsed as HTML.
import { api, ApiError, el, me, forgetMe, goToLogin, roleAtLeast, showAlert, clearAlert, showFatal } from "/static/app.js";
import { connect as connectLive } from "/static/live.js";

const $ = (id) => document.getElementById(id);
const deviceId = Number.parseInt(location.pathname.split("/")[2], 10);
const BASE = `/api/v1/devices/${deviceId}`;
const TOPIC = `messages/${deviceId}`;
const PAGE_SIZE = 50;
const MAX_TEXT = 4096;
const MAX_IMAGE_BYTES = 16 * 1024 * 1024;
const IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"];
/** Largest other file (document, voice note, audio, video) the server sends. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** The multipart field a file goes out as: a picture, a voice note (OGG/Opus), audio, video or a document. */
function fileField(file) {
  const name = file.name.toLowerCase();
  if (IMAGE_TYPES.includes(file.type)) return "image";
  if (file.type === "audio/ogg" || file.type === "audio/opus" || name.endsWith(".ogg") || name.endsWith(".opus")) return "voice";
  if (file.type.startsWith("audio/")) return "audio";
  if (file.type === "video/mp4" || file.type === "video/3gpp") return "video";
  return "document";
}
const MOBILE = window.matchMedia("(max-width: 768px)");
/** Ack states in the order they can only move forward; `failed` overrides them all. */
const STATUS_RANK = { pending: 0, received: 0, sent: 1, delivered: 2, read: 3, failed: 4 };
const HH_MM = /^\d{1,2}:\d{2}$/;

const ui = {
  app: $("wa-app"), list: $("chat-list"), listEmpty: $("chat-list-empty"), search: $("chat-search"),
  empty: $("empty-state"), pane: $("chat-pane"), box: $("messages"), messages: $("message-list"),
  history: $("history-status"), input: $("composer-input"), form: $("composer"), send: $("send-button"),
  composerError: $("composer-error"), attachInput: $("attach-input"), preview: $("attach-preview"),
  caption: $("caption-input"), attachError: $("attach-error"), banner: $("ws-banner"),
};

const state = {
  device: null,
  canWrite: false,
  zone: undefined,
  query: "",
  chats: new Map(), // jid → chat view
  chatNodes: new Map(), // jid → <li>
  open: null, // the open conversation, see newConversation()
  acks: new Map(), // message id → status, for acks that beat their message
  attach: null, // {file, url, field} while the preview is shown
  gallery: null, // {jid, nextBefore, count} while the media gallery is open
  pushedHistory: false,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

const chatPath = (jid) => `${BASE}/chats/${encodeURIComponent(jid).replace(/%40/g, "@")}`;
// A person's number, or null: a contact WhatsApp names by LID (`…@lid`) has none until it is
// learned, and then their chat moves to the phone's JID.
const phoneOf = (jid) => (jid.endsWith("@s.whatsapp.net") ? jid.split("@")[0].split(":")[0] : null);
const isGroup = (jid) => jid.endsWith("@g.us");
const numberText = (phone) => (phone ? `+${phone}` : "Unknown number");
const chatTitle = (chat) => chat.name || (isGroup(chat.jid) ? "Group" : numberText(chat.phone || phoneOf(chat.jid)));
const timeOf = (iso) => (iso ? Date.parse(iso) : 0);

function formatSize(bytes) {
  if (!bytes) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

let clockFormat = null;
/** HH:MM of `iso` in the tenant's zone; the server's label when it already is one. */
function clockOf(iso, label) {
  if (label && HH_MM.test(label)) return label;
  if (!clockFormat) {
    const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    try {
      clockFormat = new Intl.DateTimeFormat("en-GB", { ...options, timeZone: state.zone });
    } catch {
      clockFormat = new Intl.DateTimeFormat("en-GB", options);
    }
  }
  return clockFormat.format(new Date(iso));
}

/** The day separator for a message: the server's label, with today's clock times as "Today". */
const dayOf = (m) => (!m.time_label || HH_MM.test(m.time_label) ? "Today" : m.time_label);

const AVATAR_COLOURS = ["#00a884", "#53bdeb", "#ff8f6b", "#a5b337", "#7f66ff", "#e26ab6", "#35cd96", "#fa6533"];
function avatar(node, seed, title) {
  let hash = 0;
  for (const c of seed) hash = (hash * 31 + c.charCodeAt(0)) | 0;
  const words = title.replace(/^\+/, "").split(/\s+/).filter(Boolean);
  const initials = /^\d/.test(words[0] || "") ? words[0].slice(-2) : words.slice(0, 2).map((w) => w[0]).join("");
  node.textContent = initials.toUpperCase() || "?";
  node.style.backgroundColor = AVATAR_COLOURS[Math.abs(hash) % AVATAR_COLOURS.length];
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(viewBox, ...paths) {
  const node = document.createElementNS(SVG_NS, "svg");
  node.setAttribute("viewBox", viewBox);
  node.setAttribute("aria-hidden", "true");
  for (const d of paths) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    node.append(path);
  }
  return node;
}

const TICKS = {
  pending: ["Sending", () => svg("0 0 16 11", "M8 1.5a4.5 4.5 0 1 0 0 9 4.5 4.5 0 0 0 0-9M8 3.5V6l1.8 1.2")],
  sent: ["Sent", () => svg("0 0 16 11", "M3 6l3 3 6.5-7")],
  delivered: ["Delivered", () => svg("0 0 16 11", "M1 6l3 3 6.5-7", "M7.4 8.4l.6.6 6.5-7")],
  read: ["Read", () => svg("0 0 16 11", "M1 6l3 3 6.5-7", "M7.4 8.4l.6.6 6.5-7")],
  failed: ["Not sent", () => svg("0 0 16 11", "M8 1.2a4.3 4.3 0 1 0 0 8.6 4.3 4.3 0 0 0 0-8.6M8 3.2v2.8M8 7.6v.1")],
};
/** The camera of photo placeholders (an icon rather than an emoji, which not every system draws). */
const cameraIcon = () => {
  const icon = svg("0 0 24 24", "M12 9.2a3.8 3.8 0 1 0 0 7.6 3.8 3.8 0 0 0 0-7.6zM20 5h-3.2l-1.8-2H9L7.2 5H4a2 2 0 0 0-2 2v12a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2V7a2 2 0 0 0-2-2z");
  icon.classList.add("icon-camera");
  return icon;
};

function tick(status) {
  const [label, glyph] = TICKS[status] || TICKS.sent;
  return el("span", { class: `tick tick-${status in TICKS ? status : "sent"}`, title: label }, glyph(), el("span", { class: "sr-only" }, ` ${label}`));
}

/** The further-along of two ack states. */
function laterStatus(a, b) {
  if (!a) return b;
  if (!b) return a;
  return (STATUS_RANK[b] ?? 0) >= (STATUS_RANK[a] ?? 0) ? b : a;
}

/** Calls `fn` once `ms` after the last call. */
function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** POSTs a multipart form with the CSRF token (app.js's api() speaks JSON only). */
async function postForm(path, form, retried = false) {
  const current = await me();
  const headers = { Accept: "application/json" };
  if (current.csrf_token) headers["X-CSRF-Token"] = current.csrf_token;
  let res;
  try {
    res = await fetch(path, { method: "POST", headers, body: form, credentials: "same-origin", cache: "no-store" });
  } catch {
    throw new ApiError(0, "network", "Cannot reach the server. Check the connection and try again.");
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    // Not JSON: the status says enough.
  }
  if (res.ok) return body;
  if (res.status === 401) goToLogin();
  const code = body?.error?.code || `http_${res.status}`;
  if (code === "csrf_failed" && !retried) {
    forgetMe();
    return postForm(path, form, true);
  }
  throw new ApiError(res.status, code, body?.error?.message || `Request failed (${res.status} ${res.statusText}).`);
}

// ---------------------------------------------------------------------------------------------
// Device header

const STATUS_TEXT = {
  new: "not paired", awaiting_qr: "waiting for QR scan", awaiting_pair_code: "waiting for pairing code",
  connecting: "connecting…", online: "online", reconnecting: "reconnecting…", logged_out: "logged out",
  banned: "banned", failed: "failed", parked: "stopped",
};

function renderDevice() {
  const d = state.device;
  if (!d) return;
  const name = d.name || d.push_name || `Device ${d.id}`;
  $("device-name").textContent = name;
  $("device-phone").textContent = d.phone ? `+${d.phone}` : "";
  const status = $("device-status");
  status.dataset.status = d.status;
  status.textContent = STATUS_TEXT[d.status] || String(d.status).replace(/_/g, " ");
  avatar($("device-avatar"), String(d.id), name);
  updateTitle();
}

function updateTitle() {
  const unread = [...state.chats.values()].reduce((n, c) => n + (c.unread_count > 0 ? 1 : 0), 0);
  const name = state.device ? state.device.name || `Device ${state.device.id}` : "WhatsApp Web";
  document.title = `${unread ? `(${unread}) ` : ""}${name} · WhatsApp Web · wafleet`;
}

// ---------------------------------------------------------------------------------------------
// Chat list

let chatsRequest = 0;
async function loadChats() {
  const request = ++chatsRequest;
  const q = state.query;
  const chats = await api("GET", `${BASE}/chats${q ? `?q=${encodeURIComponent(q)}` : ""}`);
  if (request !== chatsRequest) return;
  state.chats = new Map(chats.map((c) => [c.jid, c]));
  renderChatList();
}

/** Applies a pushed chat view (a search in progress re-asks the server instead). */
function upsertChat(chat) {
  if (state.query) {
    scheduleRefresh();
    return;
  }
  state.chats.set(chat.jid, { ...state.chats.get(chat.jid), ...chat });
  renderChatList();
}

function chatItem(chat) {
  let li = state.chatNodes.get(chat.jid);
  if (!li) {
    const button = el("button", { type: "button", class: "chat-item", dataset: { jid: chat.jid }, onclick: () => openChat(chat.jid) });
    li = el("li", {}, button);
    state.chatNodes.set(chat.jid, li);
  }
  const button = li.firstElementChild;
  const title = chatTitle(chat);
  const unread = chat.unread_count > 0 && state.open?.jid !== chat.jid ? chat.unread_count : 0;
  const preview = chat.last_message ?? (chat.last_message_at ? [cameraIcon(), "Photo"] : "");
  button.classList.toggle("has-unread", unread > 0);
  if (state.open?.jid === chat.jid) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");
  button.replaceChildren(
    avatar(el("span", { class: "wa-avatar", "aria-hidden": "true" }), chat.jid, title),
    el(
      "span",
      { class: "chat-main" },
      el("span", { class: "chat-row" }, el("span", { class: "chat-name" }, title), el("span", { class: "chat-time" }, chat.time_label || "")),
      el(
        "span",
        { class: "chat-row" },
        el("span", { class: "chat-preview" }, preview),
        unread ? el("span", { class: "unread-badge" }, String(unread), el("span", { class: "sr-only" }, ` unread message${unread === 1 ? "" : "s"}`)) : null,
      ),
    ),
  );
  return li;
}

function renderChatList() {
  const chats = [...state.chats.values()].sort((a, b) => timeOf(b.last_message_at) - timeOf(a.last_message_at));
  const wanted = chats.map(chatItem);
  // A digits-only search that matches no chat offers to start one.
  const digits = state.query.replace(/[\s+()-]/g, "");
  if (/^\d{8,15}$/.test(digits) && !chats.some((c) => c.phone === digits)) {
    const jid = `${digits}@s.whatsapp.net`;
    const start = el("li", { class: "chat-new" },
      el("button", { type: "button", class: "chat-item", dataset: { jid }, onclick: () => openChat(jid) },
        avatar(el("span", { class: "wa-avatar", "aria-hidden": "true" }), jid, `+${digits}`),
        el("span", { class: "chat-main" }, el("span", { class: "chat-name" }, `Message +${digits}`), el("span", { class: "chat-preview" }, "Start a new chat"))));
    wanted.push(start);
  }
  reconcile(ui.list, wanted);
  for (const jid of state.chatNodes.keys()) if (!state.chats.has(jid)) state.chatNodes.delete(jid);
  if (state.open) renderChatHeader();
  ui.list.setAttribute("aria-busy", "false");
  ui.listEmpty.hidden = wanted.length > 0;
  ui.listEmpty.textContent = state.query
    ? `No chats match “${state.query}”.`
    : "No chats in the last 30 days. Messages this device sends or receives appear here.";
  updateTitle();
}

// ---------------------------------------------------------------------------------------------
// Conversation

function newConversation(jid) {
  return { jid, msgs: new Map(), nodes: new Map(), days: new Map(), nextBefore: null, loadingOlder: false, loaded: false };
}

function chatFromHash() {
  const match = /^#chat=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

function openChat(jid, { push = true } = {}) {
  const previous = state.open;
  if (previous?.jid !== jid) {
    state.open = newConversation(jid);
    closePreview();
    closeGallery();
    clearAlert(ui.composerError);
    ui.input.value = "";
    resizeInput();
    ui.messages.replaceChildren();
    ui.history.hidden = true;
    $("jump-bottom").hidden = true;
    renderChatHeader();
    const open = state.open;
    loadNewest(open).catch((err) => {
      if (open !== state.open) return;
      ui.history.textContent = `Cannot load the messages: ${err.message}`;
      ui.history.hidden = false;
    });
  }
  if (push) {
    const url = `${location.pathname}${location.search}#chat=${encodeURIComponent(jid)}`;
    if (MOBILE.matches && !state.pushedHistory) {
      history.pushState({ chat: jid }, "", url);
      state.pushedHistory = true;
    } else {
      history.replaceState({ chat: jid }, "", url);
    }
  }
  ui.empty.hidden = true;
  ui.pane.hidden = false;
  ui.app.classList.add("is-chat-open");
  renderChatList();
  const chat = state.chats.get(jid);
  if (chat && chat.unread_count > 0) markRead(jid);
  if (MOBILE.matches) $("chat-title").focus({ preventScroll: true });
  else if (state.canWrite) ui.input.focus({ preventScroll: true });
}

function closeChat() {
  const jid = state.open?.jid;
  state.open = null;
  state.pushedHistory = false;
  closePreview();
  closeGallery();
  ui.app.classList.remove("is-chat-open");
  // On a phone the conversation slides away with its content; on a desktop the empty state shows.
  if (!MOBILE.matches) {
    ui.pane.hidden = true;
    ui.empty.hidden = false;
  }
  renderChatList();
  const item = jid && state.chatNodes.get(jid);
  if (item) item.firstElementChild.focus({ preventScroll: true });
}

function renderChatHeader() {
  const jid = state.open.jid;
  const chat = state.chats.get(jid) || { jid, phone: phoneOf(jid), name: null };
  const title = chatTitle(chat);
  $("chat-title").textContent = title;
  $("chat-title").setAttribute("tabindex", "-1");
  $("chat-subtitle").textContent = chat.name && !isGroup(jid) ? numberText(chat.phone || phoneOf(jid)) : isGroup(jid) ? "Group" : "";
  avatar($("chat-avatar"), jid, title);
  ui.form.hidden = !state.canWrite;
  $("composer-readonly").hidden = state.canWrite;
}

/** Adds or updates a message: ack states only move forward; a local image keeps its preview. */
function upsertMessage(open, m) {
  const old = open.msgs.get(m.id);
  const merged = old ? (m.local && !old.local ? { ...old } : { ...old, ...m }) : { ...m };
  merged.status = laterStatus(old?.status, m.status);
  if (old?.media || m.media) merged.media = { ...(old?.media || {}), ...(m.media || {}) };
  const acked = state.acks.get(m.id);
  if (acked) merged.status = laterStatus(merged.status, acked);
  open.msgs.set(m.id, merged);
}

function removeMessage(open, id) {
  open.msgs.delete(id);
  open.nodes.delete(id);
}

/** What a message carries besides its text, as WhatsApp Web shows it; null for plain text. */
function attachmentOf(m) {
  const kind = m.kind || (m.media ? "image" : "text");
  const url = m.media?.url;
  const remote = m.media?.state === "remote";
  const missing = (label) =>
    el("span", { class: "bubble-photo" }, cameraIcon(), label, m.media?.size ? el("span", { class: "bubble-size" }, ` · ${formatSize(m.media.size)}`) : null);
  switch (kind) {
    case "image": {
      if (!url) return missing("Photo");
      const image = el("img", { class: "bubble-image", src: url, alt: m.text ? `Photo: ${m.text}` : "Photo", loading: "lazy" });
      // A picture not downloaded yet is fetched from WhatsApp on first view; if that fails, offer a retry.
      if (remote) image.addEventListener("error", () => image.replaceWith(retryOf(image, "Photo")), { once: true });
      return image;
    }
    case "sticker":
      return url ? el("img", { class: "bubble-sticker", src: url, alt: "Sticker", loading: "lazy" }) : missing("Sticker");
    case "video":
      return url ? el("video", { class: "bubble-video", src: url, controls: "", preload: "metadata", "aria-label": "Video" }) : missing("Video");
    case "audio":
    case "voice":
      return url
        ? el("span", { class: `bubble-audio ${kind}` }, el("span", { class: "audio-label" }, kind === "voice" ? "🎤 Voice message" : "🎵 Audio"), el("audio", { src: url, controls: "", preload: "metadata", "aria-label": kind === "voice" ? "Voice message" : "Audio" }))
        : missing(kind === "voice" ? "Voice message" : "Audio");
    case "document": {
      const name = m.file_name || "Document";
      const body = [el("span", { class: "doc-icon", "aria-hidden": "true" }, "📄"), el("span", { class: "doc-name" }, name), m.media?.size ? el("span", { class: "bubble-size" }, formatSize(m.media.size)) : null];
      return url ? el("a", { class: "bubble-document", href: url, download: name, "aria-label": `Download ${name}` }, ...body) : el("span", { class: "bubble-document" }, ...body);
    }
    case "location": {
      const place = m.location || {};
      const at = `${Number(place.latitude).toFixed(5)},${Number(place.longitude).toFixed(5)}`;
      const map = `https://www.openstreetmap.org/?mlat=${encodeURIComponent(place.latitude)}&mlon=${encodeURIComponent(place.longitude)}#map=16/${encodeURIComponent(place.latitude)}/${encodeURIComponent(place.longitude)}`;
      return el("a", { class: "bubble-location", href: map, target: "_blank", rel: "noopener noreferrer" }, el("span", { class: "doc-icon", "aria-hidden": "true" }, "📍"), el("span", {}, el("strong", {}, place.name || "Location"), el("span", { class: "bubble-size" }, at)));
    }
    case "contact": {
      const card = m.contact || {};
      const phone = (card.vcard || "").match(/waid=(\d+)/)?.[1];
      return el("span", { class: "bubble-contact" }, el("span", { class: "doc-icon", "aria-hidden": "true" }, "👤"), el("span", {}, el("strong", {}, card.display_name || "Contact"), phone ? el("span", { class: "bubble-size" }, `+${phone}`) : null));
    }
    default:
      return m.media ? missing("Attachment") : null;
  }
}

/** The quote block of a reply: who wrote the quoted message and its text (a click shows it). */
function quoteOf(open, quoted) {
  const original = open.msgs.get(quoted.id);
  const author = original?.from_me || (quoted.sender && phoneOf(quoted.sender) === state.device?.phone)
    ? "You"
    : original?.sender_name || (quoted.sender ? numberText(phoneOf(quoted.sender)) : chatTitle(state.chats.get(open.jid) || { jid: open.jid }));
  const text = quoted.text ?? original?.text ?? "Message";
  return el(
    "button",
    { type: "button", class: "bubble-quote", "aria-label": `Reply to ${author}: ${text}`, onclick: () => open.nodes.get(quoted.id)?.node.scrollIntoView({ block: "center", behavior: "smooth" }) },
    el("span", { class: "quote-author" }, author),
    el("span", { class: "quote-text" }, text),
  );
}

/** The reactions under a bubble, one chip per emoji with its count; null when none. */
function reactionsOf(reactions) {
  if (!reactions?.length) return null;
  const counts = new Map();
  for (const r of reactions) counts.set(r.emoji, (counts.get(r.emoji) || 0) + 1);
  const label = [...counts].map(([emoji, n]) => `${emoji} ${n}`).join(", ");
  return el(
    "span",
    { class: "bubble-reactions", role: "img", "aria-label": `Reactions: ${label}` },
    ...[...counts].map(([emoji, n]) => el("span", { class: "reaction" }, emoji, n > 1 ? el("span", { class: "reaction-count" }, String(n)) : null)),
  );
}

/** A button that tries a failed download again by putting `node` back (a fresh request). */
function retryOf(node, label) {
  const button = el("button", { type: "button", class: "bubble-retry", "aria-label": `${label} not downloaded — try again` }, "⟳", `${label} not downloaded — tap to retry`);
  button.addEventListener("click", () => {
    const again = node.cloneNode();
    again.src = `${node.src.split("#")[0]}#${Date.now()}`;
    again.addEventListener("error", () => again.replaceWith(retryOf(node, label)), { once: true });
    button.replaceWith(again);
  });
  return button;
}

/** The bubble row of a message: rebuilt when its content changed, its tick updated in place. */
function messageNode(open, m) {
  const reactions = (m.reactions || []).map((r) => r.emoji).join("");
  const signature = [m.kind, m.text, m.media?.url, m.media?.mime, m.file_name, m.time_label, m.quoted?.id, m.quoted?.text, reactions, m.edited, m.deleted].join("\u0001");
  const cached = open.nodes.get(m.id);
  if (cached && cached.signature === signature) {
    if (cached.status !== m.status) {
      cached.status = m.status;
      cached.bubble.dataset.status = m.status;
      cached.bubble.querySelector(".tick")?.replaceWith(tick(m.status));
    }
    return cached.node;
  }
  const sender = isGroup(open.jid) && !m.from_me ? m.sender_name || numberText(phoneOf(m.sender || "")) : null;
  const media = m.deleted ? null : attachmentOf(m);
  const who = m.from_me ? "You" : sender || chatTitle(state.chats.get(open.jid) || { jid: open.jid });
  const body = m.deleted
    ? el("span", { class: "bubble-text deleted" }, m.from_me ? "🚫 You deleted this message" : "🚫 This message was deleted")
    : m.text
      ? el("span", { class: "bubble-text" }, m.text)
      : null;
  const bubble = el(
    "div",
    { class: `bubble ${m.from_me ? "out" : "in"}${media ? " has-media" : ""}`, dataset: { id: m.id, status: m.status } },
    el("span", { class: "sr-only" }, `${who}: `),
    sender ? el("span", { class: "bubble-sender", "aria-hidden": "true" }, sender) : null,
    m.quoted && !m.deleted ? quoteOf(open, m.quoted) : null,
    media,
    body,
    el(
      "span",
      { class: "bubble-meta" },
      m.edited && !m.deleted ? el("span", { class: "bubble-edited" }, "Edited") : null,
      el("time", { datetime: m.sent_at }, clockOf(m.sent_at, m.time_label)),
      m.from_me ? tick(m.status) : null,
    ),
    reactionsOf(m.reactions),
  );
  const node = el("div", { class: `msg-row ${m.from_me ? "out" : "in"}${m.reactions?.length ? " has-reactions" : ""}` }, bubble);
  open.nodes.set(m.id, { node, bubble, signature, status: m.status });
  return node;
}

/** Makes `parent`'s children exactly `nodes`, moving only what is out of place. */
function reconcile(parent, nodes) {
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}

/**
 * Redraws the conversation from its messages (nodes are reused, so the live region announces
 * only what is new). `mode`: "bottom" scrolls to the newest message, "older" keeps the view where
 * it was after older messages went in on top, "live" follows new messages only when the view was
 * already at the bottom.
 */
function renderMessages(open, mode = "live") {
  if (open !== state.open) return;
  const box = ui.box;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const fromBottom = box.scrollHeight - box.scrollTop;
  const sorted = [...open.msgs.values()].sort((a, b) => timeOf(a.sent_at) - timeOf(b.sent_at) || (a.id < b.id ? -1 : 1));
  // One group per day, so that each day's sticky separator scrolls away with its messages.
  const groups = [];
  let rows = null;
  for (const m of sorted) {
    const day = dayOf(m);
    if (!groups.length || groups[groups.length - 1].day !== day) {
      if (!open.days.has(day)) {
        const separator = el("div", { class: "day-separator", role: "separator", "aria-label": day }, el("span", {}, day));
        open.days.set(day, el("div", { class: "day-group" }, separator));
      }
      rows = [open.days.get(day).firstElementChild];
      groups.push({ day, node: open.days.get(day), rows });
    }
    rows.push(messageNode(open, m));
  }
  for (const group of groups) reconcile(group.node, group.rows);
  reconcile(ui.messages, groups.map((g) => g.node));
  const atStart = open.loaded && !open.nextBefore && sorted.length > 0;
  ui.history.hidden = !open.loadingOlder && !atStart;
  ui.history.textContent = open.loadingOlder ? "Loading older messages…" : atStart ? "This is the start of the chat." : "";
  if (mode === "older") box.scrollTop = box.scrollHeight - fromBottom;
  else if (mode === "bottom" || atBottom) box.scrollTop = box.scrollHeight;
  updateJump();
}

/**
 * Messages changed by a live MESSAGE_UPDATED, with the order it came in: a page read over REST
 * that started before such a change must not put the message back as it was (the read may
 * answer after the event).
 */
const liveChanges = new Map();
let liveSeq = 0;

/** Loads (or, after a reconnect, merges) the newest page of the open conversation. */
async function loadNewest(open) {
  const startedAt = liveSeq;
  let page;
  try {
    page = await api("GET", `${chatPath(open.jid)}/messages?limit=${PAGE_SIZE}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) page = { items: [], next_before: null }; // a new chat
    else throw err;
  }
  if (open !== state.open) return;
  const newestLoaded = Math.max(0, ...[...open.msgs.values()].filter((m) => !m.local).map((m) => timeOf(m.sent_at)));
  const oldestOfPage = page.items.length ? timeOf(page.items[page.items.length - 1].sent_at) : 0;
  const first = !open.loaded;
  // Missed more than a page: start again from this page rather than leave a hole.
  if (first || (page.next_before && oldestOfPage > newestLoaded)) {
    for (const id of [...open.msgs.keys()]) if (!open.msgs.get(id).local) removeMessage(open, id);
    open.nextBefore = page.next_before;
  }
  for (const m of page.items) {
    if ((liveChanges.get(m.id) ?? 0) <= startedAt) upsertMessage(open, m);
  }
  if (liveChanges.size > 2000) liveChanges.clear();
  open.loaded = true;
  renderMessages(open, first ? "bottom" : "live");
  if (first) fillViewport(open);
}

async function loadOlder(open) {
  if (!open || open !== state.open || !open.nextBefore || open.loadingOlder) return;
  open.loadingOlder = true;
  ui.history.hidden = false;
  ui.history.textContent = "Loading older messages…";
  try {
    const page = await api("GET", `${chatPath(open.jid)}/messages?limit=${PAGE_SIZE}&before=${encodeURIComponent(open.nextBefore)}`);
    if (open !== state.open) return;
    for (const m of page.items) upsertMessage(open, m);
    open.nextBefore = page.next_before;
    open.loadingOlder = false;
    renderMessages(open, "older");
    fillViewport(open);
  } catch (err) {
    open.loadingOlder = false;
    ui.history.textContent = err.message;
  }
}

/** Loads older pages until the conversation can scroll (so scrolling up can load more). */
function fillViewport(open) {
  if (open === state.open && open.nextBefore && ui.box.scrollHeight <= ui.box.clientHeight + 120) loadOlder(open);
}

function updateJump() {
  const away = ui.box.scrollHeight - ui.box.scrollTop - ui.box.clientHeight;
  $("jump-bottom").hidden = away < 300;
}

// ---------------------------------------------------------------------------------------------
// Mark read

const pendingRead = new Set();
const flushReads = debounce(() => {
  for (const jid of pendingRead) markRead(jid);
  pendingRead.clear();
}, 400);

async function markRead(jid) {
  if (!state.canWrite || document.visibilityState !== "visible" || state.open?.jid !== jid) return;
  const chat = state.chats.get(jid);
  if (chat) {
    chat.unread_count = 0;
    renderChatList();
  }
  try {
    const view = await api("POST", `${chatPath(jid)}/read`);
    if (view && state.chats.has(jid)) {
      state.chats.set(jid, { ...state.chats.get(jid), ...view });
      renderChatList();
    }
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) console.warn("mark read failed", err);
  }
}

// ---------------------------------------------------------------------------------------------
// Sending

let localIds = 0;
function localMessage(open, fields) {
  const now = new Date().toISOString();
  return { chat: open.jid, sender: "", sender_name: null, from_me: true, text: null, media: null, sent_at: now, time_label: clockOf(now), local: true, ...fields };
}

async function sendText() {
  const open = state.open;
  const text = ui.input.value;
  if (!open || !text.trim()) return;
  if (text.length > MAX_TEXT) {
    showAlert(ui.composerError, `A message can have at most ${MAX_TEXT} characters.`);
    return;
  }
  clearAlert(ui.composerError);
  ui.input.value = "";
  resizeInput();
  const pending = localMessage(open, { id: `local-${++localIds}`, text: text.trimEnd(), status: "pending" });
  upsertMessage(open, pending);
  renderMessages(open, "bottom");
  try {
    const sent = await api("POST", `${BASE}/messages`, { to: open.jid, text });
    removeMessage(open, pending.id);
    upsertMessage(open, { ...pending, id: sent.id, status: sent.status || "sent" });
  } catch (err) {
    removeMessage(open, pending.id);
    if (open === state.open) {
      if (!ui.input.value) {
        ui.input.value = text;
        resizeInput();
      }
      showAlert(ui.composerError, `Not sent: ${err.message}`);
    }
  }
  renderMessages(open, "bottom");
}

function resizeInput() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 140)}px`;
}

function openPreview(file) {
  clearAlert(ui.composerError);
  const field = fileField(file);
  const limit = field === "image" ? MAX_IMAGE_BYTES : MAX_FILE_BYTES;
  if (file.size > limit) {
    showAlert(ui.composerError, `This file is ${formatSize(file.size)}; the limit is ${formatSize(limit)}.`);
    return;
  }
  closePreview();
  state.attach = { file, url: URL.createObjectURL(file), field };
  const image = field === "image";
  $("attach-image").hidden = !image;
  if (image) $("attach-image").src = state.attach.url;
  $("attach-file").hidden = image;
  $("attach-file-name").textContent = file.name;
  $("attach-title").textContent = { image: "Send image", voice: "Send voice note", audio: "Send audio", video: "Send video", document: "Send document" }[field];
  $("attach-meta").textContent = `${file.name} · ${formatSize(file.size)}`;
  ui.caption.value = ui.input.value.trim();
  clearAlert(ui.attachError);
  ui.preview.hidden = false;
  ui.caption.focus();
}

function closePreview(keepUrl = false) {
  if (!state.attach) return;
  if (!keepUrl) URL.revokeObjectURL(state.attach.url);
  state.attach = null;
  ui.preview.hidden = true;
  $("attach-image").removeAttribute("src");
  ui.caption.value = "";
}

async function sendAttachment() {
  const open = state.open;
  const attach = state.attach;
  if (!open || !attach) return;
  const button = $("send-image");
  const caption = ui.caption.value.trim();
  const form = new FormData();
  form.append("to", open.jid);
  form.append("caption", caption);
  form.append(attach.field, attach.file, attach.file.name);
  button.disabled = true;
  clearAlert(ui.attachError);
  try {
    const sent = await postForm(`${BASE}/messages`, form);
    const captioned = ["image", "video", "document"].includes(attach.field);
    upsertMessage(open, localMessage(open, {
      id: sent.id, kind: attach.field, text: (captioned && caption) || null, status: sent.status || "sent",
      file_name: attach.field === "document" ? attach.file.name : null,
      media: { mime: attach.file.type, size: attach.file.size, url: attach.url },
    }));
    if (ui.input.value.trim() === caption) ui.input.value = "";
    closePreview(true);
    renderMessages(open, "bottom");
  } catch (err) {
    const unsupported = err.status === 415 || (err.status === 400 && err.code === "invalid_json");
    showAlert(ui.attachError, unsupported
      ? `This file cannot be sent (${err.status}: ${err.message})`
      : `Not sent: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Live updates

const scheduleRefresh = debounce(async () => {
  try {
    await loadChats();
    if (state.open) await loadNewest(state.open);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) console.warn("refresh failed", err);
  }
}, 300);

/**
 * Reads the chats (and the open conversation) again: once subscribed, after a reconnect, and on
 * a gap in the messages topic (device-status is the tenant's: its gaps say nothing about this
 * device, and members' streams skip the others' devices).
 */
function onResync(topics, reason) {
  if (reason !== "gap" || topics.includes(TOPIC)) scheduleRefresh();
}

/** A refused subscription, in the banner until the next connection. */
function onError(frame) {
  ui.banner.textContent = `Live updates: ${frame.error?.message || "error"}`;
  ui.banner.hidden = false;
}

/** The banner's message belongs to the connection it came on. */
function onState(state) {
  if (state !== "connected") ui.banner.hidden = true;
}

/** An event of the device's messages or of device-status. */
function onEvent(frame) {
  const data = frame.data || {};
  switch (frame.event) {
    case "NEW_MESSAGE": {
      const open = state.open;
      if (open && data.chat === open.jid) {
        upsertMessage(open, data);
        renderMessages(open, data.from_me ? "bottom" : "live");
        if (!data.from_me) {
          pendingRead.add(open.jid);
          flushReads();
        }
      }
      break;
    }
    case "MESSAGE_UPDATED": {
      // A reaction, edit or deletion: the server's view replaces the message (media included).
      const open = state.open;
      const old = open?.msgs.get(data.id);
      if (open && data.chat === open.jid && old) {
        open.msgs.set(data.id, { ...data, status: laterStatus(old.status, data.status) });
        liveChanges.set(data.id, ++liveSeq);
        renderMessages(open);
      }
      break;
    }
    case "CHAT_UPDATED":
      upsertChat(data);
      if (state.open?.jid === data.jid && data.unread_count > 0) {
        pendingRead.add(data.jid);
        flushReads();
      }
      break;
    case "CHAT_REMOVED":
      state.chats.delete(data.jid);
      renderChatList();
      if (state.open?.jid === data.jid && data.merged_into) openChat(data.merged_into);
      break;
    case "MESSAGE_ACK": {
      const open = state.open;
      for (const id of data.ids || []) {
        state.acks.set(id, laterStatus(state.acks.get(id), data.status));
        const m = open?.msgs.get(id);
        if (m) m.status = laterStatus(m.status, data.status);
      }
      if (state.acks.size > 2000) state.acks.clear();
      if (open) renderMessages(open);
      break;
    }
    case "DEVICE_STATUS":
      if (data.device_id === deviceId && state.device) {
        state.device.status = data.status;
        if (data.phone) state.device.phone = data.phone;
        renderDevice();
      }
      break;
    default:
  }
}

// ---------------------------------------------------------------------------------------------
// Media gallery

const VISUAL = new Set(["image", "video", "sticker"]);

/** Opens the open chat's media gallery and loads its newest page. */
function openGallery() {
  if (!state.open) return;
  state.gallery = { jid: state.open.jid, nextBefore: null, count: 0 };
  $("gallery-tiles").replaceChildren();
  $("gallery-files").replaceChildren();
  $("gallery").hidden = false;
  $("gallery-button").setAttribute("aria-expanded", "true");
  $("gallery-close").focus();
  loadGallery();
}

function closeGallery() {
  state.gallery = null;
  $("gallery").hidden = true;
  $("gallery-button").setAttribute("aria-expanded", "false");
}

/** Loads the next (older) page of the gallery. */
async function loadGallery() {
  const gallery = state.gallery;
  if (!gallery) return;
  const status = $("gallery-status");
  status.textContent = "Loading…";
  $("gallery-more").hidden = true;
  const cursor = gallery.nextBefore ? `&before=${encodeURIComponent(gallery.nextBefore)}` : "";
  let page;
  try {
    page = await api("GET", `${chatPath(gallery.jid)}/media?limit=60${cursor}`);
  } catch (err) {
    if (gallery === state.gallery) status.textContent = `Cannot load the media: ${err.message}`;
    return;
  }
  if (gallery !== state.gallery) return;
  for (const m of page.items) {
    if (VISUAL.has(m.kind)) $("gallery-tiles").append(galleryTile(m));
    else $("gallery-files").append(galleryFile(m));
  }
  gallery.count += page.items.length;
  gallery.nextBefore = page.next_before || null;
  $("gallery-more").hidden = !gallery.nextBefore;
  status.textContent = gallery.count ? `${gallery.count} item${gallery.count === 1 ? "" : "s"}` : "No media, documents or voice notes in this chat yet.";
}

/** A picture, video or sticker as a square tile linking to the file. */
function galleryTile(m) {
  const url = m.media?.url;
  const label = `${m.kind === "video" ? "Video" : m.kind === "sticker" ? "Sticker" : "Photo"}${m.text ? `: ${m.text}` : ""}, ${m.time_label}`;
  if (!url) return el("li", {}, el("span", { class: "tile-missing", role: "img", "aria-label": `${label} (not downloaded)` }, "Not downloaded"));
  const inner = m.kind === "video"
    ? el("video", { src: url, preload: "metadata", muted: "", "aria-hidden": "true" })
    : el("img", { src: url, alt: "", loading: "lazy" });
  return el("li", {}, el("a", { href: url, target: "_blank", rel: "noopener", "aria-label": label }, inner));
}

/** A document, voice note or audio file as a row: name or player, size and time. */
function galleryFile(m) {
  const url = m.media?.url;
  const size = m.media?.size ? formatSize(m.media.size) : "";
  const meta = el("span", { class: "bubble-size" }, [size, m.time_label].filter(Boolean).join(" · "));
  if (m.kind === "voice" || m.kind === "audio") {
    const label = m.kind === "voice" ? "🎤 Voice message" : "🎵 Audio";
    return el("li", {}, el("span", {}, label), url ? el("audio", { src: url, controls: "", preload: "none", "aria-label": label }) : el("span", { class: "muted" }, "not downloaded"), meta);
  }
  const name = m.file_name || "Document";
  const body = [el("span", { class: "doc-icon", "aria-hidden": "true" }, "📄"), el("span", { class: "doc-name" }, name), meta];
  return el("li", {}, url ? el("a", { class: "bubble-document", href: url, download: name }, ...body) : el("span", {}, ...body));
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  ui.search.addEventListener("input", debounce(() => {
    state.query = ui.search.value.trim();
    loadChats().catch(showFatal);
  }, 250));
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendText();
    }
  });
  ui.input.addEventListener("input", resizeInput);
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendText();
  });
  $("attach-button").addEventListener("click", () => ui.attachInput.click());
  ui.attachInput.addEventListener("change", () => {
    const file = ui.attachInput.files[0];
    ui.attachInput.value = "";
    if (file) openPreview(file);
  });
  $("attach-cancel").addEventListener("click", () => {
    closePreview();
    ui.input.focus();
  });
  $("send-image").addEventListener("click", sendAttachment);
  ui.caption.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      sendAttachment();
    }
  });
  ui.preview.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closePreview();
  });
  $("gallery-button").addEventListener("click", () => (state.gallery ? closeGallery() : openGallery()));
  $("gallery-close").addEventListener("click", () => {
    closeGallery();
    $("gallery-button").focus();
  });
  $("gallery-more").addEventListener("click", loadGallery);
  $("gallery").addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      closeGallery();
      $("gallery-button").focus();
    }
  });
  $("back-button").addEventListener("click", () => {
    if (state.pushedHistory && history.state?.chat) {
      history.back();
    } else {
      closeChat();
      history.replaceState(null, "", location.pathname + location.search);
    }
  });
  window.addEventListener("popstate", () => {
    const jid = chatFromHash();
    state.pushedHistory = false;
    if (jid) openChat(jid, { push: false });
    else if (state.open) closeChat();
  });
  ui.box.addEventListener("scroll", () => {
    if (ui.box.scrollTop < 150) loadOlder(state.open);
    updateJump();
  }, { passive: true });
  $("jump-bottom").addEventListener("click", () => ui.box.scrollTo({ top: ui.box.scrollHeight, behavior: "smooth" }));
  MOBILE.addEventListener("change", () => {
    if (!MOBILE.matches && !state.open) {
      ui.pane.hidden = true;
      ui.empty.hidden = false;
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    const chat = state.open && state.chats.get(state.open.jid);
    if (chat && chat.unread_count > 0) markRead(chat.jid);
  });
  // Labels like "15:04" become "Yesterday" at midnight: refresh them now and then.
  setInterval(() => {
    if (document.visibilityState === "visible") scheduleRefresh();
  }, 10 * 60 * 1000);
}

async function start() {
  if (!Number.isInteger(deviceId) || deviceId <= 0) {
    showFatal(new Error("This address does not name a device."));
    return;
  }
  wire();
  const current = await me();
  state.canWrite = roleAtLeast(current.user.role, "member");
  state.zone = current.tenant?.time_zone;
  connectLive({ topics: [TOPIC, "device-status"], onEvent, onResync, onError, onState });
  try {
    state.device = await api("GET", BASE);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      $("device-name").textContent = "Device not found";
      showFatal(new Error("This device does not exist or is not one of yours."));
      return;
    }
    throw err;
  }
  renderDevice();
  await loadChats();
  const jid = chatFromHash();
  if (jid) openChat(jid, { push: false });
}

start().catch((err) => {
  if (!(err instanceof ApiError && err.status === 401)) showFatal(err);
});
