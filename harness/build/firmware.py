"""Build the DUT firmware for a board: the architecture named in its board file
(`arch = "avr"`) is the module harness/build/<arch>.py, whose ARCH does what differs.
Adding an architecture is one such module and a board file."""

from __future__ import annotations

import importlib

from harness.boards import ARCHES, Board
from harness.build.core import Arch, Firmware, build
from harness.errors import BoardError


def arch_of(board: Board) -> Arch:
    if board.arch not in ARCHES:
        raise BoardError(f"{board.source}: arch {board.arch!r} has no build module "
                         f"(harness/build/{board.arch}.py); known: {', '.join(ARCHES)}")
    return importlib.import_module(f"harness.build.{board.arch}").ARCH


def build_firmware(board: Board, exported) -> Firmware:
    """The firmware for `board` with the model of `exported`, from the cache when unchanged."""
    return build(arch_of(board), board, exported)
