"""The stylesheet and script of report.html, inlined so the file needs nothing else.

The script renders the target table from the JSON embedded in the page, one
page of rows at a time (so 100,000 targets stay responsive), sorts and filters
it, and keeps the view in the URL fragment (`#state=failed&q=web`), so a view
can be bookmarked or sent. Every cell is set with textContent: text from the
inventory or the API is never parsed as HTML. Lookups keyed by such text (column
names, error codes, projects, the fragment's keys) use Map or objects without a
prototype, so a column named `hasOwnProperty`, `__proto__` or `constructor` is a
column like any other.

On success the script sets `data-ready="1"` on <html>; any error lands in
`data-error`, which headless tests read from the dumped DOM.
"""

CSS = """
:root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2329; }
body { margin: 0; padding: 16px 24px 48px; background: #fafbfc; }
/* Text at a readable width; the targets' table takes the whole window. */
body > *:not(#targets) { max-width: 1180px; margin-left: auto; margin-right: auto; }
h1 { font-size: 1.5rem; margin: 8px 0 2px; } h2 { font-size: 1.15rem; margin: 28px 0 8px; }
.muted { color: #68707a; } .small { font-size: .85rem; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.card { background: #fff; border: 1px solid #dde1e5; border-radius: 6px; padding: 8px 14px;
  min-width: 110px; }
.card b { display: block; font-size: 1.35rem; } .card span { font-size: .8rem; color: #68707a; }
.card.failed b { color: #d64545; } .card.succeeded b { color: #2e9d5b; }
.card.open b { color: #b07a00; }
svg.bar { width: 100%; height: 28px; border-radius: 4px; display: block; }
svg.chart { width: 100%; height: auto; background: #fff; border: 1px solid #dde1e5; }
svg .tick { font-size: 11px; fill: #555; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: .85rem; margin: 6px 0; }
.legend i { display: inline-block; width: 11px; height: 11px; margin-right: 4px;
  vertical-align: -1px; border-radius: 2px; }
table { border-collapse: collapse; background: #fff; font-size: .88rem; }
th, td { border: 1px solid #dde1e5; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f2f4; } td.num, th.num { text-align: right; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 18px; }
.controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 8px 0; }
.controls input, .controls select, .controls button { font: inherit; padding: 3px 6px; }
.scroll { overflow-x: auto; }
#targets-table { width: 100%; font-size: .76rem; }
#targets-table th, #targets-table td { padding: 3px 5px; }
#targets-table th { cursor: pointer; user-select: none; white-space: nowrap; }
#targets-table td { white-space: nowrap; }
#targets-table td.id { font-family: ui-monospace, monospace; }
/* Project and job IDs are 32 hex digits: shortened, whole in the tooltip and the CSV. */
#targets-table td.short { max-width: 11ch; overflow: hidden; text-overflow: ellipsis; }
table.options th, table.facts th { font-weight: 600; white-space: nowrap; }
table.options td code { overflow-wrap: anywhere; }
/* Inventory columns (a name, an owner) wrap rather than widen the table. */
#targets-table td.text { white-space: normal; overflow-wrap: anywhere; max-width: 14ch; }
#targets-table td.wrap { white-space: normal; min-width: 140px; max-width: 420px;
  overflow-wrap: anywhere; }
.st { font-weight: 600; } .st-failed { color: #d64545; } .st-succeeded { color: #2e9d5b; }
.st-in_doubt { color: #b07a00; }
code { font-size: .85rem; overflow-wrap: anywhere; }
details summary { cursor: pointer; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var PAGE = 100;
  var doc = document.documentElement;
  var holder = document.getElementById("targets-data");
  var data = JSON.parse(holder.textContent);
  // The parsed rows are all the page needs: drop the text (it can be 100+ MB).
  holder.textContent = "";
  var cols = data.columns, rows = data.rows;
  // Column index by key; keys are inventory column names: never an object's own
  // properties (a column "hasOwnProperty" or "__proto__").
  var byKey = new Map();
  cols.forEach(function (c, i) { if (!byKey.has(c.key)) { byKey.set(c.key, i); } });
  var C = Object.create(null);
  ["state", "project_id", "error_code"].forEach(function (k) { C[k] = byKey.get(k); });
  var numeric = cols.map(function (c) { return !!c.numeric; });
  var searchCols = cols.map(function (c, i) { return c.search ? i : -1; })
    .filter(function (i) { return i >= 0; });
  var FILTERS = ["state", "project", "code", "q"];  // the fragment's text keys
  var view = { state: "", project: "", code: "", q: "", sort: -1, dir: 1, page: 0 };
  var el = function (id) { return document.getElementById(id); };
  var haystack = null;

  function readHash() {
    var h = location.hash.replace(/^#/, "");
    h.split("&").forEach(function (part) {
      if (!part) { return; }
      var kv = part.split("=");
      var k = decodeURIComponent(kv[0]), v = decodeURIComponent(kv.slice(1).join("="));
      if (k === "sort") { view.sort = byKey.has(v) ? byKey.get(v) : -1; }
      else if (k === "dir") { view.dir = v === "desc" ? -1 : 1; }
      else if (k === "page") { view.page = Math.max(0, (parseInt(v, 10) || 1) - 1); }
      else if (FILTERS.indexOf(k) >= 0) { view[k] = v; }
    });
  }

  function writeHash() {
    var parts = [];
    FILTERS.forEach(function (k) {
      if (view[k]) { parts.push(k + "=" + encodeURIComponent(view[k])); }
    });
    if (view.sort >= 0) {
      parts.push("sort=" + encodeURIComponent(cols[view.sort].key));
      parts.push("dir=" + (view.dir < 0 ? "desc" : "asc"));
    }
    if (view.page) { parts.push("page=" + (view.page + 1)); }
    try { history.replaceState(null, "", parts.length ? "#" + parts.join("&") : "#"); }
    catch (e) { /* a file: URL may refuse; the view still works */ }
  }

  function fillSelect(id, index, label) {
    var counts = new Map();  // values from the API: "__proto__" is a value like any other
    for (var i = 0; i < rows.length; i++) {
      var v = String(rows[i][index] || "");
      counts.set(v, (counts.get(v) || 0) + 1);
    }
    var select = el(id);
    var keys = Array.from(counts.keys()).sort();
    var all = document.createElement("option");
    all.value = ""; all.textContent = "every " + label;
    select.appendChild(all);
    keys.forEach(function (k) {
      if (!k) { return; }
      var o = document.createElement("option");
      o.value = k; o.textContent = k + " (" + counts.get(k) + ")";
      select.appendChild(o);
    });
  }

  function matches() {
    var q = view.q.toLowerCase(), out = [];
    if (q && haystack === null) {
      haystack = rows.map(function (r) {
        return searchCols.map(function (i) { return r[i] == null ? "" : String(r[i]); })
          .join("\u0001").toLowerCase();
      });
    }
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (view.state && r[C.state] !== view.state) { continue; }
      if (view.project && r[C.project_id] !== view.project) { continue; }
      if (view.code && (r[C.error_code] || "") !== view.code) { continue; }
      if (q && haystack[i].indexOf(q) < 0) { continue; }
      out.push(i);
    }
    if (view.sort >= 0) {
      var s = view.sort, d = view.dir, num = numeric[s];
      out.sort(function (a, b) {
        var x = rows[a][s], y = rows[b][s];
        if (x == null || x === "") { return (y == null || y === "") ? a - b : 1; }
        if (y == null || y === "") { return -1; }
        var c = num ? x - y : (x < y ? -1 : x > y ? 1 : 0);
        return c ? c * d : a - b;
      });
    }
    return out;
  }

  function render() {
    var found = matches();
    var pages = Math.max(1, Math.ceil(found.length / PAGE));
    if (view.page >= pages) { view.page = pages - 1; }
    var body = el("targets-body");
    var fresh = document.createElement("tbody");
    fresh.id = "targets-body";
    var first = view.page * PAGE;
    for (var k = first; k < Math.min(first + PAGE, found.length); k++) {
      var r = rows[found[k]], tr = document.createElement("tr");
      tr.className = "row st-row-" + r[C.state];
      for (var j = 0; j < cols.length; j++) {
        var td = document.createElement("td");
        var v = r[j];
        td.textContent = v == null ? "" : String(v);
        if (numeric[j]) { td.className = "num"; }
        else if (cols[j].key === "project_id" || cols[j].key === "job_id") {
          td.className = "id short";
          if (v != null) { td.title = String(v); }
        }
        else if (cols[j].key.slice(-3) === "_id") { td.className = "id"; }
        else if (cols[j].key === "fail_reason") { td.className = "wrap"; }
        else if (cols[j].extra) { td.className = "text"; }
        if (j === C.state) { td.className = "st st-" + v; }
        tr.appendChild(td);
      }
      fresh.appendChild(tr);
    }
    body.parentNode.replaceChild(fresh, body);
    el("shown-count").textContent = String(found.length);
    el("page-info").textContent = "page " + (view.page + 1) + " of " + pages;
    el("prev").disabled = view.page === 0;
    el("next").disabled = view.page >= pages - 1;
    var ths = el("targets-head").children;
    for (var t = 0; t < ths.length; t++) {
      ths[t].textContent = cols[t].label + (t === view.sort ? (view.dir > 0 ? " ▲" : " ▼") : "");
    }
    writeHash();
  }

  function build() {
    var head = el("targets-head");
    cols.forEach(function (c, i) {
      var th = document.createElement("th");
      th.textContent = c.label;
      th.title = "sort by " + c.label;
      if (c.numeric) { th.className = "num"; }
      th.addEventListener("click", function () {
        view.dir = view.sort === i ? -view.dir : 1;
        view.sort = i; view.page = 0; render();
      });
      head.appendChild(th);
    });
    fillSelect("f-state", C.state, "state");
    fillSelect("f-project", C.project_id, "project");
    fillSelect("f-code", C.error_code, "error code");
    readHash();
    el("f-state").value = view.state;
    el("f-project").value = view.project;
    el("f-code").value = view.code;
    el("f-q").value = view.q;
    var on = function (id, key, ev) {
      el(id).addEventListener(ev, function () {
        view[key] = el(id).value; view.page = 0; render();
      });
    };
    on("f-state", "state", "change");
    on("f-project", "project", "change");
    on("f-code", "code", "change");
    on("f-q", "q", "input");
    el("prev").addEventListener("click", function () { view.page -= 1; render(); });
    el("next").addEventListener("click", function () { view.page += 1; render(); });
    window.addEventListener("hashchange", function () {
      view = { state: "", project: "", code: "", q: "", sort: -1, dir: 1, page: 0 };
      readHash(); render();
    });
    el("total-count").textContent = String(rows.length);
    render();
    doc.setAttribute("data-ready-ms", String(Math.round(performance.now())));
    doc.setAttribute("data-ready", "1");
  }

  build();
})();
"""

# Registered before anything else runs, so even a parse error of the main
# script is recorded where a test (or a curious operator) can see it.
ERROR_HOOK = (
    'window.addEventListener("error", function (e) {'
    ' document.documentElement.setAttribute("data-error", String(e.message || e)); });'
)
