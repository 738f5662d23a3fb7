"""The lab inventory: which physical boards exist, how to recognise each on USB, how to
power-cycle it, and (for boards on other hosts) which labgrid place holds it.

A lab file is TOML (see lab.example.toml):

    [[board]]
    name = "uno-1"                 # unique name of this physical board
    type = "uno"                   # a board of the catalogue (devices/boards/uno.toml)
    serial_number = "7583..."      # USB serial number: survives re-enumeration on another port
    vid = 0x2341                   # optional; default: the board type's [[usb]] ids
    pid = 0x0043
    location = "1-1.2"             # optional: USB port path, for clones without a serial number
    power_cycle = "uhubctl -l 1-1 -p 2 -a cycle"   # optional shell command
    place = "uno-rack2"            # optional: a labgrid place (the board sits on another host)

A board is found by its serial number when it has one, else by its USB location, else by
VID:PID alone (and then only when exactly one attached port has it). Ports come from
pyserial's list_ports; a provider can be passed instead (tests replay recorded port lists).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from harness.boards import Board, load_catalogue
from harness.errors import HarnessError

LAB_ENV = "TINYHIL_LAB"
KNOWN_KEYS = {"name", "type", "serial_number", "vid", "pid", "location", "power_cycle", "place",
              "description"}


class LabError(HarnessError):
    """The lab file is missing or malformed, or a lab board cannot be reached."""


@dataclass(frozen=True)
class LabBoard:
    name: str
    type: str
    serial_number: str | None = None
    vid: int | None = None
    pid: int | None = None
    location: str | None = None
    power_cycle: str | None = None
    place: str | None = None
    description: str = ""

    @property
    def identity(self) -> str:
        """How the board is recognised, for people."""
        parts = []
        if self.serial_number:
            parts.append(f"serial {self.serial_number}")
        if self.vid is not None:
            parts.append(f"{self.vid:04x}:{self.pid:04x}")
        if self.location:
            parts.append(f"location {self.location}")
        if self.place:
            parts.append(f"labgrid place {self.place}")
        return ", ".join(parts) or "nothing to recognise it by"


@dataclass(frozen=True)
class Lab:
    boards: tuple[LabBoard, ...]
    source: Path | None = None

    def of_type(self, board_type: str) -> list[LabBoard]:
        return [b for b in self.boards if b.type == board_type]

    def get(self, name: str) -> LabBoard:
        for board in self.boards:
            if board.name == name:
                return board
        raise LabError(f"no board named {name!r} in the lab file {self.source}: its boards are "
                       f"{', '.join(b.name for b in self.boards) or 'none'}")


def _int(value, key: str, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value, 16)
        except ValueError:
            raise LabError(f"{where}: {key} = {value!r} is not a hex number (write 0x2341 or "
                           "\"2341\")") from None
    if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise LabError(f"{where}: {key} must be a 16-bit USB id such as 0x2341, not {value!r}")
    return value


def parse_lab(data: dict, source: Path | None = None,
              catalogue: dict[str, Board] | None = None) -> Lab:
    where_file = f"lab file {source}" if source else "lab definition"
    entries = data.get("board", [])
    if not isinstance(entries, list) or not entries:
        raise LabError(f"{where_file} names no boards: add one [[board]] table per physical "
                       "board (see lab.example.toml)")
    catalogue = catalogue if catalogue is not None else load_catalogue()
    boards, seen = [], set()
    for index, entry in enumerate(entries, start=1):
        where = f"{where_file}, board {entry.get('name', f'#{index}')!r}"
        missing = [key for key in ("name", "type") if not entry.get(key)]
        if missing:
            raise LabError(f"{where} lacks {', '.join(missing)}: every [[board]] needs a unique "
                           "name and a type from devices/boards/")
        unknown = set(entry) - KNOWN_KEYS
        if unknown:
            raise LabError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known keys are "
                           f"{', '.join(sorted(KNOWN_KEYS))}")
        if entry["name"] in seen:
            raise LabError(f"{where_file}: two boards are named {entry['name']!r}; names must be unique")
        seen.add(entry["name"])
        if entry["type"] not in catalogue:
            raise LabError(f"{where}: type {entry['type']!r} is not a known board ("
                           f"{', '.join(catalogue)}); add devices/boards/{entry['type']}.toml")
        vid, pid = _int(entry.get("vid"), "vid", where), _int(entry.get("pid"), "pid", where)
        if (vid is None) != (pid is None):
            raise LabError(f"{where}: give vid and pid together, or neither")
        boards.append(LabBoard(
            name=entry["name"], type=entry["type"],
            serial_number=str(entry["serial_number"]) if entry.get("serial_number") else None,
            vid=vid, pid=pid, location=entry.get("location"), power_cycle=entry.get("power_cycle"),
            place=entry.get("place"), description=entry.get("description", "")))
    return Lab(tuple(boards), source)


def load_lab(path: Path | str, catalogue: dict[str, Board] | None = None) -> Lab:
    path = Path(path)
    if not path.is_file():
        raise LabError(f"lab file {path} does not exist: copy lab.example.toml and list your boards")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LabError(f"lab file {path} is not valid TOML: {exc}") from None
    return parse_lab(data, path, catalogue)


# --- the active lab (set by --lab or TINYHIL_LAB) -------------------------------------------------

_active: dict[str, Lab | None] = {}


def activate(path: Path | str | None) -> Lab | None:
    """Make `path` the lab the hardware backend consults (None: TINYHIL_LAB, or no lab)."""
    _active.clear()
    if path:
        os.environ[LAB_ENV] = str(Path(path).resolve())
    return active_lab()


def active_lab() -> Lab | None:
    path = os.environ.get(LAB_ENV)
    if not path:
        return None
    if path not in _active:
        _active[path] = load_lab(path)
    return _active[path]


# --- matching ports to lab boards -----------------------------------------------------------------

PortProvider = Callable[[], Iterable]


def list_serial_ports() -> list:
    """The serial devices attached to this host (pyserial's ListPortInfo objects)."""
    from serial.tools import list_ports
    return sorted(list_ports.comports(), key=lambda p: p.device)


def _usb_ids(board: LabBoard, catalogue: dict[str, Board]) -> set[tuple[int, int]]:
    if board.vid is not None:
        return {(board.vid, board.pid)}
    return {(u.vid, u.pid) for u in catalogue[board.type].usb}


def _matches(board: LabBoard, port, catalogue: dict[str, Board]) -> bool:
    if board.place:
        return False               # on another host: reached through labgrid, never a local port
    if board.serial_number:
        if (port.serial_number or "") != board.serial_number:
            return False
        return board.vid is None or (port.vid, port.pid) == (board.vid, board.pid)
    if port.vid is None or (port.vid, port.pid) not in _usb_ids(board, catalogue):
        return False
    return not board.location or port.location == board.location


@dataclass(frozen=True)
class Match:
    board: LabBoard
    ports: tuple                   # the attached ports that match it (one, ideally)

    @property
    def device(self) -> str | None:
        return self.ports[0].device if len(self.ports) == 1 else None

    @property
    def state(self) -> str:
        if self.board.place and not self.ports:
            return f"remote (labgrid place {self.board.place})"
        if not self.ports:
            return "not attached"
        if len(self.ports) > 1:
            return (f"ambiguous: {len(self.ports)} ports match ({', '.join(p.device for p in self.ports)});"
                    " add its serial_number or location to the lab file")
        return f"at {self.ports[0].device}"


def match_ports(lab: Lab, ports: Iterable, catalogue: dict[str, Board] | None = None) -> list[Match]:
    """Each lab board with the attached ports that match it."""
    catalogue = catalogue if catalogue is not None else load_catalogue()
    ports = list(ports)
    return [Match(board, tuple(p for p in ports if _matches(board, p, catalogue)))
            for board in lab.boards]


def find_port(board_type: Board, lab: Lab | None = None, provider: PortProvider | None = None,
              catalogue: dict[str, Board] | None = None) -> str | None:
    """Where a board of this type is: the first lab board of the type that is attached (its
    device path), or `labgrid://PLACE` for one reached through labgrid when a coordinator is
    set. Without a lab: the first port with one of the type's VID:PIDs that no lab board claims.
    """
    from harness.lab import labgrid

    lab = lab if lab is not None else active_lab()
    catalogue = catalogue if catalogue is not None else load_catalogue()
    ports = list((provider or list_serial_ports)())
    if lab is not None and lab.of_type(board_type.name):
        for match in match_ports(Lab(tuple(lab.of_type(board_type.name))), ports, catalogue):
            if match.device:
                return match.device
            if match.board.place and labgrid.coordinator():
                return labgrid.place_url(match.board.place)
        return None
    claimed = set()
    if lab is not None:
        claimed = {p.device for m in match_ports(lab, ports, catalogue) for p in m.ports}
    wanted = {(u.vid, u.pid) for u in board_type.usb}
    for port in ports:
        if port.device not in claimed and port.vid is not None and (port.vid, port.pid) in wanted:
            return port.device
    return None


def lab_board_at(port: str, lab: Lab | None = None, provider: PortProvider | None = None,
                 catalogue: dict[str, Board] | None = None) -> LabBoard | None:
    """The lab board attached at `port` (None when no lab board is there)."""
    lab = lab if lab is not None else active_lab()
    if lab is None:
        return None
    for match in match_ports(lab, (provider or list_serial_ports)(), catalogue):
        if match.device == port:
            return match.board
    return None


def guess_types(port, catalogue: dict[str, Board]) -> list[str]:
    """Board types whose [[usb]] ids this port has (a CH340 clone may be several)."""
    return [name for name, board in catalogue.items()
            if port.vid is not None and (port.vid, port.pid) in {(u.vid, u.pid) for u in board.usb}]


# --- power and exclusive use -------------------------------------------------------------------

def power_cycle(board: LabBoard, timeout: float = 60) -> None:
    """Run the board's power_cycle command; a board without one is an error naming the fix."""
    if not board.power_cycle:
        raise LabError(f"lab board {board.name} has no power_cycle command: add one to the lab "
                       "file (for example `uhubctl -l 1-1 -p 2 -a cycle`)")
    try:
        result = subprocess.run(shlex.split(board.power_cycle), capture_output=True, text=True,
                                timeout=timeout)
    except FileNotFoundError as exc:
        raise LabError(f"power_cycle of {board.name}: {exc.filename} is not installed") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"power_cycle of {board.name} did not finish within {timeout:.0f} s: "
                       f"{board.power_cycle}") from None
    if result.returncode != 0:
        raise LabError(f"power_cycle of {board.name} failed (exit {result.returncode}): "
                       f"{board.power_cycle}\n{(result.stdout + result.stderr).strip()[-800:]}")
