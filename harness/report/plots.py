"""Plots of the comparison table (PNG for report.md, SVG embedded in the HTML pages), and the
one way a figure is saved."""

from __future__ import annotations

import pandas as pd


def save_figure(fig, path, fmt: str = "png"):
    """Write a figure as PNG or SVG to a path or a binary file object (the HTML report embeds
    plots from memory). SVG keeps its text as text: a quarter of the size, sharp at any zoom."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "tinyhil"}):
        fig.savefig(path, format=fmt, dpi=100, metadata={"Date": None} if fmt == "svg" else None)
    return path


def _scatter(rows: pd.DataFrame, x: str, y: str, label, axes: tuple[str, str], title: str,
             path, log_axes: tuple[str, ...], fmt: str = "png"):
    """One labelled point per row; an axis turns logarithmic when it spans over 100x."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Figure + Agg canvas, not pyplot: no global backend state, safe off the main thread.
    fig = Figure(figsize=(7, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(rows[x], rows[y])
    for _, row in rows.iterrows():
        ax.annotate(label(row), (row[x], row[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for column, set_scale in ((x, ax.set_xscale), (y, ax.set_yscale)):
        low, high = rows[column].min(), rows[column].max()
        if column in log_axes and low > 0 and high / low > 100:
            set_scale("log")
    ax.margins(x=0.15, y=0.1)                 # room for the labels right of the points
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path, fmt)


def _labels(rows: pd.DataFrame, column: str) -> str:
    return ", ".join(sorted(set(rows[column].dropna())))


def plot_board(table: pd.DataFrame, board: str, path, fmt: str = "png"):
    """Latency vs accuracy for one board; None (no file) when no row has both figures."""
    rows = table[(table["board"] == board)].dropna(subset=["latency_median_us", "accuracy_pct"])
    if rows.empty:
        return None
    return _scatter(rows, "latency_median_us", "accuracy_pct",
                    lambda row: f"{row['variant']} ({row['backend']})",
                    ("latency median (us)", "accuracy (%)"),
                    f"{board}: latency vs accuracy ({_labels(rows, 'fidelity')})", path,
                    log_axes=("latency_median_us",), fmt=fmt)


def plot_energy(table: pd.DataFrame, board: str, path, fmt: str = "png"):
    """Energy per inference vs latency for one board; None (no file) without both figures."""
    if "energy_uj" not in table:
        return None
    rows = table[table["board"] == board].dropna(subset=["latency_median_us", "energy_uj"])
    if rows.empty:
        return None
    return _scatter(rows, "latency_median_us", "energy_uj",
                    lambda row: f"{row['variant']} ({row['backend']}"
                                + (f", {row['power_mw']:.3g} mW)" if pd.notna(row["power_mw"]) else ")"),
                    ("latency median (us)", "energy per inference (uJ)"),
                    f"{board}: energy vs latency (time {_labels(rows, 'fidelity')}; "
                    f"energy {_labels(rows, 'energy_fidelity')})", path,
                    log_axes=("latency_median_us", "energy_uj"), fmt=fmt)
