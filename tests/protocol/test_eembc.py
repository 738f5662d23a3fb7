"""MLPerf Tiny's protocol (EEMBC), both ways, on real firmware: our DUT built in EEMBC mode on
native and on the Uno in simavr, driven by the harness's EEMBC client through the same suites
as the binary protocol (the same figures), and driven line by line as the MLPerf Tiny runner
drives a device (its commands, its 31-byte `db` lines, its regular expressions), from a test
set written in the runner's dataset layout."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.backends import get_backend
from harness.backends.base import StartRequest
from harness.boards import get_board
from harness.build.firmware import build_firmware
from harness.models import export
from harness.models.mlperf_dataset import write_dataset
from harness.protocol.eembc import EembcClient
from harness.tools import find_tool

VARIANT = "dtree_emlearn"        # int16 input (64 features, 128 bytes: five `db` lines), a class out
INT8 = "mlp32_int8"              # int8 scores out: ten integers per m-results


def run_suites(tmp_path, board, protocol, variant=VARIANT, extra=()):
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "suites/",
           f"--board={board}", f"--variant={variant}", f"--protocol={protocol}",
           f"--results-dir={tmp_path}", f"--run-id={protocol}", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    return pd.read_parquet(tmp_path / protocol / "records.parquet"), r.stdout


def figure(df, metric, statistic="value"):
    rows = df[(df.metric == metric) & (df.statistic == statistic)]
    assert len(rows) == 1, (metric, statistic, rows)
    return rows.iloc[0]


@pytest.mark.parametrize("board", ["native", "uno"])
def test_suites_over_eembc_equal_the_binary_protocol(board, tmp_path):
    if board == "uno" and find_tool("simavr").path is None:
        pytest.skip("simavr is not installed: apt-get install simavr libsimavr-dev (scripts/setup.sh)")
    binary, _ = run_suites(tmp_path, board, "tinyhil")
    eembc, out = run_suites(tmp_path, board, "eembc")
    assert set(eembc.protocol) == {"eembc"} and set(binary.protocol) == {"tinyhil"}
    assert figure(eembc, "agreement").value == 100.0
    assert figure(eembc, "accuracy").value == figure(binary, "accuracy").value
    assert figure(eembc, "python_agreement").value == figure(binary, "python_agreement").value
    # every vector's output came back, one `infer 1 0` each: as many requests as vectors
    n = int(figure(eembc, "accuracy").n)
    assert f"{n} vectors in {n} requests" in figure(eembc, "accuracy").detail
    if board == "uno":                      # device time: latency from the laps
        lap = figure(eembc, "latency_us", "median")
        assert lap.fidelity == "cycle-accurate" and lap.value > 0
        assert "laps" in lap.detail
        # laps span the loop of N inferences and read the counter every few of them: within
        # 5 % of the binary protocol's per-inference count of the same input
        assert abs(lap.value / figure(binary, "latency_us", "median").value - 1) < 0.05
    # the table shows both builds of the model, one row each
    table = subprocess.run([sys.executable, "-m", "harness", "report", str(tmp_path)],
                           capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr
    assert f"{VARIANT}/eembc" in table.stdout and re.search(rf"\b{VARIANT}\s", table.stdout)


@pytest.fixture(scope="module")
def native_eembc():
    """Our DUT built in EEMBC mode for the native board, running: (target, exported)."""
    from dataclasses import replace
    board = replace(get_board("native"), protocol="eembc")
    exported = export(INT8)
    target = get_backend("native", board).start(StartRequest(board, build_firmware(board, exported)))
    yield target, exported
    target.stop()


class RunnerPort:
    """The device side as the MLPerf Tiny runner sees it (benchmark/runner/serial_device.py):
    a command written with '%', then lines up to the one holding m-ready."""

    def __init__(self, url):
        import serial
        self.port = serial.serial_for_url(url, 115200, timeout=5)
        self.buffer = b""

    def send_command(self, command):
        self.port.write((command + "%").encode())
        lines = []
        while True:
            while b"\n" not in self.buffer:
                data = self.port.read(max(1, self.port.in_waiting))
                assert data, f"no response to command {command}"
                self.buffer += data
            raw, self.buffer = self.buffer.split(b"\n", 1)
            text = raw.decode().strip("\r\0")
            if text:
                lines.append(text)
            if "m-ready" in text:
                return lines


def test_runner_commands_and_grammar(native_eembc, tmp_path):
    """The runner's own sequence (device_under_test.py, script.py), its regular expressions,
    on a test set written by `tinyhil mlperf-dataset`: the runner's outputs equal the
    host-compiled C's, and its accuracy equals tinyhil's."""
    target, exported = native_eembc
    folder = write_dataset(exported, tmp_path)
    rows = list(csv.DictReader(open(folder / "y_labels.csv"), fieldnames=["file", "classes", "class"]))
    assert len(rows) == len(exported.test_inputs) and rows[0]["classes"] == "10"
    assert "loop %d:" % len(rows) in (tmp_path / "tests.yaml").read_text()
    dut = RunnerPort(target.url)
    dut.send_command("")                                     # as its reset_port() flushes
    name = dut.send_command("name")
    assert any(re.match(r'^m-(name)-dut-\[([^]]+)]$', l) for l in name)
    profile = [re.match(r'^m-(model|profile)-\[([^]]+)]$', l) for l in dut.send_command("profile")]
    assert dict(m.groups() for m in profile if m)["model"] == INT8   # its tests.yaml key
    correct = 0
    count = 60
    for i, row in enumerate(rows[:count]):
        data = (folder / row["file"]).read_bytes()
        assert data == exported.vector_bytes(i)
        dut.send_command(f"db load {len(data)}")
        for at in range(0, len(data), 31):
            result = dut.send_command("db " + "".join(f"{d:02x}" for d in data[at:at + 31]))
        assert "m-load-done" in result
        lines = dut.send_command("infer 1 0")
        results = [re.match(r'^m-results-\[([^]]+)\]$', l) for l in lines]
        scores = [float(x) for x in next(m for m in results if m).group(1).split(",")]
        laps = [int(m.group(1)) for m in (re.match(r'^m-lap-us-([0-9]+)$', l) for l in lines) if m]
        assert len(laps) == 2 and laps[1] >= laps[0]
        assert scores == list(np.asarray(exported.host_reference[i]).ravel().astype(float))
        correct += int(np.argmax(scores)) == int(row["class"])
    host = np.argmax(np.asarray(exported.host_reference[:count]).reshape(count, -1), axis=1)
    assert correct == int(np.sum(host == np.asarray(exported.test_labels[:count])))
    # performance mode's command: N inferences after W warm-ups, two laps around the N
    lines = dut.send_command("infer 200 3")
    assert lines[:3] == ["m-warmup-start-3", "m-warmup-done", "m-infer-start-200"]
    assert lines[5] == "m-infer-done" and lines[6].startswith("m-results-[")
    assert dut.send_command("results")[0] == lines[6]
    assert dut.send_command("db print")[0].startswith("m-buffer-")
    # each reply ends with our CRC line (the runner ignores it), then m-ready
    bogus = dut.send_command("bogus")
    assert bogus[0] == "e-[Unknown command: bogus]" and bogus[2] == "m-ready"
    assert re.match(r"^m-tinyhil-crc-\[[0-9a-f]{4}\]$", bogus[1])
    assert dut.send_command("infer 0")[0] == "e-[Inference iterations must be >0]"
    dut.port.close()


def test_client_survives_a_noisy_link(native_eembc):
    """Garbage lines, flipped and lost bytes (a lost m-ready among them), through the
    fault-injecting link: every output still equals the host-compiled C's, and the damage is
    counted, not hidden."""
    from harness.faults.faultlink import FaultLink, FaultSpec
    target, exported = native_eembc
    link = FaultLink(target.url, FaultSpec.parse("flip=0.002,drop=0.002,seed=5")).start()
    try:
        client = EembcClient.open(link.url, timeout=0.5)
        client.identify()
        for i in range(40):
            out = client.infer(exported.vector_bytes(i))
            assert np.array_equal(exported.decode_output(out.output),
                                  np.asarray(exported.host_reference[i]).ravel())
        damage = sum(v for k, v in link.counts.items() if k.startswith(("flip", "drop")))
        assert damage > 0, link.counts
        assert client.stats.resends + client.stats.frames_rejected > 0
        client.close()
    finally:
        link.stop()


def test_official_runner_against_our_build(native_eembc, tmp_path):
    """The MLPerf Tiny runner itself, when a checkout of it is here: it finds devices by USB
    VID:PID, so pyserial's comports() is wrapped to show our DUT's pty as an L4R5ZI."""
    runner = os.environ.get("TINYHIL_MLPERF_RUNNER")
    if not runner or not (Path(runner) / "main.py").is_file():
        pytest.skip("the MLPerf Tiny runner is not here: `git clone https://github.com/mlcommons/tiny` "
                    "and set TINYHIL_MLPERF_RUNNER=<clone>/benchmark/runner (with its "
                    "requirements installed) to run it against our EEMBC build")
    target, exported = native_eembc
    write_dataset(exported, tmp_path / "datasets")
    shim = tmp_path / "run.py"
    shim.write_text(f'''
import sys, runpy
from serial.tools import list_ports, list_ports_common
def comports(include_links=False):
    port = list_ports_common.ListPortInfo({target.url!r})
    port.vid, port.pid, port.description = 0x0483, 0x374B, "tinyhil native EEMBC DUT"
    return [port]
list_ports.comports = comports
sys.argv = ["main.py", "-d", "devices.yaml", "-t", {str(tmp_path / "datasets" / "tests.yaml")!r},
            "-s", {str(tmp_path / "datasets")!r}, "-m", "a"]
runpy.run_path("main.py", run_name="__main__")
''')
    r = subprocess.run([sys.executable, str(shim)], cwd=runner, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "accuracy" in r.stdout.lower()


def plain_eembc_elf(board_name, variant, folder):
    """Our EEMBC runtime built with only the API's lines (TINYHIL_EEMBC_PLAIN): firmware the
    harness did not build, as a lab's MLPerf Tiny port is. The harness's own build steps."""
    from dataclasses import replace
    from harness.build.core import ELF_NAME, BuildJob, common_defines, runtime_sources
    from harness.build.firmware import arch_of
    from harness.paths import firmware_dir
    board = replace(get_board(board_name), protocol="eembc")
    board = board.for_emulator()
    exported = export(variant)
    arch = arch_of(board)
    arch.compile(BuildJob(arch, board, arch.compiler(), arch.flags(board),
                          ["-DTINYHIL_EEMBC_PLAIN=1", *common_defines(board, exported, "0" * 16),
                           *arch.defines(board)],
                          [*arch.include_dirs(board), firmware_dir() / "runtime", *exported.include_dirs],
                          [*runtime_sources("eembc"), *arch.port_sources(board), *exported.c_sources],
                          tmp=folder))
    return folder / ELF_NAME


def test_another_mlperf_firmware_through_the_suites(tmp_path):
    """`--firmware X --protocol eembc`: an EEMBC firmware that prints only the API's lines runs
    through the suites on the Uno in simavr; known by its model name, its outputs checked
    against the host-compiled C, its latency from its laps."""
    if find_tool("simavr").path is None:
        pytest.skip("simavr is not installed: apt-get install simavr libsimavr-dev (scripts/setup.sh)")
    (tmp_path / "build").mkdir()
    elf = plain_eembc_elf("uno", VARIANT, tmp_path / "build")
    df, out = run_suites(tmp_path, "uno", "eembc",
                         extra=(f"--firmware={elf}", "--backend=simavr"))
    assert "an EEMBC firmware not built by tinyhil names only its model" in out
    assert figure(df, "agreement").value == 100.0
    assert figure(df, "accuracy").value == figure(df, "python_accuracy").value
    assert figure(df, "latency_us", "median").value > 0
    assert set(df.protocol) == {"eembc"}


def test_noisy_link_through_the_suites_is_recorded(tmp_path):
    """The accuracy suite over EEMBC through the fault-injecting link: every output right, and
    the damage the client met written down as a `link` failure record of the case."""
    df, _ = run_suites(tmp_path, "native", "eembc",
                       extra=("--fault-link=flip=0.002,drop=0.001,seed=4", "--vectors=40"))
    assert figure(df, "agreement").value == 100.0
    link = df[(df.metric == "failure") & df.detail.str.contains("kind=link")]
    assert len(link) >= 1 and link.detail.str.contains("resends").all(), df[df.metric == "failure"]


@pytest.mark.parametrize("board,backend", [("native", "native"), ("uno", "simavr")])
def test_emulator_death_over_eembc(board, backend, tmp_path):
    """The EEMBC DUT killed between requests, on its own link: named `emulator_died`,
    relaunched, re-identified over EEMBC, and the next vectors are right."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "faults"))
    from faultkit import classify_checked, failures, kill, start_session
    session, case, dut = start_session(tmp_path, board, backend, VARIANT, fault_link=None,
                                       reply_timeout=1.0, protocol="eembc")
    try:
        assert dut.identity.protocol == "eembc" and all(classify_checked(dut, range(3)))
        old = dut.target.pid
        kill(dut)
        assert all(classify_checked(dut, range(3, 8)))
        assert dut.target.pid != old and dut.identity.protocol == "eembc"
        kinds = [r["detail"].split(";")[0] for r in failures(session)]
        assert kinds == ["kind=emulator_died"], [r["detail"] for r in failures(session)]
        assert all(r["protocol"] == "eembc" for r in failures(session))
    finally:
        session.close()
