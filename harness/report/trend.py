"""`tinyhil report --trend DIR...`: figures over a series of runs (nightly CI), one plot per
metric, one line per (board, backend, variant), runs from several hosts merged.

Each run's start time and host come from its manifest (results.write_manifest records the
host in every run), so run folders copied together from several lab hosts line up in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.report import metrics
from harness.errors import HarnessError
from harness.report.plots import save_figure
from harness.report.table import KEY, find_run_dirs, safe_name
from harness.results.records import load_run, read_manifest

# The figures worth a trend: the registry's columns with the trend view.
TREND_COLUMNS = metrics.trend_columns()


def run_index(paths: Sequence[Path]) -> pd.DataFrame:
    """One row per run folder: run_id, host, started, status, folder."""
    rows = []
    for run_dir in sorted({d for p in paths for d in find_run_dirs(Path(p))}):
        manifest = read_manifest(run_dir) or {}
        host = (manifest.get("host") or {}).get("hostname", "unknown")
        rows.append({"run_id": manifest.get("run_id", run_dir.name), "host": host,
                     "started": manifest.get("started"), "status": manifest.get("status"),
                     "folder": str(run_dir)})
    if not rows:
        raise HarnessError(f"no runs found under {', '.join(map(str, paths))}: pass results/ "
                           "or run folders")
    return pd.DataFrame(rows)


def trend_frame(paths: Sequence[Path]) -> pd.DataFrame:
    """Long table: one row per (run, board, backend, model, variant, metric) with its time,
    host, value, unit and fidelity."""
    runs = run_index(paths)
    df = pd.concat([load_run(Path(folder)) for folder in runs["folder"]], ignore_index=True)
    df = metrics.device_figures_only(df)
    df = df.merge(runs[["run_id", "host", "started"]], on="run_id", how="left")
    df = df.assign(column=[metrics.column_of(m, s) for m, s in zip(df["metric"], df["statistic"])])
    df = df[df["column"].isin({c.key for c in TREND_COLUMNS})]
    # A column without a fixed statistic takes the preferred one each run recorded.
    rank = df["statistic"].map({s: i for i, s in enumerate(metrics.STAT_PREFERENCE)}).fillna(99)
    df = df.assign(_rank=rank).sort_values("_rank").drop_duplicates(
        ["run_id", *KEY, "column", "time"], keep="first")
    # The run's start time orders the series; the record's own time when a manifest is missing.
    df["when"] = pd.to_datetime(df["started"].fillna(df["time"]), utc=True, format="ISO8601")
    df = (df.sort_values("time")
            .drop_duplicates(["run_id", *KEY, "column"], keep="last")
            .sort_values(["when", *KEY]))
    return df[["when", "run_id", "host", *KEY, "column", "metric", "statistic", "value", "unit",
               "fidelity"]].reset_index(drop=True)


def plot_metric(df: pd.DataFrame, column: str, label: str, path, fmt: str = "png"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = df[df["column"] == column]
    if rows.empty:
        return None
    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    several_hosts = rows["host"].nunique() > 1
    for key, series in rows.groupby(["board", "backend", "variant", "fidelity"], sort=True):
        board, backend, variant, fidelity = key
        ax.plot(series["when"], series["value"], marker="o",
                label=f"{board}/{backend}/{variant} ({fidelity})")
        if several_hosts:
            for when, value, host in zip(series["when"], series["value"], series["host"]):
                ax.annotate(host, (when, value), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_ylabel(label)
    ax.set_xlabel("run start (UTC)")
    ax.set_title(f"{label} over {rows['run_id'].nunique()} runs"
                 + (f" from {rows['host'].nunique()} hosts" if several_hosts else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.autofmt_xdate()
    return save_figure(fig, path, fmt)


def write_trend(paths: Sequence[Path], out_dir: Path) -> dict[str, Path]:
    """trend.csv, trend_<metric>.png per metric that any run measured, and trend.html."""
    df = trend_frame(paths)
    if df.empty:
        raise HarnessError("the runs hold none of the trend metrics "
                           f"({', '.join(sorted({c.metric for c in TREND_COLUMNS}))})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for column in TREND_COLUMNS:
        name = f"trend_{safe_name(column.key)}.png"
        if plot_metric(df, column.key, column.label, out_dir / name):
            written[name] = out_dir / name
    df.assign(when=df["when"].map(lambda t: t.isoformat())).to_csv(out_dir / "trend.csv", index=False)
    written["trend.csv"] = out_dir / "trend.csv"
    # trend.html: the same plots embedded as SVG, with what changed last and each run's manifest.
    from harness.report.html import render_trend, svg_uri

    plots = [(c.label, uri) for c in TREND_COLUMNS
             if (uri := svg_uri(lambda b, c=c: plot_metric(df, c.key, c.label, b, fmt="svg")))]
    (out_dir / "trend.html").write_text(render_trend(df, run_index(paths), plots), encoding="utf-8")
    written["trend.html"] = out_dir / "trend.html"
    return written


def cmd_trend(paths: Sequence[Path], out: Path | None) -> int:
    runs = run_index(paths)
    out = out or (Path(paths[0]) if len(paths) == 1 else Path("results")) / "trend"
    written = write_trend(paths, out)
    hosts = sorted(set(runs["host"]))
    print(f"trend over {len(runs)} runs from {len(hosts)} host(s) ({', '.join(hosts)})")
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0

