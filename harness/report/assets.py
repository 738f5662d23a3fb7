"""Inline CSS and script of the HTML pages (harness.report.html): one file that opens from a CI
artefact store or an e-mail attachment, with no framework to download. Written by hand: a
sort on click and a text filter are a few lines, smaller than any library that does them."""

CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --head: #f3f5f7; --best: #dafbe1;
        --bad: #ffebe9; --warn: #fff8c5; --good: #dafbe1; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); margin: 0 auto; padding: 1rem 1.5rem 3rem; max-width: 1500px; }
h1 { font-size: 1.5rem; margin: .2rem 0; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.summary, .muted, figcaption, .notes { color: var(--muted); }
nav a { margin-right: 1rem; }
.toolbar { position: sticky; top: 0; background: #fff; padding: .5rem 0; z-index: 2;
           display: flex; gap: 1rem; align-items: center; border-bottom: 1px solid var(--line); }
.toolbar input { font: inherit; padding: .3rem .5rem; width: 28rem; max-width: 60vw; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .3rem 0; }
table.filterable { font-size: 13px; }
th, td { border: 1px solid var(--line); padding: .2rem .4rem; vertical-align: top; }
th { background: var(--head); text-align: left; font-weight: 600; font-size: .88em; }
td.variant { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th button { all: unset; cursor: pointer; }
th button::after { content: " \\2195"; color: var(--muted); font-size: .8em; }
th[aria-sort=ascending] button::after { content: " \\2191"; }
th[aria-sort=descending] button::after { content: " \\2193"; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.best { background: var(--best); font-weight: 600; }
td.na { color: var(--muted); text-align: center; }
tr.nofit td.variant { color: #cf222e; }
tr.regression { background: var(--bad) !important; }
tr.worse { background: var(--warn) !important; }
tr.improvement { background: var(--good) !important; }
.badge { display: inline-block; padding: 0 .4em; border-radius: .6em; font-size: .8em;
         border: 1px solid currentColor; white-space: nowrap; }
.fid-hardware { color: #116329; } .fid-cycle-accurate { color: #0550ae; }
.fid-instruction-count { color: #0a7a7a; } .fid-wall-clock { color: #6e4b00; }
.fid-functional { color: #bc4c00; } .fid-modelled { color: #8250df; } .fid-static { color: #57606a; }
.badge.incomplete { color: #cf222e; }
.alert { border: 1px solid #cf222e; background: var(--bad); padding: .5rem .8rem; margin: .6rem 0; }
#page-errors { white-space: pre-wrap; font-family: monospace; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: .5rem 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: .3rem 0; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; }
details { margin: .5rem 0; } summary { cursor: pointer; font-weight: 600; }
code { font-size: .92em; }
@media print {
  @page { size: A4 landscape; margin: 1cm; }
  body { font-size: 9pt; padding: 0; max-width: none; }
  .toolbar, nav, th button::after { display: none; }
  .scroll { overflow: visible; }
  section, figure, tr { break-inside: avoid; }
  h2 { break-after: avoid; }
  td.best { outline: 2px solid #116329; }
}
"""

# Errors land in #page-errors (script errors, console.error, images that do not load), so a
# headless browser's DOM dump shows them; then sorting and the row filter.
SCRIPT = r"""
(function () {
  var early = [];
  function report(text) {
    var box = document.getElementById("page-errors");
    if (!box) { early.push(text); return; }
    box.hidden = false;
    box.textContent += text + "\n";
  }
  window.addEventListener("error", function (e) {
    var t = e.target;
    report(t && t.tagName ? "failed to load <" + t.tagName.toLowerCase() + "> " + (t.alt || "")
                          : "script error: " + e.message);
  }, true);
  var consoleError = console.error;
  console.error = function () {
    report("console.error: " + Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };

  function sortKey(cell) {
    var v = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (v === "") return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0], i = th.cellIndex;
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortKey(a.cells[i]), y = sortKey(b.cells[i]);
      if (x === null || y === null) return (x === null) - (y === null);   // empty cells last
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function filter(text) {
    var terms = text.toLowerCase().split(/\s+/).filter(Boolean), shown = 0, total = 0;
    document.querySelectorAll("table.filterable tbody tr").forEach(function (tr) {
      var row = tr.textContent.toLowerCase();
      var keep = terms.every(function (t) { return row.indexOf(t) >= 0; });
      tr.hidden = !keep; total += 1; shown += keep ? 1 : 0;
    });
    var count = document.getElementById("filter-count");
    if (count) count.textContent = terms.length ? shown + " of " + total + " rows" : "";
  }
  document.addEventListener("DOMContentLoaded", function () {
    early.forEach(report); early = [];
    document.querySelectorAll("table.sortable th").forEach(function (th) {
      var button = document.createElement("button");
      button.type = "button";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () { sortBy(th); });
    });
    var input = document.getElementById("filter");
    if (input) input.addEventListener("input", function () { filter(input.value); });
  });
  window.addEventListener("load", function () {
    document.querySelectorAll("img").forEach(function (img) {
      if (!img.complete || img.naturalWidth === 0) report("image did not render: " + img.alt);
    });
    document.documentElement.setAttribute("data-loaded", "yes");
  });
})();
"""
