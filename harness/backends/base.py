"""The backend contract: what a backend is asked (StartRequest), what it yields (Target), and
how it says whether it can run here (Availability). One class per way of running firmware
(harness/backends/<name>.py); the registry is harness.backends."""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.boards import Board
from harness.errors import BackendError


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""          # why it cannot run here
    fix: str = ""             # what to install or do
    detail: str = ""          # when usable: what it found (which emulator binary, ...)

    def __str__(self) -> str:
        if self.ok:
            return f"usable: {self.detail}" if self.detail else "usable"
        return f"{self.reason}; fix: {self.fix}" if self.fix else self.reason


@dataclass
class BoardResource:
    """A physical board the lab resolved for this run: where its serial port is reached and
    what holds it (a lock file, a labgrid place) until `release()`. Backends bind to it; they
    never look a board up themselves."""
    url: str                          # a device path, socket:// or rfc2217://
    description: str                  # "uno on /dev/ttyACM0", "uno on labgrid place lab-uno"
    release: Callable[[], None] = lambda: None
    lab_board: str | None = None      # the lab file's name for it
    flashed: bool = False             # the lab flashed it for this run (else it held the build)
    uploader: str = ""
    note: str = ""                    # what the uploader says about the first moments after flashing


@dataclass(frozen=True)
class StartRequest:
    board: Board
    firmware: object                  # harness.build.core.Firmware
    resource: BoardResource | None = None   # the hardware backend's board


@dataclass
class Target:
    """A running DUT: where to talk to it, how far to trust its clock, how to reset and stop."""
    url: str
    backend: str
    fidelity: str
    board: Board
    description: str = ""                        # e.g. the emulator command line, for errors
    stop_fn: Callable[[], None] = lambda: None
    reset_fn: Callable[[], None] | None = None
    process: subprocess.Popen | None = None      # the local process behind it (emulator, DUT)
    emulator: str = ""                           # which emulator binary ran it (version, path)
    clock: str = ""                              # which clock its counts tick at
    marker_log: Path | None = None               # simavr: marker edges and sleeps, exact cycles
    port_dirs: tuple[Path, ...] = ()             # extra by-id folders where its port reappears
    resource: BoardResource | None = None        # hardware: the lab's board
    build_id: str = ""
    extras: dict = field(default_factory=dict)   # read by nothing but people (boot banner, ...)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self) -> None:
        self.stop_fn()

    def reset(self) -> None:
        if self.reset_fn is None:
            raise BackendError(f"backend {self.backend} cannot reset {self.board.name}")
        self.reset_fn()


class Backend(ABC):
    name: str = ""                   # as --backend and the records name it
    fidelity: str = ""               # of every time figure it gives: decided here, once
    build: str = "target"            # which build it runs: "host" (native) or "target"
    identify_attempts: int | None = None   # None: the client's default
    identify_timeout: float | None = None

    @abstractmethod
    def availability(self, board: Board) -> Availability:
        """Can this backend run `board` on this machine? If not, why and how to fix it."""

    def cannot_run(self, board: Board, firmware) -> str | None:
        """Why this backend cannot run this particular firmware, or None (the default)."""
        return None

    @abstractmethod
    def start(self, request: StartRequest) -> Target:
        """Launch (or bind to) the firmware and return a reachable Target."""
