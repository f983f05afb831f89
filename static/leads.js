// Leads page: lead lists (create, open, delete), CSV import with its report (line + reason),
// live import progress over the WebSocket (live.js, topic lead-lists/<id> of the open list),
// lead search with "show more" (keyset cursor), and the tenant's opt-out list.
import { api, me, renderNav, roleAtLeast, el, clearAlert, showFatal, showFailure } from "/static/app.js";
import { connect as connectLive } from "/static/live.js";

const $ = (id) => document.getElementById(id);

let current;
let openList = null;
let leadCursor = null;
/** The live stream, opened with the first list. */
let stream = null;

/** "2025-01-31 14:05 UTC". */
function when(iso) {
  return iso ? `${iso.slice(0, 16).replace("T", " ")} UTC` : "";
}

/** A table cell with the column name for the stacked phone layout. */
function cell(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

/** Runs `action`; API errors go to `box`. */
async function guarded(box, action) {
  clearAlert(box);
  try {
    await action();
  } catch (err) {
    showFailure(box, err);
  }
}

/** A link-styled button that runs `action`, reporting failures in `box`. */
function actionButton(label, box, action) {
  return el("button", { type: "button", class: "btn btn-link", onclick: () => guarded(box, action) }, label);
}

// ---------------------------------------------------------------- lists

async function loadLists() {
  const lists = await api("GET", "/api/v1/lead-lists");
  const tbody = $("list-table").tBodies[0];
  const canWrite = roleAtLeast(current.user.role, "member");
  tbody.replaceChildren(
    ...lists.map((list) =>
      el(
        "tr",
        {},
        cell("Name", el("a", { href: `#list-${list.id}`, onclick: () => openLeadList(list) }, list.name)),
        cell("Leads", String(list.lead_count)),
        cell("Updated", when(list.updated_at)),
        cell(
          "Actions",
          canWrite &&
            actionButton("Delete", $("lists-alert"), async () => {
              if (!confirm(`Delete the list "${list.name}" and its ${list.lead_count} leads?`)) return;
              await api("DELETE", `/api/v1/lead-lists/${list.id}`);
              if (openList && openList.id === list.id) $("list-detail").hidden = true;
              await loadLists();
            }),
        ),
      ),
    ),
  );
  if (lists.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No lists yet. Create one, then import a CSV file.")));
  }
}

async function openLeadList(list) {
  openList = list;
  $("detail-title").textContent = list.name;
  $("list-detail").hidden = false;
  $("import-report").hidden = true;
  $("import-progress").hidden = true;
  listenToImports(list.id);
  await searchLeads(true);
}

// ---------------------------------------------------------------- import

/** Listens to IMPORT_PROGRESS of the open list (only). */
function listenToImports(listId) {
  const topics = [`lead-lists/${listId}`];
  if (stream) stream.setTopics(topics);
  else stream = connectLive({ topics, onEvent: importProgress, onResync: importResync });
}

/** Shows the running import's counts (its report replaces them when the upload answers). */
function importProgress(frame) {
  if (frame.event !== "IMPORT_PROGRESS") return;
  const d = frame.data;
  const box = $("import-progress");
  box.textContent = `${d.rows} rows read: ${d.imported} new, ${d.updated} updated, ${d.failed} failed…`;
  box.hidden = false;
}

/** Progress was missed (a reconnect, a seq gap): the lists' lead counts are read again. */
function importResync(_topics, reason) {
  if (reason !== "subscribed") loadLists().catch((err) => showFailure($("lists-alert"), err));
}

function showReport(report) {
  $("import-summary").textContent =
    `${report.rows} rows: ${report.imported} imported, ${report.updated} updated, ` +
    `${report.duplicates} duplicates in the file, ${report.failed} failed` +
    (report.failed > report.errors.length ? ` (the first ${report.errors.length} are listed)` : "") + ".";
  const tbody = $("import-errors").tBodies[0];
  tbody.replaceChildren(
    ...report.errors.map((e) => el("tr", {}, cell("Line", String(e.line)), cell("Reason", e.reason))),
  );
  $("import-errors").hidden = report.errors.length === 0;
  $("import-report").hidden = false;
}

async function importFile(event) {
  event.preventDefault();
  const file = $("import-file").files[0];
  if (!file || !openList) return;
  const button = $("import-button");
  button.disabled = true;
  await guarded($("detail-alert"), async () => {
    const report = await api("POST", `/api/v1/lead-lists/${openList.id}/import`, file, { contentType: "text/csv" });
    showReport(report);
    await Promise.all([loadLists(), searchLeads(true)]);
  });
  button.disabled = false;
}

// ---------------------------------------------------------------- leads

async function searchLeads(fresh) {
  if (fresh) leadCursor = null;
  const params = new URLSearchParams({ list_id: openList.id, limit: 50 });
  for (const [key, id] of [["q", "search-q"], ["tag", "search-tag"], ["status", "search-status"]]) {
    const value = $(id).value.trim();
    if (value) params.set(key, value);
  }
  if (leadCursor) params.set("cursor", leadCursor);
  const page = await api("GET", `/api/v1/leads?${params}`);
  const tbody = $("lead-table").tBodies[0];
  const canWrite = roleAtLeast(current.user.role, "member");
  const rows = page.items.map((lead) =>
    el(
      "tr",
      {},
      cell("Name", lead.name),
      cell("Phone", `+${lead.phone}`),
      cell("Niche", lead.niche || ""),
      cell("Tags", lead.tags.join(", ")),
      cell("Status", lead.status),
      cell(
        "Actions",
        canWrite &&
          actionButton("Delete", $("detail-alert"), async () => {
            await api("DELETE", `/api/v1/leads/${lead.id}`);
            await searchLeads(true);
          }),
      ),
    ),
  );
  if (fresh) tbody.replaceChildren(...rows);
  else tbody.append(...rows);
  leadCursor = page.next_cursor ?? null;
  $("more-leads").hidden = leadCursor === null;
}

// ---------------------------------------------------------------- opt-outs

async function loadOptOuts() {
  const q = $("opt-out-q").value.trim();
  const page = await api("GET", `/api/v1/opt-outs?limit=200${q ? `&q=${encodeURIComponent(q)}` : ""}`);
  const canRemove = roleAtLeast(current.user.role, "owner");
  $("opt-out-table").tBodies[0].replaceChildren(
    ...page.items.map((o) =>
      el(
        "tr",
        {},
        cell("Phone", `+${o.phone}`),
        cell("Source", o.source),
        cell("Reason", o.reason || ""),
        cell("Added", when(o.created_at)),
        cell(
          "Actions",
          canRemove &&
            actionButton("Remove", $("opt-outs-alert"), async () => {
              await api("DELETE", `/api/v1/opt-outs/${o.phone}`);
              await loadOptOuts();
            }),
        ),
      ),
    ),
  );
}

function showTab() {
  const optOuts = location.hash === "#opt-outs";
  $("opt-outs").hidden = !optOuts;
  $("lists").hidden = optOuts;
  if (optOuts) {
    $("list-detail").hidden = true;
    guarded($("opt-outs-alert"), loadOptOuts);
  }
}

async function main() {
  current = await me();
  renderNav(current, "leads");
  if (!roleAtLeast(current.user.role, "member")) {
    for (const form of document.querySelectorAll(".writer")) form.hidden = true;
  }
  $("create-list-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded($("lists-alert"), async () => {
      await api("POST", "/api/v1/lead-lists", { name: $("list-name").value });
      $("list-name").value = "";
      await loadLists();
    });
  });
  $("import-form").addEventListener("submit", importFile);
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded($("detail-alert"), () => searchLeads(true));
  });
  $("more-leads").addEventListener("click", () => guarded($("detail-alert"), () => searchLeads(false)));
  $("add-opt-out-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded($("opt-outs-alert"), async () => {
      await api("POST", "/api/v1/opt-outs", { phone: $("opt-out-phone").value, reason: $("opt-out-reason").value });
      $("opt-out-phone").value = "";
      $("opt-out-reason").value = "";
      await loadOptOuts();
    });
  });
  $("opt-out-search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded($("opt-outs-alert"), loadOptOuts);
  });
  window.addEventListener("hashchange", showTab);
  showTab();
  await loadLists();
}

main().catch(showFatal);
