"""simavr: a cycle-accurate AVR, with UART0 on a pseudo-terminal.

The `simavr` command takes no UART input, so the harness builds a small bridge program
(devices/simavr_bridge/tinyhil_simavr.c) against libsimavr on first use. The bridge prints
`PTY <path>`, holds the CPU until the host opens that path (no boot byte is lost), bridges the
UART with flow control, and logs marker-pin edges at exact cycle counts for energy windows.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.backends.base import Availability, Backend, StartRequest, Target
from harness.backends.processes import read_announcement, spawn, stop_process
from harness import workdirs
from harness.boards import Board
from harness.errors import BackendError, BuildError
from harness.fidelity import CYCLE_ACCURATE
from harness.paths import cache_dir, devices_dir
from harness.tools import find_tool, run_tool

INSTALL = "sudo apt-get install simavr libsimavr-dev libelf-dev"
HEADER = Path("/usr/include/simavr/sim_avr.h")
LIBS = ("-lsimavr", "-lelf", "-lpthread", "-lutil")
ANNOUNCE_TIMEOUT = 10.0


def bridge_source() -> Path:
    return devices_dir() / "simavr_bridge" / "tinyhil_simavr.c"


def _libsimavr_found(cc: Path) -> bool:
    """Ask the linker: it prints the full path of a library it can find, else the bare name."""
    for name in ("libsimavr.so", "libsimavr.a"):
        out = run_tool([cc, f"-print-file-name={name}"], timeout=30).stdout.strip()
        if os.path.isabs(out) and Path(out).exists():
            return True
    return False


def bridge_binary() -> Path:
    """Build the bridge once per source version; later calls reuse the cached binary."""
    source = bridge_source()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    binary = cache_dir() / "simavr-bridge" / digest / "tinyhil-simavr"
    if binary.is_file():
        return binary
    cc = find_tool("cc")
    if not cc.found:
        raise BuildError(f"cc is not installed (needed to build the simavr bridge): `{cc.install}`")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(f"tinyhil-simavr.{os.getpid()}.tmp")
    command = [str(cc.path), "-O2", "-Wall", f"-I{HEADER.parent}", str(source), "-o", str(tmp), *LIBS]
    result = run_tool(command, timeout=120)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"building the simavr bridge failed: {' '.join(command)}\n"
                         f"{result.stderr[-2000:]}\nIs libsimavr installed? `{INSTALL}`")
    tmp.replace(binary)         # atomic: a concurrent session never runs half a binary
    return binary


@dataclass
class Bridge:
    """A running bridge process: its pty, its logs, and how to reset and stop it."""
    process: subprocess.Popen
    pty: str
    command: list[str]
    workdir: Path
    stderr_log: Path
    marker_log: Path | None = None      # "<level> <cycle>" per edge; removed by stop()

    def reset(self) -> None:
        """External reset (the RESET pin): the bridge handles SIGUSR1 between instructions."""
        if self.process.poll() is not None:
            raise BackendError(f"the simavr bridge has exited ({self.process.returncode}): "
                               f"{self.stderr_text()[-500:]}")
        self.process.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        try:
            stop_process(self.process)
        finally:
            self._kept_stderr = self.stderr_text()[-4000:]    # still there to explain a death
            workdirs.remove(self.workdir)

    def stderr_text(self) -> str:
        try:
            return self.stderr_log.read_text(errors="replace")
        except OSError:
            return getattr(self, "_kept_stderr", "")


def launch_bridge(mcu: str, clock_hz: int, firmware_elf: Path | None = None, *,
                  marker: str | None = None, bootloader: Path | None = None,
                  boot_addr: int | None = None, reset_on_open: bool = False,
                  realtime: bool = False, soft_uart: dict | None = None,
                  baud: int | None = None) -> Bridge:
    """Start the bridge and wait for its `PTY <path>` line."""
    workdir = workdirs.make("simavr")
    command = [str(bridge_binary()), "--mcu", mcu, "--freq", str(clock_hz)]
    marker_log = None
    if marker:
        marker_log = workdir / "marker.log"
        command += ["--marker", marker, "--marker-log", str(marker_log)]
    if bootloader:
        command += ["--bootloader", str(bootloader), "--boot-addr", hex(boot_addr or 0)]
    if reset_on_open:
        command.append("--reset-on-open")
    if realtime:
        command.append("--realtime")
    if soft_uart:       # no UART0: the bridge works the two pins of a bit-banged UART
        command += ["--soft-uart-tx", soft_uart["tx"], "--soft-uart-rx", soft_uart["rx"],
                    "--baud", str(baud)]
    if firmware_elf:
        command.append(str(firmware_elf))

    stderr_log = workdir / "stderr.log"
    with open(stderr_log, "wb") as err:     # a file, not a pipe: nobody must drain it
        process = spawn(command, stdout=subprocess.PIPE, stderr=err)
    bridge = Bridge(process, "", command, workdir, stderr_log, marker_log)
    try:
        bridge.pty = read_announcement(process, "PTY", ANNOUNCE_TIMEOUT, command)
    except BackendError as exc:
        stderr = bridge.stderr_text()[-1500:]
        workdirs.remove(workdir)
        raise BackendError(f"{exc}\nstderr: {stderr}") from None
    return bridge


def marker_spec(board: Board) -> str | None:
    """The board's marker pin as the bridge wants it: port "B", bit 5 -> "B5"."""
    if not board.marker:
        return None
    return f"{board.marker['port']}{board.marker['bit']}"


class SimavrBackend(Backend):
    name = "simavr"
    fidelity = CYCLE_ACCURATE
    build = "target"

    def availability(self, board: Board) -> Availability:
        if not board.backend_settings("simavr"):
            return Availability(False, f"{board.name} has no [backends.simavr] table",
                                f"add one to {board.source or 'its board file'}")
        cc = find_tool("cc")
        if not cc.found:
            return Availability(False, "cc is not installed (it builds the simavr bridge)", cc.install)
        if not HEADER.is_file():
            return Availability(False, f"the simavr headers ({HEADER}) are missing", INSTALL)
        if not _libsimavr_found(cc.path):
            return Availability(False, "libsimavr is not installed", INSTALL)
        return Availability(True)

    def start(self, request: StartRequest) -> Target:
        board = request.board
        settings = board.backend_settings("simavr")
        bridge = launch_bridge(settings.get("mcu", board.mcu), board.clock_hz, Path(request.firmware.elf),
                               marker=marker_spec(board), soft_uart=board.extra.get("soft_uart"),
                               baud=board.baud)
        return Target(url=bridge.pty, backend=self.name, fidelity=self.fidelity, board=board,
                      description=" ".join(bridge.command), stop_fn=bridge.stop,
                      reset_fn=bridge.reset, process=bridge.process,
                      emulator=f"simavr bridge {bridge.command[0]}", marker_log=bridge.marker_log,
                      clock=f"AVR CPU cycles at {board.clock_hz / 1e6:g} MHz",
                      extras={"stderr_log": str(bridge.stderr_log)})


def start_simulated_arduino(board: Board, bootloader_hex: Path,
                            app_elf: Path | None = None) -> tuple[str, Bridge]:
    """An Arduino for avrdude: bootloader at the top of flash, every open of the port resets
    into it (like DTR auto-reset), simulated time paced to wall time (Optiboot's 1 s window).

    Returns the pty path and the bridge; call bridge.stop() when done.
    """
    settings = board.backend_settings("simavr")
    boot_addr = board.flash_bytes - board.bootloader_bytes
    if not board.bootloader_bytes:
        raise BackendError(f"{board.name} declares no bootloader_bytes: no boot section to simulate")
    bridge = launch_bridge(settings.get("mcu", board.mcu), board.clock_hz, app_elf,
                           bootloader=bootloader_hex, boot_addr=boot_addr,
                           reset_on_open=True, realtime=True)
    return bridge.pty, bridge
