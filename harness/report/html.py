"""The HTML pages people open: report.html (`tinyhil report`), trend.html (`--trend`) and the
compare page (`tinyhil compare --html`). Each is one self-contained file: CSS and script
inline, plots embedded as SVG data URIs, no network.

Built with html.escape and f-strings (standard library): the pages are a handful of tables and
figures, and a template engine would be one more dependency for that.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import shlex
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness import fidelity as fid
from harness.report import metrics
from harness.report.assets import CSS, SCRIPT
from harness.report.plots import plot_board, plot_energy, save_figure
from harness.results.records import read_manifest, run_status

KEY = ["board", "backend", "model", "variant"]
NOT_DEVICE_MARK = "†"
NOT_RUN_MARK = "‡"
LIMITS = {"flash_bytes": "flash_limit_bytes", "ram_bytes": "ram_limit_bytes"}   # shown as "used / limit"
BEST_MARK = "★"


def e(value) -> str:
    return html.escape(str(value), quote=True)


def anchor(name: str) -> str:
    """An id / fragment for a board name (ids may not hold spaces)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def page(title: str, summary: str, body: str) -> str:
    """The page skeleton. #page-errors collects script errors, console errors and images that
    fail to render (assets.SCRIPT), so a headless browser test can read them."""
    import harness

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{CSS}</style>
<script>{SCRIPT}</script>
</head>
<body>
<header>
<h1>{e(title)}</h1>
{summary}
<div id="page-errors" class="alert" role="alert" hidden></div>
</header>
{body}
<footer class="muted"><p>Written by tinyhil {e(harness.__version__)} on {now}; one
self-contained file (no network needed).</p></footer>
</body>
</html>
"""


# --- numbers for people ------------------------------------------------------------------------

def duration(us: float) -> str:
    """ns, µs, ms or s, whichever keeps the number short."""
    for scale, unit in ((1e6, "s"), (1e3, "ms"), (1.0, "µs")):
        if abs(us) >= scale:
            return f"{us / scale:.4g} {unit}"
    return f"{us * 1e3:.4g} ns" if us else "0 µs"


def _number(value: float, digits: int | None) -> str:
    if digits is not None:
        return f"{value:,.{digits}f}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


# Units as the page shows them: sizes in KiB, time in µs/ms chosen per cell ("" in the header).
SHOWN_UNIT = {"B": "KiB", "uJ": "µJ", "us": "", "bool": ""}
EXACT_UNIT = {"us": "µs", "uJ": "µJ"}


def header_text(column: metrics.Column) -> str:
    name = column.label.rsplit(" (", 1)[0]
    unit = SHOWN_UNIT.get(column.unit, column.unit)
    return f"{name} ({unit})" if unit else name


def cell_text(column: metrics.Column, value: float) -> tuple[str, str]:
    """(what the cell shows, the exact figure with its unit for the tooltip)."""
    exact = f"{value:,.6g} {EXACT_UNIT.get(column.unit, column.unit)}"
    if column.unit == "B":
        return f"{value / 1024:,.1f}", f"{value:,.0f} B"
    if column.unit == "us":
        return duration(value), exact
    return _number(value, column.digits), exact


def badge(label, extra: str = "") -> str:
    if not isinstance(label, str) or not label:
        return ""
    text = fid.DESCRIPTIONS.get(label, "no description")
    # The short form keeps the table within a laptop's width; the tooltip and legend spell it out.
    return (f'<span class="badge fid-{e(label)}" title="{e(label)}: {e(text)}{e(extra)}">'
            f"{e(fid.SHORT.get(label, label))}</span>")


def svg_uri(draw: Callable[[io.BytesIO], object]) -> str | None:
    """Run a plot function into memory as SVG; None when it drew nothing."""
    buffer = io.BytesIO()
    if draw(buffer) is None:
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure(uri: str, alt: str, caption: str) -> str:
    return (f'<figure><img src="{uri}" alt="{e(alt)}" width="600">'
            f"<figcaption>{e(caption)}</figcaption></figure>")


# --- the comparison table, per board -----------------------------------------------------------

def _incomplete_reason(status: str) -> str:
    if status == "incomplete":
        return ("did not finish: its process stopped (killed, crashed or still running) before "
                "closing the run; what it measured is kept, the rest is missing")
    if status == "interrupted":
        return "was interrupted (Ctrl-C or pytest stopped early): later figures are missing"
    return f"closed with status {status!r}"


def _best(rows: pd.DataFrame, key: str) -> pd.Series:
    """Which cells hold the best value of their column among the variants of one model that
    fit the board (at least two different figures; ties are all marked). A variant that does
    not fit is never the best of anything."""
    better = metrics.BY_KEY[key].better
    marked = pd.Series(False, index=rows.index)
    if better is None:
        return marked
    for _, group in rows[rows["fits"] != "no"].groupby("model"):
        values = group[key].dropna()
        if len(values) < 2 or values.nunique() < 2:
            continue
        best = values.max() if better == "higher" else values.min()
        marked.loc[values.index[values.map(lambda v: math.isclose(v, best, rel_tol=1e-9))]] = True
    return marked


def _record_context(records: pd.DataFrame) -> tuple[dict, dict]:
    """(details, fidelities): the detail text of the figure behind each cell, keyed by
    (run_id, *KEY, column), and per (board, column) the fidelities its figures carry."""
    df = metrics.device_figures_only(records)
    pairs = {(m, s): metrics.column_of(m, s) for m, s in set(zip(df["metric"], df["statistic"]))}
    df = df.assign(column=[pairs[(m, s)] for m, s in zip(df["metric"], df["statistic"])])
    df = df.dropna(subset=["column"]).sort_values("time")
    details = {(r.run_id, r.board, r.backend, r.model, r.variant, r.column): r.detail
               for r in df.itertuples(index=False) if r.detail}
    fidelities = df.groupby(["board", "column"])["fidelity"].agg(lambda s: set(s)).to_dict()
    return details, fidelities


def board_table(rows: pd.DataFrame, details: dict, fidelities: dict) -> tuple[str, list[str]]:
    """One board's rows as a sortable table, and the footnotes it needs."""
    board = rows["board"].iloc[0]
    row_fidelities = set(rows["fidelity"].dropna())
    energy_mixed = "energy_fidelity" in rows and rows["energy_fidelity"].nunique() > 1
    not_device = ~rows["fidelity"].isin(fid.DEVICE_TIME)
    keys = [k for k in rows.columns if k in metrics.BY_KEY and k not in LIMITS.values()
            and (rows[k].notna().any() or (metrics.BY_KEY[k].device_time and not_device.any()))]
    several_models = rows["model"].nunique() > 1

    head = ["backend", *(["model"] if several_models else []), "variant", "fidelity"]
    header_cells = [f"<th>{e(h)}</th>" for h in head]
    for key in keys:
        column = metrics.BY_KEY[key]
        seen = fidelities.get((board, key), set())
        # A column whose figures all carry one fidelity other than the rows' (the static sizes,
        # modelled energy) says so in its header; otherwise the row's badge holds.
        label = next(iter(seen)) if len(seen) == 1 and not seen <= row_fidelities else None
        tip = f' title="{e(column.label)}; better: {e(column.better)}"' if column.better else ""
        text = header_text(column).replace("(KiB)", "(KiB / limit)") if key in LIMITS else header_text(column)
        header_cells.append(f"<th{tip}>{e(text)}"
                            f"{' ' + badge(label) if label and not energy_mixed else ''}</th>")

    best = {k: _best(rows, k) for k in keys}
    notes: set[str] = set()
    body = []
    for index, row in rows.iterrows():
        status = row.get("run_status") or "complete"
        variant = f'<span title="from run {e(row["run_id"])}">{e(row["variant"])}</span>'
        if status != "complete":
            variant += (f' <span class="badge incomplete" title="run {e(row["run_id"])} '
                        f'{e(_incomplete_reason(status))}">incomplete</span>')
        refused = row.get("not_exportable")
        if isinstance(refused, str):
            variant += f' <span class="badge incomplete" title="{e(refused)}">not exportable</span>'
        cells = [f"<td>{e(row['backend'])}</td>",
                 *([f"<td>{e(row['model'])}</td>"] if several_models else []),
                 f'<td class="variant">{variant}</td>',
                 f'<td data-sort="{e(row["fidelity"])}">{badge(row["fidelity"])}</td>']
        for key in keys:
            cells.append(_cell(metrics.BY_KEY[key], row, best[key][index], details, energy_mixed,
                               notes))
        nofit = ' class="nofit"' if row.get("fits") == "no" else ""
        body.append(f"<tr{nofit}>{''.join(cells)}</tr>")
    table = (f'<div class="scroll"><table class="sortable filterable" id="table-{anchor(board)}">'
             f"<thead><tr>{''.join(header_cells)}</tr></thead>"
             f"<tbody>{''.join(body)}</tbody></table></div>")
    return table, sorted(notes)


def _cell(column: metrics.Column, row: pd.Series, best: bool, details: dict, energy_mixed: bool,
          notes: set[str]) -> str:
    value = row.get(column.key)
    if column.key == "fits":
        text = {"yes": "yes", "no": "✗ no"}.get(value, "")
        return f'<td class="num" title="{"does not fit the board" if value == "no" else ""}">{text}</td>'
    if value is None or pd.isna(value):
        label = row["fidelity"]
        if column.device_time and label == fid.STATIC:
            mark, reason = NOT_RUN_MARK, ("not run: the variant does not fit the board"
                                          if row.get("fits") == "no" else "not run on the board")
        elif column.device_time and label not in fid.DEVICE_TIME:
            mark, reason = NOT_DEVICE_MARK, f"not a device figure: {label} ({fid.DESCRIPTIONS.get(label, '')})"
        else:
            return '<td class="num" data-sort="" title="not measured"></td>'
        notes.add(f"{mark} {reason}")
        return f'<td class="na" data-sort="" title="{e(reason)}">—{mark}</td>'
    text, exact = cell_text(column, value)
    limit = row.get(LIMITS.get(column.key, ""))
    if limit is not None and not pd.isna(limit) and limit:    # 0: the board has no limit (native)
        text += f" / {limit / 1024:,.1f}"
        exact += f" of {limit:,.0f} B"
    detail = details.get((row["run_id"], row["board"], row["backend"], row["model"],
                          row["variant"], column.key), "")
    own = row.get("energy_fidelity") if column.key in metrics.ENERGY_KEYS else None
    tip = "; ".join(filter(None, [exact, own or row["fidelity"], detail,
                                  "best of its column" if best else ""]))
    mark = f" {BEST_MARK}" if best else ""
    extra = f" {badge(own)}" if energy_mixed and column.key == "energy_uj" else ""
    css = "num best" if best else "num"
    return f'<td class="{css}" data-sort="{float(value)!r}" title="{e(tip)}">{e(text)}{mark}{extra}</td>'


# --- plots ------------------------------------------------------------------------------------

def layer_cycles(records: pd.DataFrame) -> pd.DataFrame:
    """Per-layer cycle records (metric layer_cycles, detail = layer name) of each key's latest
    run, device times only; empty when no run recorded any."""
    df = records[records["metric"] == metrics.LAYER_CYCLES]
    df = metrics.device_figures_only(df)
    df = df[df["statistic"].isin(["median", "value"]) & (df["detail"] != "")]
    if df.empty:
        return df
    df = df.sort_values("time")
    latest = df.groupby(KEY)["run_id"].last().reset_index()
    df = df.merge(latest, on=[*KEY, "run_id"])
    return df.drop_duplicates([*KEY, "detail"], keep="last")


def plot_layers(layers: pd.DataFrame, board: str, path, fmt: str = "svg"):
    """Horizontal bars: cycles per layer, one bar per (backend, variant); None without data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = layers[layers["board"] == board]
    if rows.empty:
        return None
    names = list(dict.fromkeys(rows["detail"]))          # layer order as recorded
    series = list(rows.groupby(["backend", "model", "variant"], sort=True))
    height = 0.8 / len(series)
    fig = Figure(figsize=(7, 1.5 + 0.35 * len(names) * max(1, len(series) / 2)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, ((backend, _, variant), group) in enumerate(series):
        values = group.set_index("detail")["value"].reindex(names)
        ax.barh([n + i * height for n in range(len(names))], values, height=height,
                label=f"{variant} ({backend})")
    ax.set_yticks([n + height * (len(series) - 1) / 2 for n in range(len(names))], names)
    ax.invert_yaxis()                                     # first layer on top
    ax.set_xlabel("cycles per inference (median)")
    ax.set_title(f"{board}: cycles per layer ({', '.join(sorted(set(rows['fidelity'])))})")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, fmt)


def board_plots(table: pd.DataFrame, layers: pd.DataFrame, board: str) -> list[str]:
    plots = [
        (lambda b: plot_board(table, board, b, fmt="svg"), f"{board}: latency vs accuracy",
         "Each point is a variant; further left is faster, higher is more accurate."),
        (lambda b: plot_energy(table, board, b, fmt="svg"), f"{board}: energy vs latency",
         "Energy per inference against latency; the energy's own fidelity is in the title."),
        (lambda b: plot_layers(layers, board, b), f"{board}: cycles per layer",
         "Where an int8 network spends its cycles, layer by layer."),
    ]
    out = []
    for draw, alt, caption in plots:
        uri = svg_uri(draw)
        if uri:
            out.append(figure(uri, alt, caption))
    return out


# --- provenance --------------------------------------------------------------------------------

def _kv(items: Sequence[tuple[str, str]]) -> str:
    """A definition list; values are already HTML."""
    return '<dl class="kv">' + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in items if v) + "</dl>"


def _simple_table(header: Sequence[str], rows: Sequence[Sequence], sortable: bool = False) -> str:
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e('' if v is None else v)}</td>" for v in r) + "</tr>"
                   for r in rows)
    return f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


KNOWN_MANIFEST_KEYS = {"run_id", "started", "finished", "status", "harness_version", "git", "tools",
                       "python", "python_executable", "packages", "host", "command", "targets"}


def run_provenance(run_dir: Path, rows_in_report: int | None = None, open_: bool = True) -> str:
    """Everything a run's manifest says about where its figures came from."""
    manifest = read_manifest(run_dir)
    if manifest is None:
        return (f"<details open><summary>{e(Path(run_dir).name)}</summary><p>No manifest.json in "
                f"<code>{e(run_dir)}</code>: where these figures came from is unknown.</p></details>")
    status = run_status(manifest)
    git = manifest.get("git") or {}
    commit = git.get("commit")
    commit_text = (f"<code>{e(commit)}</code>" + (" (with uncommitted changes)" if git.get("dirty") else "")
                   if commit else "not a git checkout")
    host = manifest.get("host") or {}
    tools = manifest.get("tools") or {}
    packages = manifest.get("packages") or {}
    found = [(name, version) for name, version in tools.items() if version]
    missing = sorted(name for name, version in tools.items() if not version)
    status_html = e(status) if status == "complete" else \
        f'<strong class="badge incomplete">{e(status)}</strong> {e(_incomplete_reason(status))}'
    items = [
        ("run id", f"<code>{e(manifest.get('run_id', Path(run_dir).name))}</code>"),
        ("started", e(manifest.get("started") or "")), ("finished", e(manifest.get("finished") or "—")),
        ("status", status_html),
        ("rows in this report", e(rows_in_report) if rows_in_report is not None else ""),
        ("git commit", commit_text), ("harness version", e(manifest.get("harness_version", ""))),
        ("command", f"<code>{e(shlex.join(manifest['command']))}</code>" if manifest.get("command") else ""),
        ("host", e(", ".join(f"{k} {v}" for k, v in host.items()))),
        ("python", e(f"{manifest.get('python', '')} ({manifest.get('python_executable', '')})")),
        ("packages", e(", ".join(f"{k} {v}" for k, v in packages.items() if v))),
        ("folder", f"<code>{e(run_dir)}</code>"),
    ]
    items += [(k, e(v if isinstance(v, str) else ", ".join(map(str, v)) if isinstance(v, list) else v))
              for k, v in manifest.items() if k not in KNOWN_MANIFEST_KEYS]
    parts = [_kv(items), "<h3>Tools (compilers, emulators, uploaders)</h3>",
             _simple_table(["tool", "version"], found)]
    if missing:
        parts.append(f'<p class="muted">Not found on the host: {e(", ".join(missing))}.</p>')
    targets = manifest.get("targets") or []
    if targets:
        columns = [c for c in ("board", "backend", "variant", "fidelity", "emulator", "url",
                               "uploader", "flashed", "build_id") if any(t.get(c) for t in targets)]
        parts += ["<h3>Where each board ran</h3>",
                  _simple_table(columns, [[t.get(c) for c in columns] for t in targets], sortable=True)]
    when = (manifest.get("started") or "")[:16].replace("T", " ")
    summary = " · ".join(filter(None, [manifest.get("run_id"), when, (commit or "")[:10],
                                       host.get("hostname"), status]))
    return f"<details{' open' if open_ else ''}><summary>{e(summary)}</summary>{''.join(parts)}</details>"


def _incomplete_alert(run_dirs: Sequence[Path]) -> str:
    lines = []
    for run_dir in run_dirs:
        manifest = read_manifest(run_dir)
        status = run_status(manifest)
        if status != "complete":
            run_id = (manifest or {}).get("run_id", Path(run_dir).name)
            lines.append(f"<li>Run <code>{e(run_id)}</code> {e(_incomplete_reason(status))}.</li>")
    return f'<div class="alert"><strong>Incomplete runs</strong><ul>{"".join(lines)}</ul></div>' if lines else ""


def legend(labels: set[str], notes: str = "") -> str:
    known = [f for f in fid.DESCRIPTIONS if f in labels] + sorted(labels - set(fid.DESCRIPTIONS))
    items = "".join(f"<dt>{badge(f)} {e(f)}</dt><dd>{e(fid.DESCRIPTIONS.get(f, '(no description)'))}</dd>"
                    for f in known)
    return f'<section id="legend"><h2>Fidelity: how far each figure can be trusted</h2><dl class="kv">{items}</dl>{notes}</section>'


# --- the pages ---------------------------------------------------------------------------------

def render_report(table: pd.DataFrame, records: pd.DataFrame, run_dirs: Sequence[Path]) -> str:
    """report.html: per board the comparison table and its plots, the legend, provenance."""
    details, fidelities = _record_context(records)
    layers = layer_cycles(records)
    boards = list(dict.fromkeys(table["board"]))
    sections, all_notes = [], set()
    for board in boards:
        rows = table[table["board"] == board]
        html_table, notes = board_table(rows, details, fidelities)
        all_notes |= set(notes)
        plots = board_plots(table, layers, board)
        sections.append(
            f'<section id="board-{anchor(board)}"><h2>{e(board)}</h2>{html_table}'
            + "".join(f'<p class="notes">{e(n)}</p>' for n in notes)
            + (f'<div class="plots">{"".join(plots)}</div>' if plots else "") + "</section>")

    labels = set(table["fidelity"].dropna()) | {f for s in fidelities.values() for f in s}
    if "energy_fidelity" in table:
        labels |= set(table["energy_fidelity"].dropna())
    directions = ", ".join(f"{header_text(c)}: {c.better}" for c in metrics.COLUMNS
                           if c.better and c.key in table)
    how = (f"<p>{BEST_MARK} (green): the best value of its column among the variants of one model "
           f"on that board ({e(directions)}). A row's badge is the fidelity of its time figures; "
           "a header badge gives the fidelity of every figure in that column (sizes are read "
           f"from the ELF). —{NOT_DEVICE_MARK}: not a device figure, left out on purpose (see "
           f"the note under its table); —{NOT_RUN_MARK}: not run (a variant that does not fit); "
           "an empty cell was not measured; ✗: the variant does not fit the board. Hover a cell for the exact figure and how it was measured. Click a "
           "header to sort.</p>")
    run_ids = table["run_id"].value_counts().to_dict()
    provenance = "".join(
        run_provenance(d, run_ids.get((read_manifest(d) or {}).get("run_id", Path(d).name), 0),
                       open_=len(run_dirs) <= 2) for d in run_dirs)
    nav = "".join(f'<a href="#board-{anchor(b)}">{e(b)}</a>' for b in boards)
    summary = (f'<p class="summary">{len(table)} rows on {len(boards)} board(s) from '
               f"{len(run_dirs)} run(s); the latest run of each board/backend/variant wins.</p>"
               + _incomplete_alert(run_dirs)
               + f'<nav>{nav}<a href="#legend">fidelity</a><a href="#provenance">provenance</a></nav>')
    toolbar = ('<div class="toolbar"><label>Filter rows <input id="filter" type="search" '
               'placeholder="board, variant, fidelity…"></label><span id="filter-count" '
               'class="muted"></span></div>')
    body = (toolbar + "".join(sections) + legend(labels, how)
            + f'<section id="provenance"><h2>Provenance</h2>{provenance}</section>')
    return page("tinyhil report", summary, body)


def render_trend(df: pd.DataFrame, runs: pd.DataFrame, plots: Sequence[tuple[str, str]]) -> str:
    """trend.html: the latest change of every series, one plot per metric, the runs."""
    changes = []
    for (board, backend, variant, column), series in df.groupby(["board", "backend", "variant", "column"]):
        if len(series) < 2:
            continue
        before, after = series["value"].iloc[-2], series["value"].iloc[-1]
        if before == after:
            continue
        col = metrics.BY_KEY[column]
        worse = (after > before) == (col.better == "lower") if col.better else None
        changes.append((board, backend, variant, header_text(col), cell_text(col, before)[0],
                        cell_text(col, after)[0],
                        f"{(after - before) / abs(before) * 100:+.1f} %" if before else "",
                        series["fidelity"].iloc[-1],
                        {True: "worse", False: "better", None: ""}[worse]))
    change_html = (_verdict_table(["board", "backend", "variant", "figure", "previous run",
                                   "latest run", "change", "fidelity", "verdict"], changes)
                   if changes else "<p>No figure changed between the last two runs.</p>")
    figures = "".join(figure(uri, label, f"{label}: one line per board/backend/variant")
                      for label, uri in plots)
    run_rows = runs.sort_values("started", na_position="first")
    provenance = "".join(run_provenance(Path(folder), open_=False) for folder in run_rows["folder"])
    hosts = sorted(set(runs["host"]))
    summary = (f'<p class="summary">{len(runs)} run(s) from {len(hosts)} host(s) '
               f"({e(', '.join(hosts))}); metrics: "
               f"{e(', '.join(c.label for c in metrics.trend_columns() if c.key in set(df['column'])))}.</p>"
               + _incomplete_alert([Path(f) for f in runs["folder"]]))
    body = (f"<section><h2>Changed since the previous run</h2>{change_html}</section>"
            f'<section><h2>Trends</h2><div class="plots">{figures}</div></section>'
            + legend(set(df["fidelity"]))
            + f'<section id="provenance"><h2>Runs</h2>{provenance}</section>')
    return page("tinyhil trend", summary, body)


def _verdict_table(header: Sequence[str], rows: Sequence[Sequence], css_of=None) -> str:
    """A sortable, filterable table whose rows are classed by their last cell (the verdict)."""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = []
    for r in rows:
        verdict = str(r[-1])
        css = {"worse": "worse", "better": "improvement"}.get(verdict, "")
        css = css_of(verdict) if css_of else css
        cells = "".join(f"<td>{badge(v) if header[i] == 'fidelity' else e(v)}</td>"
                        for i, v in enumerate(r))
        body.append(f'<tr class="{css}">{cells}</tr>')
    return (f'<div class="scroll"><table class="sortable filterable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def render_compare(table: pd.DataFrame, verdicts: pd.Series, rules, baseline: Path, current: Path,
                   runs: tuple[Sequence[Path], Sequence[Path]], show_all: bool = False) -> str:
    """The compare page: rule breaches first, then improvements, other changes, the rest.
    `verdicts` per figure (harness.report.compare.compare_verdicts), `runs` the baseline's and the
    current's run folders (their provenance)."""
    order = {"regression": 0, "worse": 1, "improvement": 2, "changed": 3, "not compared": 4,
             "only in baseline": 5, "only in current": 5, "unchanged": 6}
    rank = verdicts.map(lambda v: next((r for k, r in order.items() if v.startswith(k)), 5))
    shown = table.assign(verdict=verdicts, _rank=rank).sort_values(["_rank", "board", "variant", "metric"])
    if not show_all:
        shown = shown[shown["verdict"] != "unchanged"]

    def num(value, unit) -> str:
        if pd.isna(value):
            return ""
        return duration(value) if unit == "us" else f"{value:,.6g} {EXACT_UNIT.get(unit, unit)}"

    rows = [(r.board, r.backend, r.variant, r.metric, r.statistic, num(r.value_base, r.unit),
             num(r.value_cur, r.unit),
             "" if pd.isna(r.change_pct) else f"{r.change_pct:+.2f} %",
             r.fidelity_cur if isinstance(r.fidelity_cur, str) else r.fidelity_base, r.verdict)
            for r in shown.itertuples(index=False)]

    def css(verdict: str) -> str:
        return next((c for k, c in (("regression", "regression"), ("worse", "worse"),
                                    ("improvement", "improvement")) if verdict.startswith(k)), "")

    counts = {k: int(sum(v.startswith(k) for v in verdicts)) for k in
              ("regression", "improvement", "worse", "not compared", "unchanged")}
    rule_text = ", ".join(r.text for r in rules) or "none (pass --fail-on)"
    verdict_line = (f'<div class="alert"><strong>{counts["regression"]} regression(s)</strong> '
                    f"breaking {e(rule_text)}</div>" if counts["regression"] else
                    f"<p><strong>No regression</strong> against the rules: {e(rule_text)}.</p>")
    summary = (f'<p class="summary">baseline <code>{e(baseline)}</code> → current '
               f"<code>{e(current)}</code>: {counts['improvement']} improvement(s), "
               f"{counts['worse']} worse within the rules, {counts['not compared']} not compared "
               f"(different fidelity or toolchain), {counts['unchanged']} unchanged.</p>{verdict_line}")
    table_html = (_verdict_table(["board", "backend", "variant", "metric", "statistic", "baseline",
                                  "current", "change", "fidelity", "verdict"], rows, css)
                  if rows else "<p>No figure changed.</p>")
    toolbar = ('<div class="toolbar"><label>Filter rows <input id="filter" type="search" '
               'placeholder="board, metric, regression…"></label><span id="filter-count" '
               'class="muted"></span></div>')
    provenance = "".join(f"<h3>{side}</h3>" + "".join(run_provenance(d, open_=False) for d in dirs)
                         for side, dirs in zip(("Baseline", "Current"), runs))
    labels = set(table["fidelity_cur"].dropna()) | set(table["fidelity_base"].dropna())
    body = (toolbar + f"<section><h2>What changed</h2>{table_html}</section>" + legend(labels)
            + f'<section id="provenance"><h2>Provenance</h2>{provenance}</section>')
    return page("tinyhil compare", summary, body)
