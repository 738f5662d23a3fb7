"""Many boards in one run: pytest-xdist workers record into one run folder and one table."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pandas as pd
import pytest

from harness.paths import REPO_DIR
from harness.plugin.lab import group_of
from harness.results.records import Recorder, read_jsonl

SUITES = str(REPO_DIR / "suites")
WRITER = """
import sys
from harness.results.records import Recorder
recorder = Recorder(sys.argv[1], "r", "0.1.0", shared=True)
for i in range(int(sys.argv[3])):
    recorder.record(board="b" + sys.argv[2], backend="native", fidelity="wall-clock", model="m",
                    variant="v", metric="latency_us", value=float(i), unit="us",
                    statistic="value", n=1, firmware_sha256="x" * 64, detail="d" * 300)
recorder.close()
"""


def _env():
    """Subprocesses import this checkout's harness, wherever they run."""
    import os
    from harness.paths import REPO_DIR
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH")])))


def test_shared_recorders_in_several_processes_never_interleave_lines(tmp_path):
    owner = Recorder(tmp_path, "r", "0.1.0")          # the controller's, opened first
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w), "300"])
               for w in range(4)]
    assert [w.wait(120) for w in writers] == [0, 0, 0, 0]
    owner.close()
    records = read_jsonl(tmp_path / "records.jsonl")      # raises on any torn line
    assert len(records) == 1200
    for w in range(4):
        values = [r["value"] for r in records if r["board"] == f"b{w}"]
        assert values == [float(i) for i in range(300)]    # each writer's order kept
    assert len(pd.read_parquet(tmp_path / "records.parquet")) == 1200


def test_physical_board_is_one_group_emulated_cases_are_many():
    uno = SimpleNamespace(name="uno")
    hw = [SimpleNamespace(board=uno, backend="hardware", id=f"uno-hardware-{v}") for v in "ab"]
    emu = [SimpleNamespace(board=uno, backend="simavr", id=f"uno-simavr-{v}") for v in "ab"]
    assert group_of(hw[0]) == group_of(hw[1]) == "board-uno"
    assert group_of(emu[0]) != group_of(emu[1])


@pytest.mark.skipif(subprocess.run([sys.executable, "-c", "import xdist"]).returncode != 0,
                    reason="pytest-xdist is not installed: pip install 'tinyhil[parallel]'")
def test_two_workers_record_into_one_run_folder_and_junit_has_properties(tmp_path):
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", SUITES, "--board", "native", "-n", "2",
         "--variant", "dtree_emlearn,rf_emlearn,rf_m2cgen", "--results-dir", str(tmp_path),
         "-p", "no:cacheprovider", "-p", "no:benchmark", f"--junitxml={junit}"],
        cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    runs = [p for p in tmp_path.iterdir() if (p / "records.jsonl").exists()]
    assert len(runs) == 1, runs
    run = runs[0]
    records = read_jsonl(run / "records.jsonl")
    assert {r["variant"] for r in records} == {"dtree_emlearn", "rf_emlearn", "rf_m2cgen"}
    assert {r["run_id"] for r in records} == {run.name}
    assert len(pd.read_parquet(run / "records.parquet")) == len(records)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["xdist_workers"] == 2
    assert manifest["host"]["hostname"]
    assert "tinyhil comparison table" in result.stdout and "rf_m2cgen" in result.stdout
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    # every suite test ran once per variant (the count follows the suites folder as it grows)
    per_variant = {v: [c for c in cases if f"-{v}]" in c.get("name") or f"-{v}@" in c.get("name")]
                   for v in ("dtree_emlearn", "rf_emlearn", "rf_m2cgen")}
    counts = {v: len(c) for v, c in per_variant.items()}
    assert len(set(counts.values())) == 1 and min(counts.values()) >= 5, counts
    props = {p.get("name"): p.get("value") for p in cases[0].iter("property")}
    assert props["board"] == "native" and props["backend"] == "native"
    assert props["fidelity"] == "wall-clock" and len(props["firmware_sha256"]) == 64
    assert props["run_id"] == run.name
