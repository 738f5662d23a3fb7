"""The bad-input probes of issue 14, each run as a user would (a pytest run of the suites, or
the `tinyhil` command): each ends with one line naming the problem and the fix, never a
traceback, and before any results folder is made."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNO = (REPO / "devices" / "boards" / "uno.toml").read_text()


def board_file(folder: Path, change) -> dict:
    """A copy of uno.toml as board `broken`, changed by `change(text)`."""
    folder.mkdir(exist_ok=True)
    text = change(UNO.replace('name = "uno"', 'name = "broken"'))
    (folder / "broken.toml").write_text(text)
    return {"TINYHIL_BOARDS_DIR": str(folder)}


def truncated_elf(tmp_path: Path) -> Path:
    from harness.boards import get_board
    from harness.build.firmware import build_firmware
    from harness.models import export
    firmware = build_firmware(get_board("uno"), export("dtree_emlearn"))
    data = Path(firmware.elf).read_bytes()
    cut = tmp_path / "cut.elf"
    cut.write_bytes(data[:len(data) // 3])
    return cut


# id: (arguments, environment or a function of tmp_path giving (extra args, env), words of the
# problem, words of the fix)
PROBES = {
    "qemu-table-without-machine": (
        ["--board=broken", "--backend=qemu"],
        lambda t: ([], board_file(t / "b", lambda s: s.replace('machine = "uno"\n', ""))),
        ["broken.toml", "[backends.qemu]", "machine"], ["add it"]),
    "marker-without-bit": (
        ["--board=broken"],
        lambda t: ([], board_file(t / "b", lambda s: s.replace("bit = 5\n", ""))),
        ["broken.toml", "[marker]", "bit"], ["add it"]),
    "baud-fast": (
        ["--board=broken"],
        lambda t: ([], board_file(t / "b", lambda s: s.replace("baud = 115200", 'baud = "fast"'))),
        ["broken.toml", "baud", "'fast'"], ["must be an integer > 0"]),
    "vectors-negative": (["--board=native", "--vectors=-1"], None,
                         ["--vectors -1"], ["at least 1", "leave it out"]),
    "vectors-zero": (["--board=native", "--vectors=0"], None, ["--vectors 0"], ["at least 1"]),
    "warmup-negative": (["--board=native", "--warmup=-1"], None, ["--warmup -1"], ["at least 0"]),
    "warmup-too-big": (["--board=native", "--warmup=70000"], None, ["--warmup 70000"],
                       ["at most 65535"]),
    "latency-runs-zero": (["--board=native", "--latency-runs=0"], None, ["--latency-runs 0"],
                          ["at least 1"]),
    "truncated-elf": (
        ["--board=uno", "--backend=simavr", "--variant=dtree_emlearn", "suites/test_smoke.py"],
        lambda t: ([f"--firmware={truncated_elf(t)}"], {}),
        ["damaged ELF", "truncated"], ["rebuild it whole"]),
    "qemu-avr-variable-wrong": (
        ["--board=uno", "--backend=qemu"], lambda t: ([], {"TINYHIL_QEMU_AVR": "/nonexistent/qemu"}),
        ["TINYHIL_QEMU_AVR", "/nonexistent/qemu does not exist"], ["set TINYHIL_QEMU_AVR", "unset"]),
    "port-does-not-exist": (["--board=uno", "--port=/dev/ttyDOESNOTEXIST"], None,
                            ["--port /dev/ttyDOESNOTEXIST does not exist"], ["list_ports"]),
}


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize("probe", list(PROBES), ids=list(PROBES))
def test_probe_gives_one_line_naming_problem_and_fix(probe, tmp_path):
    args, setup, problem, fix = PROBES[probe]
    extra, env = setup(tmp_path) if setup else ([], {})
    if not any(a.startswith("suites/") for a in args):
        args = [*args, "suites/"]
    results = tmp_path / "results"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          f"--results-dir={results}", *args, *extra], cwd=REPO,
                         capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    output = run.stdout + run.stderr
    assert run.returncode == 4, output[-3000:]              # pytest's usage error
    lines = error_lines(output)
    assert len(lines) == 1 and "Traceback" not in output, output[-3000:]
    for word in problem + fix:
        assert word in lines[0], f"{word!r} missing from: {lines[0]}"
    assert not results.exists(), "a usage error must leave no results folder"


def test_bench_usage_error_is_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "harness", "bench", "--board", "nosuch",
                          "--results-dir", str(tmp_path / "r")], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    lines = error_lines(run.stdout + run.stderr)
    assert run.returncode != 0 and len(lines) == 1, lines
    assert "unknown board nosuch" in lines[0] and "known boards are" in lines[0]


def test_a_second_run_with_the_same_run_id_is_refused_while_the_first_runs(tmp_path):
    # The Uno in simavr: a first run that lasts minutes, longer than the second one's start.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "suites/",
               "--board=uno", "--backend=simavr", "--latency-runs=200", f"--results-dir={tmp_path}",
               "--run-id=same"]
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "same" / "records.jsonl").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()[-2000:]
            time.sleep(0.05)
        second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert first.poll() is None, "the first run ended before the second was tried"
    finally:
        first.kill()
        first.wait()
    lines = error_lines(second.stdout + second.stderr)
    assert second.returncode == 4 and len(lines) == 1, lines
    assert re.search(r"run same is in use: another tinyhil run \(pid \d+\)", lines[0]), lines[0]
    assert "another --run-id" in lines[0]
    # The first run's folder holds the first run's records only.
    runs = {line.split('"run_id": ')[1].split(",")[0]
            for line in (tmp_path / "same" / "records.jsonl").read_text().splitlines()}
    assert runs == {'"same"'}
