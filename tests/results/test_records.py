"""Records are validated, reach the disk as they are taken, and survive a killed run."""

import json
import math
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pytest

from harness import paths
from harness.results.records import (RECORD_FIELDS, RECORDS_JSONL, Recorder, RecordsError, load_run, new_run_id,
                             read_manifest, write_manifest)

# Synthetic test data with plausible values, not measurements.
LATENCY = dict(board="uno", backend="simavr", fidelity="cycle-accurate", model="iris",
               variant="emlearn-trees", metric="latency_us", value=812.5, unit="us",
               statistic="median", n=50, firmware_sha256="3f" * 32)


def recorder(tmp_path: Path, run_id="20261128-211503-ab12") -> Recorder:
    return Recorder(tmp_path / run_id, run_id, harness_version="0.1.0")


def test_run_ids_are_sortable_and_distinct():
    ids = [new_run_id() for _ in range(20)]
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_record_fills_fields_in_order(tmp_path):
    rec = recorder(tmp_path).record(**LATENCY)
    assert tuple(rec) == RECORD_FIELDS
    assert rec["run_id"] == "20261128-211503-ab12"
    assert rec["harness_version"] == "0.1.0"
    assert rec["time"].endswith("+00:00") and rec["detail"] == ""
    assert rec["value"] == 812.5 and isinstance(rec["value"], float)


def test_records_reach_disk_as_taken(tmp_path):
    rec = recorder(tmp_path)
    rec.record(**LATENCY)
    rec.record(**(LATENCY | {"statistic": "p95", "value": 840.0}))
    # A separate handle, before close: both lines must already be there.
    with open(rec.path, encoding="utf-8") as other:
        lines = other.read().splitlines()
    assert [json.loads(line)["statistic"] for line in lines] == ["median", "p95"]
    assert len(rec.records) == 2


@pytest.mark.parametrize("field", ["fidelity", "unit"])
def test_record_without_fidelity_or_unit_is_refused(tmp_path, field):
    rec = recorder(tmp_path)
    without = {k: v for k, v in LATENCY.items() if k != field}
    with pytest.raises(ValueError, match=field):
        rec.record(**without)
    with pytest.raises(ValueError, match=field):
        rec.record(**(LATENCY | {field: " "}))
    assert rec.records == []
    assert rec.path.read_text() == ""


@pytest.mark.parametrize("bad", [math.nan, math.inf, "812", None])
def test_non_finite_or_non_numeric_value_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="value"):
        recorder(tmp_path).record(**(LATENCY | {"value": bad}))


def test_unknown_fidelity_statistic_or_field_is_refused(tmp_path):
    rec = recorder(tmp_path)
    with pytest.raises(ValueError, match="fidelity"):
        rec.record(**(LATENCY | {"fidelity": "guessed"}))
    with pytest.raises(ValueError, match="statistic"):
        rec.record(**(LATENCY | {"statistic": "p99"}))
    with pytest.raises(ValueError, match="unknown"):
        rec.record(**(LATENCY | {"vlaue": 1.0}))


def test_new_metrics_need_no_registration(tmp_path):
    rec = recorder(tmp_path).record(**(LATENCY | {"metric": "energy_uj", "unit": "uJ",
                                                  "fidelity": "modelled", "value": 41.2}))
    assert rec["metric"] == "energy_uj"


def test_close_writes_parquet_equal_to_jsonl(tmp_path):
    rec = recorder(tmp_path)
    rec.record(**LATENCY)
    rec.record(**(LATENCY | {"metric": "fits", "unit": "bool", "value": True,
                             "fidelity": "static", "statistic": "value", "n": 1,
                             "detail": "flash 9120/32256 B"}))
    write_manifest(rec.run_dir, rec.run_id, {"command": ["pytest"]})
    rec.close()
    from_parquet = load_run(rec.run_dir)
    (rec.run_dir / "records.parquet").rename(tmp_path / "aside.parquet")
    from_jsonl = load_run(rec.run_dir)
    pd.testing.assert_frame_equal(from_parquet, from_jsonl)
    assert from_parquet["value"].tolist() == [812.5, 1.0]
    assert (from_parquet["run_status"] == "complete").all()


def test_manifest_holds_versions_and_extra_and_close_updates_it(tmp_path):
    run_dir = tmp_path / "run"
    path = write_manifest(run_dir, "r1", {"command": ["pytest", "--board", "uno"],
                                          "boards": ["uno"]})
    manifest = json.loads(path.read_text())
    assert manifest["run_id"] == "r1" and manifest["status"] == "running"
    assert manifest["finished"] is None
    assert manifest["boards"] == ["uno"]
    assert manifest["packages"]["pandas"] == pd.__version__
    assert set(manifest["host"]) >= {"hostname", "platform", "machine", "cpu_count"}
    assert "avr-gcc" in manifest["tools"]
    assert manifest["git"] is None or set(manifest["git"]) == {"commit", "dirty"}
    Recorder(run_dir, "r1", "0.1.0").close("interrupted")
    manifest = read_manifest(run_dir)
    assert manifest["status"] == "interrupted" and manifest["finished"]
    assert load_run(run_dir)["run_status"].tolist() == []   # no records, but a readable run


def test_reopening_appends(tmp_path):
    first = recorder(tmp_path)
    first.record(**LATENCY)
    first.close()
    again = recorder(tmp_path)
    again.record(**(LATENCY | {"statistic": "p95"}))
    assert len(again.records) == 2
    assert not (again.run_dir / "records.parquet").exists()   # would be stale
    assert len(load_run(again.run_dir)) == 2


def test_recording_from_threads_keeps_every_line_whole(tmp_path):
    rec = recorder(tmp_path)
    threads = [threading.Thread(target=lambda i=i: [rec.record(**(LATENCY | {"n": i}))
                                                    for _ in range(25)]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    df = load_run(rec.run_dir)
    assert len(df) == 200 and sorted(df["n"].unique()) == list(range(8))


CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from harness.results.records import Recorder, write_manifest
    run_dir = Path(sys.argv[1])
    write_manifest(run_dir, "killed", {"command": ["child"]})
    rec = Recorder(run_dir, "killed", "0.1.0")
    for i in range(5):
        rec.record(board="uno", backend="simavr", fidelity="cycle-accurate", model="iris",
                   variant="emlearn-trees", metric="latency_cycles", value=13000 + i,
                   unit="cycles", statistic="value", n=1, firmware_sha256="ab" * 32)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sigkilled_run_keeps_its_records_and_is_marked_incomplete(tmp_path):
    run_dir = tmp_path / "killed"
    child = subprocess.run([sys.executable, "-c", CHILD, str(run_dir)], cwd=paths.REPO_DIR,
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == -9, child.stderr
    df = load_run(run_dir)
    assert df["value"].tolist() == [13000.0, 13001.0, 13002.0, 13003.0, 13004.0]
    assert (df["run_status"] == "incomplete").all()


def test_truncated_last_line_is_tolerated_and_repaired_on_reopen(tmp_path):
    rec = recorder(tmp_path)
    for value in (800.0, 805.0):
        rec.record(**(LATENCY | {"value": value}))
    text = rec.path.read_text()
    rec.path.write_text(text[: len(text) - 30])      # a write cut short by a kill
    assert load_run(rec.run_dir)["value"].tolist() == [800.0]
    assert load_run(rec.run_dir)["run_status"].tolist() == ["incomplete"]   # no manifest
    again = recorder(tmp_path)
    again.record(**(LATENCY | {"value": 810.0}))
    assert load_run(again.run_dir)["value"].tolist() == [800.0, 810.0]


def test_corruption_in_the_middle_raises(tmp_path):
    rec = recorder(tmp_path)
    for value in (800.0, 805.0, 810.0):
        rec.record(**(LATENCY | {"value": value}))
    lines = rec.path.read_text().splitlines()
    lines[1] = lines[1][:20]
    rec.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordsError, match="line 2 of 3"):
        load_run(rec.run_dir)


def test_load_run_of_a_folder_without_records_says_so(tmp_path):
    with pytest.raises(RecordsError, match="records.jsonl"):
        load_run(tmp_path)


def test_a_write_past_the_file_size_limit_leaves_only_whole_records(tmp_path):
    """A real RLIMIT_FSIZE in a child process: the record that hits it is cut back out, the
    error names the limit, and once the limit is lifted the run goes on and closes."""
    script = f"""
import resource, sys
from harness.results.records import Recorder, RecordsError
rec = Recorder({str(tmp_path)!r}, "limited", "test")
fields = dict(board="b", backend="native", fidelity="wall-clock", model="m", variant="v",
              metric="x", value=1.0, unit="u", statistic="value", n=1, firmware_sha256="f")
rec.record(**fields)
size = rec.path.stat().st_size
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + size // 2, hard))
try:
    rec.record(**fields)
except RecordsError as exc:
    print("ERROR", exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
rec.record(**fields)
rec.close()
"""
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "ERROR" in run.stdout and "file size limit" in run.stdout and "ulimit -f" in run.stdout
    assert "Traceback" not in run.stdout
    lines = (tmp_path / RECORDS_JSONL).read_bytes().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    assert len(load_run(tmp_path)) == 2                      # closed: the parquet was written


def test_a_full_disk_is_named_and_leaves_no_half_record(tmp_path):
    """/dev/full answers every write with ENOSPC, as a full disk does (a shared recorder: it
    does not read the file first, and reading /dev/full never ends)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system (Linux has it)")
    (tmp_path / RECORDS_JSONL).symlink_to("/dev/full")
    rec = Recorder(tmp_path, "full", "test", shared=True)
    with pytest.raises(RecordsError, match="the disk is full: free some space"):
        rec.record(**LATENCY)
