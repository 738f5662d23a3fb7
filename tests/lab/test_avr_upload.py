"""The hardware backend's avrdude path, for real, against a simulated Arduino Uno:
Optiboot (rebuilt from arduino-core-avr) in simavr, every open of the pty resetting into it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.boards import get_board
from harness.errors import BackendError
from harness.fidelity import HARDWARE
from harness.tools import find_tool

serial = pytest.importorskip("serial", reason="pyserial is not installed: pip install pyserial")

from harness.build.optiboot import BOOT_START, OPTIBOOT_DIR, build_optiboot, hex_extent  # noqa: E402
from harness.backends.base import StartRequest  # noqa: E402
from harness.backends.hardware import HardwareBackend  # noqa: E402
from harness.build.avr import make_hex  # noqa: E402
from harness.lab import strategy  # noqa: E402
from harness.lab.strategy import BoardStrategy  # noqa: E402
from harness.lab.uploaders.avrdude import upload_avrdude  # noqa: E402
from harness.backends.simavr import SimavrBackend, start_simulated_arduino  # noqa: E402

FIXTURES = Path(__file__).parents[1] / "avr_fixtures"
BOARD = get_board("uno")
SIMAVR = SimavrBackend().availability(BOARD)

needs_avr_gcc = pytest.mark.skipif(
    not find_tool("avr-gcc").found,
    reason="avr-gcc is not installed: sudo apt-get install gcc-avr avr-libc")
needs_avrdude = pytest.mark.skipif(
    not find_tool("avrdude").found, reason="avrdude is not installed: sudo apt-get install avrdude")
needs_simavr = pytest.mark.skipif(not SIMAVR.ok, reason=f"simavr backend: {SIMAVR}")
needs_optiboot = pytest.mark.skipif(
    not (OPTIBOOT_DIR / "optiboot.c").is_file(),
    reason="Optiboot's source is missing: sudo apt-get install arduino-core-avr")


@pytest.fixture(scope="module")
def echo(tmp_path_factory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("avr")
    elf = out / "echo.elf"
    subprocess.run([str(find_tool("avr-gcc").path), "-Os", "-mmcu=atmega328p",
                    "-DF_CPU=16000000UL", str(FIXTURES / "echo.c"), "-o", str(elf)],
                   check=True, capture_output=True, timeout=60)
    return SimpleNamespace(elf=elf, hex=None, build_id="test")


@pytest.fixture
def arduino():
    """A simulated Uno with only Optiboot in flash; stopped after the test."""
    bridge = None

    def start(app_elf: Path | None = None) -> str:
        nonlocal bridge
        pty, bridge = start_simulated_arduino(BOARD, build_optiboot(), app_elf)
        return pty

    yield start
    if bridge:
        bridge.stop()
        print(bridge.stderr_text())


def wait_for_app(port, timeout: float = 5.0) -> float:
    """Send bytes until the echo app answers: Optiboot takes the first ones as a bad command
    and leaves through a 16 ms watchdog reset. Returns the seconds it took."""
    started = time.monotonic()
    port.timeout = 0.05
    while time.monotonic() - started < timeout:
        port.write(b"a")
        if b"b" in port.read(8):
            return time.monotonic() - started
    raise AssertionError(f"the uploaded app did not answer within {timeout} s")


@needs_avr_gcc
@needs_optiboot
def test_optiboot_fits_the_boot_section():
    low, high = hex_extent(build_optiboot())
    assert (low, high) == (BOOT_START, 0x8000)     # code from 0x7E00, version word at 0x7FFE


@needs_avr_gcc
@needs_avrdude
@needs_simavr
@needs_optiboot
def test_avrdude_upload_then_the_app_runs(arduino, echo):
    pty = arduino()
    firmware = SimpleNamespace(elf=echo.elf, hex=make_hex(echo.elf, echo.elf.with_suffix(".hex")),
                               build_id="test")
    assert strategy.availability(BOARD, pty).ok

    started = time.monotonic()
    resource = BoardStrategy(BOARD, port=pty).bring_to(firmware, holds_build=lambda url: False)
    target = HardwareBackend().start(StartRequest(BOARD, firmware, resource))     # real avrdude
    upload_s = time.monotonic() - started
    assert target.url == pty and target.fidelity == HARDWARE and target.resource.flashed

    with serial.Serial(pty, 115200) as port:     # this open resets into Optiboot again
        app_s = wait_for_app(port)
        port.reset_input_buffer()
        port.timeout = 2
        port.write(b"hello")
        assert port.read(5) == b"ifmmp"
    # The open reset the MCU into Optiboot (3 LED flashes, 375 ms of real time) before the app.
    assert app_s > 0.3, "opening the port did not reset into the bootloader"
    print(f"upload {upload_s:.2f} s; app answered {app_s:.2f} s after the open")


@needs_avr_gcc
@needs_avrdude
@needs_simavr
@needs_optiboot
def test_skip_flash_leaves_the_running_app(arduino, echo):
    pty = arduino(echo.elf)                       # app already in flash, as if flashed before
    resource = BoardStrategy(BOARD, port=pty).bring_to(echo, holds_build=lambda url: True)
    target = HardwareBackend().start(StartRequest(BOARD, echo, resource))
    assert not target.resource.flashed
    with serial.Serial(pty, 115200) as port:
        wait_for_app(port)


@needs_avr_gcc
def test_hex_is_made_from_the_elf_when_missing(echo):
    path = make_hex(echo.elf, echo.elf.parent / "made.hex")
    assert path.read_text().startswith(":") and hex_extent(path)[0] == 0


@needs_avrdude
def test_upload_failure_names_the_likely_causes(tmp_path):
    hex_path = tmp_path / "empty.hex"
    hex_path.write_text(":00000001FF\n")
    with pytest.raises(BackendError, match="Likely causes"):
        upload_avrdude(BOARD, hex_path, str(tmp_path / "no-such-port"))


def test_no_board_attached_says_what_was_looked_for(monkeypatch):
    from serial.tools import list_ports
    monkeypatch.setattr(list_ports, "comports", lambda include_links=False: [])   # nothing on USB
    availability = strategy.availability(BOARD, None)
    if find_tool("avrdude").found:
        assert not availability.ok and "no uno attached" in availability.reason
        assert "2341:0043" in availability.reason and "--port" in availability.reason
    with pytest.raises(BackendError, match="no uno attached"):
        BoardStrategy(BOARD).bring_to(SimpleNamespace(elf=None, hex=None, build_id="x"),
                                      holds_build=lambda url: False)
