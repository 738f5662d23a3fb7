"""`pytest suites/ --board uno` (and esp32) with a board attached takes the hardware backend,
says so in the header, and does not flash a board that already runs the build.

The attached board is faked where pyserial reports it, `serial.tools.list_ports.comports()`
(a plugin loaded into the pytest run), and nowhere inside the harness. The Uno behind the
port is real firmware: Optiboot in simavr, uploaded to with real avrdude."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.build.optiboot import build_optiboot
from harness.backends.simavr import start_simulated_arduino
from harness.paths import REPO_DIR

from simulated_arduino import NEEDS_SIMULATED_UNO, UNO  # noqa: E402

FAKE_USB = '''
"""pyserial's port list reporting one attached USB serial board (FAKE_USB_DEVICE, FAKE_USB_ID)."""
import os
from serial.tools import list_ports, list_ports_common


def _attached(include_links=False):
    port = list_ports_common.ListPortInfo(os.environ["FAKE_USB_DEVICE"], skip_link_detection=True)
    port.vid, port.pid = (int(part, 16) for part in os.environ["FAKE_USB_ID"].split(":"))
    port.serial_number = "FAKE0001"
    port.description = os.environ.get("FAKE_USB_NAME", "USB serial")
    return [port]


list_ports.comports = _attached
'''


def run_suites(tmp_path, device, usb_id, *args):
    (tmp_path / "fake_usb.py").write_text(FAKE_USB)
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), str(REPO_DIR),
                                                    os.environ.get("PYTHONPATH")])),
        "FAKE_USB_DEVICE": device, "FAKE_USB_ID": usb_id}
    env.pop("TINYHIL_LAB", None)
    result = subprocess.run([sys.executable, "-m", "pytest", str(REPO_DIR / "suites"), "-p", "fake_usb",
                             "-p", "no:cacheprovider", "--results-dir", str(tmp_path / "results"),
                             *args], cwd=tmp_path, capture_output=True, text=True, env=env,
                            timeout=900)
    return result, result.stdout + result.stderr


def test_esp32_attached_is_taken_as_hardware(tmp_path):
    result, out = run_suites(tmp_path, "/dev/ttyUSB7", "10c4:ea60", "--board", "esp32",
                             "--collect-only")
    assert result.returncode == 0, out[-3000:]
    assert "tinyhil: esp32 on hardware (auto: esp32 attached at /dev/ttyUSB7" in out
    assert "fidelity hardware" in out
    assert not (tmp_path / "results").exists(), "--collect-only made a results folder"


def test_no_board_attached_falls_back_to_the_emulator(tmp_path):
    result, out = run_suites(tmp_path, "/dev/ttyUSB7", "1234:5678", "--board", "uno",
                             "--collect-only")
    assert result.returncode == 0, out[-3000:]
    assert "tinyhil: uno on simavr (auto: no board attached" in out


def needs_simulated_uno(test):
    for mark in NEEDS_SIMULATED_UNO:
        test = mark(test)
    return test


@needs_simulated_uno
def test_attached_uno_is_flashed_once_and_run(simulated_uno, tmp_path):
    args = ("--board", "uno", "--variant", "dtree_emlearn", "-k", "test_smoke", "--run-id", "first")
    result, out = run_suites(tmp_path, simulated_uno, "2341:0043", *args)
    assert result.returncode == 0, out[-4000:]
    assert f"tinyhil: uno on hardware (auto: uno attached at {simulated_uno}" in out
    assert f"tinyhil: uno at {simulated_uno}: flashed with avrdude" in out
    args = args[:-1] + ("second",)
    result, out = run_suites(tmp_path, simulated_uno, "2341:0043", *args)
    assert result.returncode == 0, out[-4000:]
    assert f"tinyhil: uno at {simulated_uno}: already runs build" in out
    assert "not flashed again" in out
