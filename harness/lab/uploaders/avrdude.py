"""Flash an Arduino-class AVR through its bootloader (Optiboot, the Mega's STK500v2) with avrdude."""

from __future__ import annotations

from pathlib import Path

from harness.boards import Board
from harness.errors import BackendError
from harness.tools import require, run_tool

TOOL = "avrdude"
NOTE = ("opening the port auto-resets an Arduino: its bootloader runs about 1 s (Optiboot) "
        "before the app answers, so identify is retried for ~2 s")
UPLOAD_TIMEOUT = 120


def flash(board: Board, firmware, port: str) -> None:
    upload_avrdude(board, hex_of(firmware), port)


def hex_of(firmware) -> Path:
    """The Intel hex avrdude writes: the build's, else made from the ELF (a prebuilt one)."""
    if firmware.hex:
        return Path(firmware.hex)
    from harness.build.avr import make_hex
    from harness.paths import cache_dir
    out = cache_dir() / "prebuilt" / f"{firmware.sha256[:16]}.hex"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out if out.exists() else make_hex(Path(firmware.elf), out)


def upload_avrdude(board: Board, hex_path: Path, port: str, timeout: float = UPLOAD_TIMEOUT) -> None:
    """Write `hex_path` to the board's flash through its bootloader (-D: no chip erase, which
    Optiboot does not do; pages are erased as they are written)."""
    settings = board.backend_settings("hardware")
    avrdude = require("avrdude", f"to flash the {board.name}")
    command = [str(avrdude), "-c", settings.get("programmer", "arduino"),
               "-p", settings.get("part", board.mcu), "-P", port,
               "-b", str(settings.get("upload_baud", 115200)), "-D",
               "-U", f"flash:w:{hex_path}:i"]
    run_avrdude(command, timeout, "Is the port busy, or the board hung?",
                f"avrdude could not flash the {board.name} on {port}",
                "Likely causes: the wrong port; the port busy (a serial monitor holds it); the "
                "board not in its bootloader (no auto-reset, a clone without Optiboot, or the "
                "wrong upload_baud in the board file).")


def run_avrdude(command: list[str], timeout: float, hung_hint: str, what: str, causes: str,
                tail_lines: int = 12) -> None:
    """Run avrdude; a timeout or a failure is one BackendError with its command, the end of
    its output and what to check."""
    result = run_tool(command, timeout=timeout)
    if result.returncode == -9:
        raise BackendError(f"avrdude did not finish within {timeout:.0f} s: {' '.join(command)}. "
                           f"{hung_hint}")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-tail_lines:])
        raise BackendError(f"{what} (exit {result.returncode}): {' '.join(command)}\n{tail}\n{causes}")


def network_port(endpoint) -> str:
    return endpoint.avrdude_port
