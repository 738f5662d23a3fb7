"""The board catalogue: one TOML file per board under devices/boards/. Boards are data, not code."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import board_schema
from harness.errors import BoardError
from harness.paths import BOARDS_ENV, boards_dir, user_boards_dirs

REQUIRED = tuple(key for key, _, required in board_schema.TOP if required)
ARCHES = ("host", "avr", "xtensa")
#: what the DUT speaks on its link: tinyhil's binary protocol, or MLPerf Tiny's (EEMBC) text one
PROTOCOLS = ("tinyhil", "eembc")


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
    # The UART rate of firmware built for an emulator: the fastest rate the MCU makes exactly
    # from its clock (a simulated UART paces bytes at the programmed rate; a real board's
    # USB-serial bridge keeps `baud`). 0: the same as `baud`.
    emulator_baud: int = 0
    marker: dict = field(default_factory=dict)
    protocol: str = "tinyhil"      # PROTOCOLS: the runtime the firmware is built with
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

    def for_emulator(self) -> "Board":
        """This board as firmware for an emulator is built: at its emulator UART rate."""
        return replace(self, baud=self.emulator_baud) if self.emulator_baud else self

    def backend_settings(self, backend: str) -> dict:
        return self.backends.get(backend, {})


def parse_board(data: dict, source: Path | None = None) -> Board:
    where = f"board file {source}" if source else "board definition"
    board_schema.check(data, where)
    if data["arch"] not in ARCHES:
        raise BoardError(f"{where}: arch {data['arch']!r} is not one of {', '.join(ARCHES)}")
    backends = data.get("backends", {})
    if not backends:
        raise BoardError(f"{where} names no [backends.*] table: add at least one backend "
                         "(native, simavr, qemu or hardware)")
    if data["default_emulator"] not in backends:
        raise BoardError(f"{where}: default_emulator {data['default_emulator']!r} has no "
                         f"[backends.{data['default_emulator']}] table")
    if data.get("protocol", "tinyhil") not in PROTOCOLS:
        raise BoardError(f"{where}: protocol {data['protocol']!r} is not one of "
                         f"{', '.join(PROTOCOLS)}")
    known = set(REQUIRED) | {"backends", "bootloader_bytes", "stack_reserve_bytes", "baud",
                             "emulator_baud", "marker", "usb", "protocol"}
    return Board(
        name=data["name"], description=data["description"], arch=data["arch"], mcu=data["mcu"],
        toolchain=data["toolchain"], clock_hz=data["clock_hz"], flash_bytes=data["flash_bytes"],
        ram_bytes=data["ram_bytes"], max_payload=data["max_payload"],
        vector_capacity=data["vector_capacity"], max_runs=data["max_runs"],
        default_emulator=data["default_emulator"], backends=backends,
        bootloader_bytes=data.get("bootloader_bytes", 0),
        stack_reserve_bytes=data.get("stack_reserve_bytes", 0), baud=data.get("baud", 115200),
        emulator_baud=data.get("emulator_baud", 0), marker=data.get("marker", {}),
        protocol=data.get("protocol", "tinyhil"),
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


@dataclass(frozen=True)
class CatalogueScan:
    """Every board file read: the boards, and what the run header should say about the rest."""
    boards: dict[str, Board]
    broken: dict[str, str]              # board name (file stem) -> what is wrong with its file
    overridden: dict[str, Path]         # built-in board name -> the user's file that replaced it

    def notes(self) -> list[str]:
        lines = [f"board {name} from {path} (replaces the built-in {name})"
                 for name, path in self.overridden.items()]
        return lines + [f"board {name} left out: {problem}" for name, problem in self.broken.items()]


def scan_catalogue(directory: Path | None = None) -> CatalogueScan:
    """The built-in boards, then the user's folders (TINYHIL_BOARDS_DIR), later ones winning by
    name. One broken file leaves out that board alone, with the reason."""
    folders = [directory] if directory else [boards_dir(), *user_boards_dirs()]
    boards: dict[str, Board] = {}
    broken: dict[str, str] = {}
    overridden: dict[str, Path] = {}
    for index, folder in enumerate(folders):
        if index and not folder.is_dir():
            broken[str(folder)] = f"{BOARDS_ENV} names {folder}, which is not a folder"
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                board = load_board_file(path)
            except BoardError as exc:
                broken[path.stem] = str(exc)
                continue
            if index and path.stem in boards and boards[path.stem].source.parent == boards_dir():
                overridden[path.stem] = path
            boards[path.stem] = board
            broken.pop(path.stem, None)
    return CatalogueScan(boards, broken, overridden)


def load_catalogue(directory: Path | None = None) -> dict[str, Board]:
    return scan_catalogue(directory).boards


def get_board(name: str, directory: Path | None = None) -> Board:
    scan = scan_catalogue(directory)
    if name in scan.broken:
        raise BoardError(scan.broken[name])
    if name not in scan.boards:
        raise BoardError(f"unknown board {name!r}: known boards are {', '.join(scan.boards)}. "
                         f"To add one, put a {name}.toml in a folder named by {BOARDS_ENV}")
    return scan.boards[name]
