"""Backends: one way each to run firmware and reach it over a serial link.

Every backend yields the same thing, a `Target`: a pyserial URL (a device path, a pty,
`socket://host:port`), the fidelity label its time figures carry, and the means to reset and
stop. A new backend is a module here plus an entry in `BACKENDS`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
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
class Target:
    """A running DUT: where to talk to it and how far to trust its clock."""
    url: str
    backend: str
    fidelity: str
    board: Board
    description: str = ""                       # e.g. the emulator command line, for errors
    stop_fn: Callable[[], None] = lambda: None
    reset_fn: Callable[[], None] | None = None
    info: dict = field(default_factory=dict)    # backend-specific extras (pid, marker log, ...)

    def stop(self) -> None:
        self.stop_fn()

    def reset(self) -> None:
        if self.reset_fn is None:
            raise BackendError(f"backend {self.backend} cannot reset {self.board.name}")
        self.reset_fn()


class Backend(ABC):
    name: str = ""
    fidelity: str = ""
    #: which build of the firmware it runs: "host" (native) or "target" (the board's arch)
    build: str = "target"

    def fidelity_for(self, board: Board) -> str:
        """The fidelity of this backend's time figures for `board` (some depend on the board)."""
        return self.fidelity

    @abstractmethod
    def availability(self, board: Board) -> Availability:
        """Can this backend run `board` on this machine? If not, why and how to fix it."""

    def cannot_run(self, board: Board, firmware) -> str | None:
        """Why this backend cannot run this particular firmware, or None (the default)."""
        return None

    @abstractmethod
    def start(self, board: Board, firmware, options: dict) -> Target:
        """Flash or launch `firmware` (a harness.firmware.Firmware) and return a reachable Target.

        `options` carries user choices such as {"port": "/dev/ttyUSB0"}.
        """


BACKENDS = {
    "native": "harness.backends.native:NativeBackend",
    "simavr": "harness.backends.simavr:SimavrBackend",
    "qemu": "harness.backends.qemu:QemuBackend",
    "hardware": "harness.backends.hardware:HardwareBackend",
}


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}: choose one of auto, {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)()
