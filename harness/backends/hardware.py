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
from harness.labgrid import INSTALL, URL_PREFIX, client_path, is_place_url
from harness.tools import find_tool, require

UPLOAD_TIMEOUT = 120


def find_port(board: Board) -> str | None:
    """Where a board of this type is attached: the lab file's board of this type when a lab is
    active (found by its USB serial number, wherever it enumerated; `labgrid://PLACE` for one
    on another host), else the first serial port with one of the board's USB VID:PIDs."""
    from harness import lab
    try:
        return lab.find_port(board)
    except ImportError:            # pyserial's list_ports is missing
        return None


def port_hint(board: Board) -> str:
    """The port a board of this kind usually appears at: CDC-ACM on Arduinos' own USB chips
    (ttyACM), a USB-serial bridge (CP210x, CH340, FTDI: ttyUSB) on ESP32 boards."""
    return str(board.backend_settings("hardware").get("port_hint", "/dev/ttyACM0"))


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
    Optiboot does not do; pages are erased as they are written), or through an ISP programmer
    when the board file says `isp = true`."""
    settings = board.backend_settings("hardware")
    avrdude = require("avrdude", f"to flash the {board.name}")
    if settings.get("isp"):
        upload_avrdude_isp(board, avrdude, hex_path, timeout)
        return
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


def upload_avrdude_isp(board: Board, avrdude: Path, hex_path: Path, timeout: float) -> None:
    """An ISP programmer (USBasp, ...) on USB: no serial port, no bootloader; avrdude erases the
    chip and writes the fuses the board file names (the clock the firmware is built for)."""
    settings = board.backend_settings("hardware")
    programmer = settings.get("programmer", "usbasp")
    command = [str(avrdude), "-c", programmer, "-p", settings.get("part", board.mcu),
               "-U", f"flash:w:{hex_path}:i"]
    for fuse, value in settings.get("fuses", {}).items():
        command += ["-U", f"{fuse}:w:{value}:m"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BackendError(f"avrdude did not finish within {timeout:.0f} s: {' '.join(command)}. "
                           f"Is the {programmer} programmer hung? Unplug it and plug it in again.") from None
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-6:])
        raise BackendError(
            f"avrdude could not flash the {board.name} through the {programmer} programmer "
            f"(exit {result.returncode}): {' '.join(command)}\n{tail}\nCheck: the {programmer} is "
            "plugged in (`lsusb`) and this user may open it (udev rule); its 6-pin ISP cable is on "
            f"the {board.name}'s MOSI, MISO, SCK, RESET, VCC and GND; the target is powered; a new "
            "chip at 1 MHz may need a slow ISP clock (avrdude -B 32).")


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
    # The port argument that reaches a board exported over the network (labgrid/ser2net).
    network_port: Callable = lambda endpoint: endpoint.avrdude_port


UPLOADERS: dict[str, Uploader] = {
    "avrdude": Uploader("avrdude", _upload_with_avrdude,
                        "opening the port auto-resets an Arduino: its bootloader runs about 1 s "
                        "(Optiboot) before the app answers, so retry identify for ~2 s"),
    "esptool": Uploader("esptool", _upload_with_esptool,
                        "esptool resets the ESP32 into the app (RTS); the ROM prints its banner at "
                        "115200 baud before the app answers",
                        network_port=lambda endpoint: endpoint.url),   # esptool takes rfc2217:// and socket://
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
        where = port or find_port(board)
        if is_place_url(where) and client_path() is None:
            return Availability(False, f"{board.name} is on labgrid place {where[len(URL_PREFIX):]} "
                                "but labgrid is not installed", INSTALL)
        if not where:
            return Availability(False, f"no {board.name} attached (looked for VID:PID "
                                f"{_usb_ids(board)}); connect one or pass --port",
                                f"connect the board by USB, or pass --port {port_hint(board)}")
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
        if is_place_url(port):
            return self._start_on_place(board, firmware, options, port, uploader)
        # One process at a time drives a physical board (parallel workers, other runs).
        from harness.lab import BoardLock, lab_board_at
        lab_board = lab_board_at(port)
        lock = BoardLock(f"board-{lab_board.name}" if lab_board else f"port-{port}")
        lock.acquire(timeout=float(options.get("lock_timeout_s", 3600)))
        flashed = not options.get("skip_flash")
        try:
            if flashed and options.get("pio"):     # the user's PlatformIO project flashes itself
                from harness import platformio
                platformio.upload(*options["pio"], port)
            elif flashed:     # the caller skips it when the running DUT already has this build
                uploader.upload(board, firmware, port)
        except BaseException:
            lock.release()
            raise
        return Target(url=port, backend=self.name, fidelity=self.fidelity, board=board,
                      description=f"{board.name} on {port}", stop_fn=lock.release,
                      info={"port": port, "flashed": flashed, "uploader": uploader.tool,
                            "build_id": getattr(firmware, "build_id", None),
                            "lab_board": lab_board.name if lab_board else None,
                            "note": uploader.note})

    def _start_on_place(self, board: Board, firmware, options: dict, port: str,
                        uploader: Uploader) -> Target:
        """A board on another host: reserve and acquire its labgrid place, flash and reach it
        over its NetworkSerialPort, release the place when the target stops or on failure."""
        from harness.labgrid import Place
        place = Place(port[len(URL_PREFIX):],
                      wait_timeout=float(options.get("lock_timeout_s", 3600)))
        place.acquire()
        try:
            endpoint = place.serial_endpoint()
            uploader.upload(board, firmware, uploader.network_port(endpoint))
        except BaseException:
            place.release()
            raise
        return Target(url=endpoint.url, backend=self.name, fidelity=self.fidelity, board=board,
                      description=f"{board.name} on labgrid place {place.name} ({endpoint.url})",
                      stop_fn=place.release,
                      info={"port": endpoint.url, "flashed": True, "uploader": uploader.tool,
                            "build_id": getattr(firmware, "build_id", None),
                            "labgrid_place": place.name, "waited_s": place.waited_s,
                            "note": uploader.note})
