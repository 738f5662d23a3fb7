"""The board catalogue: one TOML file per board under devices/boards/. Boards are data, not code."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import BoardError
from harness.paths import boards_dir

REQUIRED = ("name", "description", "arch", "mcu", "toolchain", "clock_hz", "flash_bytes",
            "ram_bytes", "max_payload", "vector_capacity", "max_runs", "default_emulator")
ARCHES = ("host", "avr", "xtensa")


@dataclass(frozen=True)
class UsbId:
    vid: int
    pid: int
    name: str = ""


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    arch: str                      # "host", "avr", ...: picks the firmware port
    mcu: str
    toolchain: str
    clock_hz: int
    flash_bytes: int               # 0 means "no limit to check" (native)
    ram_bytes: int
    max_payload: int               # largest frame payload the firmware accepts
    vector_capacity: int           # largest test vector the firmware buffers
    max_runs: int                  # most per-run cycle counts one inference request returns
    default_emulator: str
    backends: dict[str, dict] = field(default_factory=dict)
    bootloader_bytes: int = 0
    stack_reserve_bytes: int = 0
    baud: int = 115200
    marker: dict = field(default_factory=dict)
    usb: tuple[UsbId, ...] = ()
    source: Path | None = None
    extra: dict = field(default_factory=dict)   # sections later features read (power, ...)

    @property
    def flash_limit(self) -> int:
        """Flash the application may use (the bootloader keeps its part)."""
        return self.flash_bytes - self.bootloader_bytes if self.flash_bytes else 0

    @property
    def ram_limit(self) -> int:
        """RAM for static data and stack together (the firmware check adds both)."""
        return self.ram_bytes

    def backend_settings(self, backend: str) -> dict:
        return self.backends.get(backend, {})


def parse_board(data: dict, source: Path | None = None) -> Board:
    where = f"board file {source}" if source else "board definition"
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise BoardError(f"{where} lacks {', '.join(missing)}: add them (see devices/boards/uno.toml "
                         "for a complete example)")
    if data["arch"] not in ARCHES:
        raise BoardError(f"{where}: arch {data['arch']!r} is not one of {', '.join(ARCHES)}")
    backends = data.get("backends", {})
    if not backends:
        raise BoardError(f"{where} names no [backends.*] table: add at least one backend "
                         "(native, simavr, qemu or hardware)")
    if data["default_emulator"] not in backends:
        raise BoardError(f"{where}: default_emulator {data['default_emulator']!r} has no "
                         f"[backends.{data['default_emulator']}] table")
    for key in ("clock_hz", "flash_bytes", "ram_bytes", "max_payload", "vector_capacity", "max_runs"):
        if not isinstance(data[key], int) or data[key] < 0:
            raise BoardError(f"{where}: {key} must be a non-negative integer, not {data[key]!r}")
    known = set(REQUIRED) | {"backends", "bootloader_bytes", "stack_reserve_bytes", "baud",
                             "marker", "usb"}
    return Board(
        name=data["name"], description=data["description"], arch=data["arch"], mcu=data["mcu"],
        toolchain=data["toolchain"], clock_hz=data["clock_hz"], flash_bytes=data["flash_bytes"],
        ram_bytes=data["ram_bytes"], max_payload=data["max_payload"],
        vector_capacity=data["vector_capacity"], max_runs=data["max_runs"],
        default_emulator=data["default_emulator"], backends=backends,
        bootloader_bytes=data.get("bootloader_bytes", 0),
        stack_reserve_bytes=data.get("stack_reserve_bytes", 0), baud=data.get("baud", 115200),
        marker=data.get("marker", {}),
        usb=tuple(UsbId(u["vid"], u["pid"], u.get("name", "")) for u in data.get("usb", [])),
        source=source, extra={k: v for k, v in data.items() if k not in known},
    )


def load_board_file(path: Path) -> Board:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(f"board file {path} is not valid TOML: {exc}") from None
    board = parse_board(data, path)
    if board.name != path.stem:
        raise BoardError(f"board file {path} says name = {board.name!r}; rename the file or the board "
                         "so that they match")
    return board


def load_catalogue(directory: Path | None = None) -> dict[str, Board]:
    directory = directory or boards_dir()
    return {path.stem: load_board_file(path) for path in sorted(directory.glob("*.toml"))}


def get_board(name: str, directory: Path | None = None) -> Board:
    catalogue = load_catalogue(directory)
    if name not in catalogue:
        raise BoardError(f"unknown board {name!r}: known boards are {', '.join(catalogue)}. "
                         f"To add one, put a {name}.toml in {directory or boards_dir()}")
    return catalogue[name]
