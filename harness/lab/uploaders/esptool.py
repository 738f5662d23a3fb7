"""Flash an ESP32 with esptool used as a library.

The flash's MD5 over the image's range (esptool's SPI_FLASH_MD5 command) is compared with the
image first: an unchanged image is not written again. Otherwise the image is written,
verified, and the chip is reset into the application (RTS/DTR). The ROM bootloader's serial
protocol is the same on a real board and in Espressif's QEMU started in download mode, which
is how the tests run this path without a board (there the ROM loader is used directly,
`stub=False`: esptool's stub flasher hangs in QEMU, and a socket has no RTS/DTR lines).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BackendError


@dataclass
class UploadResult:
    written: bool            # False: the flash already held this image (MD5 matched)
    flash_md5: str
    log: str


def _network_port(port: str) -> bool:
    return "://" in port and not port.startswith("rfc2217://")


def upload_esptool(image: Path, port: str, offset: int = 0x1000, chip: str = "esp32",
                   baud: int = 460800, stub: bool | None = None, reset: bool | None = None
                   ) -> UploadResult:
    """Write `image` at `offset` unless the flash already holds it; verify; reset into the app.

    `stub` and `reset` default to True on a serial device and False on a socket:// URL.
    """
    from esptool.cmds import attach_flash, detect_chip, reset_chip, run_stub, verify_flash, write_flash
    from esptool.util import FatalError

    data = Path(image).read_bytes()
    network = _network_port(port)
    stub = (not network) if stub is None else stub
    reset = (not network) if reset is None else reset
    log = io.StringIO()
    esp = None
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            esp = detect_chip(port, baud=115200, connect_mode="default-reset" if reset else "no-reset",
                              connect_attempts=3)
            if esp.CHIP_NAME.lower().replace("-", "") != chip.replace("-", ""):
                raise BackendError(f"the chip on {port} is an {esp.CHIP_NAME}, not an {chip}: "
                                   "check --port and the board file")
            if stub:
                esp = run_stub(esp)
            if baud != 115200 and not network:
                esp.change_baud(baud)
            attach_flash(esp)
            want = hashlib.md5(data).hexdigest()
            have = esp.flash_md5sum(offset, len(data))
            have = have if isinstance(have, str) else bytes(have).hex()
            written = have.lower() != want
            if written:
                write_flash(esp, [(offset, data)], flash_size="keep", no_progress=True)
                verify_flash(esp, [(offset, data)])
                have = esp.flash_md5sum(offset, len(data))
                have = have if isinstance(have, str) else bytes(have).hex()
            if reset:
                reset_chip(esp, "hard-reset")      # RTS pulse: EN low, GPIO0 high -> the app runs
    except BackendError:
        raise
    except FatalError as exc:
        raise BackendError(_explain(str(exc), port, log.getvalue())) from None
    except OSError as exc:                        # serial.SerialException is an OSError
        raise BackendError(_explain(str(exc), port, log.getvalue())) from None
    finally:
        if esp is not None:
            with contextlib.suppress(Exception):
                esp._port.close()
    return UploadResult(written, have, log.getvalue())


def _explain(error: str, port: str, log: str) -> str:
    tail = "\n".join(log.strip().splitlines()[-8:])
    if "busy" in error.lower() or "resource temporarily unavailable" in error.lower() or \
            "could not exclusively lock" in error.lower():
        hint = (f"{port} is held by another process (a serial monitor, another tinyhil run): "
                "close it and try again")
    elif "failed to connect" in error.lower() or "no serial data" in error.lower() or \
            "wrong boot mode" in error.lower():
        hint = ("the ESP32 is not in download mode: boards with auto-reset enter it through "
                "RTS/DTR; otherwise hold BOOT (GPIO0) low and press EN/RESET, then retry")
    elif "could not open" in error.lower() or "no such file" in error.lower():
        hint = f"{port} does not exist: check the cable and --port"
    else:
        hint = "see esptool's output above"
    return f"esptool could not flash the ESP32 on {port}: {error}\n{tail}\n{hint}"


TOOL = "esptool"
NOTE = ("esptool resets the ESP32 into the app (RTS); the ROM prints its banner at 115200 baud "
        "before the app answers")


def flash(board, firmware, port: str) -> None:
    """Write the firmware's app image to the board on `port` (a device path, rfc2217:// or
    socket://, as labgrid and ser2net export it)."""
    if not firmware.image:
        raise BackendError(f"{firmware.elf} has no ESP32 app image to flash (esptool elf2image)")
    settings = board.backend_settings("hardware")
    upload_esptool(Path(firmware.image), port, offset=firmware.image_offset or 0x1000,
                   chip=settings.get("chip", board.mcu), baud=int(settings.get("upload_baud", 460800)),
                   stub=settings.get("stub"), reset=settings.get("reset"))


def network_port(endpoint) -> str:
    return endpoint.url           # esptool takes rfc2217:// and socket:// URLs
