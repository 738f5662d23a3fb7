"""qemu: QEMU's AVR machines (qemu-system-avr -M uno / mega2560), serial port on a local socket;
and Espressif's QEMU for the ESP32 (harness.backends.qemu_esp32).

QEMU's AVR timers follow host time (even with -icount), so time figures from it are
labelled `functional`: the outputs are exact, the latencies are not a device's. The ESP32
machine runs with -icount: its figures are `instruction-count`.
"""

from __future__ import annotations

import socket
import subprocess
import time

from harness.backends import Availability, Backend, Target
from harness.backends.process import stop_process
from harness.boards import Board
from harness.errors import BackendError
from harness.fidelity import FUNCTIONAL, INSTRUCTION_COUNT
from harness.tools import find_tool

EXECUTABLES = {"avr": "qemu-system-avr"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class QemuBackend(Backend):
    name = "qemu"
    fidelity = FUNCTIONAL

    def fidelity_for(self, board: Board) -> str:
        return INSTRUCTION_COUNT if board.arch == "xtensa" else FUNCTIONAL

    def availability(self, board: Board) -> Availability:
        if "qemu" not in board.backends:
            return Availability(False, f"{board.name} has no [backends.qemu] table")
        if board.arch == "xtensa":
            from harness.backends import qemu_esp32
            return qemu_esp32.availability(board)
        tool = find_tool(EXECUTABLES.get(board.arch, "qemu-system-avr"))
        if not tool.found:
            return Availability(False, f"{tool.name} is not installed", tool.install)
        return Availability(True)

    def cannot_run(self, board: Board, firmware) -> str | None:
        # Seen with qemu-system-avr 7.2 on -M mega2560: a program whose .data initialisers lie
        # above 64 KB of flash starts with garbage in RAM (the start-up copy reads them with
        # ELPM), while the same ELF runs correctly on simavr.
        if board.arch == "avr" and firmware.flash_bytes > 0x10000:
            return (f"qemu-system-avr does not start programs larger than 64 KB correctly (this one "
                    f"is {firmware.flash_bytes:,} B: its RAM initialisers above 64 KB come out as "
                    "garbage); run it on simavr (--backend simavr) or on the board")
        return None

    def command(self, board: Board, firmware, port: int) -> list[str]:
        tool = find_tool(EXECUTABLES[board.arch])
        machine = board.backend_settings("qemu")["machine"]
        # wait=on: the guest does not run until the harness has connected, so no byte is lost.
        return [str(tool.path), "-M", machine, "-bios", str(firmware.elf), "-nographic",
                "-monitor", "none", "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on"]

    def start(self, board: Board, firmware, options: dict) -> Target:
        if board.arch == "xtensa":
            from harness.backends.qemu_esp32 import EspQemuLauncher
            return EspQemuLauncher().start(board, firmware, options)
        for _ in range(3):                      # the free port may be taken in between: retry
            port = free_port()
            command = self.command(board, firmware, port)
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            if self._listening(proc, port):
                return Target(url=f"socket://127.0.0.1:{port}", backend=self.name,
                              fidelity=self.fidelity, board=board, description=" ".join(command),
                              stop_fn=lambda p=proc: stop_process(p),
                              info={"pid": proc.pid, "process": proc, "command": command})
            stop_process(proc)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise BackendError(f"QEMU did not start listening: `{' '.join(command)}`: {err[-500:]}")

    @staticmethod
    def _listening(proc: subprocess.Popen, port: int, timeout: float = 10) -> bool:
        """QEMU listens before it runs; look for the socket in /proc/net/tcp, without connecting."""
        deadline = time.monotonic() + timeout
        needle = f":{port:04X} 00000000:0000 0A"     # LISTEN state
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with open("/proc/net/tcp") as table:
                    if needle in table.read():
                        return True
            except OSError:
                time.sleep(0.3)
                return proc.poll() is None
            time.sleep(0.02)
        return False
