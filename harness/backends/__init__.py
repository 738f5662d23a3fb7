"""Backends: one way each to run firmware and reach it over a serial link.

Every backend yields the same thing, a `Target` (harness.backends.base): a pyserial URL, the
fidelity of its time figures, and the means to reset and stop. `qemu` is two emulators, picked
by the board's architecture: qemu-system-avr and Espressif's qemu-system-xtensa. A new backend
is a module here plus an entry in BACKENDS.
"""

from __future__ import annotations

import importlib

from harness.backends.base import Backend
from harness.boards import Board
from harness.errors import BackendError

BACKENDS: dict[str, str | dict[str, str]] = {
    "native": "harness.backends.native:NativeBackend",
    "simavr": "harness.backends.simavr:SimavrBackend",
    "qemu": {"avr": "harness.backends.qemu_avr:QemuAvrBackend",
             "xtensa": "harness.backends.qemu_esp32:QemuEsp32Backend"},
    "hardware": "harness.backends.hardware:HardwareBackend",
}


def check_backend_name(name: str) -> None:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}: choose one of auto, {', '.join(BACKENDS)}")


def get_backend(name: str, board: Board) -> Backend:
    """The backend `name` for this board (for qemu, the emulator of the board's architecture)."""
    check_backend_name(name)
    entry = BACKENDS[name]
    if isinstance(entry, dict):
        if board.arch not in entry:
            raise BackendError(f"{name} has no emulator for {board.name}'s architecture "
                               f"{board.arch!r} (it has: {', '.join(entry)})")
        entry = entry[board.arch]
    module, cls = entry.split(":")
    return getattr(importlib.import_module(module), cls)()


def fidelity_of(backend: str, board: Board) -> str:
    """The one place a figure's fidelity is decided: the backend that ran it, on that board."""
    return get_backend(backend, board).fidelity
