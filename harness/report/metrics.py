"""The metric registry: every figure a suite records, once, with its unit, the statistic each
table column takes, its label for people, and which views show it (the terminal table, the
Markdown/HTML/CSV report, trend plots). The comparison table, `compare` and the trend all read
this list, so a new metric is one entry here.

Device figures: a column of the device's own time (latency) takes only figures whose fidelity
is a device time (fidelity.DEVICE_TIME). qemu-system-avr's timer follows the host clock
(`functional`): its outputs and footprint stay, its "latency" never fills a latency column.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness import fidelity as fid

TERMINAL, REPORT, TREND = "terminal", "report", "trend"


@dataclass(frozen=True)
class Column:
    key: str                        # the comparison table's column name
    metric: str                     # the recorded metric it shows
    statistic: str | None           # the recorded statistic; None: value, else median, else mean
    unit: str
    label: str                      # header for people, unit included
    views: frozenset[str]
    device_time: bool = False       # only device-time fidelities may fill it
    digits: int | None = None       # None: about four significant digits
    # Which way is better, for marking the best value in a report and telling a regression from
    # an improvement: "higher", "lower", or None (a limit, a supply voltage: no better way).
    better: str | None = None

    @property
    def in_trend(self) -> bool:
        return TREND in self.views


STAT_PREFERENCE = ("value", "median", "mean")
_ALL = frozenset({TERMINAL, REPORT, TREND})
_REPORT = frozenset({REPORT})

COLUMNS = (
    Column("accuracy_pct", "accuracy", None, "%", "accuracy (%)", _ALL, digits=1, better="higher"),
    Column("agreement_pct", "agreement", None, "%", "agreement (%)", _ALL, digits=1, better="higher"),
    Column("python_accuracy_pct", "python_accuracy", None, "%", "Python model (TFLM) accuracy (%)", _ALL, digits=1,
           better="higher"),
    Column("accuracy_lost_pp", "accuracy_lost", None, "pp", "accuracy lost by export (pp)", _ALL,
           digits=1, better="lower"),
    Column("python_agreement_pct", "python_agreement", None, "%", "agreement with Python model (TFLM) (%)", _REPORT,
           digits=1, better="higher"),
    Column("mae", "mae", None, "target units", "MAE vs targets", _REPORT, better="lower"),
    Column("rmse", "rmse", None, "target units", "RMSE vs targets", _REPORT, better="lower"),
    Column("python_mae", "python_mae", None, "target units", "MAE vs Python model", _REPORT,
           better="lower"),
    Column("python_rmse", "python_rmse", None, "target units", "RMSE vs Python model", _REPORT,
           better="lower"),
    Column("exportable", "exportable", None, "bool", "exportable", _REPORT),
    Column("latency_median_us", "latency_us", "median", "us", "latency median (us)", _ALL,
           device_time=True, better="lower"),
    Column("latency_p95_us", "latency_us", "p95", "us", "latency p95 (us)",
           frozenset({REPORT, TREND}), device_time=True, better="lower"),
    Column("latency_median_cycles", "latency_cycles", "median", "cycles",
           "latency median (cycles)", _REPORT, device_time=True, better="lower"),
    # The accuracy pass times every test vector once: the distribution over the inputs.
    Column("set_latency_median_us", "set_latency_us", "median", "us", "test-set latency median (us)",
           frozenset({REPORT, TREND}), device_time=True, better="lower"),
    Column("set_latency_p95_us", "set_latency_us", "p95", "us", "test-set latency p95 (us)",
           _REPORT, device_time=True, better="lower"),
    Column("set_latency_max_us", "set_latency_us", "max", "us", "test-set latency max (us)",
           frozenset({REPORT, TREND}), device_time=True, better="lower"),
    Column("slowest_input", "slowest_input", None, "index", "slowest input (test vector)", _REPORT,
           device_time=True, digits=0),
    Column("flash_bytes", "flash_bytes", None, "B", "flash (B)", _ALL, digits=0, better="lower"),
    Column("flash_limit_bytes", "flash_limit_bytes", None, "B", "flash limit (B)", _REPORT, digits=0),
    Column("ram_bytes", "ram_bytes", None, "B", "static RAM (B)", _ALL, digits=0, better="lower"),
    Column("ram_limit_bytes", "ram_limit_bytes", None, "B", "RAM limit (B)", _REPORT, digits=0),
    Column("stack_bytes", "stack_bytes", None, "B", "stack bound (B)", frozenset({REPORT, TREND}),
           digits=0, better="lower"),
    Column("arena_bytes", "arena_bytes", None, "B", "int8 tensor arena (B)", _REPORT, digits=0,
           better="lower"),
    Column("cycles_per_mac", "cycles_per_mac", None, "cycles/MAC", "cycles per MAC (int8 layers)",
           _REPORT, device_time=True, better="lower"),
    Column("litert_agreement_pct", "litert_agreement", None, "%", "agreement with LiteRT (%)",
           _REPORT, digits=1),
    Column("fits", "fits", None, "bool", "fits", _REPORT),
    Column("energy_uj", "energy_uj", None, "uJ", "energy (uJ)", _ALL, better="lower"),
    Column("power_mw", "power_mw", None, "mW", "power (mW)", _REPORT),
    Column("supply_v", "supply_v", None, "V", "supply (V)", _REPORT, digits=2),
    Column("host_roundtrip_ms", "host_roundtrip_ms", None, "ms", "host round trip (ms)", _REPORT),
)
BY_KEY = {c.key: c for c in COLUMNS}
# Energy comes with power and supply (one monitor gives all three), and has its own fidelity.
ENERGY_KEYS = ("energy_uj", "power_mw", "supply_v")
ENERGY_METRICS = ENERGY_KEYS
SET_LATENCY_KEYS = ("set_latency_median_us", "set_latency_p95_us", "set_latency_max_us", "slowest_input")
OPTIONAL_KEYS = ENERGY_KEYS + ("host_roundtrip_ms",) + SET_LATENCY_KEYS   # a column only when some run measured it
# Per-layer cycles of an int8 network (detail: the layer's name): a device time, but no table
# column (one row holds many layers); the HTML report draws them as bars.
LAYER_CYCLES = "layer_cycles"
# Every test vector's cycles in one record (harness.dut.timing): a device time, no column.
VECTOR_CYCLES = "vector_cycles"
DEVICE_TIME_METRICS = frozenset(c.metric for c in COLUMNS if c.device_time) | {LAYER_CYCLES, VECTOR_CYCLES}


def columns(view: str) -> list[Column]:
    return [c for c in COLUMNS if view in c.views]


def column_of(metric: str, statistic: str) -> str | None:
    """The table column a (metric, statistic) record fills, or None."""
    exact = [c for c in COLUMNS if c.metric == metric and c.statistic == statistic]
    if exact:
        return exact[0].key
    loose = [c for c in COLUMNS if c.metric == metric and c.statistic is None]
    return loose[0].key if loose else None


def not_device_time(df: pd.DataFrame) -> pd.Series:
    """Rows that are a device-time metric measured at a fidelity that is not a device time."""
    return df["metric"].isin(DEVICE_TIME_METRICS) & ~df["fidelity"].isin(fid.DEVICE_TIME)


def device_figures_only(df: pd.DataFrame) -> pd.DataFrame:
    """Records without host-clock "latency": what the table, compare and trend take."""
    return df[~not_device_time(df)]


def column_for(metric: str, statistic: str) -> Column | None:
    """The registry entry a (metric, statistic) record fills, or None."""
    key = column_of(metric, statistic)
    return BY_KEY[key] if key else None


def trend_columns() -> list[Column]:
    return [c for c in COLUMNS if c.in_trend]
