// wafleet dashboard: the one WebSocket client every live page uses (protocol in
// docs/websocket.md; this client is described there under "Dashboard client").
//
//   import { connect as connectLive } from "/static/live.js";
//   const stream = connectLive({ topics, onEvent, onResync, onError, onState });
//   stream.subscribe(["campaign/3"]); stream.unsubscribe(["campaign/3"]);
//   stream.setTopics(["lead-lists/7"]); stream.close();
//
// - topics: the topic names to hold from the start (may be empty; change them later with
//   subscribe / unsubscribe / setTopics). They are subscribed again on every new socket.
// - onEvent(frame): every event frame {topic, event, data, ts, seq} of a held topic.
// - onResync(topics, reason): read these topics again over REST. reason is
//     "subscribed"  the first socket is subscribed: a page that loads after subscribing (so that
//                   no event falls between the two) loads now; one that loaded before ignores it;
//     "reconnected" a later socket is subscribed: anything may have been missed (every topic);
//     "gap"         `seq` of this topic jumped: events were missed. Members hear only their
//                   devices on device-status, so their seq skips: pages ignore gaps there for them.
// - onError(frame): an ERROR frame (a refused topic…), after it is logged to the console.
// - onState(state): "connecting", "connected" (subscribed) or "reconnecting".
//
// The same state is shown on every element with a `data-live` attribute: the attribute takes the
// state's name, and the ones with class `live` (the pill of app.css) get its class and text.
//
// The socket is same-origin (the session cookie authenticates it). The browser answers the
// server's pings; as scripts cannot see those, an application ping goes out every 20 s and a
// socket that stays silent 10 s after it is dropped. A lost socket is reopened after a backoff
// (1 s doubling to 30 s, with jitter), at once when the browser comes back online or the tab is
// shown again; before each attempt /me is read, so an ended session goes to the sign-in page
// instead of retrying forever (a refused upgrade does not tell scripts its status).
import { api } from "/static/app.js";

/** Reconnect backoff: the first delay and the cap (each attempt waits between half and all of it). */
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
/** Application ping period, and how long the answer may take before the socket is given up. */
const PING_EVERY_MS = 20000;
const PONG_WITHIN_MS = 10000;

/** How each state looks on a `.live[data-live]` pill. */
const PILL = {
  connecting: { className: "live live-connecting", text: "Connecting…" },
  connected: { className: "live live-live", text: "Live" },
  reconnecting: { className: "live live-reconnecting", text: "Reconnecting…" },
};

/** Shows `state` on every `[data-live]` element of the page. */
function showState(state) {
  for (const node of document.querySelectorAll("[data-live]")) {
    node.dataset.live = state;
    if (node.classList.contains("live")) {
      node.className = PILL[state].className;
      node.textContent = PILL[state].text;
    }
  }
}

/** The stream's address: /api/v1/ws on this page's host. */
function streamUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/ws`;
}

/** Opens the page's live stream (one per page). See the top of this file. */
export function connect({ topics = [], onEvent, onResync = () => {}, onError = () => {}, onState = () => {} }) {
  /** Topics the page wants; every new socket subscribes to all of them. */
  const held = new Set(topics);
  /** The last `seq` seen per topic on the current socket (none yet: the next one is the baseline). */
  const lastSeq = new Map();
  let ws = null;
  /** The current socket is subscribed (or had nothing to subscribe to). */
  let ready = false;
  /** Some socket was ready before: the next ready one is a reconnect. */
  let started = false;
  let delay = BACKOFF_MIN_MS;
  let retry = null;
  let pingTimer = null;
  let pongTimer = null;
  /** Closed by the page, or the session ended: never reopened. */
  let stopped = false;
  /** The page is hidden away (pagehide): reopened if it is shown again. */
  let suspended = false;

  function setState(state) {
    showState(state);
    onState(state);
  }

  function send(op) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(op));
  }

  function open() {
    clearTimeout(retry);
    retry = null;
    if (stopped || suspended || ws) return;
    let socket;
    try {
      socket = new WebSocket(streamUrl());
    } catch {
      drop();
      return;
    }
    ws = socket;
    ready = false;
    lastSeq.clear();
    socket.addEventListener("open", () => {
      if (socket !== ws) return;
      pingTimer = setInterval(ping, PING_EVERY_MS);
      if (held.size) send({ op: "subscribe", topics: [...held] });
      else streamReady();
    });
    socket.addEventListener("message", (event) => {
      if (socket === ws) receive(event.data);
    });
    // "error" is always followed by "close".
    socket.addEventListener("close", () => {
      if (socket === ws) drop();
    });
  }

  /** The socket holds every topic: live from here on; the page reads what it may have missed. */
  function streamReady() {
    ready = true;
    delay = BACKOFF_MIN_MS;
    setState("connected");
    onResync([...held], started ? "reconnected" : "subscribed");
    started = true;
  }

  /** Drops the current socket (closed by either side, or silent) without reconnecting. */
  function release() {
    const socket = ws;
    ws = null;
    ready = false;
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
  }

  /** The socket is gone: show it and try again after the backoff. */
  function drop() {
    release();
    if (stopped || suspended) return;
    setState("reconnecting");
    schedule();
  }

  /** The next attempt after the current backoff (with jitter), which then doubles. */
  function schedule() {
    if (retry !== null || stopped || suspended) return;
    const wait = delay / 2 + (Math.random() * delay) / 2;
    delay = Math.min(delay * 2, BACKOFF_MAX_MS);
    retry = setTimeout(async () => {
      // A 401 here means the session ended: api() sends the browser to the sign-in page.
      try {
        await api("GET", "/api/v1/me", undefined, { csrf: false });
      } catch (err) {
        if (err.status === 401) {
          stopped = true;
          return;
        }
      }
      open();
    }, wait);
  }

  /** Reopens at once (back online, tab shown again) instead of waiting out the backoff. */
  function reopenNow() {
    if (stopped || suspended || ws) return;
    delay = BACKOFF_MIN_MS;
    open();
  }

  function ping() {
    const socket = ws;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    send({ op: "ping" });
    clearTimeout(pongTimer);
    pongTimer = setTimeout(() => {
      if (socket === ws) drop();
    }, PONG_WITHIN_MS);
  }

  function receive(text) {
    // Anything from the server proves the socket alive.
    clearTimeout(pongTimer);
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    switch (frame.event) {
      case "SUBSCRIBED":
        if (!ready) streamReady();
        return;
      case "PONG":
      case "UNSUBSCRIBED":
        return;
      case "ERROR":
        console.warn("wafleet live updates:", frame.error, frame.topic || "");
        onError(frame);
        return;
      default:
        break;
    }
    // Late events of a topic the page has just left are not wanted any more.
    if (!held.has(frame.topic)) return;
    if (typeof frame.seq === "number") {
      // seq grows by one per event of the topic: a jump means events were missed.
      const last = lastSeq.get(frame.topic);
      lastSeq.set(frame.topic, frame.seq);
      if (last !== undefined && frame.seq !== last + 1) onResync([frame.topic], "gap");
    }
    onEvent(frame);
  }

  /** Holds these topics too (subscribed at once when the socket is open). */
  function subscribe(names) {
    const added = names.filter((name) => !held.has(name));
    for (const name of added) held.add(name);
    if (added.length) send({ op: "subscribe", topics: added });
  }

  /** Stops holding these topics. */
  function unsubscribe(names) {
    const dropped = names.filter((name) => held.has(name));
    for (const name of dropped) {
      held.delete(name);
      lastSeq.delete(name);
    }
    if (dropped.length) send({ op: "unsubscribe", topics: dropped });
  }

  /** Holds exactly these topics: leaves the others, subscribes to the new ones. */
  function setTopics(names) {
    const wanted = new Set(names);
    unsubscribe([...held].filter((name) => !wanted.has(name)));
    subscribe([...wanted]);
  }

  /** Closes the stream for good. */
  function close() {
    stopped = true;
    clearTimeout(retry);
    release();
  }

  window.addEventListener("online", reopenNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") reopenNow();
  });
  window.addEventListener("pagehide", () => {
    suspended = true;
    clearTimeout(retry);
    retry = null;
    release();
  });
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    suspended = false;
    reopenNow();
  });

  setState("connecting");
  open();
  return { subscribe, unsubscribe, setTopics, close };
}
