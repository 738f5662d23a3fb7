"""Bad input gets a clear error naming the problem and the fix, and never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from faultkit import start_session
from harness.boards import load_board_file
from harness.dut.device import Dut
from harness.errors import BoardError, ProtocolError
from harness.build.firmware import build_firmware
from harness.models import export
from harness.protocol.client import DutClient
from harness.protocol.wire import PROTOCOL_VERSION, c_header

REPO = Path(__file__).resolve().parents[2]


def tinyhil_pytest(*args, env=None):
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, **(env or {})})
    return run.returncode, run.stdout + run.stderr


def assert_clear(output: str, *words: str):
    assert "Traceback" not in output, output[-3000:]
    for word in words:
        assert word in output, f"{word!r} missing from:\n{output[-3000:]}"


def test_unknown_board(tmp_path):
    code, out = tinyhil_pytest("suites/", "--board=nosuchboard", f"--results-dir={tmp_path}")
    assert code != 0
    assert_clear(out, "unknown board nosuchboard", "known boards are", "devices/boards/NAME.toml")


def test_unknown_backend(tmp_path):
    code, out = tinyhil_pytest("suites/", "--board=uno", "--backend=renode9", f"--results-dir={tmp_path}")
    assert code != 0
    assert_clear(out, "unknown backend 'renode9'", "choose one of")


@pytest.mark.parametrize("text, words", [
    ("name = 'broken'\nclock_hz = [", ("not valid TOML",)),
    ("name = 'broken'\ndescription = 'x'\n", ("lacks", "arch", "uno.toml")),
], ids=["malformed", "incomplete"])
def test_bad_board_file(tmp_path, text, words):
    boards = tmp_path / "boards"                 # the user's boards, beside the built-in ones
    boards.mkdir()
    (boards / "broken.toml").write_text(text)
    with pytest.raises(BoardError) as exc:
        load_board_file(boards / "broken.toml")
    assert all(w in str(exc.value) for w in words)
    # Asked for by name: a clear error. Every other board still runs, the header says why
    # this one is left out.
    code, out = tinyhil_pytest("suites/", "--board=broken", f"--results-dir={tmp_path / 'r'}",
                               env={"TINYHIL_BOARDS_DIR": str(boards)})
    assert code != 0
    assert_clear(out, "broken.toml", *words)
    run = subprocess.run([sys.executable, "-m", "harness", "boards"], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "TINYHIL_BOARDS_DIR": str(boards)})
    assert run.returncode == 0, run.stderr
    assert_clear(run.stdout, "note: board broken left out", *words, "\nnative: ", "\nuno: ")


def path_without(tmp_path, *tools) -> str:
    """A PATH holding every program this machine has except `tools`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not Path(folder).is_dir():
            continue
        for program in Path(folder).iterdir():
            if program.name not in tools and not (bin_dir / program.name).exists():
                (bin_dir / program.name).symlink_to(program)
    return str(bin_dir)


def test_missing_toolchain(tmp_path):
    code, out = tinyhil_pytest("suites/test_footprint.py", "--board=uno", "--backend=simavr",
                               "--variant=dtree_emlearn", f"--results-dir={tmp_path}",
                               env={"PATH": path_without(tmp_path, "avr-gcc"),
                                    "TINYHIL_CACHE": str(tmp_path / "c")})
    assert code != 0
    assert_clear(out, "avr-gcc is not installed", "apt-get install gcc-avr")


def test_missing_emulator_is_a_skip_with_its_reason(tmp_path):
    code, out = tinyhil_pytest("suites/test_smoke.py", "-rs", "--board=uno", "--backend=qemu",
                               "--variant=dtree_emlearn", f"--results-dir={tmp_path}",
                               env={"PATH": path_without(tmp_path, "qemu-system-avr")})
    assert code == 0
    assert_clear(out, "SKIPPED", "qemu", "apt-get install qemu-system-misc")


def test_a_tool_variable_naming_nothing_is_an_error_naming_the_variable(tmp_path):
    code, out = tinyhil_pytest("suites/test_footprint.py", "--board=uno", "--backend=simavr",
                               f"--results-dir={tmp_path}",
                               env={"TINYHIL_AVR_GCC": "/nonexistent/avr-gcc"})
    assert code == 4
    assert_clear(out, "TINYHIL_AVR_GCC", "/nonexistent/avr-gcc does not exist", "unset it")


def test_model_too_big_for_the_board(tmp_path):
    code, out = tinyhil_pytest("suites/test_accuracy.py", "suites/test_footprint.py", "-rs",
                               "--board=uno", "--backend=simavr", "--variant=mlp_emlearn",
                               f"--results-dir={tmp_path}")
    assert code == 0
    assert_clear(out, "mlp_emlearn does not fit uno", "B available on uno")


def test_firmware_with_another_model_hash(tmp_path):
    """A DUT running another model's build: named, with the fix."""
    session, case, dut = start_session(tmp_path, "native", "native", "dtree_emlearn", fault_link=None)
    try:
        other = export("rf_emlearn")
        wrong = Dut(dut.target, dut.firmware, other, dut.client, dut.identity)
        with pytest.raises(ProtocolError) as exc:
            wrong.check_identity()
        assert "runs other firmware" in str(exc.value) and "model hash" in str(exc.value)
        assert "Flash the harness's build again" in str(exc.value)
    finally:
        session.close()


def test_firmware_speaking_another_protocol_version(tmp_path):
    """The real runtime built with its header saying version 9: the harness refuses it."""
    from harness.boards import get_board
    include = tmp_path / "include"
    include.mkdir()
    (include / "tinyhil_wire.h").write_text(c_header().replace(f"TINYHIL_PROTOCOL_VERSION {PROTOCOL_VERSION}", "TINYHIL_PROTOCOL_VERSION 9"))
    from harness.build.core import ELF_NAME, BuildJob, common_defines, runtime_sources
    from harness.build.firmware import arch_of
    from harness.paths import firmware_dir
    board, exported = get_board("native"), export("dtree_emlearn")
    build_id = build_firmware(board, exported).build_id
    # The harness's own build steps (run here, not read from the cache: a cached build may
    # come from another checkout), with -include: this header comes first, and its include
    # guard keeps the real one out.
    arch = arch_of(board)
    arch.compile(BuildJob(arch, board, arch.compiler(),
                          ["-include", str(include / "tinyhil_wire.h"), *arch.flags(board)],
                          common_defines(board, exported, build_id) + arch.defines(board),
                          [*arch.include_dirs(board), firmware_dir() / "runtime", *exported.include_dirs],
                          [*runtime_sources(), *arch.port_sources(board), *exported.c_sources],
                          tmp=tmp_path))
    proc = subprocess.Popen([str(tmp_path / ELF_NAME)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        pty = proc.stdout.readline().decode().split()[1]
        client = DutClient.open(pty, timeout=1.0)
        with pytest.raises(ProtocolError, match=rf"speaks protocol v9, this harness v{PROTOCOL_VERSION}: rebuild the firmware"):
            client.identify()
        client.close()
    finally:
        proc.kill()
        proc.wait()


def test_absent_port():
    with pytest.raises(ProtocolError, match="does not exist.*list_ports.*--port"):
        DutClient.open("/dev/ttyACM_absent")


def test_busy_port(tmp_path):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    holder = serial.Serial(path, exclusive=True)      # another program holds it
    try:
        with pytest.raises(ProtocolError, match="is busy: another program holds it. Close the other program"):
            DutClient.open(path)
    finally:
        holder.close()
        os.close(slave)
        os.close(master)


def test_results_folder_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, out = tinyhil_pytest("suites/test_footprint.py", "--board=native", f"--results-dir={blocker / 'results'}")
    assert code != 0
    assert_clear(out, "results folder", "cannot be written", "--results-dir")


def test_cli_report_of_nothing_is_clear(tmp_path):
    run = subprocess.run([sys.executable, "-m", "harness", "report", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert_clear(run.stderr, "no run records", "results/<run-id>")
