"""`tinyhil compare` and `tinyhil report --trend` on run folders written by the real Recorder."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from harness.report.compare import CompareError, breaches, compare_runs, parse_rule
from harness.results.records import Recorder, update_manifest, write_manifest
from harness.report.trend import trend_frame, write_trend

CASE = dict(board="uno", backend="simavr", model="digits", variant="rf_emlearn",
            firmware_sha256="ab" * 32)


def _env():
    """Subprocesses import this checkout's harness, wherever they run."""
    import os
    from harness.paths import REPO_DIR
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH")])))


def make_run(root, run_id, figures, fidelity="cycle-accurate", host="lab-a", tools=None,
             started=None):
    """A closed run folder with the given {(metric, statistic): value} figures."""
    run_dir = root / run_id
    write_manifest(run_dir, run_id, {})
    with Recorder(run_dir, run_id, "0.1.0") as recorder:
        for (metric, statistic), value in figures.items():
            unit = {"accuracy": "%", "latency_us": "us", "flash_bytes": "B"}[metric]
            label = "static" if metric == "flash_bytes" else fidelity
            recorder.record(metric=metric, statistic=statistic, value=value, unit=unit,
                            fidelity=label, n=20, **CASE)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    changes = {"host": manifest["host"] | {"hostname": host},
               "tools": (manifest["tools"] or {}) | (tools or {})}
    if started:
        changes["started"] = started
    update_manifest(run_dir, **changes)
    return run_dir


BASE = {("accuracy", "value"): 94.4, ("latency_us", "median"): 100.0,
        ("latency_us", "p95"): 110.0, ("flash_bytes", "value"): 24000}


def test_slower_and_less_accurate_run_breaks_the_rules(tmp_path):
    base = make_run(tmp_path, "base", BASE)
    cur = make_run(tmp_path, "cur", BASE | {("accuracy", "value"): 93.8,
                                            ("latency_us", "median"): 105.5,
                                            ("latency_us", "p95"): 200.0})
    table = compare_runs([base], [cur])
    rules = [parse_rule("latency_us:+5%"), parse_rule("accuracy:-0.5pp"),
             parse_rule("flash_bytes:+1024")]
    found = breaches(table, rules)
    assert len(found) == 2, found          # p95 is not the main statistic; flash unchanged
    assert any("latency_us median: 100 -> 105.5 us (+5.50 %" in line and "latency_us:+5%" in line
               for line in found)
    assert any("accuracy value: 94.4 -> 93.8 %" in line and "accuracy:-0.5pp" in line for line in found)
    assert not breaches(table, [parse_rule("latency_us:+6%"), parse_rule("accuracy:-0.7pp")])
    assert len(breaches(table, [parse_rule("latency_us.p95:+50%")])) == 1


def test_cli_exits_non_zero_naming_each_breach(tmp_path):
    base = make_run(tmp_path, "base", BASE)
    cur = make_run(tmp_path, "cur", BASE | {("latency_us", "median"): 120.0})
    command = [sys.executable, "-m", "harness", "compare", str(base), str(cur)]
    result = subprocess.run(command + ["--fail-on", "latency_us:+5%", "--fail-on", "accuracy:-0.5pp"],
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BREACH: uno/simavr/digits/rf_emlearn latency_us median: 100 -> 120 us (+20.00 %" in result.stdout
    assert "latency_us" in result.stdout and "3 figure(s) unchanged" in result.stdout
    result = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 0 and "+20.00" in result.stdout
    result = subprocess.run(command + ["--fail-on", "latency_us:5"], capture_output=True,
                            text=True, env=_env(), timeout=120)
    assert result.returncode == 2 and "is not a rule" in result.stderr and "Traceback" not in result.stderr


def test_other_fidelity_or_toolchain_is_reported_not_compared(tmp_path):
    base = make_run(tmp_path, "base", BASE, tools={"avr-gcc": "avr-gcc (GCC) 7.3.0"})
    on_qemu = make_run(tmp_path, "qemu", BASE | {("latency_us", "median"): 900.0},
                       fidelity="instruction-count", tools={"avr-gcc": "avr-gcc (GCC) 7.3.0"})
    table = compare_runs([base], [on_qemu])
    latency = table[(table["metric"] == "latency_us") & (table["statistic"] == "median")].iloc[0]
    assert latency["status"] == "not compared"
    assert "fidelity cycle-accurate -> instruction-count" in latency["note"]
    assert not breaches(table, [parse_rule("latency_us:+5%")])
    # A host-clock "latency" (qemu-system-avr) is no device figure: compare never takes it.
    host_clock = make_run(tmp_path, "qemu-avr", BASE | {("latency_us", "median"): 900.0},
                          fidelity="functional", tools={"avr-gcc": "avr-gcc (GCC) 7.3.0"})
    table = compare_runs([base], [host_clock])
    latency = table[(table["metric"] == "latency_us") & (table["statistic"] == "median")].iloc[0]
    assert latency["status"] == "only in baseline"
    assert table.loc[table["metric"] == "accuracy", "status"].iloc[0] == "not compared"
    new_gcc = make_run(tmp_path, "gcc14", BASE | {("flash_bytes", "value"): 30000},
                       tools={"avr-gcc": "avr-gcc (GCC) 14.2.0"})
    table = compare_runs([base], [new_gcc])
    assert set(table["status"]) == {"not compared"}
    assert "toolchain avr-gcc (GCC) 7.3.0 -> avr-gcc (GCC) 14.2.0" in set(table["note"])
    assert not breaches(table, [parse_rule("flash_bytes:+1024")])


def test_figures_on_one_side_only_are_listed(tmp_path):
    base = make_run(tmp_path, "base", BASE)
    cur = make_run(tmp_path, "cur", {("accuracy", "value"): 94.4})
    statuses = compare_runs([base], [cur]).set_index(["metric", "statistic"])["status"]
    assert statuses[("latency_us", "median")] == "only in baseline"
    assert statuses[("accuracy", "value")] == "compared"


@pytest.mark.parametrize("text", ["latency_us", "latency_us:5%", "latency_us:+5x", ":+5%"])
def test_bad_rules_say_how_to_write_one(text):
    with pytest.raises(CompareError, match="latency_us:\\+5%"):
        parse_rule(text)


def test_trend_merges_runs_from_several_hosts_one_plot_per_metric(tmp_path):
    runs = tmp_path / "results"
    for night, (host, latency) in enumerate([("lab-a", 100.0), ("lab-b", 101.0), ("lab-a", 99.0)]):
        make_run(runs, f"night{night}", BASE | {("latency_us", "median"): latency}, host=host,
                 started=f"2026-03-0{night + 1}T02:00:00+00:00")
    frame = trend_frame([runs])
    median = frame[(frame["metric"] == "latency_us") & (frame["statistic"] == "median")]
    assert list(median["value"]) == [100.0, 101.0, 99.0]          # in run order
    assert list(median["host"]) == ["lab-a", "lab-b", "lab-a"]
    # A host-clock "latency" (qemu-system-avr) never enters a latency trend.
    make_run(runs, "night3", BASE | {("latency_us", "median"): 5.0}, fidelity="functional",
             started="2026-03-04T02:00:00+00:00")
    frame = trend_frame([runs])
    latency = frame[frame["metric"] == "latency_us"]
    assert "functional" not in set(latency["fidelity"]) and 5.0 not in set(latency["value"])
    assert "night3" in set(frame.loc[frame["metric"] == "accuracy", "run_id"])
    written = write_trend([runs], tmp_path / "trend")
    for name in ("trend_accuracy_pct.png", "trend_latency_median_us.png",
                 "trend_latency_p95_us.png", "trend_flash_bytes.png", "trend.csv"):
        assert name in written and written[name].stat().st_size > 0, name
    assert written["trend_accuracy_pct.png"].read_bytes()[:4] == b"\x89PNG"
    assert "trend_energy_uj.png" not in written          # nobody measured energy
    assert set(pd.read_csv(written["trend.csv"])["host"]) == {"lab-a", "lab-b"}
    result = subprocess.run([sys.executable, "-m", "harness", "report", "--trend", str(runs),
                             "--out", str(tmp_path / "cli")], capture_output=True, text=True, env=_env(),
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "trend over 4 runs from 2 host(s) (lab-a, lab-b)" in result.stdout
