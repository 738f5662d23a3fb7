"""The pytest plugin and the CLI, run as a user runs them (in a subprocess)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.paths import REPO_DIR

SUITES = str(REPO_DIR / "suites")


def run(args, cwd, timeout=600, env=None):
    # This checkout's harness, not whichever one is pip-installed (an editable install may
    # point at another checkout).
    env = os.environ | (env or {}) | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def native_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    result = run(["-m", "pytest", SUITES, "--board", "native", "--variant", "dtree_emlearn,rf_emlearn",
                  "--results-dir", str(out), "--run-id", "r1", "-p", "no:cacheprovider"], cwd=out)
    return result, out / "r1"


def test_suites_run_and_header_says_what_was_chosen(native_run):
    result, _ = native_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "tinyhil: native on native" in result.stdout
    assert "fidelity wall-clock" in result.stdout
    assert "tinyhil comparison table" in result.stdout


def test_run_folder_holds_records_parquet_and_manifest(native_run):
    _, run_dir = native_run
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["variant"] for r in records} == {"dtree_emlearn", "rf_emlearn"}
    assert all(r["fidelity"] and r["unit"] and r["firmware_sha256"] for r in records)
    metrics = {r["metric"] for r in records}
    assert {"accuracy", "agreement", "latency_us", "latency_cycles", "flash_bytes", "ram_bytes",
            "fits", "host_roundtrip_ms"} <= metrics
    frame = pd.read_parquet(run_dir / "records.parquet")
    assert len(frame) == len(records)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    # Every target the run started, with where it ran and at which fidelity.
    assert {(t["board"], t["backend"], t["fidelity"]) for t in manifest["targets"]} == \
        {("native", "native", "wall-clock")}
    assert all(t["url"].startswith("/dev/pts/") for t in manifest["targets"])
    from harness.tools import find_tool
    for tool in ("avr-gcc", "simavr", "qemu-system-avr"):      # versions where installed, else null
        assert tool in manifest["tools"]
        assert (manifest["tools"][tool] is not None) == find_tool(tool).found, tool
    assert manifest["git"] is None or len(manifest["git"]["commit"] or "") in (0, 40)
    agreement = [r["value"] for r in records if r["metric"] == "agreement"]
    assert agreement and all(v == 100.0 for v in agreement)


@pytest.mark.parametrize("step_ns", [1000])
def test_native_latency_on_a_coarse_host_clock(tmp_path, step_ns):
    """A host whose clock moves in coarse steps (here 1 us, 100x the 10 ns seen on a CI host)
    still gives every timed run a non-zero time: each run loops the inference until it spans
    thousands of steps, and the record says how many inferences one run held."""
    out = tmp_path / "results"
    result = run(["-m", "pytest", f"{SUITES}/test_latency.py", "--board", "native", "--variant",
                  "dtree_emlearn", "--latency-runs", "10", "--results-dir", str(out), "--run-id", "r",
                  "-p", "no:cacheprovider"], cwd=tmp_path,
                 env={"TINYHIL_NATIVE_CLOCK_STEP_NS": str(step_ns)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    records = [json.loads(line) for line in (out / "r" / "records.jsonl").read_text().splitlines()]
    cycles = [r for r in records if r["metric"] == "latency_cycles"]
    assert {r["statistic"] for r in cycles} == {"median", "p95", "min", "max"}
    assert all(r["value"] > 0 for r in cycles)
    loops = int(cycles[0]["detail"].split("; ")[1].split()[0])
    assert loops > 1 and f"counter resolution {step_ns} ticks" in cycles[0]["detail"]
    # Per inference, a fraction of one step: only the loop resolves it. The DUT doubled the loop
    # until one run spanned 1000 steps; a timed run may go a little faster than that probe.
    assert min(r["value"] for r in cycles) * loops >= 500 * step_ns


def test_report_rebuilds_the_table(native_run, tmp_path):
    _, run_dir = native_run
    result = run(["-m", "harness", "report", str(run_dir), "--out", str(tmp_path / "rep")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("report.md", "report.csv", "report.html", "latency_vs_accuracy_native.png"):
        assert (tmp_path / "rep" / name).is_file(), name
    assert (tmp_path / "rep" / "latency_vs_accuracy_native.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(tmp_path / "rep" / "report.csv")
    assert set(table["variant"]) == {"dtree_emlearn", "rf_emlearn"}
    # Recorded figures the terminal leaves out are in the report files.
    markdown = (tmp_path / "rep" / "report.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    for label in ("stack bound (B)", "host round trip (ms)", "latency median (cycles)"):
        assert label in markdown and label in html, label
    assert table["stack_bytes"].notna().all() and table["host_roundtrip_ms"].notna().all()


def test_unknown_board_is_a_clear_usage_error(tmp_path):
    result = run(["-m", "pytest", SUITES, "--board", "nosuchboard", "-p", "no:cacheprovider",
                  "--results-dir", str(tmp_path)], cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "unknown board nosuchboard" in output and "uno" in output
    assert "Traceback" not in output


def test_board_that_cannot_run_on_a_backend_is_a_clear_error(tmp_path):
    result = run(["-m", "pytest", SUITES, "--board", "native", "--backend", "simavr",
                  "-p", "no:cacheprovider", "--results-dir", str(tmp_path)], cwd=tmp_path)
    assert result.returncode != 0
    assert "native cannot run on simavr" in result.stdout + result.stderr


def test_no_board_says_what_it_chose(tmp_path):
    result = run(["-m", "pytest", SUITES, "--collect-only", "-p", "no:cacheprovider",
                  "--results-dir", str(tmp_path)], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "no --board given: running every board this machine can emulate" in result.stdout
    assert "native-native-rf_emlearn" in result.stdout and "uno-simavr-rf_emlearn" in result.stdout


def test_boards_command_lists_backends_and_why_not(tmp_path):
    result = run(["-m", "harness", "boards"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for board in ("native", "uno", "mega2560"):
        assert board in result.stdout
    assert "hardware" in result.stdout and "no uno attached" in result.stdout.replace("\n", " ") or \
        "no: no uno" in result.stdout


def test_cli_reports_user_errors_without_traceback(tmp_path):
    result = run(["-m", "harness", "report", str(tmp_path / "nothing-here")], cwd=tmp_path)
    assert result.returncode == 2
    assert "tinyhil: error:" in result.stderr and "Traceback" not in result.stderr


def test_protocol_header_is_current(tmp_path):
    result = run(["-m", "harness", "gen-header", "--check"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_plugin_is_registered_by_entry_point():
    from importlib.metadata import entry_points
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    if "tinyhil" not in names:
        pytest.skip("tinyhil is not pip-installed here (the repository's conftest.py loads the "
                    "plugin instead): pip install -e .")
    assert names["tinyhil"] == "harness.plugin.core"
    # The entry point must name a module that really is the plugin: it defines the options.
    import importlib
    plugin = importlib.import_module(names["tinyhil"])
    assert callable(getattr(plugin, "pytest_addoption", None))


@pytest.mark.parametrize("option, words", [
    (["--vectors", "0"], "--vectors 0: must be at least 1"),
    (["--latency-runs", "0"], "--latency-runs 0: must be at least 1"),
    (["--warmup", "-1"], "--warmup -1: must be at least 0"),
    (["--energy-windows", "0"], "--energy-windows 0: must be at least 1"),
])
def test_bad_run_options_are_one_line_at_parsing(tmp_path, option, words):
    result = run(["-m", "pytest", SUITES, "--board", "native", *option, "-p", "no:cacheprovider",
                  "--results-dir", str(tmp_path / "r")], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and words in output, output[-2000:]
    assert "Traceback" not in output
    assert not (tmp_path / "r").exists(), "a refused run made a results folder"
