"""The simavr bridge for real: a tiny echo firmware on a simulated Uno, over a pty."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.boards import get_board
from harness.tools import find_tool

serial = pytest.importorskip("serial", reason="pyserial is not installed: pip install pyserial")

from harness.backends.base import StartRequest  # noqa: E402
from harness.backends.simavr import INSTALL, SimavrBackend, launch_bridge  # noqa: E402

FIXTURES = Path(__file__).parents[1] / "avr_fixtures"
BOARD = get_board("uno")
BACKEND = SimavrBackend()
AVAILABLE = BACKEND.availability(BOARD)

needs_avr_gcc = pytest.mark.skipif(
    not find_tool("avr-gcc").found,
    reason="avr-gcc is not installed: sudo apt-get install gcc-avr avr-libc")
needs_simavr = pytest.mark.skipif(not AVAILABLE.ok, reason=f"simavr backend: {AVAILABLE}")

# Stores beyond RAMEND are what simavr 1.6 reports as a crash (so is running off the end of
# flash); an undefined opcode is not: simavr skips it and carries on.
CRASH_C = """
#include <stdint.h>
int main(void) { *(volatile uint8_t *)0x1000 = 1; for (;;) ; }
"""


def compile_avr(source: Path, out: Path) -> Path:
    gcc = find_tool("avr-gcc").path
    subprocess.run([str(gcc), "-Os", "-mmcu=atmega328p", "-DF_CPU=16000000UL", str(source),
                    "-o", str(out)], check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture(scope="module")
def echo_elf(tmp_path_factory) -> Path:
    return compile_avr(FIXTURES / "echo.c", tmp_path_factory.mktemp("avr") / "echo.elf")


@pytest.fixture
def start_target():
    """Start the echo firmware on simavr; every target started is stopped afterwards."""
    targets = []

    def start(elf: Path):
        target = BACKEND.start(StartRequest(BOARD, SimpleNamespace(elf=elf, hex=None, build_id="test")))
        targets.append(target)
        return target

    yield start
    for target in targets:
        target.stop()


def marker_edges(target) -> list[tuple[int, int]]:
    text = Path(target.marker_log).read_text()
    return [tuple(int(x) for x in line.split()) for line in text.splitlines()]


def wait_for_edges(target, count: int, timeout: float = 5.0) -> list[tuple[int, int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        edges = marker_edges(target)
        if len(edges) >= count:
            return edges
        time.sleep(0.01)
    return marker_edges(target)


def test_availability_reports_usable_here():
    if not AVAILABLE.ok:
        assert INSTALL in AVAILABLE.fix, AVAILABLE
        pytest.skip(f"simavr backend: {AVAILABLE}")
    assert str(AVAILABLE) == "usable"
    native = get_board("native")
    assert not BACKEND.availability(native).ok     # no [backends.simavr] table


@needs_avr_gcc
@needs_simavr
def test_200_bytes_round_trip_exactly(start_target, echo_elf):
    target = start_target(echo_elf)
    assert target.fidelity == "cycle-accurate" and target.url.startswith("/dev/pts/")
    data = bytes(range(200))
    with serial.Serial(target.url, 115200, timeout=5) as port:
        port.write(b"\x00")                  # warm up: the CPU starts ~50 ms after the open
        assert port.read(1) == b"\x01"
        started = time.perf_counter()
        port.write(data)                    # one write: more than the UART's 64-byte FIFO
        echoed = port.read(len(data))
        elapsed = time.perf_counter() - started
        port.timeout = 0.2
        extra = port.read(64)
    assert echoed == bytes((b + 1) & 0xFF for b in data)
    assert extra == b"", "bytes were duplicated"
    print(f"200-byte round trip: {elapsed * 1000:.1f} ms")


@needs_avr_gcc
@needs_simavr
def test_cpu_held_until_open_then_marker_edges(start_target, echo_elf):
    target = start_target(echo_elf)
    time.sleep(0.2)
    assert marker_edges(target) == [], "the CPU ran before the host opened the port"
    with serial.Serial(target.url, 115200, timeout=1):
        edges = wait_for_edges(target, 2)
    (rise_level, rise), (fall_level, fall) = edges[:2]
    assert (rise_level, fall_level) == (1, 0)
    assert 0 < rise < fall < 1000, edges    # a few instructions into main()
    print(f"marker edges: {edges}")


@needs_avr_gcc
@needs_simavr
def test_marker_cycles_are_deterministic(start_target, echo_elf):
    runs = []
    for _ in range(2):
        target = start_target(echo_elf)
        with serial.Serial(target.url, 115200, timeout=1) as port:
            port.write(b"x")
            assert port.read(1) == b"y"
            runs.append(wait_for_edges(target, 2))
        target.stop()
    assert runs[0] == runs[1] and len(runs[0]) == 2


@needs_avr_gcc
@needs_simavr
def test_reset_restarts_the_firmware(start_target, echo_elf):
    target = start_target(echo_elf)
    with serial.Serial(target.url, 115200, timeout=1) as port:
        first = wait_for_edges(target, 2)
        target.reset()
        edges = wait_for_edges(target, 4)
        port.write(b"A")
        assert port.read(1) == b"B"
    assert len(edges) == 4 and [level for level, _ in edges] == [1, 0, 1, 0]
    assert edges[2][1] > first[1][1]        # the cycle counter runs on across a reset


@needs_avr_gcc
@needs_simavr
def test_reopening_the_port_does_not_reset(start_target, echo_elf):
    target = start_target(echo_elf)
    for text, answer in ((b"a", b"b"), (b"c", b"d")):
        with serial.Serial(target.url, 115200, timeout=1) as port:
            port.write(text)
            assert port.read(1) == answer
    assert len(marker_edges(target)) == 2    # the firmware started once


@needs_avr_gcc
@needs_simavr
def test_crash_exits_2_with_crashed_line(tmp_path):
    source = tmp_path / "crash.c"
    source.write_text(CRASH_C)
    elf = compile_avr(source, tmp_path / "crash.elf")
    bridge = launch_bridge("atmega328p", 16_000_000, elf)
    try:
        with serial.Serial(bridge.pty, 115200, timeout=0.5):
            status = bridge.process.wait(timeout=5)
    finally:
        bridge.stop()
    assert status == 2
    assert "CRASHED pc=0x" in bridge.stderr_text()


@needs_simavr
def test_missing_firmware_is_a_clear_error(tmp_path):
    from harness.errors import BackendError
    with pytest.raises(BackendError, match="did not announce"):
        launch_bridge("atmega328p", 16_000_000, tmp_path / "missing.elf")
