"""Flash a bare AVR (the ATtiny85) through an ISP programmer (USBasp, ...) with avrdude.

There is no bootloader: the programmer holds RESET, avrdude erases the chip, writes the whole
flash and the fuses the board file names (the clock the firmware is built for). The programmer
is a USB device of its own, so the serial port (a USB-serial adapter on the soft UART) plays
no part in flashing. The board file chooses it: `[backends.hardware] uploader = "avrdude_isp"`,
`programmer = "usbasp"`, `part = "t85"`, `fuses = { lfuse = "0xE2" }`.
"""

from __future__ import annotations

from pathlib import Path

from harness.boards import Board
from harness.errors import BackendError
from harness.lab.uploaders.avrdude import hex_of, run_avrdude
from harness.tools import require

TOOL = "avrdude"
NOTE = ("flashed over ISP: no bootloader and no auto-reset when the serial port opens; the app "
        "runs as soon as the programmer releases RESET and answers at once")
UPLOAD_TIMEOUT = 120


def flash(board: Board, firmware, port: str) -> None:
    """Write the firmware over ISP. `port` is the serial link's, which ISP does not use; a
    board on another host (a labgrid place) has its programmer there, out of reach."""
    if "://" in port:
        raise BackendError(
            f"{board.name} is flashed by an ISP programmer on USB, which cannot be reached "
            f"through {port} (labgrid exports the serial port only): flash it on the host it is "
            "attached to, then run with the build it holds")
    upload_avrdude_isp(board, hex_of(firmware))


def isp_command(board: Board, avrdude: Path | str, hex_path: Path) -> list[str]:
    """avrdude's command line: chip erase (its default without -D), flash, then the fuses."""
    settings = board.backend_settings("hardware")
    command = [str(avrdude), "-c", settings.get("programmer", "usbasp"),
               "-p", settings.get("part", board.mcu)]
    if settings.get("bitclock"):            # a slow ISP clock for a new chip at 1 MHz (-B 32)
        command += ["-B", str(settings["bitclock"])]
    command += ["-U", f"flash:w:{hex_path}:i"]
    for fuse, value in settings.get("fuses", {}).items():
        command += ["-U", f"{fuse}:w:{value}:m"]
    return command


def upload_avrdude_isp(board: Board, hex_path: Path, timeout: float = UPLOAD_TIMEOUT) -> None:
    programmer = board.backend_settings("hardware").get("programmer", "usbasp")
    command = isp_command(board, require("avrdude", f"to flash the {board.name}"), hex_path)
    run_avrdude(command, timeout, f"Is the {programmer} programmer hung? Unplug it and plug it in again.",
                f"avrdude could not flash the {board.name} through the {programmer} programmer",
                f"Check: the {programmer} is plugged in (`lsusb`) and this user may open it (udev "
                f"rule); its 6-pin ISP cable is on the {board.name}'s MOSI, MISO, SCK, RESET, VCC "
                "and GND; the target is powered; a new chip at 1 MHz may need a slow ISP clock "
                "(bitclock = 32 in [backends.hardware], avrdude -B 32).", tail_lines=6)


def network_port(endpoint) -> str:
    return endpoint.url             # flash() refuses it: the programmer is not on the network
