"""The report pipeline: records of several runs -> one comparison table -> md/csv/html/png."""

import io
import math

import pandas as pd
import pytest
from rich.console import Console

from harness import fidelity as fid
from harness.errors import HarnessError
from harness.report.table import comparison_table, load_runs, print_table, to_markdown, write_report
from harness.results.records import Recorder, write_manifest

SHA = "c0" * 32


def figures(board, backend, fidelity, variant, accuracy=None, latency=None, flash=None,
            flash_limit=None, fits=None, model="iris"):
    """Synthetic records (test data, not measurements) for one board/backend/variant."""
    common = dict(board=board, backend=backend, model=model, variant=variant, firmware_sha256=SHA)
    out = []
    if accuracy is not None:
        out.append(dict(common, fidelity=fidelity, metric="accuracy", value=accuracy, unit="%",
                        statistic="value", n=30))
        out.append(dict(common, fidelity=fidelity, metric="agreement", value=100.0, unit="%",
                        statistic="value", n=30))
    if latency is not None:
        out.append(dict(common, fidelity=fidelity, metric="latency_us", value=latency, unit="us",
                        statistic="median", n=50))
        out.append(dict(common, fidelity=fidelity, metric="latency_us", value=latency * 1.04,
                        unit="us", statistic="p95", n=50))
    for metric, value in (("flash_bytes", flash), ("flash_limit_bytes", flash_limit),
                          ("fits", fits)):
        if value is not None:
            out.append(dict(common, fidelity="static", metric=metric, value=value,
                            unit="bool" if metric == "fits" else "B", statistic="value", n=1))
    return out


def make_run(root, run_id, records, status="complete"):
    run_dir = root / run_id
    write_manifest(run_dir, run_id, {"command": ["pytest", "suites/"]})
    rec = Recorder(run_dir, run_id, "0.1.0")
    for r in records:
        rec.record(**r)
    if status is None:
        rec._file.close()           # left as if the process died: no parquet, manifest "running"
    else:
        rec.close(status)
    return run_dir


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "results"
    make_run(root, "20261128-100000-aaaa",
             figures("uno", "simavr", "cycle-accurate", "emlearn-trees", accuracy=93.3,
                     latency=900.0, flash=9120, flash_limit=32256, fits=1)
             + figures("uno", "simavr", "cycle-accurate", "m2cgen", accuracy=96.7,
                       latency=15500.0, flash=40100, flash_limit=32256, fits=0))
    make_run(root, "20261128-110000-bbbb",     # newer: replaces uno/simavr/emlearn-trees
             figures("uno", "simavr", "cycle-accurate", "emlearn-trees", accuracy=93.3,
                     latency=850.0, flash=9000, flash_limit=32256, fits=1)
             + figures("native", "native", "wall-clock", "emlearn-trees", accuracy=93.3,
                       latency=2.1))
    make_run(root, "20261128-120000-cccc",     # died half way: only a latency figure
             figures("uno", "qemu", "functional", "emlearn-trees", latency=700.0), status=None)
    return root


def row(table, **key):
    match = table
    for column, value in key.items():
        match = match[match[column] == value]
    assert len(match) == 1, match
    return match.iloc[0]


def test_latest_run_wins_for_duplicate_keys(runs):
    table = comparison_table(load_runs([runs]))
    uno = row(table, board="uno", backend="simavr", variant="emlearn-trees")
    assert uno["latency_median_us"] == 850.0
    assert uno["flash_bytes"] == 9000
    assert uno["run_id"] == "20261128-110000-bbbb"
    # The older run still supplies the key that no newer run measured.
    assert row(table, variant="m2cgen")["run_id"] == "20261128-100000-aaaa"


def test_table_shape_order_and_fidelity(runs):
    table = comparison_table(load_runs([runs]))
    assert list(table[["board", "backend", "variant"]].itertuples(index=False, name=None)) == [
        ("native", "native", "emlearn-trees"), ("uno", "qemu", "emlearn-trees"),
        ("uno", "simavr", "emlearn-trees"), ("uno", "simavr", "m2cgen")]
    assert list(table.columns[:5]) == ["board", "backend", "model", "variant", "fidelity"]
    # The row's fidelity is its latency's, not the static one of its sizes.
    assert row(table, backend="simavr", variant="m2cgen")["fidelity"] == "cycle-accurate"
    assert row(table, variant="m2cgen")["fits"] == "no"
    assert row(table, backend="simavr", variant="emlearn-trees")["latency_p95_us"] == \
        pytest.approx(884.0)
    assert "energy_uj" not in table     # nobody measured energy


def test_missing_metrics_stay_nan_not_zero(runs):
    table = comparison_table(load_runs([runs]))
    native = row(table, board="native")
    assert math.isnan(native["flash_bytes"]) and math.isnan(native["ram_bytes"])
    assert pd.isna(native["fits"])
    qemu = row(table, backend="qemu")
    assert math.isnan(qemu["accuracy_pct"]) and qemu["run_status"] == "incomplete"
    # qemu-system-avr's timer follows the host clock: its row stays, its latency cell does not.
    assert qemu["fidelity"] == "functional" and math.isnan(qemu["latency_median_us"])


def test_energy_columns_appear_when_measured(tmp_path):
    records = figures("uno", "simavr", "cycle-accurate", "emlearn-trees", latency=850.0)
    records.append(dict(records[0], fidelity="modelled", metric="energy_uj", value=42.5,
                        unit="uJ", statistic="median"))
    make_run(tmp_path, "20261128-130000-dddd", records)
    table = comparison_table(load_runs([tmp_path]))
    assert table.loc[0, "energy_uj"] == 42.5
    assert math.isnan(table.loc[0, "power_mw"])
    assert table.loc[0, "fidelity"] == "cycle-accurate"


def test_load_runs_accepts_run_dirs_and_says_when_nothing_is_found(runs, tmp_path):
    assert load_runs([runs / "20261128-100000-aaaa"])["run_id"].unique().tolist() == \
        ["20261128-100000-aaaa"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no run records"):
        load_runs([tmp_path / "empty"])


def test_markdown_has_units_legend_and_incomplete_mark(runs):
    md = to_markdown(comparison_table(load_runs([runs])))
    assert "latency median (us)" in md and "flash (B)" in md and "accuracy (%)" in md
    assert "`cycle-accurate`: exact cycle count" in md
    assert "`wall-clock`: host wall-clock time" in md
    assert "`instruction-count`" not in md          # only labels present
    assert "emlearn-trees *" in md and "did not finish (20261128-120000-cccc)" in md
    assert "nan" not in md.lower()
    assert "9000" in md and "850.0" in md


def test_write_report_writes_every_file(runs, tmp_path):
    out = tmp_path / "report"
    written = write_report([runs], out)
    assert set(written) == {"report.md", "report.csv", "report.html",
                            "latency_vs_accuracy_uno.png", "latency_vs_accuracy_native.png"}
    for path in written.values():
        assert path.exists() and path.stat().st_size > 0
    assert written["latency_vs_accuracy_uno.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = pd.read_csv(written["report.csv"])
    assert len(csv) == 4 and "latency_median_us" in csv
    assert "<table" in written["report.html"].read_text()


def test_boards_without_latency_get_no_plot(tmp_path):
    make_run(tmp_path, "20261128-140000-eeee",
             figures("mega2560", "simavr", "cycle-accurate", "m2cgen", accuracy=96.7,
                     flash=40100, flash_limit=253952, fits=1))
    written = write_report([tmp_path], tmp_path / "out")
    assert not any(name.endswith(".png") for name in written)


def test_print_table_shows_sizes_and_what_does_not_fit(runs):
    console = Console(file=io.StringIO(), width=250, color_system=None)
    print_table(comparison_table(load_runs([runs])), console=console)
    text = console.file.getvalue()
    assert "m2cgen ✗" in text and "does not fit" in text
    assert "39.2/32" in text and "8.8/32" in text   # KiB used / KiB available
    assert "15,500.0" in text                      # latency: one decimal from 100 us up
    assert "700" not in text                       # no host-clock "latency" (qemu-system-avr)


@pytest.mark.parametrize("energy_fidelities", [("modelled", "modelled"),
                                               ("simulated-instrument", "simulated-instrument")])
def test_terminal_table_fits_100_columns(tmp_path, energy_fidelities):
    """The widest rows a bench makes (long variant names, energy with its own fidelity,
    every column filled) stay within 100 columns, with nothing cut."""
    records = []
    for variant, energy_fidelity in zip(("rf_large_emlearn", "checksum_2048_probe"), energy_fidelities):
        records += figures("mega2560", "simavr", "cycle-accurate", variant, accuracy=96.67,
                           latency=123456.7, flash=253000, flash_limit=253952, fits=1,
                           model="digits")
        base = dict(board="mega2560", backend="simavr", model="digits", variant=variant,
                    firmware_sha256=SHA, fidelity=energy_fidelity, n=5, statistic="median")
        records += [dict(base, metric="energy_uj", value=12345.6, unit="uJ"),
                    dict(base, metric="ram_bytes", value=8000, unit="B", fidelity="static")]
    # A second model on the smallest board: a 512 B RAM limit, an oversized variant.
    records += figures("attiny85", "simavr", "cycle-accurate", "rf_large_emlearn_iris",
                       accuracy=94.74, latency=24826.4, flash=99300, flash_limit=8192, fits=0,
                       model="iris")
    records.append(dict(board="attiny85", backend="simavr", model="iris", fidelity="static",
                        variant="rf_large_emlearn_iris", firmware_sha256=SHA, metric="ram_bytes",
                        value=300, unit="B", statistic="value", n=1))
    records.append(dict(records[-1], metric="ram_limit_bytes", value=512))
    make_run(tmp_path, "20261128-150000-ffff", records)
    console = Console(file=io.StringIO(), width=400, color_system=None)
    print_table(comparison_table(load_runs([tmp_path])), console=console)
    text = console.file.getvalue()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 100, text
    assert "rf_large_emlearn_iris ✗" in text and "…" not in text
    assert "0.3/0.5" in text and "24,826.4" in text and "12,345.6" in text


def test_every_fidelity_label_has_a_description_and_a_short_form():
    labels = {v for k, v in vars(fid).items() if k.isupper() and isinstance(v, str)}
    assert labels == set(fid.DESCRIPTIONS) == set(fid.SHORT)
    assert len(set(fid.SHORT.values())) == len(fid.SHORT)


def test_energy_has_its_own_fidelity_and_a_plot_per_board(tmp_path):
    records = figures("uno", "simavr", "cycle-accurate", "rf_emlearn", accuracy=93.3, latency=108.0)
    records += figures("uno", "simavr", "cycle-accurate", "dtree_emlearn", accuracy=80.0, latency=44.0)
    for variant, energy in (("rf_emlearn", 6.1), ("dtree_emlearn", 2.8)):
        base = dict(board="uno", backend="simavr", model="iris", variant=variant,
                    firmware_sha256=SHA, fidelity="modelled", n=5)
        records += [dict(base, metric="energy_uj", value=energy, unit="uJ", statistic="median"),
                    dict(base, metric="energy_uj", value=energy * 0.9, unit="uJ", statistic="min"),
                    dict(base, metric="power_mw", value=52.0, unit="mW", statistic="median"),
                    dict(base, metric="supply_v", value=5.0, unit="V", statistic="median")]
    make_run(tmp_path / "results", "20261128-140000-eeee", records)
    table = comparison_table(load_runs([tmp_path / "results"]))
    rf = row(table, variant="rf_emlearn")
    assert rf["energy_uj"] == 6.1 and rf["power_mw"] == 52.0 and rf["supply_v"] == 5.0
    assert rf["fidelity"] == "cycle-accurate" and rf["energy_fidelity"] == "modelled"
    assert "modelled" in to_markdown(table) and "energy fidelity" in to_markdown(table)
    out = io.StringIO()
    print_table(table, console=Console(file=out, width=200))
    assert "µJ/inf" in out.getvalue() and " model " in out.getvalue() and "model = modelled" in out.getvalue()
    written = write_report([tmp_path / "results"], tmp_path / "report")
    assert written["energy_vs_latency_uno.png"].stat().st_size > 1000


def test_one_corrupt_run_among_good_ones_is_named_and_the_rest_reported(runs, tmp_path):
    """`tinyhil report results/` with a run whose records are damaged in the middle."""
    import subprocess
    import sys
    bad = make_run(runs, "20261128-130000-dddd",
                   figures("uno", "simavr", "cycle-accurate", "m2cgen", accuracy=90.0), status=None)
    jsonl = bad / "records.jsonl"
    lines = jsonl.read_text().splitlines()
    jsonl.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    skipped = []
    table = comparison_table(load_runs(runs, skipped))
    assert [d.name for d, _ in skipped] == ["20261128-130000-dddd"]
    assert "native" in set(table["board"])                    # the good runs are all there
    with pytest.raises(HarnessError, match="line 2 of .*repair or delete that line"):
        load_runs(bad)                                        # alone, it is an error
    out = tmp_path / "out"
    cli = subprocess.run([sys.executable, "-m", "harness", "report", str(runs), "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and (out / "report.md").exists(), cli.stderr
    assert "Traceback" not in cli.stderr
    named = [line for line in cli.stderr.splitlines() if "20261128-130000-dddd" in line]
    assert len(named) == 1 and "repair or delete" in named[0], cli.stderr
