// catalog-sync status page: plain JS over the read API. Every value from Amazon or the catalog
// reaches the page through textContent (never innerHTML), so markup in a SKU or message shows as text.
"use strict";

const PAGE_SIZE = 25;
const MAX_PAGE = 500;  // the API's largest page: a live refresh re-reads the loaded rows in pages of this
const POLL_RUNNING_MS = 2000;  // while a run is in progress
const POLL_IDLE_MS = 15000;  // otherwise: notices a run that starts (scheduler, another publish)
const RUNS_SHOWN = 20;
const SVG = "http://www.w3.org/2000/svg";
const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

const state = {
  cursor: null, token: sessionStorage.getItem("catalogSyncToken") || "", itemsLoad: null,
  rows: new Map(),  // item key -> {item, row, open: Set of open panels ("details", "timeline")}
  selected: new Map(),  // item key -> item, for the support case
  running: false, runs: [], latestRunId: null, pollTimer: null, supportLoad: null,
};

function $(id) { return document.getElementById(id); }

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "className") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else if (key === "onclick") node.addEventListener("click", value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function showProblem(text) {
  const p = $("problem");
  p.textContent = text || "";
  p.hidden = !text;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (Array.isArray(value)) for (const v of value) search.append(key, v);
    else if (value !== null && value !== undefined && value !== "") search.set(key, value);
  }
  return search;
}

async function api(path, params, signal) {
  const url = new URL(path, window.location.origin);
  url.search = query(params).toString();
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  const response = await fetch(url, { headers, signal });
  if (response.status === 401) {
    $("token-panel").hidden = false;
    throw new Error("The read API needs a token.");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    const error = new Error(`${path}: ${response.status} ${detail}`);
    error.status = response.status;
    throw error;
  }
  return response;
}

async function apiJson(path, params, signal) { return (await api(path, params, signal)).json(); }

// -- time: shown in the user's time zone, 24-hour, with UTC in the tooltip --------------------------
function pad(n) { return String(n).padStart(2, "0"); }

function localTime(date, seconds = true) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}` + (seconds ? `:${pad(date.getSeconds())}` : "");
}

function shortTime(iso) { return iso ? localTime(new Date(iso)) : "–"; }

function utcText(iso) { return iso ? iso.replace("T", " ").slice(0, 19) + " UTC" : ""; }

function timeNode(iso) { return el("time", { dateTime: iso || "", title: utcText(iso) }, shortTime(iso)); }

// The since filter is typed in local time (24 h): "YYYY-MM-DD", "YYYY-MM-DD HH:MM" or with seconds.
function parseLocal(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(text.trim());
  if (!m) return null;
  const date = new Date(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
  return Number.isNaN(date.getTime()) || date.getMonth() !== +m[2] - 1 ? null : date;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// -- clipboard ------------------------------------------------------------------------------------
async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {  // not a secure context (plain http to another host): the older way
    const area = el("textarea", { value: text, readOnly: true, className: "visually-hidden" });
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  if (button) {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  }
}

function requestIdNode(requestId, reference) {
  return el("span", { className: "rid-cell" },
    el("span", { className: "rid", title: requestId, "data-testid": "request-id" }, requestId),
    el("button", { type: "button", className: "copy", "aria-label": `Copy request ID ${requestId} of ${reference}`,
      onclick: (event) => copyText(requestId, event.currentTarget) }, "Copy"));
}

// -- activity and runs ------------------------------------------------------------------------------
const STATUS_TEXT = {
  in_progress: "in progress", finished: "finished", finished_with_errors: "finished with errors",
  interrupted: "interrupted",
};
const STATUS_HINT = {
  interrupted: "Items are still pending and no event of this run arrived for longer than the stall threshold " +
    "(RECORDER_STALL_SECONDS): a worker may be down. `catalog-sync retry RUN --status pending` sends them again.",
  finished_with_errors: "Every item has an outcome; some are errors (filter the table by status error).",
};

function statusBadge(status) {
  return el("span", { className: `badge status-${status}`, title: STATUS_HINT[status] || "", "data-testid": "run-status" },
    (status === "interrupted" || status === "finished_with_errors" ? "⚠ " : "") + (STATUS_TEXT[status] || status));
}

function runText(run) {
  if (!run) return "–";
  const c = run.counts;
  return `${run.run_id} · ${STATUS_TEXT[run.status] || run.status} · mode ${run.mode || "?"} (${run.endpoint || "?"}) · ` +
    `started ${shortTime(run.started_at)}` + (run.finished_at ? ` · finished ${shortTime(run.finished_at)}` : "") +
    ` · ${c.total} items: ${c.finished} finished, ${c.error} error, ${c.pending} pending`;
}

function runLine(target, run) {
  target.replaceChildren(runText(run));
  if (run && (run.status === "interrupted" || run.status === "finished_with_errors")) {
    target.append(" ", statusBadge(run.status));
  }
}

function startedBy(run) {
  if (run.trigger === "retry") return `retry of ${run.retry_of}`;
  return (run.trigger || "publish") + (run.source ? ` (${run.source})` : "");
}

async function loadActivity() {
  const a = await apiJson("/api/activity");
  state.running = a.in_progress;
  $("act-running").textContent = a.in_progress ? "yes" : "no";
  runLine($("act-current"), a.current_run);
  runLine($("act-last"), a.last_run);
  const next = $("act-next");
  if (a.next_run_at) next.replaceChildren(timeNode(a.next_run_at), ` (${TIME_ZONE})`);
  else if (a.missed_run_at) {
    next.replaceChildren(el("span", { className: "badge status-interrupted", "data-testid": "missed-run" },
      "⚠ none: the run announced for "), " ");
    next.firstChild.append(timeNode(a.missed_run_at), " never started (is the scheduler running?)");
  } else next.textContent = "not scheduled";
}

function runsChart(runs) {
  const shown = runs.slice(0, RUNS_SHOWN).reverse();  // oldest on the left
  const width = 640, height = 90, gap = 4;
  const bar = shown.length ? Math.min(40, (width - gap) / shown.length - gap) : 0;
  const most = Math.max(1, ...shown.map((r) => r.counts.total));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Finished, error and pending items of the last ${shown.length} runs, oldest first` });
  chart.append(svg("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
  shown.forEach((run, i) => {
    const group = svg("g", { "data-testid": "run-bar", "data-run": run.run_id });
    if (run.run_id === selectedRun()) group.setAttribute("class", "selected");
    let y = height;
    for (const part of ["finished", "error", "pending"]) {
      const h = (run.counts[part] / most) * (height - 4);
      if (h <= 0) continue;
      y -= h;
      group.append(svg("rect", { x: gap + i * (bar + gap), y, width: bar, height: h, class: `bar-${part}`,
        "data-part": part }));
    }
    const title = svg("title");
    title.textContent = `${run.run_id}: ${run.counts.finished} finished, ${run.counts.error} error, ` +
      `${run.counts.pending} pending (${STATUS_TEXT[run.status] || run.status})`;
    group.append(title);
    group.addEventListener("click", () => pickRun(run.run_id));
    chart.append(group);
  });
  $("runs-chart").replaceChildren(chart);
}

function runsTable(runs) {
  const body = $("runs-body");
  body.replaceChildren();
  for (const run of runs.slice(0, RUNS_SHOWN)) {
    const c = run.counts;
    const row = el("tr", { "data-testid": "run-row", "data-run": run.run_id },
      el("td", null, el("button", { type: "button", className: "run-pick", "aria-label": `Show the items of run ${run.run_id}`,
        onclick: () => pickRun(run.run_id) }, run.run_id)),
      el("td", null, timeNode(run.started_at)),
      el("td", { "data-testid": "run-trigger" }, startedBy(run)),
      el("td", null, `${run.mode || "?"} (${run.endpoint || "?"})`),
      el("td", { "data-testid": "run-duration" }, duration(run.duration_s)),
      el("td", { "data-testid": "run-counts" }, `${c.total}: ${c.finished} finished, ${c.error} error, ${c.pending} pending`),
      el("td", null, statusBadge(run.status)));
    if (run.run_id === selectedRun()) row.className = "selected";
    body.append(row);
  }
}

function runOptionText(run) { return `${run.run_id} · ${shortTime(run.started_at)} · ${STATUS_TEXT[run.status] || run.status}`; }

async function loadRuns() {
  const { runs } = await apiJson("/api/runs", { limit: 50 });
  state.runs = runs;
  state.latestRunId = runs.length ? runs[0].run_id : null;
  const select = $("f-run");
  const chosen = select.value;
  select.options[0].textContent = state.latestRunId ? `latest run (${state.latestRunId})` : "latest run";
  const known = new Set(runs.map((r) => r.run_id));
  for (const option of [...select.options].slice(2)) {
    if (!known.has(option.value) && option.value !== chosen) option.remove();
  }
  const present = new Map([...select.options].slice(2).map((o) => [o.value, o]));
  for (const run of runs) {
    const option = present.get(run.run_id) || select.appendChild(el("option", { value: run.run_id }));
    option.textContent = runOptionText(run);
  }
  if (chosen && chosen !== "all" && !known.has(chosen)) await ensureRunOption(chosen);
  select.value = chosen;
  runsChart(runs);
  runsTable(runs);
}

// A run older than the list (a shared link): add it, or say it is not there.
async function ensureRunOption(runId) {
  const select = $("f-run");
  if ([...select.options].some((o) => o.value === runId)) return;
  const run = await apiJson("/api/runs/" + encodeURIComponent(runId));
  select.append(el("option", { value: run.run_id }, runOptionText(run)));
}

function selectedRun() { return $("f-run").value === "" ? state.latestRunId : $("f-run").value; }

function pickRun(runId) {
  $("f-run").value = runId === state.latestRunId ? "" : runId;
  filtersChanged();
}

// -- filters: in the URL, so a view can be shared and reloaded ---------------------------------------
function sinceUtc() {
  const text = $("f-since").value.trim();
  if (!text) return "";
  const date = parseLocal(text);
  return date ? date.toISOString() : null;
}

function filters() {
  return {
    run_id: $("f-run").value,
    reference: $("f-reference").value.trim(),
    status: $("f-status").value === "all" ? "" : $("f-status").value,
    type: $("f-type").value,
    since: sinceUtc() || "",
  };
}

function showSinceHint() {
  const since = sinceUtc();
  $("since-utc").textContent = since === null ? "not a date: YYYY-MM-DD HH:MM" : since ? "= " + utcText(since) : "";
}

function writeUrl() {
  const search = query(filters()).toString();
  history.replaceState(null, "", search ? "?" + search : window.location.pathname);
  const csv = new URL("/api/items.csv", window.location.origin);
  csv.search = search;
  $("export-csv").href = csv.pathname + csv.search;
}

function readUrl() {
  const params = new URLSearchParams(window.location.search);
  const runId = params.get("run_id") || "";
  if (runId && runId !== "all") $("f-run").append(el("option", { value: runId }, runId));
  $("f-run").value = runId;
  $("f-reference").value = params.get("reference") || "";
  $("f-status").value = params.get("status") || "all";
  $("f-type").value = params.get("type") || "";
  const since = params.get("since");
  const date = since ? new Date(since) : null;
  $("f-since").value = date && !Number.isNaN(date.getTime()) ? localTime(date, date.getSeconds() !== 0) : "";
  showSinceHint();
}

function describeFilters(page) {
  const f = filters();
  const parts = [page.run_id ? `run ${page.run_id}` : "all runs"];
  if (f.reference) parts.push(`reference contains “${f.reference}”`);
  if (f.status) parts.push(`status ${f.status}`);
  if (f.type) parts.push(`type ${f.type}`);
  if (f.since) parts.push(`synced since ${shortTime(f.since)}`);
  return parts.join(" · ");
}

// -- items ------------------------------------------------------------------------------------------
function itemKey(item) { return `${item.seller_id || ""}|${item.marketplace_id}|${item.reference}`; }

function attributeNames(error) {
  const names = new Set();
  for (const d of error.details || []) {
    for (const name of d.attribute_names || []) names.add(name);
    const match = /^\/attributes\/([^/]+)/.exec(d.path || "");
    if (match) names.add(match[1].replaceAll("~1", "/").replaceAll("~0", "~"));
  }
  return [...names];
}

const COLUMNS = 8;

function detailsRow(item) {
  const e = item.error;
  const rows = [];
  const add = (label, value) => rows.push(el("dt", null, label), el("dd", null, value));
  add("Error type", e.type === "validation" ? "Validation (local, not sent to Amazon)" : "Amazon response");
  add("Code", e.code || "–");
  add("Message", e.message);
  const names = attributeNames(e);
  add("Attributes", names.length ? names.join(", ") : "–");
  add("Request ID", item.request_id ? requestIdNode(item.request_id, item.reference) : "–");
  add("Submission ID", item.submission_id || "–");
  if (item.feed_id) add("Feed", feedText(item));
  add("Endpoint", item.endpoint || "–");
  add("Seller", item.seller_id || "–");
  const list = el("ul", { "data-testid": "error-details-list" });
  for (const d of e.details || []) {
    const where = d.path || (d.attribute_names || []).join(", ");
    list.append(el("li", null, [d.severity, d.code, d.message].filter(Boolean).join(" · ") + (where ? ` (${where})` : "")));
  }
  add("All problems", list);
  return el("tr", { className: "details", "data-testid": "error-details" },
    el("td", { colSpan: COLUMNS }, el("dl", null, ...rows)));
}

function historyLine(event) {
  const parts = [event.event_type.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase()];
  if (event.listing_state) parts.push(LISTING_STATES[event.listing_state] || event.listing_state);
  if (event.outcome) parts.push(event.outcome);
  if (event.status && !event.outcome) parts.push(event.status);
  if (event.operation && event.event_type === "CatalogItemChanged") parts.push(event.operation);
  if (event.errors && event.errors.length) parts.push(`${event.errors.length} validation error(s)`);
  if (event.request_id) parts.push(`request ${event.request_id}`);
  if (event.feed_id) parts.push(feedText(event));
  return parts.join(" · ");
}

// An item the bulk lane sent in a JSON_LISTINGS_FEED: Amazon's feed and the item's message in it.
function feedText(item) {
  return `feed ${item.feed_id}, message ${item.feed_message_id}`;
}

async function timelineRow(item) {
  const found = await apiJson("/api/items/" + encodeURIComponent(item.reference),
    { marketplace_id: item.marketplace_id, seller_id: item.seller_id });
  const list = el("ol", { "data-testid": "timeline-list" });
  let run = undefined;
  for (const event of found.history) {
    if (event.run_id !== run) {
      run = event.run_id;
      list.append(el("li", { className: "timeline-run", "data-testid": "timeline-run" }, `run ${run || "(none)"}`));
    }
    list.append(el("li", { "data-testid": "timeline-event" }, timeNode(event.event_time), " ", historyLine(event)));
  }
  return el("tr", { className: "timeline", "data-testid": "timeline" }, el("td", { colSpan: COLUMNS },
    el("strong", null, `Timeline of ${item.reference} across runs (oldest first)`), list));
}

// Amazon's view of an accepted listing (the submitter looks again after ACCEPTED).
const LISTING_STATES = {
  awaiting: "accepted, awaiting Amazon",
  live: "live on Amazon",
  error: "turned down after acceptance",
};

function listingNode(item) {
  if (!item.listing_state) return null;
  const text = LISTING_STATES[item.listing_state] || item.listing_state;
  return el("span", { className: "listing listing-" + item.listing_state, "data-testid": "listing-state",
    title: item.listing_note || (item.listing_checked_at ? `seen ${shortTime(item.listing_checked_at)}` : "") }, text);
}

// What the row says about the submission behind its request ID.
function outcomeNote(item) {
  if (item.note) return item.note;  // nothing reached Amazon (e.g. a delete in a preview run)
  if (item.listing_note) return item.listing_note;  // why it is still awaiting Amazon
  if (item.listing_state === "error") return "request ID of the look that found the issue (getListingsItem)";
  if (item.outcome === "unchanged") {
    const from = item.request_run_id ? `run ${item.request_run_id}` : "an earlier run";
    return `unchanged: not resent in this run; the request ID is from ${from}` +
      (item.request_at ? ` (${shortTime(item.request_at)})` : "");
  }
  if (item.outcome === "not_sent") return "not sent to Amazon (categories are checked locally)";
  if (item.resent) return `sent in run ${item.request_run_id || item.run_id}` + (item.outcome ? ` · ${item.outcome}` : "");
  return null;
}

function togglePanel(entry, panel, button, build) {
  const existing = entry.panels.get(panel);
  if (existing) {
    existing.remove();
    entry.panels.delete(panel);
    entry.open.delete(panel);
    button.setAttribute("aria-expanded", "false");
    return;
  }
  entry.open.add(panel);
  button.setAttribute("aria-expanded", "true");
  return showPanel(entry, panel, build);
}

async function showPanel(entry, panel, build) {
  const node = await build(entry.item);
  if (!entry.open.has(panel) || !entry.row.isConnected) return;
  entry.panels.get(panel)?.remove();
  entry.panels.set(panel, node);
  placePanels(entry);
}

function placePanels(entry) {
  let after = entry.row;
  for (const name of ["details", "timeline"]) {
    const node = entry.panels.get(name);
    if (node) { after.after(node); after = node; }
  }
}

function itemRow(item, previous) {
  const key = itemKey(item);
  const entry = { item, key, row: null, panels: new Map(), open: new Set(previous ? previous.open : []) };
  const label = (text) => ({ "data-label": text });
  const select = item.status === "error"
    ? el("input", { type: "checkbox", checked: state.selected.has(key), "aria-label": `Add ${item.reference} to the support case`,
      "data-testid": "select-item" })
    : null;
  if (select) select.addEventListener("change", () => { toggleSelected(item, select.checked); });
  const note = outcomeNote(item);
  const actions = el("div", { className: "row-actions" });
  const row = el("tr", { "data-testid": "item-row", "data-key": key },
    el("td", label("Support"), select),
    el("td", { className: "ref", ...label("Reference") }, item.reference),
    el("td", label("Type"), item.item_type),
    el("td", { className: "mono", ...label("Marketplace") }, item.marketplace_id),
    el("td", { className: "status status-" + item.status, ...label("Status") }, item.status, listingNode(item)),
    el("td", label("Synced"), timeNode(item.synced_at)),
    el("td", { className: "request", ...label("Request ID") },
      el("div", null, item.request_id ? requestIdNode(item.request_id, item.reference) : "–",
        item.feed_id ? el("span", { className: "note", "data-testid": "item-feed" }, feedText(item)) : null,
        note ? el("span", { className: "note", "data-testid": "item-note" }, note) : null)),
    el("td", label("More"), actions));
  entry.row = row;
  if (item.error) {
    const button = el("button", { type: "button", "data-testid": "show-error", "aria-expanded": "false",
      "aria-label": `Error details of ${item.reference}` }, "Error details");
    button.addEventListener("click", () => togglePanel(entry, "details", button, detailsRow));
    actions.append(button);
  }
  const timeline = el("button", { type: "button", "data-testid": "show-timeline", "aria-expanded": "false",
    "aria-label": `Timeline of ${item.reference} across runs` }, "Timeline");
  timeline.addEventListener("click", () => guarded(() => togglePanel(entry, "timeline", timeline, timelineRow)));
  actions.append(timeline);
  // A row re-drawn by a live refresh keeps the panels its user had open.
  for (const panel of entry.open) {
    const button = panel === "details" ? actions.querySelector("[data-testid=show-error]") : timeline;
    if (!button || (panel === "details" && !item.error)) { entry.open.delete(panel); continue; }
    button.setAttribute("aria-expanded", "true");
    showPanel(entry, panel, panel === "details" ? detailsRow : timelineRow).catch((err) => showProblem(err.message));
  }
  return entry;
}

function showPage(page, rows) {
  const s = page.summary;
  for (const key of ["total", "finished", "error", "pending"]) $("count-" + key).textContent = s[key];
  $("overview-scope").textContent = describeFilters(page);
  $("items-summary").textContent =
    `${s.total} matching (${s.finished} finished, ${s.error} error, ${s.pending} pending) · showing ${rows}` +
    (page.run_id ? ` · run ${page.run_id}` : " · all runs") + movedOn(page);
  $("no-items").hidden = rows > 0;
  state.cursor = page.next_cursor;
  $("view-more").hidden = !page.next_cursor;
}

// The table shows each item once, under the run of its latest sync: say how many of a run's items
// later runs synced again, so an older run's short list does not read as all it did.
function movedOn(page) {
  const f = filters();
  const run = state.runs.find((r) => r.run_id === page.run_id);
  if (!run || f.reference || f.status || f.type || f.since || run.counts.total <= page.summary.total) return "";
  return ` · ${run.counts.total - page.summary.total} more of this run's items were synced again by later runs ` +
    "(they show under those runs; each item's timeline has every run)";
}

async function offerAllRuns(page) {
  const button = $("search-all-runs");
  button.hidden = true;
  $("no-items-text").textContent = "No items match these filters" + (page.run_id ? ` in run ${page.run_id}.` : ".");
  if (!page.run_id || page.items.length) return;
  const all = await apiJson("/api/items", { ...filters(), run_id: "all", limit: 1 });
  if (all.summary.total > 0) {
    $("no-items-text").textContent += ` ${all.summary.total} match in other runs.`;
    button.hidden = false;
  }
}

// Filters change faster than answers come back: a new filter aborts the load still in flight (and a
// live refresh), so a late answer to an older filter (or to its "view more") never lands in the table.
async function loadItems(reset) {
  if (state.itemsLoad && !reset) return;  // "view more" while a load is in flight: that load decides the next page
  if (state.itemsLoad) state.itemsLoad.abort();
  const load = new AbortController();
  state.itemsLoad = load;
  if (reset) state.cursor = null;
  let page;
  try {
    page = await apiJson("/api/items", { ...filters(), limit: PAGE_SIZE, cursor: state.cursor }, load.signal);
  } catch (err) {
    if (load.signal.aborted) return;  // replaced by a newer load: not a problem to show
    throw err;
  } finally {
    if (state.itemsLoad === load) state.itemsLoad = null;
  }
  const body = $("items-body");
  if (reset) { body.replaceChildren(); state.rows.clear(); }
  for (const item of page.items) {
    const entry = itemRow(item);
    state.rows.set(entry.key, entry);
    body.append(entry.row);
  }
  showPage(page, state.rows.size);
  await offerAllRuns(page);
}

// Live refresh: re-read as many rows as are loaded and patch the table in place. Unchanged rows stay
// the same nodes; changed ones are redrawn with their panels open; the row at the top of the window
// keeps its place on screen.
async function refreshItems() {
  if (state.itemsLoad) return;  // the user's own load is on its way
  const load = new AbortController();
  state.itemsLoad = load;
  const wanted = Math.max(PAGE_SIZE, state.rows.size);
  const items = [];
  let page, cursor = null;
  try {
    do {
      page = await apiJson("/api/items", { ...filters(), limit: Math.min(MAX_PAGE, wanted - items.length), cursor },
        load.signal);
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && items.length < wanted);
  } catch (err) {
    if (load.signal.aborted) return;
    throw err;
  } finally {
    if (state.itemsLoad === load) state.itemsLoad = null;
  }
  const anchor = [...state.rows.values()].find((e) => e.row.getBoundingClientRect().bottom > 0);
  const anchorTop = anchor ? anchor.row.getBoundingClientRect().top : 0;
  const body = $("items-body");
  const next = new Map();
  for (const item of items) {
    const key = itemKey(item);
    const old = state.rows.get(key);
    let entry = old;
    if (!old || JSON.stringify(old.item) !== JSON.stringify(item)) {
      entry = itemRow(item, old);
      if (old) { old.row.remove(); for (const node of old.panels.values()) node.remove(); }
    }
    next.set(key, entry);
  }
  for (const [key, old] of state.rows) {
    if (!next.has(key)) { old.row.remove(); for (const node of old.panels.values()) node.remove(); }
  }
  for (const entry of next.values()) { body.append(entry.row); placePanels(entry); }
  state.rows = next;
  showPage(page, next.size);
  state.cursor = cursor;
  $("view-more").hidden = !cursor;
  if (anchor && next.get(anchor.key) === anchor) window.scrollBy(0, anchor.row.getBoundingClientRect().top - anchorTop);
}

// -- support case ---------------------------------------------------------------------------------
function toggleSelected(item, on) {
  if (on) state.selected.set(itemKey(item), item); else state.selected.delete(itemKey(item));
  guarded(loadSupportCase);
}

async function loadSupportCase() {
  const keys = [...state.selected.keys()];
  $("support-body").hidden = keys.length === 0;
  $("support-hint").hidden = keys.length > 0;
  if (!keys.length) return;
  if (state.supportLoad) state.supportLoad.abort();
  const load = new AbortController();
  state.supportLoad = load;
  let found;
  try {
    found = await apiJson("/api/support-case", { item: keys }, load.signal);
  } catch (err) {
    if (load.signal.aborted) return;
    throw err;
  }
  const facts = $("support-facts");
  facts.replaceChildren();
  const add = (label, value) => facts.append(el("dt", null, label), el("dd", null, value));
  add("API", `${found.api} (${found.api_version})`);
  add("Operation", found.operation);
  add("Endpoint", found.endpoints.length
    ? found.endpoints.map(([name, url]) => `${name}${url ? ` (${url})` : ""}`).join(", ") : "–");
  add("Marketplace", found.marketplaces.map((m) => `${m.marketplace_id} (${m.country})`).join(", ") || "–");
  add("Items", [...state.selected.values()].map((i) => i.reference).join(", "));
  const list = $("support-request-ids");
  list.replaceChildren(...found.request_ids.map((rid) => el("li", null, requestIdNode(rid, "the support case"))));
  if (!found.request_ids.length) list.append(el("li", null, "No request reached Amazon for these items (validation errors stay local)."));
  $("support-text").textContent = found.text;
}

// -- the loop -------------------------------------------------------------------------------------
async function guarded(task) {
  try { await task(); showProblem(""); } catch (err) { showProblem(err.message); }
}

function filtersChanged() {
  writeUrl();
  return guarded(async () => {
    await loadItems(true);
    runsChart(state.runs);
    runsTable(state.runs);
  });
}

function schedulePoll() {
  clearTimeout(state.pollTimer);
  const every = state.running ? POLL_RUNNING_MS : POLL_IDLE_MS;
  $("live").textContent = state.running ? `live: updating every ${every / 1000} s` : "up to date";
  state.pollTimer = setTimeout(poll, every);
}

async function poll() {
  await guarded(async () => {
    await loadActivity();
    await loadRuns();
    await refreshItems();
  });
  schedulePoll();
}

async function start() {
  await guarded(async () => {
    await loadActivity();
    await loadRuns();
    await loadItems(true);
  });
  schedulePoll();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const node of document.querySelectorAll(".tz-name")) node.textContent = TIME_ZONE;
  readUrl();
  writeUrl();
  let typing = null;
  $("f-reference").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(filtersChanged, 250);
  });
  $("f-since").addEventListener("input", showSinceHint);
  $("f-since").addEventListener("change", () => { if (sinceUtc() !== null) filtersChanged(); });
  for (const id of ["f-run", "f-status", "f-type"]) $(id).addEventListener("change", filtersChanged);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); filtersChanged(); });
  $("refresh").addEventListener("click", () => { clearTimeout(state.pollTimer); start(); });
  $("view-more").addEventListener("click", () => guarded(() => loadItems(false)));
  $("search-all-runs").addEventListener("click", () => { $("f-run").value = "all"; filtersChanged(); });
  $("support-copy-all").addEventListener("click", (event) => copyText($("support-text").textContent, event.currentTarget));
  $("export-csv").addEventListener("click", (event) => {
    if (!state.token) return;  // the plain link streams the file; with a token the header must be sent
    event.preventDefault();
    guarded(async () => {
      const blob = await (await api("/api/items.csv", filters())).blob();
      const link = el("a", { href: URL.createObjectURL(blob), download: "catalog-sync-items.csv" });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    });
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token-input").value.trim();
    sessionStorage.setItem("catalogSyncToken", state.token);
    $("token-panel").hidden = true;
    clearTimeout(state.pollTimer);
    start();
  });
  start();
});
