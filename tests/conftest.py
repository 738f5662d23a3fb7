"""Fixtures the harness's own tests share: real DUTs on the native build and a simulated
Arduino Uno (Optiboot in simavr, every open of its port resetting it, as DTR does)."""

import sys
from pathlib import Path

import pytest

# The support modules (simulated_arduino, tcp_serial_bridge, faults/faultkit) import from any
# test folder.
TESTS = Path(__file__).parent
for folder in (TESTS, TESTS / "faults"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture(scope="module")
def native_probe():
    """A native DUT running the checksum_2048 probe: (target, exported, firmware)."""
    from harness.backends import get_backend
    from harness.backends.base import StartRequest
    from harness.boards import get_board
    from harness.build.firmware import build_firmware
    from harness.models import export

    board = get_board("native")
    exported = export("checksum_2048")
    firmware = build_firmware(board, exported)
    target = get_backend("native", board).start(StartRequest(board, firmware))
    yield target, exported, firmware
    target.stop()


@pytest.fixture
def simulated_uno():
    """The serial port of a simulated Uno that holds only Optiboot."""
    from harness.backends.simavr import start_simulated_arduino
    from harness.build.optiboot import build_optiboot
    from simulated_arduino import UNO

    pty, bridge = start_simulated_arduino(UNO, build_optiboot())
    yield pty
    bridge.stop()
