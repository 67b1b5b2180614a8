// catalog-sync status page: plain JS over the read API. Every value from Amazon or the catalog
// reaches the page through textContent (never innerHTML), so markup in a SKU or message shows as text.
"use strict";

const PAGE_SIZE = 25;
const state = { cursor: null, runId: null, token: sessionStorage.getItem("catalogSyncToken") || "", itemsLoad: null };

function $(id) { return document.getElementById(id); }

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "className") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else if (key === "onclick") node.addEventListener("click", value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showProblem(text) {
  const p = $("problem");
  p.textContent = text || "";
  p.hidden = !text;
}

async function api(path, params, signal) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  const response = await fetch(url, { headers, signal });
  if (response.status === 401) {
    $("token-panel").hidden = false;
    throw new Error("The read API needs a token.");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${response.status} ${detail}`);
  }
  return response.json();
}

function shortTime(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : "–"; }

function runText(run) {
  if (!run) return "–";
  const c = run.counts;
  return `${run.run_id} · ${run.status.replaceAll("_", " ")} · mode ${run.mode || "?"} (${run.endpoint || "?"}) · ` +
    `started ${shortTime(run.started_at)}` + (run.finished_at ? ` · finished ${shortTime(run.finished_at)}` : "") +
    ` · ${c.total} items: ${c.finished} finished, ${c.error} error, ${c.pending} pending`;
}

async function loadActivity() {
  const a = await api("/api/activity");
  $("act-running").textContent = a.in_progress ? "yes" : "no";
  $("act-current").textContent = runText(a.current_run);
  $("act-last").textContent = runText(a.last_run);
  $("act-next").textContent = a.next_run_at ? shortTime(a.next_run_at) + " UTC" : "not scheduled";
  const run = a.current_run || a.last_run;
  const counts = run ? run.counts : { total: 0, finished: 0, error: 0, pending: 0 };
  for (const key of ["total", "finished", "error", "pending"]) $("count-" + key).textContent = counts[key];
  $("overview-scope").textContent = run ? `run ${run.run_id}` : "no run yet";
}

function filters() {
  const since = $("f-since").value;
  return {
    reference: $("f-reference").value.trim(),
    status: $("f-status").value,
    type: $("f-type").value,
    since: since ? since + (since.length === 16 ? ":00" : "") + "Z" : "",  // the table shows UTC
  };
}

function attributeNames(error) {
  const names = new Set();
  for (const d of error.details || []) {
    for (const name of d.attribute_names || []) names.add(name);
    const match = /^\/attributes\/([^/]+)/.exec(d.path || "");
    if (match) names.add(match[1].replaceAll("~1", "/").replaceAll("~0", "~"));
  }
  return [...names];
}

function detailsRow(item) {
  const e = item.error;
  const rows = [];
  const add = (label, value) => rows.push(el("dt", null, label), el("dd", null, value));
  add("Error type", e.type === "validation" ? "Validation (local, not sent to Amazon)" : "Amazon response");
  add("Code", e.code || "–");
  add("Message", e.message);
  const names = attributeNames(e);
  add("Attributes", names.length ? names.join(", ") : "–");
  add("Request ID", item.request_id || "–");
  add("Submission ID", item.submission_id || "–");
  add("Endpoint", item.endpoint || "–");
  add("Seller", item.seller_id || "–");
  const list = el("ul", { "data-testid": "error-details-list" });
  for (const d of e.details || []) {
    const where = d.path || (d.attribute_names || []).join(", ");
    list.append(el("li", null, [d.severity, d.code, d.message].filter(Boolean).join(" · ") + (where ? ` (${where})` : "")));
  }
  add("All problems", list);
  return el("tr", { className: "details", "data-testid": "error-details" },
    el("td", { colSpan: 7 }, el("dl", null, ...rows)));
}

function itemRow(item) {
  const row = el("tr", { "data-testid": "item-row" },
    el("td", { className: "ref" }, item.reference),
    el("td", null, item.item_type),
    el("td", { className: "mono" }, item.marketplace_id),
    el("td", { className: "status-" + item.status }, item.status),
    el("td", null, shortTime(item.synced_at)),
    el("td", { className: "mono" }, item.request_id || "–"),
    el("td"));
  // Nothing reached Amazon (e.g. a delete in a preview run): say so, never let it read as done there.
  if (item.note) row.lastChild.append(el("span", { className: "note", "data-testid": "item-note" }, item.note));
  if (item.error) {
    let open = null;
    const button = el("button", {
      type: "button", "data-testid": "show-error", onclick: () => {
        if (open) { open.remove(); open = null; button.textContent = "Error details"; return; }
        open = detailsRow(item);
        row.after(open);
        button.textContent = "Hide details";
      },
    }, "Error details");
    row.lastChild.append(button);
  }
  return row;
}

// Filters change faster than answers come back: a new filter aborts the load still in flight, so
// a late answer to an older filter (or to its "view more") never lands in the newer table.
async function loadItems(reset) {
  if (state.itemsLoad && !reset) return;  // "view more" while a load is in flight: that load decides the next page
  if (state.itemsLoad) state.itemsLoad.abort();
  const load = new AbortController();
  state.itemsLoad = load;
  if (reset) state.cursor = null;
  const params = { ...filters(), limit: PAGE_SIZE, cursor: state.cursor };
  let page;
  try {
    page = await api("/api/items", params, load.signal);
  } catch (err) {
    if (load.signal.aborted) return;  // replaced by a newer load: not a problem to show
    throw err;
  } finally {
    if (state.itemsLoad === load) state.itemsLoad = null;
  }
  const body = $("items-body");
  if (reset) body.replaceChildren();
  for (const item of page.items) body.append(itemRow(item));
  const s = page.summary;
  const shown = body.querySelectorAll("tr[data-testid=item-row]").length;
  $("items-summary").textContent =
    `${s.total} matching (${s.finished} finished, ${s.error} error, ${s.pending} pending) · showing ${shown}` +
    (page.run_id ? ` · run ${page.run_id}` : " · all runs");
  $("no-items").hidden = shown > 0;
  state.cursor = page.next_cursor;
  $("view-more").hidden = !page.next_cursor;
}

async function guarded(task) {
  try { await task(); showProblem(""); } catch (err) { showProblem(err.message); }
}

function refreshAll() { return guarded(async () => { await loadActivity(); await loadItems(true); }); }

document.addEventListener("DOMContentLoaded", () => {
  let typing = null;
  $("f-reference").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => guarded(() => loadItems(true)), 250);
  });
  for (const id of ["f-status", "f-type", "f-since"]) $(id).addEventListener("change", () => guarded(() => loadItems(true)));
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); guarded(() => loadItems(true)); });
  $("refresh").addEventListener("click", refreshAll);
  $("view-more").addEventListener("click", () => guarded(() => loadItems(false)));
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token-input").value.trim();
    sessionStorage.setItem("catalogSyncToken", state.token);
    $("token-panel").hidden = true;
    refreshAll();
  });
  refreshAll();
  setInterval(() => guarded(loadActivity), 5000);
});
