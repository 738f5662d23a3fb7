"""Espressif's QEMU (`qemu-system-xtensa -machine esp32`) for the ESP32 boards.

Upstream QEMU (Debian's qemu-system-xtensa) has no ESP32 machine; Espressif's fork does. It is
looked for, in this order, through TINYHIL_QEMU_XTENSA, on PATH, and in ESP-IDF's tools folder
(~/.espressif/tools/qemu-xtensa/<version>/qemu/bin/), and a binary counts only if it lists
the esp32 machine.

The guest boots the real ESP32 ROM, which loads the app from a 4 MB flash image (esptool
merge-bin, app at 0x1000). UART0 is a local TCP socket that holds the guest until the harness
connects (wait=on), so no byte is lost. With -icount the CPU's CCOUNT advances by a fixed
amount per instruction at the clock the machine models (240 MHz once the firmware switched to
the PLL): counts are repeatable instruction counts, not silicon cycles.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness import workdirs
from harness.backends.base import Availability, Backend, StartRequest, Target
from harness.backends.processes import free_port, spawn, stderr_tail, stop_process, wait_listening
from harness.boards import Board
from harness.errors import BackendError, HarnessError
from harness.fidelity import INSTRUCTION_COUNT
from harness.tools import run_tool

ENV = "TINYHIL_QEMU_XTENSA"
EXECUTABLE = "qemu-system-xtensa"
ESPRESSIF_TOOLS = "~/.espressif/tools/qemu-xtensa/*/qemu/bin/qemu-system-xtensa"
INSTALL = ("install Espressif's QEMU: with ESP-IDF, `python $IDF_PATH/tools/idf_tools.py install "
           "qemu-xtensa` (it goes to ~/.espressif/tools/qemu-xtensa/), or unpack a release of "
           f"espressif/qemu and set {ENV}=/path/to/qemu-system-xtensa. Debian's "
           "qemu-system-xtensa has no esp32 machine")
BOOTED = re.compile(rb"entry 0x[0-9a-fA-F]{8}")
DOWNLOAD_MODE = re.compile(rb"boot:0x[0-9a-fA-F]+ \((?:UART_BOOT|DOWNLOAD)[^\n]*\n")
STRAP_DOWNLOAD = "driver=esp32.gpio,property=strap_mode,value=0x0f"


@dataclass(frozen=True)
class EspQemu:
    path: Path
    found_via: str          # "TINYHIL_QEMU_XTENSA", "PATH" or "ESP-IDF tools"
    version: str

    def __str__(self) -> str:
        return f"{self.version} at {self.path} (found via {self.found_via})"


def _candidates() -> list[tuple[Path, str]]:
    found = []
    if os.environ.get(ENV):
        found.append((Path(os.environ[ENV]).expanduser(), ENV))
    on_path = shutil.which(EXECUTABLE)
    if on_path:
        found.append((Path(on_path), "PATH"))
    tools = sorted(glob.glob(os.path.expanduser(ESPRESSIF_TOOLS)), reverse=True)
    found += [(Path(p), "ESP-IDF tools") for p in tools]
    return found


@functools.cache
def _probe(path: Path) -> tuple[bool, str]:
    """(has the esp32 machine, version line)."""
    machines = run_tool([path, "-machine", "help"], timeout=20).stdout
    version = run_tool([path, "--version"], timeout=20).stdout.splitlines()
    has = any(line.split()[:1] == ["esp32"] for line in machines.splitlines())
    return has, (version[0].strip() if version else "QEMU")


def find_esp_qemu() -> tuple[EspQemu | None, str]:
    """The first Espressif QEMU found, or None and why none was usable."""
    rejected = []
    for path, via in _candidates():
        if not path.exists():
            rejected.append(f"{path} ({via}) does not exist")
            continue
        has_esp32, version = _probe(path)
        if has_esp32:
            return EspQemu(path, via, version), ""
        rejected.append(f"{path} ({via}) has no esp32 machine")
    why = "; ".join(rejected) if rejected else f"no {EXECUTABLE} found"
    return None, why


def availability(board: Board) -> Availability:
    qemu, why = find_esp_qemu()
    if qemu is None:
        return Availability(False, f"Espressif's QEMU is not installed ({why})", INSTALL)
    try:
        from harness.build.xtensa import toolchain
        toolchain()
    except HarnessError as exc:
        return Availability(False, str(exc))
    return Availability(True, detail=f"Espressif QEMU: {qemu}")


def command(qemu: Path, flash: Path, port: int, icount_shift: int | None = 3,
            download_mode: bool = False) -> list[str]:
    cmd = [str(qemu), "-nographic", "-machine", "esp32", "-nic", "none",
           "-drive", f"file={flash},if=mtd,format=raw", "-monitor", "none",
           "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"]
    if icount_shift is not None:
        cmd += ["-icount", f"shift={icount_shift},sleep=off"]
    if download_mode:
        cmd += ["-global", STRAP_DOWNLOAD]
    return cmd


def read_boot(port: int, proc: subprocess.Popen, pattern: re.Pattern, timeout: float) -> bytes:
    """Connect (which lets the guest run), read the ROM's banner until `pattern`, disconnect.

    Returns what the ROM printed; raises BackendError when the guest did not get there in time
    (a ROM hang, a bad image) or QEMU died.
    """
    seen = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                break
            seen += chunk
            if pattern.search(seen):
                return seen
    return_code = proc.poll()
    state = f"QEMU exited with status {return_code}" if return_code is not None else \
        f"the guest did not get there within {timeout:.0f} s"
    raise BackendError(f"ESP32 guest did not boot ({state}). ROM output: "
                       f"{seen.decode(errors='replace')[-600:]!r}")


class QemuEsp32Backend(Backend):
    """One ESP32 guest on Espressif's QEMU, booting the real ROM, with -icount."""
    name = "qemu"
    fidelity = INSTRUCTION_COUNT

    def availability(self, board: Board) -> Availability:
        if "qemu" not in board.backends:
            return Availability(False, f"{board.name} has no [backends.qemu] table")
        return availability(board)

    def start(self, request: StartRequest) -> Target:
        board, firmware = request.board, request.firmware
        qemu, why = find_esp_qemu()
        if qemu is None:
            raise BackendError(f"Espressif's QEMU is not installed ({why}): {INSTALL}")
        app = getattr(firmware, "image", None)
        if not app:
            raise BackendError(f"{board.name}: firmware {firmware.elf} has no ESP32 app image "
                               "(esptool elf2image): rebuild it")
        from harness.build.xtensa import make_flash_image
        settings = board.backend_settings("qemu")
        workdir = workdirs.make("esp32")
        flash = make_flash_image(Path(app), workdir / "flash.bin")   # writable: QEMU needs it so
        shift = settings.get("icount_shift", 3)
        boot_timeout = float(settings.get("boot_timeout_s", 20))
        last_error = ""
        for _ in range(3):                      # the free port may be taken in between: retry
            port = free_port()
            cmd = command(qemu.path, flash, port, shift)
            proc = spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

            def stop(p=proc):
                stop_process(p)
                workdirs.remove(workdir)

            if not wait_listening(proc, port):
                last_error = stderr_tail(proc)
                stop_process(proc)
                continue
            try:
                banner = read_boot(port, proc, BOOTED, boot_timeout)
                # QEMU listens again once the harness's boot check has hung up.
                if not wait_listening(proc, port, timeout=5):
                    raise BackendError("QEMU did not accept a second connection after the boot check")
            except (BackendError, OSError) as exc:
                err = stderr_tail(proc)
                stop()
                raise BackendError(f"{exc} Command: `{' '.join(cmd)}` {err}".strip()) from None
            return Target(url=f"socket://127.0.0.1:{port}", backend=self.name, fidelity=self.fidelity,
                          board=board, description=" ".join(cmd), stop_fn=stop, process=proc,
                          emulator=str(qemu),
                          clock=f"CCOUNT at the CPU clock QEMU models ({board.clock_hz / 1e6:g} MHz, PLL)",
                          extras={"boot": banner.decode(errors="replace")})
        workdirs.remove(workdir)
        raise BackendError(f"Espressif QEMU did not start listening: `{' '.join(cmd)}`: {last_error}")
