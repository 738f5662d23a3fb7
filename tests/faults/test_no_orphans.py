"""No process outlives the harness, and no work folder outlives its run.

A pytest run of the suites on simavr is killed from outside, as a CI timeout would: SIGKILL
(no clean-up possible: the children die by their parent-death signal), SIGTERM and SIGINT
(the run ends as interrupted). Every process the run started carries a tag in its
environment, so the check finds exactly them and nobody else's."""

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness import workdirs
from harness.backends import get_backend
from harness.boards import get_board
from harness.results.records import RECORDS_JSONL, read_manifest

REPO = Path(__file__).resolve().parents[2]
TAG = "TINYHIL_ORPHAN_CHECK"


def tagged(tag: str) -> list[tuple[int, str]]:
    """(pid, command) of every live process whose environment carries the tag."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"{TAG}={tag}".encode() not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue                     # exited meanwhile, or not ours
        found.append((int(entry.name), command))
    return found


def wait_for(predicate, timeout: float, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


@pytest.fixture
def simavr_run(tmp_path):
    """A run of the accuracy suite on simavr, caught while its bridge runs."""
    board = get_board("uno")
    if not get_backend("simavr", board).availability(board).ok:
        pytest.skip("simavr is not installed: `sudo apt-get install simavr libsimavr-dev libelf-dev`")
    tag = secrets.token_hex(8)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "suites/test_accuracy.py", "suites/test_latency.py", "--board=uno",
               "--backend=simavr", "--latency-runs=200", f"--results-dir={tmp_path}",
               "--run-id=victim"]
    # A shell's background job starts with SIGINT ignored, and Python then keeps it ignored:
    # give the run the default, as a terminal's Ctrl-C (or a CI runner) meets it.
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, TAG: tag},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    jsonl = tmp_path / "victim" / RECORDS_JSONL
    bridge = wait_for(lambda: jsonl.exists() and [p for p in tagged(tag) if "tinyhil-simavr" in p[1]],
                      timeout=240, step=0.05)
    if proc.poll() is not None or not bridge:
        proc.kill()
        pytest.fail(f"the run ended or never started a bridge:\n{proc.communicate()[0][-2000:]}")
    yield proc, tag, tmp_path / "victim"
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def work_folders(pid: int) -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob(f"tinyhil-*-{pid}-*"))


def test_sigkill_of_pytest_leaves_no_tinyhil_process_within_2_s(simavr_run):
    proc, tag, _ = simavr_run
    assert work_folders(proc.pid), "the bridge's work folder carries its owner's pid"
    proc.send_signal(signal.SIGKILL)           # the pytest process only, not its group
    proc.wait()
    left = wait_for(lambda: not tagged(tag), timeout=2.0) or tagged(tag)
    assert left is True, f"still running 2 s after pytest was killed: {left}"
    # Nothing could remove its work folders: the next harness to make one sweeps them.
    workdirs.sweep_stale("simavr")
    assert work_folders(proc.pid) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_end_the_run_as_interrupted(simavr_run, sig):
    proc, tag, run_dir = simavr_run
    proc.send_signal(sig)
    try:
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"pytest did not end within 60 s of {sig.name}")
    assert read_manifest(run_dir)["status"] == "interrupted", output[-2000:]
    assert (run_dir / "records.parquet").exists()
    assert wait_for(lambda: not tagged(tag), timeout=2.0), tagged(tag)
    assert work_folders(proc.pid) == []
