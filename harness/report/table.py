"""From records to comparison tables (boards x model variants), plots and reports."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness import fidelity as fid
from harness.report import metrics
from harness.errors import HarnessError
from harness.report.plots import plot_board, plot_energy
from harness.results.records import RECORDS_JSONL, RECORDS_PARQUET, RecordsError, load_run

KEY = ["board", "backend", "model", "variant"]

STAT_PREFERENCE = metrics.STAT_PREFERENCE
ENERGY_METRICS = metrics.ENERGY_METRICS     # their fidelity is their own column
TRAILING = ["run_id", "run_status", "not_exportable"]  # where figures came from; why none
TEXT_COLUMNS = ("fidelity", "fits", "energy_fidelity")
HEADERS = {"board": "board", "backend": "backend", "model": "model", "variant": "variant",
           "fidelity": "fidelity", "energy_fidelity": "energy fidelity",
           **{c.key: c.label for c in metrics.COLUMNS}}
HEADER_KEYS = {header: column for column, header in HEADERS.items()}
INCOMPLETE_MARK = " *"


def find_run_dirs(path: Path) -> list[Path]:
    """`path` itself if it is a run folder, else every run folder below it."""
    path = Path(path)
    if (path / RECORDS_JSONL).exists() or (path / RECORDS_PARQUET).exists():
        return [path]
    found = {p.parent for name in (RECORDS_JSONL, RECORDS_PARQUET) for p in path.rglob(name)}
    return sorted(found)


def load_runs(paths: Path | Sequence[Path], skipped: list | None = None) -> pd.DataFrame:
    """Records of every run found under `paths` (run folders or folders of runs), concatenated.

    Among several runs an unreadable one is left out, not the whole lot: it is added to
    `skipped` as (run folder, why), or, without that list, named on stderr. Only when no run
    can be read is it an error."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    run_dirs = sorted({d for p in paths for d in find_run_dirs(Path(p))})
    if not run_dirs:
        raise HarnessError(f"no run records (records.jsonl) found under "
                           f"{', '.join(map(str, paths)) or 'nothing'}: pass a results/<run-id> "
                           "folder or the results/ folder holding them")
    frames, bad = [], []
    for run_dir in run_dirs:
        try:
            frames.append(load_run(run_dir))
        except RecordsError as exc:
            bad.append((run_dir, str(exc)))
    if not frames:
        raise RecordsError(bad[0][1] if len(bad) == 1 else
            
            f"none of the {len(bad)} runs can be read; the first: {bad[0][1]}")
    if skipped is None:
        for run_dir, why in bad:
            print(f"tinyhil: left out run {run_dir}: {why}", file=sys.stderr)
    else:
        skipped.extend(bad)
    df = pd.concat(frames, ignore_index=True)
    # The same model over MLPerf Tiny's protocol is its own row, beside the binary one.
    other = df["protocol"] != "tinyhil"
    df.loc[other, "variant"] = df.loc[other, "variant"] + "/" + df.loc[other, "protocol"]
    return df


def _latest_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Keep, for each key, only the records of the run that measured it last."""
    last = df.groupby(["run_id", *KEY], dropna=False)["_time"].max().reset_index()
    last = last.sort_values(["_time", "run_id"]).drop_duplicates(KEY, keep="last")
    return df.merge(last[["run_id", *KEY]], on=["run_id", *KEY])


def _column_of(df: pd.DataFrame) -> pd.Series:
    pairs = {(m, st): metrics.column_of(m, st)
             for m, st in set(zip(df["metric"], df["statistic"]))}
    return pd.Series([pairs[(m, st)] for m, st in zip(df["metric"], df["statistic"])],
                     index=df.index, dtype=object)


def _row_fidelity(df: pd.DataFrame) -> pd.Series:
    """Fidelity of each row's latency figure; without one, of its last non-static figure."""
    def last(rows: pd.DataFrame) -> pd.Series:
        return rows.sort_values("_time").groupby(KEY, dropna=False)["fidelity"].last()

    # By metric, not column: a functional latency fills no cell yet still says how the row ran.
    latency = last(df[(df["metric"] == "latency_us") & (df["statistic"] == "median")])
    # Energy carries its own fidelity column (modelled energy next to cycle-accurate time).
    # host_roundtrip_ms is host time whatever the backend: it says nothing of how the row ran.
    measured = last(df[~df["fidelity"].isin([fid.STATIC, fid.HOST_MODEL])
                       & ~df["metric"].isin([*ENERGY_METRICS, "host_roundtrip_ms"])])
    return latency.combine_first(measured).combine_first(last(df))


def comparison_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (board, backend, model, variant) holding the figures of its latest run.

    Figures nobody measured stay NaN (never 0); fits is "yes"/"no" or empty."""
    if "run_status" not in df:
        df = df.assign(run_status="complete")
    df = df.assign(_time=pd.to_datetime(df["time"], utc=True, format="ISO8601"))
    df = _latest_runs(df.reset_index(drop=True))
    # A host-clock "latency" keeps its row, never a latency cell (metrics.DEVICE_TIME_METRICS).
    df = df.assign(column=_column_of(df).where(~metrics.not_device_time(df)))
    wanted = df.dropna(subset=["column"])
    # Among several statistics of one figure, the preferred one, then the newest, comes last.
    rank = wanted["statistic"].map({s: -i for i, s in enumerate(STAT_PREFERENCE)}).fillna(-99)
    wanted = wanted.assign(_rank=rank).sort_values(["_rank", "_time"])
    figures = (wanted.pivot_table(index=KEY, columns="column", values="value", aggfunc="last")
               if len(wanted) else None)
    rows = df.groupby(KEY, dropna=False).agg(run_id=("run_id", "first"),
                                             run_status=("run_status", "first"))
    rows["fidelity"] = _row_fidelity(df)
    energy = df[df["metric"] == "energy_uj"]
    if len(energy):
        rows["energy_fidelity"] = energy.sort_values("_time").groupby(KEY, dropna=False)["fidelity"].last()
    table = rows.join(figures) if figures is not None else rows
    # An estimator its exporter cannot handle: the row stays, empty, with the reason in a note.
    refused = df[(df["metric"] == "exportable") & (df["value"] == 0)]
    table["not_exportable"] = refused.groupby(KEY, dropna=False)["detail"].last()
    # Optional columns only when measured; energy, power and supply come together (one
    # monitor gives all three), with the energy's own fidelity.
    energy = ["energy_fidelity", *metrics.ENERGY_KEYS] if "energy_uj" in table else []
    optional = [k for k in metrics.OPTIONAL_KEYS if k in table and k not in metrics.ENERGY_KEYS]
    figures_keys = [c.key for c in metrics.columns(metrics.REPORT)
                    if c.key not in metrics.OPTIONAL_KEYS]
    table = table.reindex(columns=["fidelity", *figures_keys, *optional, *energy, *TRAILING])
    numeric = [c for c in table.columns if c not in (*TEXT_COLUMNS, *TRAILING)]
    table[numeric] = table[numeric].astype("float64")
    table["fits"] = table["fits"].map({1.0: "yes", 0.0: "no"})
    return table.reset_index().sort_values(["board", "backend", "variant", "model"],
                                           ignore_index=True)


# --- display -----------------------------------------------------------------------------------

def _fmt(value, digits: int | None) -> str:
    """digits=None: keep about four significant digits (latency spans ns to seconds)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if digits is None:
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4g}"
    return f"{value:,.{digits}f}" if digits else f"{int(round(value))}"


def display_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The table as strings for people: units in the headers, empty cells for missing figures,
    and incomplete runs marked on their variant."""
    out = table.copy()
    for column in metrics.COLUMNS:
        if column.key in out and column.key not in TEXT_COLUMNS:
            out[column.key] = out[column.key].map(lambda v, d=column.digits: _fmt(v, d))
    out["fits"] = out["fits"].fillna("")
    out["fidelity"] = out["fidelity"].fillna("")
    if "energy_fidelity" in out:
        out["energy_fidelity"] = out["energy_fidelity"].fillna("")
    incomplete = out["run_status"].fillna("complete") != "complete"
    out.loc[incomplete, "variant"] = out.loc[incomplete, "variant"] + INCOMPLETE_MARK
    out = out.drop(columns=[c for c in TRAILING if c in out])
    return out.rename(columns=HEADERS)


def legend_lines(table: pd.DataFrame) -> list[str]:
    """One line per fidelity label present in the table."""
    labels = set(table["fidelity"].dropna())
    if "energy_fidelity" in table:
        labels |= set(table["energy_fidelity"].dropna())
    known = [f"`{f}`: {text}" for f, text in fid.DESCRIPTIONS.items() if f in labels]
    return known + [f"`{f}`: (no description)" for f in sorted(labels - set(fid.DESCRIPTIONS))]


def incomplete_note(table: pd.DataFrame) -> str:
    """Names the runs that did not finish, whose rows carry INCOMPLETE_MARK; '' if none."""
    runs = table.loc[table["run_status"].fillna("complete") != "complete", "run_id"]
    if runs.empty:
        return ""
    return (f"Rows marked {INCOMPLETE_MARK.strip()} come from a run that did not finish "
            f"({', '.join(sorted(set(runs)))}): their figures may be partial.")


def not_exportable_note(table: pd.DataFrame) -> str:
    """'variant: not exportable: <exporter> does not support <Estimator>' lines; '' if none."""
    if "not_exportable" not in table:
        return ""
    reasons = table.dropna(subset=["not_exportable"]).drop_duplicates("variant")
    return "\n".join(f"{r.variant}: {r.not_exportable}" for r in reasons.itertuples())


def to_markdown(table: pd.DataFrame) -> str:
    shown = display_frame(table)
    text = {"board", "backend", "model", "variant", *TEXT_COLUMNS}
    align = ["left" if HEADER_KEYS.get(c, c) in text else "right" for c in shown.columns]
    # disable_numparse: cells are already formatted; tabulate must not reformat them.
    body = shown.to_markdown(index=False, disable_numparse=True, colalign=align)
    legend = "\n".join(f"- {line}" for line in legend_lines(table))
    note = "\n\n".join(filter(None, [incomplete_note(table), not_exportable_note(table)]))
    return f"{body}\n\nFidelity:\n\n{legend}\n" + (f"\n{note}\n" if note else "")


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def write_report(paths: Path | Sequence[Path], out_dir: Path,
                 skipped: list | None = None) -> dict[str, Path]:
    """Write report.md/.csv, the self-contained report.html (harness.report.html),
    latency_vs_accuracy_<board>.png and, where energy was measured, energy_vs_latency_<board>.png;
    returns them by file name. Unreadable runs among several go to `skipped` (load_runs)."""
    skipped = [] if skipped is None else skipped
    records = load_runs(paths, skipped)
    table = comparison_table(records)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for board in table["board"].unique():
        name = f"latency_vs_accuracy_{safe_name(board)}.png"
        if plot_board(table, board, out_dir / name):
            written[name] = out_dir / name
        name = f"energy_vs_latency_{safe_name(board)}.png"
        if plot_energy(table, board, out_dir / name):
            written[name] = out_dir / name
    from harness.report.html import render_report

    run_dirs = sorted({d for p in ([paths] if isinstance(paths, (str, Path)) else paths)
                       for d in find_run_dirs(Path(p))} - {d for d, _ in skipped})
    # report.html is one self-contained page (plots embedded); the PNGs stay for report.md.
    files = {"report.md": to_markdown(table),
             "report.html": render_report(table, records, run_dirs)}
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")
        written[name] = out_dir / name
    table.to_csv(out_dir / "report.csv", index=False)
    written["report.csv"] = out_dir / "report.csv"
    return written


TERMINAL_WIDTH = 100        # the terminal table fits this; wide detail is in report.md/.html
RENDER_WIDTH = 250          # what rich may use: the table is as wide as its content, never cut


def print_table(table: pd.DataFrame, console=None):
    """Show the table in the terminal, within TERMINAL_WIDTH columns: short fidelity labels,
    units in the headers, sizes in KiB. Every column is in report.md/.csv/.html."""

    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Never narrower than the table: a cut cell loses a figure, a wrapped line loses nothing.
    console = console or Console(width=RENDER_WIDTH)
    shown = display_frame(table)
    energy = "energy_uj" in table
    labels = set(table["fidelity"].dropna()) | (set(table["energy_fidelity"].dropna()) if energy else set())
    short = ", ".join(f"{fid.SHORT.get(f, f)} = {f}" for f in sorted(labels))
    notes = [f"fidelity: {short}"] if short else []
    notes += [line.replace("`", "") for line in legend_lines(table)] + [incomplete_note(table),
                                                                         not_exportable_note(table)]
    if "python_accuracy_pct" in table and table["python_accuracy_pct"].notna().any():
        notes.append("py% = the Python model's accuracy on the same vectors (TFLite Micro's for a .tflite); "
                     "lost pp = accuracy lost by export")
    notes.append("✗ = does not fit the board; sizes: used/limit; every column (model, p95, "
                 "cycles, stack, power, host round trip) is in report.md and report.html")
    rich_table = Table(title="tinyhil comparison", caption=escape("\n".join(filter(None, notes))),
                       caption_justify="left", box=box.SIMPLE_HEAD, padding=(0, 0),
                       pad_edge=False, show_edge=False)
    energy_labels = sorted(set(table["energy_fidelity"].dropna())) if energy else []
    # The cost of export (Python accuracy, accuracy lost) when some row measured it.
    export_cost = "python_accuracy_pct" in table and table["python_accuracy_pct"].notna().any()
    mixed = len(energy_labels) > 1          # else the energy's fidelity goes in its header
    # Two-line headers keep the units without widening the columns.
    headers = ["board", "backend", "fid.", "variant",
               *(["py%", "acc%", "lost\npp"] if export_cost else ["acc%"]), "agr%", "latency\nµs",
               "flash\nKiB", "RAM\nKiB"]
    if energy:
        headers += ["µJ/inf"] if mixed else [f"µJ/inf\n{fid.SHORT.get(energy_labels[0], '')}".strip()]
        headers += ["e.fid."] if mixed else []
    for header in headers:
        numeric = header.split()[0] in ("py%", "lost", "acc%", "agr%", "latency", "flash", "RAM", "µJ/inf")
        rich_table.add_column(header, justify="right" if numeric else "left", no_wrap=True)

    def size(used, limit) -> str:
        # A limit of 0 means the board has none to check (native).
        if pd.isna(used):
            return ""
        text = f"{used / 1024:.1f}"
        if pd.isna(limit) or not limit:
            return text
        return f"{text}/{limit / 1024:.0f}" if limit >= 10240 else f"{text}/{limit / 1024:.1f}"

    def short_label(value) -> str:
        return fid.SHORT.get(value, value) if isinstance(value, str) else ""

    for (_, row), (_, raw) in zip(shown.iterrows(), table.iterrows()):
        variant = row["variant"] + (" ✗" if raw["fits"] == "no" else "")
        cells = [row["board"], row["backend"], short_label(raw["fidelity"]), variant,
                 *([row[HEADERS["python_accuracy_pct"]], row[HEADERS["accuracy_pct"]],
                    row[HEADERS["accuracy_lost_pp"]]] if export_cost else [row[HEADERS["accuracy_pct"]]]),
                 row[HEADERS["agreement_pct"]],
                 row[HEADERS["latency_median_us"]],
                 size(raw["flash_bytes"], raw["flash_limit_bytes"]),
                 size(raw["ram_bytes"], raw["ram_limit_bytes"])]
        if energy:
            cells += [row[HEADERS["energy_uj"]]] + ([short_label(raw["energy_fidelity"])] if mixed else [])
        # escape: names are data, not rich markup ("[...]" would vanish otherwise). A variant
        # that does not fit is red, its sizes say why.
        rich_table.add_row(*map(escape, cells), style="red" if raw["fits"] == "no" else None)
    console.print(rich_table)
    return rich_table
