// Sequences page (static/sequences.html): drip sequences, messages sent to each lead one step
// after the other. The address's hash picks the view:
//
// - "" : every sequence with its trigger tag, status, step count and enrolments by state;
//   members and above get Pause/Resume, Edit and Delete per row;
// - "#new" and "#<id>/edit": the form (members and above) → POST /sequences or PUT
//   /sequences/<id> with every step, then PUT (or DELETE) …/steps/<position>/image for each
//   step whose picture was chosen (or removed). The API's 422 is shown above the form and the
//   field it names (a step's message, its send window, the chain…) is marked;
// - "#<id>": one sequence: Pause/Resume, Edit, Delete (members and above), its steps, the
//   report (a funnel per step drawn as inline SVG, a table per step and per device) and the
//   enrolled leads, filtered by status, 50 at a time, each stoppable by members.
//
// Viewers see the same lists and reports with no control at all. There is no live topic for
// sequences: "Refresh" reads the report again.
import { api, me, renderNav, roleAtLeast, el, showAlert, clearAlert, showFatal, FieldError, clearFormMarks, showFailure, submitFormWith, zoneClock, formatWhen, filePath, fileText } from "/static/app.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

/** Enrolments per request. */
const ENROLLMENTS_PAGE = 50;
/** Devices per request when reading the fleet for names. */
const DEVICES_PAGE = 200;
/** The longest step message the form accepts (a WhatsApp message). */
const MESSAGE_MAX = 4096;
const MINUTES_PER_DAY = 24 * 60;

/** Sequence states: label and colour family (the tone-* classes of app.css). */
const SEQUENCE_STATUS = {
  active: { label: "Active", tone: "ok" },
  paused: { label: "Paused", tone: "warn" },
};

/** Enrolment states, in the order of the list's columns and the status filter. */
const ENROLLMENT_STATUS = {
  waiting: { label: "Waiting", tone: "idle" },
  active: { label: "Active", tone: "busy" },
  completed: { label: "Completed", tone: "ok" },
  stopped: { label: "Stopped", tone: "warn" },
  failed: { label: "Failed", tone: "bad" },
};

/** The bars of the funnel, one group per step, in order. */
const FUNNEL = [
  { key: "reached", label: "Reached", color: "#aebac1" },
  { key: "sent", label: "Sent", color: "#53bdeb" },
  { key: "delivered", label: "Delivered", color: "#25d366" },
  { key: "read", label: "Read", color: "#008069" },
  { key: "replied", label: "Replied", color: "#f0a500" },
];
/** Every number of a step's report, as tabled. */
const STEP_COLUMNS = [...FUNNEL, { key: "stopped", label: "Stopped" }, { key: "failed", label: "Failed" }];

/** Funnel geometry in SVG units. */
const CHART = { left: 34, right: 8, top: 10, height: 110, bottom: 26, bar: 14, barGap: 2, groupGap: 26, minWidth: 300 };

const number = new Intl.NumberFormat();

const view = {
  /** /me of the signed-in user. */
  current: null,
  /** Members and above may create, edit and control sequences. */
  canAct: false,
  /** "When" formatter in the tenant's time zone. */
  clock: null,
  /** Sequences of the list, by id. */
  sequences: new Map(),
  /** The sequence of the detail view, and its report. */
  detail: null,
  report: null,
  /** The sequence being edited (null: a new one). */
  editing: null,
  /** Devices of the tenant by id (names for tables), read once. */
  devices: null,
  /** Enrolment paging: the last row id shown. */
  enrollmentsAfter: 0,
  /** Bumped per route change; answers for an older view are dropped. */
  generation: 0,
  /** A message for the next sequence page opened (a picture the server refused). */
  notice: null,
  /** An action (pause, delete…) is on its way: the buttons wait. */
  acting: false,
};

/** Ids for the labels of step fields, unique per page. */
let stepUid = 0;

// ---------------------------------------------------------------- formatting

/** "26 Nov 2026, 15:04" in the tenant's zone. */
const when = (iso) => formatWhen(view.clock, iso);

/** "right away", "2 days", "1 day 3 h", "45 min". */
function delayText(minutes) {
  const m = Math.max(0, Math.round(minutes || 0));
  if (m === 0) return "right away";
  const days = Math.floor(m / MINUTES_PER_DAY);
  const hours = Math.floor((m % MINUTES_PER_DAY) / 60);
  const mins = m % 60;
  const parts = [];
  if (days) parts.push(`${days} day${days === 1 ? "" : "s"}`);
  if (hours) parts.push(`${hours} h`);
  if (mins) parts.push(`${mins} min`);
  return parts.join(" ");
}

function statusBadge(status) {
  const info = SEQUENCE_STATUS[status] || { label: status, tone: "idle" };
  return el("span", { class: `status-badge tone-${info.tone}`, dataset: { status } }, info.label);
}

function enrollmentBadge(status) {
  const info = ENROLLMENT_STATUS[status] || { label: status, tone: "idle" };
  return el("span", { class: `status-badge tone-${info.tone}`, dataset: { status } }, info.label);
}

const deviceName = (id) => {
  if (id === null || id === undefined) return "—";
  const device = view.devices && view.devices.get(id);
  return device ? device.name : `Device #${id}`;
};

/** A table cell labelled with its column for the stacked phone layout. */
const cell = (label, ...children) => el("td", { "data-label": label }, ...children);

const count = (value) => number.format(value || 0);

/** "a, b,,c " → ["a", "b", "c"]. */
const words = (text) =>
  text
    .split(",")
    .map((w) => w.trim())
    .filter(Boolean);

// ---------------------------------------------------------------- routing

function route() {
  view.generation += 1;
  const hash = location.hash.slice(1);
  const match = /^(\d+)(\/edit)?$/.exec(hash);
  const id = match ? Number(match[1]) : null;
  const editing = id !== null && Boolean(match[2]) && view.canAct;
  const creating = hash === "new" && view.canAct;
  $("sequences").hidden = id !== null || creating;
  $("editor").hidden = !creating && !editing;
  $("detail").hidden = id === null || editing;
  view.detail = null;
  view.report = null;
  document.title = "Sequences · wafleet";
  if (creating) openEditor(null);
  else if (editing) openEditor(id);
  else if (id !== null) openDetail(id);
  else loadList();
}

// ---------------------------------------------------------------- list

async function loadList() {
  const generation = view.generation;
  let body;
  try {
    body = await api("GET", "/api/v1/sequences");
    clearAlert($("list-alert"));
  } catch (err) {
    showFailure($("list-alert"), err);
    return;
  }
  if (generation !== view.generation) return;
  view.sequences = new Map(body.sequences.map((s) => [s.id, s]));
  const tbody = $("sequence-list").tBodies[0];
  tbody.replaceChildren(...body.sequences.map(sequenceRow));
  if (body.sequences.length === 0) {
    const hint = view.canAct ? "No sequences yet. “New sequence” writes the first." : "No sequences yet.";
    tbody.append(el("tr", {}, el("td", { colspan: 10, class: "muted" }, hint)));
  }
}

function sequenceRow(s) {
  const counts = s.counts || {};
  const actions = el("td", { class: "actions", "data-label": "" });
  if (view.canAct) {
    const box = $("list-alert");
    actions.append(
      el(
        "button",
        { type: "button", class: "btn btn-link", dataset: { action: "toggle" }, onclick: () => toggleFromList(s.id) },
        s.status === "active" ? "Pause" : "Resume",
      ),
      el("a", { class: "btn btn-link", href: `#${s.id}/edit`, dataset: { action: "edit" } }, "Edit"),
      el(
        "button",
        {
          type: "button",
          class: "btn btn-link btn-link-danger",
          dataset: { action: "delete" },
          onclick: () => removeSequence(s, box),
        },
        "Delete",
      ),
    );
  }
  return el(
    "tr",
    { dataset: { sequenceId: s.id } },
    cell(
      "Name",
      el("a", { href: `#${s.id}`, class: "campaign-link" }, s.name),
      s.description ? el("small", { class: "hint seq-description" }, s.description) : null,
    ),
    cell("Trigger tag", s.trigger_tag ? el("span", { class: "badge" }, s.trigger_tag) : "—"),
    cell("Status", statusBadge(s.status)),
    cell("Steps", count(s.steps.length)),
    ...Object.entries(ENROLLMENT_STATUS).map(([key, info]) =>
      el("td", { "data-label": info.label, dataset: { count: key } }, count(counts[key])),
    ),
    actions,
  );
}

/** Pauses or resumes a listed sequence; its row is drawn again. */
async function toggleFromList(id) {
  const s = view.sequences.get(id);
  if (!s || view.acting) return;
  const box = $("list-alert");
  clearAlert(box);
  view.acting = true;
  try {
    const fresh = await api("POST", `/api/v1/sequences/${id}/toggle`, { active: s.status !== "active" });
    view.sequences.set(id, fresh);
    const row = $("sequence-list").querySelector(`tr[data-sequence-id="${id}"]`);
    if (row) row.replaceWith(sequenceRow(fresh));
  } catch (err) {
    showFailure(box, err);
  } finally {
    view.acting = false;
  }
}

/** Deletes a sequence after asking; back to the list. */
async function removeSequence(s, box) {
  if (view.acting) return;
  if (!confirm(`Delete the sequence “${s.name}”? Steps not sent yet are dropped.`)) return;
  clearAlert(box);
  view.acting = true;
  try {
    await api("DELETE", `/api/v1/sequences/${s.id}`);
    if (location.hash.slice(1) === "") loadList();
    else location.hash = "";
  } catch (err) {
    showFailure(box, err);
  } finally {
    view.acting = false;
    if (view.detail) renderActions();
  }
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

async function openEditor(id) {
  const generation = view.generation;
  const form = $("sequence-form");
  form.reset();
  clearForm();
  view.editing = null;
  $("steps").replaceChildren();
  $("editor-title").textContent = id === null ? "New sequence" : "Edit sequence";
  $("save-sequence").textContent = id === null ? "Create sequence" : "Save changes";
  $("editor-back").href = id === null ? "#" : `#${id}`;
  $("editor-back").textContent = id === null ? "← All sequences" : "← Back to the sequence";
  $("save-sequence").disabled = id !== null;
  const [all, sequence] = await Promise.allSettled([
    api("GET", "/api/v1/sequences"),
    id === null ? Promise.resolve(null) : api("GET", `/api/v1/sequences/${id}`),
  ]);
  if (generation !== view.generation) return;
  const box = $("form-alert");
  if (sequence.status === "rejected") {
    $("editor-title").textContent = sequence.reason.status === 404 ? "Sequence not found" : "Edit sequence";
    showFailure(box, sequence.reason);
    return;
  }
  if (all.status === "rejected") showFailure(box, all.reason);
  const editing = sequence.value;
  view.editing = editing;
  fillChain(all.status === "fulfilled" ? all.value.sequences : [], editing);
  if (editing) {
    document.title = `Edit ${editing.name} · Sequences · wafleet`;
    $("sequence-name").value = editing.name;
    $("sequence-description").value = editing.description || "";
    $("sequence-trigger").value = editing.trigger_tag || "";
    $("sequence-stop-on-reply").checked = editing.stop_on_reply;
    $("sequence-next").value = editing.next_sequence_id === null || editing.next_sequence_id === undefined ? "" : String(editing.next_sequence_id);
    for (const step of editing.steps) $("steps").append(stepCard(step));
  }
  if ($("steps").children.length === 0) $("steps").append(stepCard(null));
  renumber();
  $("save-sequence").disabled = false;
  $("sequence-name").focus();
}

/** The "then continue with" choices: every other sequence. */
function fillChain(sequences, editing) {
  const select = $("sequence-next");
  // The same sequences are the targets a step's reply may move the lead to.
  view.jumpTargets = sequences.filter((s) => !editing || s.id !== editing.id);
  select.replaceChildren(
    el("option", { value: "" }, "Nothing: the sequence ends"),
    ...sequences
      .filter((s) => !editing || s.id !== editing.id)
      .map((s) => el("option", { value: s.id }, s.name)),
  );
  // A chained sequence this caller cannot list still shows, by number.
  const next = editing && editing.next_sequence_id;
  if (next && !sequences.some((s) => s.id === next)) {
    select.append(el("option", { value: next }, `Sequence #${next}`));
  }
}

/** The editor of one step; `step` is the saved step it starts from (null: a new one). */
function stepCard(step) {
  stepUid += 1;
  const id = (name) => `step-${name}-${stepUid}`;
  const minutes = step ? step.delay_minutes || 0 : $("steps").children.length === 0 ? 0 : MINUTES_PER_DAY;
  const days = Math.floor(minutes / MINUTES_PER_DAY);
  const hours = (minutes - days * MINUTES_PER_DAY) / 60;
  const window = step && step.window;
  const message = el(
    "textarea",
    {
      id: id("message"),
      class: "step-message",
      rows: 4,
      maxlength: MESSAGE_MAX,
      required: true,
      "aria-describedby": `${id("count")} steps-hint`,
    },
  );
  message.value = step ? step.message : "";
  const counter = el("small", { id: id("count"), class: "hint count step-count" });
  const updateCount = () => {
    counter.textContent = `${number.format(message.value.length)} / ${number.format(MESSAGE_MAX)}`;
  };
  message.addEventListener("input", updateCount);
  updateCount();
  const numberField = (name, label, value, attrs) => {
    const input = el("input", { id: id(name), class: `step-${name}`, type: "number", min: 0, inputmode: "numeric", ...attrs });
    input.value = String(value);
    return el("div", { class: "field" }, el("label", { for: id(name) }, label), input);
  };
  const timeField = (name, label, value) => {
    const input = el("input", { id: id(name), class: `step-${name}`, type: "time", "aria-describedby": id("window-hint") });
    if (value) input.value = value;
    return el("div", { class: "field" }, el("label", { for: id(name) }, label), input);
  };
  const reply = replyFields(step && step.on_reply, id);
  const moveButton = (action, label) =>
    el("button", { type: "button", class: "btn btn-link btn-small", dataset: { stepAction: action } }, label);
  const card = el(
    "li",
    { class: "step-card" },
    el(
      "div",
      { class: "step-head" },
      el("h4", { class: "step-title" }),
      el(
        "div",
        { class: "step-tools" },
        moveButton("up", "Move up"),
        moveButton("down", "Move down"),
        el("button", { type: "button", class: "btn btn-link btn-link-danger btn-small", dataset: { stepAction: "remove" } }, "Remove"),
      ),
    ),
    el(
      "div",
      { class: "field" },
      el("label", { for: id("message") }, "Message"),
      message,
      el("div", { class: "field-foot" }, el("small", { class: "hint step-delay-hint" }), counter),
    ),
    el(
      "div",
      { class: "form-grid step-grid" },
      numberField("days", "Wait (days)", days, { step: 1 }),
      numberField("hours", "and hours", Number.isInteger(hours) ? hours : hours.toFixed(2), { step: "any" }),
      timeField("window-start", "Send from (optional)", window && window.start),
      timeField("window-end", "until", window && window.end),
      el(
        "div",
        { class: "field" },
        el("label", { for: id("image") }, "File (optional): a picture, document, video or voice note"),
        el("input", { id: id("image"), class: "step-image", type: "file" }),
        el(
          "label",
          { class: "check step-image-saved", hidden: true },
          el("input", { type: "checkbox", class: "step-image-remove" }),
          el("span", { class: "step-image-label" }),
        ),
      ),
    ),
    el("small", { id: id("window-hint"), class: "hint" }, `Send window in ${view.current.tenant.time_zone} time: due messages wait for it. Leave both empty to send at any hour.`),
    reply,
  );
  card.addEventListener("click", (event) => {
    const button = event.target.closest("[data-step-action]");
    if (button) moveStep(card, button.dataset.stepAction);
  });
  return card;
}

const stepCards = () => [...$("steps").children];

function addStep() {
  const card = stepCard(null);
  $("steps").append(card);
  renumber();
  card.querySelector(".step-message").focus();
}

function moveStep(card, action) {
  if (action === "up" && card.previousElementSibling) card.previousElementSibling.before(card);
  else if (action === "down" && card.nextElementSibling) card.nextElementSibling.after(card);
  else if (action === "remove" && stepCards().length > 1) {
    const focus = card.nextElementSibling || card.previousElementSibling;
    card.remove();
    renumber();
    focus.querySelector(".step-message").focus();
    return;
  }
  renumber();
  card.querySelector(`[data-step-action="${action}"]`).focus();
}

/**
 * Titles, buttons and hints after steps were added, moved or removed. Saved pictures belong to
 * a position on the server (steps are matched by position), so the "saved picture" box follows
 * the position, not the message.
 */
function renumber() {
  const cards = stepCards();
  const saved = view.editing ? view.editing.steps : [];
  cards.forEach((card, i) => {
    const position = i + 1;
    card.dataset.position = String(position);
    card.querySelector(".step-title").textContent = `Step ${position}`;
    const tool = (action) => card.querySelector(`[data-step-action="${action}"]`);
    tool("up").disabled = i === 0;
    tool("down").disabled = i === cards.length - 1;
    tool("remove").disabled = cards.length === 1;
    tool("up").setAttribute("aria-label", `Move step ${position} up`);
    tool("down").setAttribute("aria-label", `Move step ${position} down`);
    tool("remove").setAttribute("aria-label", `Remove step ${position}`);
    card.querySelector(".step-delay-hint").textContent =
      i === 0 ? "The wait counts from when the lead joins." : `The wait counts from step ${i}.`;
    const savedStep = saved.find((s) => s.position === position);
    const box = card.querySelector(".step-image-saved");
    box.hidden = !savedStep?.file;
    box.querySelector(".step-image-label").textContent = `Remove ${fileText(savedStep?.file) || "the file"} saved at step ${position}`;
    if (box.hidden) box.querySelector("input").checked = false;
  });
}

/** A number field's value (empty: 0); NaN when it is not a number. */
function amount(input) {
  const text = input.value.trim();
  return text === "" ? 0 : Number(text);
}

/** "a reply with “yes” moves the lead to WARM" for the step summary. */
function replyText(rule) {
  const reply = rule.keyword ? `a reply with “${rule.keyword}”` : "a reply";
  if (rule.action === "continue") return `${reply} changes nothing`;
  if (rule.action === "stop") return `${reply} stops it`;
  const target = view.sequences && view.sequences.get(rule.sequence_id);
  return `${reply} moves the lead to ${target ? target.name : `sequence #${rule.sequence_id}`}`;
}

/** Reply actions a step may choose ("": the sequence's stop-on-reply decides). */
const REPLY_ACTIONS = [
  ["", "As the sequence says (stop on reply or not)"],
  ["continue", "Continue with the next steps"],
  ["stop", "Stop the sequence"],
  ["jump", "Move the lead to another sequence"],
];

/** "If the lead replies to this step": action, optional keyword, target sequence for a jump. */
function replyFields(rule, id) {
  const action = el(
    "select",
    { id: id("reply-action"), class: "step-reply-action" },
    ...REPLY_ACTIONS.map(([value, label]) => el("option", { value }, label)),
  );
  action.value = rule ? rule.action : "";
  const keyword = el("input", {
    id: id("reply-keyword"),
    class: "step-reply-keyword",
    type: "text",
    maxlength: 32,
    autocomplete: "off",
    placeholder: "any reply",
  });
  keyword.value = (rule && rule.keyword) || "";
  const targets = view.jumpTargets || [];
  const target = el(
    "select",
    { id: id("reply-target"), class: "step-reply-target" },
    ...targets.map((s) => el("option", { value: s.id }, s.name)),
  );
  if (rule && rule.sequence_id && !targets.some((s) => s.id === rule.sequence_id)) {
    target.append(el("option", { value: rule.sequence_id }, `Sequence #${rule.sequence_id}`));
  }
  if (rule && rule.sequence_id) target.value = String(rule.sequence_id);
  const targetField = el("div", { class: "field" }, el("label", { for: id("reply-target") }, "to"), target);
  const keywordField = el("div", { class: "field" }, el("label", { for: id("reply-keyword") }, "only for a reply with the word (optional)"), keyword);
  const update = () => {
    targetField.hidden = action.value !== "jump";
    keywordField.hidden = action.value === "";
  };
  action.addEventListener("change", update);
  update();
  return el(
    "div",
    { class: "form-grid step-grid step-reply" },
    el("div", { class: "field" }, el("label", { for: id("reply-action") }, "If the lead replies to this step"), action),
    keywordField,
    targetField,
  );
}

/** A step card's reply rule for the API (undefined: none); throws FieldError for a jump without target. */
function replyRule(card, position) {
  const action = card.querySelector(".step-reply-action").value;
  if (!action) return undefined;
  const rule = { action };
  const keyword = card.querySelector(".step-reply-keyword").value.trim();
  if (keyword) rule.keyword = keyword;
  if (action === "jump") {
    const target = card.querySelector(".step-reply-target");
    if (!target.value) throw new FieldError(`Step ${position}: choose the sequence a reply moves the lead to.`, target);
    rule.sequence_id = Number(target.value);
  }
  return rule;
}

/** The request body from the form; throws FieldError for what the form itself can tell. */
function formBody() {
  const steps = stepCards().map((card, i) => {
    const position = i + 1;
    const days = amount(card.querySelector(".step-days"));
    const hours = amount(card.querySelector(".step-hours"));
    if (!(days >= 0)) throw new FieldError(`Step ${position}: the days to wait must be 0 or more.`, card.querySelector(".step-days"));
    if (!(hours >= 0)) throw new FieldError(`Step ${position}: the hours to wait must be 0 or more.`, card.querySelector(".step-hours"));
    const start = card.querySelector(".step-window-start");
    const end = card.querySelector(".step-window-end");
    if (Boolean(start.value) !== Boolean(end.value)) {
      throw new FieldError(
        `Step ${position}: give both ends of the send window, or leave both empty.`,
        start.value ? end : start,
      );
    }
    const step = {
      message: card.querySelector(".step-message").value,
      delay_minutes: Math.round(days * MINUTES_PER_DAY + hours * 60),
    };
    if (start.value) step.window = { start: start.value, end: end.value };
    const onReply = replyRule(card, position);
    if (onReply) step.on_reply = onReply;
    return step;
  });
  if (steps.length === 0) throw new FieldError("Add at least one step.", $("add-step"));
  const next = $("sequence-next").value;
  const body = {
    name: $("sequence-name").value.trim(),
    description: $("sequence-description").value.trim(),
    trigger_tag: $("sequence-trigger").value.trim() || null,
    stop_on_reply: $("sequence-stop-on-reply").checked,
    next_sequence_id: next === "" ? null : Number(next),
    steps,
  };
  // A replacement keeps the sequence paused or active as it was.
  if (view.editing) body.status = view.editing.status;
  return body;
}

/**
 * The field an API validation message is about: a step ("step 2: …", "position 2", or
 * "steps[1]…" counted from 0) and within it the window or the message; else the name, the
 * chain, the trigger tag.
 */
function fieldFor(err) {
  const text = String(err.message).toLowerCase();
  const cards = stepCards();
  let card = null;
  let match = /steps\s*\[(\d+)\]/.exec(text);
  if (match) card = cards[Number(match[1])];
  else if ((match = /\b(?:step|position)\s*#?(\d+)/.exec(text))) card = cards[Number(match[1]) - 1];
  if (card) {
    if (/on_reply|keyword|jump/.test(text)) return card.querySelector(".step-reply-action");
    if (/window/.test(text)) return card.querySelector(".step-window-start");
    if (/delay/.test(text)) return card.querySelector(".step-days");
    return card.querySelector(".step-message");
  }
  if (err.status === 409 || /^name\b/.test(text)) return $("sequence-name");
  if (/chain|cycle|next_sequence/.test(text)) return $("sequence-next");
  if (/trigger/.test(text)) return $("sequence-trigger");
  if (/description/.test(text)) return $("sequence-description");
  if (/step/.test(text)) return cards.length ? cards[0].querySelector(".step-message") : $("add-step");
  return null;
}

/** Hides the form's message and unmarks its fields. */
function clearForm() {
  clearFormMarks($("sequence-form"), $("form-alert"));
}

function submitForm(event) {
  return submitFormWith(event, {
    box: $("form-alert"),
    button: $("save-sequence"),
    build: formBody,
    save: async (body, form) => {
      const editing = view.editing;
      const saved = editing
        ? await api("PUT", `/api/v1/sequences/${editing.id}`, body)
        : await api("POST", "/api/v1/sequences", body);
      const problems = await savePictures(saved.id);
      if (problems.length) view.notice = `The sequence was saved, but not every picture: ${problems.join("; ")}`;
      view.editing = null;
      form.reset();
      location.hash = String(saved.id);
    },
    fieldFor: (err) => (err.status === 422 || err.status === 409 ? fieldFor(err) : null),
  });
}

/** Uploads each chosen picture (and removes the unticked ones); returns what failed. */
async function savePictures(id) {
  const problems = [];
  for (const [i, card] of stepCards().entries()) {
    const position = i + 1;
    const file = card.querySelector(".step-image").files[0];
    const remove = card.querySelector(".step-image-remove").checked;
    const base = `/api/v1/sequences/${id}/steps/${position}`;
    try {
      if (file) await api("PUT", filePath(base, file), file);
      else if (remove) await api("DELETE", `${base}/image`);
    } catch (err) {
      problems.push(`step ${position}: ${err.message}`);
    }
  }
  return problems;
}

function initForm() {
  $("new-sequence").hidden = !view.canAct;
  $("new-sequence").addEventListener("click", () => (location.hash = "new"));
  $("cancel-edit").addEventListener("click", () => {
    const editing = view.editing;
    location.hash = editing ? String(editing.id) : "";
  });
  $("add-step").addEventListener("click", addStep);
  $("sequence-form").addEventListener("submit", submitForm);
}

// ---------------------------------------------------------------- detail

async function openDetail(id) {
  const generation = view.generation;
  const box = $("detail-alert");
  clearAlert(box);
  clearAlert($("enrol-alert"));
  if (view.notice) showAlert(box, view.notice);
  view.notice = null;
  $("detail-title").textContent = "Loading…";
  $("detail-actions").replaceChildren();
  $("detail-actions").dataset.actions = "";
  $("enrol-form").hidden = !view.canAct;
  const [sequence, report] = await Promise.allSettled([
    api("GET", `/api/v1/sequences/${id}`),
    api("GET", `/api/v1/sequences/${id}/report`),
    loadDevices().catch(() => null),
  ]);
  if (generation !== view.generation) return;
  if (sequence.status === "rejected") {
    $("detail-title").textContent = sequence.reason.status === 404 ? "Sequence not found" : "Sequence";
    showFailure(box, sequence.reason);
    return;
  }
  view.detail = sequence.value;
  if (report.status === "rejected") showFailure(box, report.reason);
  view.report = report.status === "fulfilled" ? report.value : null;
  renderDetail();
  renderReport();
  loadEnrollments(true);
}

/** The sequence, its report and the first page of enrolments, read again. */
async function refreshDetail() {
  const s = view.detail;
  if (!s) return;
  const generation = view.generation;
  const button = $("refresh-report");
  button.disabled = true;
  try {
    const [fresh, report] = await Promise.all([
      api("GET", `/api/v1/sequences/${s.id}`),
      api("GET", `/api/v1/sequences/${s.id}/report`),
    ]);
    if (generation !== view.generation) return;
    view.detail = fresh;
    view.report = report;
    renderDetail();
    renderReport();
    loadEnrollments(true);
  } catch (err) {
    if (generation === view.generation) showFailure($("detail-alert"), err);
  } finally {
    button.disabled = false;
  }
}

/** Title, status, buttons and facts of the sequence. */
function renderDetail() {
  const s = view.detail;
  document.title = `${s.name} · Sequences · wafleet`;
  $("detail-title").textContent = s.name;
  $("detail-status").replaceWith(Object.assign(statusBadge(s.status), { id: "detail-status" }));
  renderActions();
  const fact = (term, ...value) => el("div", {}, el("dt", {}, term), el("dd", {}, ...value));
  const next = s.next_sequence_id;
  const nextName = next ? (view.sequences.get(next) || {}).name : null;
  const facts = [
    fact(
      "Steps",
      el(
        "ol",
        { class: "step-summary" },
        s.steps.map((step, i) =>
          el(
            "li",
            { dataset: { position: step.position } },
            el(
              "span",
              { class: "muted" },
              [
                `${i === 0 ? "After joining" : "Then"}: ${delayText(step.delay_minutes)}`,
                step.window ? `sent ${step.window.start}–${step.window.end}` : null,
                step.file ? `with ${fileText(step.file)}` : null,
                step.on_reply ? replyText(step.on_reply) : null,
              ]
                .filter(Boolean)
                .join(" · "),
            ),
            el("span", { class: "message-text" }, step.message),
          ),
        ),
      ),
    ),
    s.description ? fact("Description", s.description) : null,
    fact("Trigger tag", s.trigger_tag ? el("span", { class: "badge" }, s.trigger_tag) : "None: leads are enrolled by hand"),
    fact("When a lead replies", s.stop_on_reply ? "The sequence stops for them" : "The steps go on"),
    fact("Then", next ? el("a", { href: `#${next}` }, nextName || `Sequence #${next}`) : "The sequence ends"),
    fact("Created", when(s.created_at)),
    fact("Updated", when(s.updated_at)),
  ];
  $("detail-facts").replaceChildren(...facts.filter(Boolean));
}

/** Pause/Resume, Edit, Delete for members and above; the same set is kept (and keeps focus). */
function renderActions() {
  const s = view.detail;
  const box = $("detail-actions");
  const actions = view.canAct
    ? [
        { name: "toggle", label: s.status === "active" ? "Pause" : "Resume", kind: s.status === "active" ? "btn-secondary" : "btn-primary", run: toggleDetail },
        { name: "edit", label: "Edit", kind: "btn-secondary", run: () => (location.hash = `${s.id}/edit`) },
        { name: "delete", label: "Delete", kind: "btn-danger", run: () => removeSequence(s, $("detail-alert")) },
      ]
    : [];
  const names = actions.map((a) => `${a.name}:${a.label}`).join(" ");
  if (box.dataset.actions !== names) {
    box.dataset.actions = names;
    box.replaceChildren(
      ...actions.map((a) =>
        el("button", { type: "button", class: `btn ${a.kind}`, dataset: { action: a.name }, onclick: a.run }, a.label),
      ),
    );
  }
  for (const button of box.children) button.disabled = view.acting;
  box.hidden = actions.length === 0;
}

async function toggleDetail() {
  const s = view.detail;
  if (!s || view.acting) return;
  const box = $("detail-alert");
  clearAlert(box);
  view.acting = true;
  renderActions();
  try {
    const fresh = await api("POST", `/api/v1/sequences/${s.id}/toggle`, { active: s.status !== "active" });
    if (view.detail && view.detail.id === fresh.id) view.detail = fresh;
  } catch (err) {
    showFailure(box, err);
  } finally {
    view.acting = false;
    if (view.detail) {
      // The button that was pressed is replaced (its label changes): focus follows it.
      const focused = document.activeElement && document.activeElement.dataset.action === "toggle";
      renderDetail();
      if (focused) $("detail-actions").querySelector("[data-action='toggle']").focus();
    }
  }
}

/** The report's steps, one per step of the sequence (zeros where nothing happened yet). */
function reportSteps() {
  const zero = Object.fromEntries(STEP_COLUMNS.map((c) => [c.key, 0]));
  const reported = new Map(((view.report && view.report.steps) || []).map((s) => [s.position, s]));
  const positions = new Set([...view.detail.steps.map((s) => s.position), ...reported.keys()]);
  return [...positions].sort((a, b) => a - b).map((position) => ({ ...zero, ...reported.get(position), position }));
}

function renderReport() {
  const r = view.report;
  const steps = reportSteps();
  const byStatus = (r && r.by_status) || view.detail.counts || {};
  const enrolled = r ? r.enrolled : Object.values(byStatus).reduce((n, v) => n + (v || 0), 0);
  $("report-summary").textContent = [
    `${count(enrolled)} lead${enrolled === 1 ? "" : "s"} enrolled`,
    ...Object.entries(ENROLLMENT_STATUS).map(([key, info]) => `${info.label.toLowerCase()} ${count(byStatus[key])}`),
  ].join(" · ");
  renderFunnel(steps);
  const tbody = $("step-report").tBodies[0];
  tbody.replaceChildren(
    ...steps.map((s) =>
      el(
        "tr",
        { dataset: { position: s.position } },
        cell("Step", `Step ${s.position}`),
        ...STEP_COLUMNS.map((c) => el("td", { "data-label": c.label, dataset: { key: c.key } }, count(s[c.key]))),
      ),
    ),
  );
  renderDeviceReport((r && r.devices) || []);
}

/** One group of bars per step (reached, sent, delivered, read, replied) on a shared scale. */
function renderFunnel(steps) {
  const svg = $("funnel");
  const shape = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const groupWidth = FUNNEL.length * CHART.bar + (FUNNEL.length - 1) * CHART.barGap;
  const plotWidth = steps.length * groupWidth + Math.max(0, steps.length - 1) * CHART.groupGap;
  const width = Math.max(CHART.minWidth, CHART.left + plotWidth + CHART.groupGap + CHART.right);
  const height = CHART.top + CHART.height + CHART.bottom;
  const base = CHART.top + CHART.height;
  const highest = Math.max(1, ...steps.flatMap((s) => FUNNEL.map((f) => s[f.key] || 0)));
  // An even top (beyond 1) keeps the half-way line on a whole number.
  const max = highest === 1 ? 1 : Math.ceil(highest / 2) * 2;
  // Groups are centred in the plot when the chart's minimum width leaves room.
  const offset = (width - CHART.left - CHART.right - plotWidth) / 2;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.maxWidth = `${width * 2}px`;
  const nodes = [svg.querySelector("title")];
  // Grid lines at 0, half and the top of the scale.
  for (const share of [0, 0.5, 1]) {
    const y = base - share * CHART.height;
    nodes.push(shape("line", { x1: CHART.left, x2: width - CHART.right, y1: y, y2: y, class: "funnel-grid" }));
    const label = share === 0.5 && max < 2 ? "" : number.format(max * share);
    nodes.push(shape("text", { x: CHART.left - 4, y, class: "funnel-axis", "text-anchor": "end", "dominant-baseline": "central" }, label));
  }
  steps.forEach((s, i) => {
    const x0 = CHART.left + offset + i * (groupWidth + CHART.groupGap);
    const group = shape("g", { class: "funnel-group", "data-position": s.position });
    group.append(shape("title", {}, `Step ${s.position}: ${FUNNEL.map((f) => `${f.label.toLowerCase()} ${count(s[f.key])}`).join(", ")}`));
    FUNNEL.forEach((f, j) => {
      const value = s[f.key] || 0;
      const h = (value / max) * CHART.height;
      const bar = shape("rect", {
        x: x0 + j * (CHART.bar + CHART.barGap),
        y: base - h,
        width: CHART.bar,
        height: h,
        fill: f.color,
        rx: 1.5,
        class: "funnel-bar",
        "data-key": f.key,
        "data-value": value,
      });
      bar.append(shape("title", {}, `Step ${s.position} · ${f.label}: ${count(value)}`));
      group.append(bar);
    });
    group.append(
      shape("text", { x: x0 + groupWidth / 2, y: base + 16, class: "funnel-label", "text-anchor": "middle" }, `Step ${s.position}`),
    );
    nodes.push(group);
  });
  svg.replaceChildren(...nodes);
  $("funnel-legend").replaceChildren(
    ...FUNNEL.map((f) => {
      const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.background = f.color;
      return el("li", { dataset: { key: f.key } }, swatch, el("span", {}, f.label));
    }),
  );
}

function renderDeviceReport(devices) {
  const tbody = $("device-report").tBodies[0];
  const rows = devices.flatMap((d) =>
    (d.steps || []).map((s, i) =>
      el(
        "tr",
        { dataset: { deviceId: d.device_id ?? "", position: s.position }, class: i === 0 ? "group-start" : false },
        cell("Device", d.device_name || deviceName(d.device_id)),
        cell("Step", `Step ${s.position}`),
        ...STEP_COLUMNS.map((c) => cell(c.label, count(s[c.key]))),
      ),
    ),
  );
  tbody.replaceChildren(...rows);
  if (rows.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "Devices show here once a step is sent.")));
  }
}

// ---------------------------------------------------------------- enrolments

/** The first page of enrolments (`reset`), or the next one, of the chosen status. */
async function loadEnrollments(reset) {
  const s = view.detail;
  if (!s) return;
  const generation = view.generation;
  const more = $("enrollments-more");
  const status = $("enrollment-status").value;
  const query = new URLSearchParams({ limit: String(ENROLLMENTS_PAGE) });
  if (status) query.set("status", status);
  if (!reset && view.enrollmentsAfter) query.set("after", String(view.enrollmentsAfter));
  more.disabled = true;
  try {
    const page = await api("GET", `/api/v1/sequences/${s.id}/enrollments?${query}`);
    if (generation !== view.generation || !view.detail || view.detail.id !== s.id) return;
    if (status !== $("enrollment-status").value) return;
    const rows = page.enrollments.map(enrollmentRow);
    const tbody = $("enrollments").tBodies[0];
    if (reset) tbody.replaceChildren(...rows);
    else tbody.append(...rows);
    if (reset && rows.length === 0) {
      const label = status ? ENROLLMENT_STATUS[status].label.toLowerCase() : "";
      const hint = status ? `No ${label} enrolments.` : "No leads in this sequence yet.";
      tbody.append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, hint)));
    }
    if (page.enrollments.length) view.enrollmentsAfter = page.enrollments[page.enrollments.length - 1].id;
    else if (reset) view.enrollmentsAfter = 0;
    more.hidden = page.enrollments.length < ENROLLMENTS_PAGE;
  } catch (err) {
    if (generation === view.generation) showFailure($("detail-alert"), err);
  } finally {
    more.disabled = false;
  }
}

function enrollmentRow(e) {
  const stoppable = view.canAct && (e.status === "waiting" || e.status === "active");
  const total = view.detail ? view.detail.steps.length : 0;
  const reason = e.reason || (e.replied_at ? `Replied ${when(e.replied_at)}` : "—");
  return el(
    "tr",
    { dataset: { enrollmentId: e.id, status: e.status } },
    cell("Lead", e.lead_name || `Lead #${e.lead_id}`),
    cell("Phone", e.phone ? `+${e.phone}` : "—"),
    cell("Device", deviceName(e.device_id)),
    cell("Status", enrollmentBadge(e.status)),
    cell("Step", e.step === null || e.step === undefined ? "—" : `${e.step} of ${total}`),
    cell("Next step", e.status === "waiting" || e.status === "active" ? when(e.next_due_at) : "—"),
    cell("Reason", reason),
    cell("Joined", when(e.enrolled_at), e.source ? el("small", { class: "hint enrol-source" }, ` · ${e.source}`) : null),
    el(
      "td",
      { class: "actions", "data-label": "" },
      stoppable
        ? el("button", { type: "button", class: "btn btn-link btn-link-danger", dataset: { action: "stop" }, onclick: (ev) => stopEnrollment(e, ev.currentTarget) }, "Stop")
        : null,
    ),
  );
}

/** Takes one lead out of the sequence (after asking); its row shows the stopped enrolment. */
async function stopEnrollment(e, button) {
  const who = e.lead_name || `+${e.phone}`;
  if (!confirm(`Stop the sequence for ${who}? They get no more steps.`)) return;
  const s = view.detail;
  button.disabled = true;
  try {
    const stopped = await api("DELETE", `/api/v1/sequences/${s.id}/enrollments/${e.id}`);
    const row = $("enrollments").querySelector(`tr[data-enrollment-id="${e.id}"]`);
    if (row) row.replaceWith(enrollmentRow({ ...e, ...stopped }));
  } catch (err) {
    showFailure($("enrol-alert"), err);
    button.disabled = false;
  }
}

async function enrolLeads(event) {
  event.preventDefault();
  const s = view.detail;
  const box = $("enrol-alert");
  const field = $("enrol-lead-ids");
  clearAlert(box);
  field.removeAttribute("aria-invalid");
  const typed = words(field.value);
  if (typed.length === 0 || typed.some((w) => !/^\d+$/.test(w))) {
    showAlert(box, "Lead ids are numbers, e.g. 12, 15.");
    field.setAttribute("aria-invalid", "true");
    field.focus();
    return;
  }
  const button = $("enrol");
  button.disabled = true;
  try {
    const answer = await api("POST", `/api/v1/sequences/${s.id}/enrollments`, { lead_ids: typed.map(Number) });
    const enrolled = answer.enrolled || 0;
    const already = answer.already || 0;
    const parts = [`${count(enrolled)} lead${enrolled === 1 ? "" : "s"} enrolled`];
    if (already) parts.push(`${count(already)} already in this sequence`);
    showAlert(box, `${parts.join(", ")}.`, "success");
    field.value = "";
    refreshDetail();
  } catch (err) {
    showFailure(box, err);
  } finally {
    button.disabled = false;
  }
}

function initDetail() {
  $("refresh-report").addEventListener("click", refreshDetail);
  $("enrollments-more").addEventListener("click", () => loadEnrollments(false));
  $("enrollment-status").addEventListener("change", () => loadEnrollments(true));
  $("enrol-form").addEventListener("submit", enrolLeads);
}

// ---------------------------------------------------------------- start

try {
  view.current = await me();
  renderNav(view.current, "sequences");
  view.canAct = roleAtLeast(view.current.user.role, "member");
  view.clock = zoneClock(view.current.tenant.time_zone);
  initForm();
  initDetail();
  window.addEventListener("hashchange", route);
  route();
} catch (err) {
  if (err.status !== 401) showFatal(err);
}
