"""hardware: a real board on a serial port, flashed with its uploader (avrdude for AVR, esptool
for the ESP32: harness.backends.esptool_upload).

A new uploader (esptool for the ESP32, ...) is one function `upload(board, firmware, port)`
plus an entry in UPLOADERS.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.backends import Availability, Backend, Target
from harness.boards import Board
from harness.errors import BackendError
from harness.fidelity import HARDWARE
from harness.tools import find_tool, require

UPLOAD_TIMEOUT = 120


def find_port(board: Board) -> str | None:
    """The first serial port whose USB VID:PID is one the board file lists."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return None
    wanted = {(u.vid, u.pid) for u in board.usb}
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        if port.vid is not None and (port.vid, port.pid) in wanted:
            return port.device
    return None


def _usb_ids(board: Board) -> str:
    return ", ".join(f"{u.vid:04x}:{u.pid:04x}" for u in board.usb) or "none listed"


# ---- avrdude ---------------------------------------------------------------------------------

def firmware_hex(firmware) -> Path:
    """The Intel hex avrdude writes; made from the ELF when the build gave none."""
    if getattr(firmware, "hex", None):
        return Path(firmware.hex)
    objcopy = require("avr-objcopy", "to turn the firmware ELF into Intel hex for avrdude")
    elf = Path(firmware.elf)
    target = elf.with_suffix(".hex")
    if not os.access(target.parent, os.W_OK):
        target = Path(tempfile.mkdtemp(prefix="tinyhil-hex-")) / target.name
    result = subprocess.run([str(objcopy), "-O", "ihex", "-R", ".eeprom", str(elf), str(target)],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise BackendError(f"avr-objcopy could not make {target} from {elf}: {result.stderr.strip()}")
    return target


def upload_avrdude(board: Board, hex_path: Path, port: str, timeout: float = UPLOAD_TIMEOUT) -> None:
    """Write `hex_path` to the board's flash through its bootloader (-D: no chip erase, which
    Optiboot does not do; pages are erased as they are written)."""
    settings = board.backend_settings("hardware")
    avrdude = require("avrdude", f"to flash the {board.name}")
    command = [str(avrdude), "-c", settings.get("programmer", "arduino"),
               "-p", settings.get("part", board.mcu), "-P", port,
               "-b", str(settings.get("upload_baud", 115200)), "-D",
               "-U", f"flash:w:{hex_path}:i"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BackendError(f"avrdude did not finish within {timeout:.0f} s: {' '.join(command)}. "
                           "Is the port busy, or the board hung?") from None
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-12:])
        raise BackendError(
            f"avrdude could not flash the {board.name} on {port} (exit {result.returncode}): "
            f"{' '.join(command)}\n{tail}\nLikely causes: the wrong port; the port busy (a serial "
            "monitor holds it); the board not in its bootloader (no auto-reset, a clone without "
            "Optiboot, or the wrong upload_baud in the board file).")


def _upload_with_avrdude(board: Board, firmware, port: str) -> None:
    upload_avrdude(board, firmware_hex(firmware), port)


# ---- esptool (ESP32) -------------------------------------------------------------------------

def _upload_with_esptool(board: Board, firmware, port: str) -> None:
    from harness.backends.esptool_upload import upload_esptool
    image = getattr(firmware, "image", None)
    if not image:
        raise BackendError(f"{firmware.elf} has no ESP32 app image to flash (esptool elf2image)")
    settings = board.backend_settings("hardware")
    upload_esptool(Path(image), port, offset=getattr(firmware, "image_offset", 0) or 0x1000,
                   chip=settings.get("chip", board.mcu), baud=int(settings.get("upload_baud", 460800)),
                   stub=settings.get("stub"), reset=settings.get("reset"))


@dataclass(frozen=True)
class Uploader:
    tool: str                                       # as harness.tools knows it
    upload: Callable[[Board, object, str], None]    # (board, firmware, port)
    note: str = ""                                  # what the caller should know after flashing


UPLOADERS: dict[str, Uploader] = {
    "avrdude": Uploader("avrdude", _upload_with_avrdude,
                        "opening the port auto-resets an Arduino: its bootloader runs about 1 s "
                        "(Optiboot) before the app answers, so retry identify for ~2 s"),
    "esptool": Uploader("esptool", _upload_with_esptool,
                        "esptool resets the ESP32 into the app (RTS); the ROM prints its banner at "
                        "115200 baud before the app answers"),
}


class HardwareBackend(Backend):
    name = "hardware"
    fidelity = HARDWARE
    build = "target"

    def _uploader(self, board: Board) -> Uploader | None:
        return UPLOADERS.get(board.backend_settings("hardware").get("uploader", ""))

    def availability(self, board: Board, port: str | None = None) -> Availability:
        settings = board.backend_settings("hardware")
        if not settings:
            return Availability(False, f"{board.name} has no [backends.hardware] table")
        uploader = self._uploader(board)
        if uploader is None:
            return Availability(False, f"uploader {settings.get('uploader')!r} of {board.name} is "
                                f"not supported (supported: {', '.join(UPLOADERS)})")
        tool = find_tool(uploader.tool)
        if not tool.found:
            return Availability(False, f"{uploader.tool} is not installed", tool.install)
        if not (port or find_port(board)):
            return Availability(False, f"no {board.name} attached (looked for VID:PID "
                                f"{_usb_ids(board)}); connect one or pass --port",
                                "connect the board by USB, or pass --port /dev/ttyACM0")
        return Availability(True)

    def start(self, board: Board, firmware, options: dict) -> Target:
        port = options.get("port") or find_port(board)
        if not port:
            raise BackendError(f"no {board.name} attached (looked for VID:PID {_usb_ids(board)}): "
                               "connect one or pass --port")
        uploader = self._uploader(board)
        if uploader is None:
            raise BackendError(f"{board.name}: uploader "
                               f"{board.backend_settings('hardware').get('uploader')!r} is not "
                               f"supported (supported: {', '.join(UPLOADERS)})")
        flashed = not options.get("skip_flash")
        if flashed:       # the caller skips it when the running DUT already has this build
            uploader.upload(board, firmware, port)
        return Target(url=port, backend=self.name, fidelity=self.fidelity, board=board,
                      description=f"{board.name} on {port}",
                      info={"port": port, "flashed": flashed, "uploader": uploader.tool,
                            "build_id": getattr(firmware, "build_id", None),
                            "note": uploader.note})
