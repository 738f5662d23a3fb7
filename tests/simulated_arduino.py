"""What the tests need to simulate an Arduino Uno for the upload path (Optiboot in simavr, real
avrdude), as skip marks that say what is missing and how to install it."""

import pytest

from harness.build.optiboot import OPTIBOOT_DIR
from harness.backends import get_backend
from harness.boards import get_board
from harness.tools import find_tool

UNO = get_board("uno")
_missing = [name for name in ("avr-gcc", "avrdude") if not find_tool(name).found]

NEEDS_SIMULATED_UNO = [
    pytest.mark.skipif(bool(_missing), reason=f"{', '.join(_missing)} not installed: "
                       "sudo apt-get install gcc-avr avr-libc avrdude"),
    pytest.mark.skipif(not get_backend("simavr", UNO).availability(UNO).ok,
                       reason="simavr simulates the Uno: sudo apt-get install simavr "
                              "libsimavr-dev libelf-dev"),
    pytest.mark.skipif(not (OPTIBOOT_DIR / "optiboot.c").is_file(),
                       reason="Optiboot's source is missing: sudo apt-get install arduino-core-avr"),
]
