"""native: the DUT firmware compiled for the host and run as a local process on a pty."""

from __future__ import annotations

import signal
import subprocess

from harness.backends.base import Availability, Backend, StartRequest, Target
from harness.backends.processes import read_announcement, spawn, stop_process
from harness.boards import Board
from harness.errors import BackendError
from harness.fidelity import WALL_CLOCK
from harness.tools import find_tool


class NativeBackend(Backend):
    name = "native"
    fidelity = WALL_CLOCK
    build = "host"

    def availability(self, board: Board) -> Availability:
        if "native" not in board.backends:
            return Availability(False, f"{board.name} has no [backends.native] table")
        cc = find_tool("cc")
        if not cc.found:
            return Availability(False, "no host C compiler (cc)", cc.install)
        return Availability(True)

    def start(self, request: StartRequest) -> Target:
        command = [str(request.firmware.elf)]
        proc = spawn(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        pty = read_announcement(proc, "TINYHIL_PTY", 10, command)
        return Target(url=pty, backend=self.name, fidelity=self.fidelity, board=request.board,
                      description=" ".join(command), stop_fn=lambda: stop_process(proc),
                      reset_fn=lambda: _reset(proc), process=proc,
                      clock="CLOCK_MONOTONIC of the host, in ns")


def _reset(proc: subprocess.Popen) -> None:
    """The native port restarts itself from scratch on SIGUSR1, on the same pty."""
    if proc.poll() is not None:
        raise BackendError(f"the native DUT (pid {proc.pid}) has exited with status {proc.returncode}")
    proc.send_signal(signal.SIGUSR1)
