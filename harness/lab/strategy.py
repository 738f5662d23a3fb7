"""Bring a physical board to a build, as one small state machine (labgrid's strategies are
the model):

    located -> held -> checked -> (flashed) -> resolved

located: the port (--port, the lab file's board found by its USB serial number, or the first
port with one of the board type's VID:PIDs; `labgrid://PLACE` for a board on another host);
held: a lock file per board (or the labgrid place acquired), so one process drives it;
checked: the board is asked which build it runs (through its bootloader's reset, retried);
flashed: only when it runs another build, with the board file's uploader (or the user's
PlatformIO project). The result is the BoardResource the hardware backend binds to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.backends.base import Availability, BoardResource
from harness.boards import Board
from harness.errors import BackendError, HarnessError
from harness.lab import labgrid
from harness.lab.uploaders import UPLOADERS, get_uploader
from harness.tools import find_tool

DEFAULT_LOCK_TIMEOUT_S = 3600.0


def attached_port(board: Board) -> str | None:
    """Where a board of this type is attached (the lab file's, else by USB VID:PID), or None."""
    from harness.lab import inventory
    try:
        return inventory.find_port(board)
    except ImportError:            # pyserial's list_ports is missing
        return None


def usb_ids(board: Board) -> str:
    return ", ".join(f"{u.vid:04x}:{u.pid:04x}" for u in board.usb) or "none listed"


def port_hint(board: Board) -> str:
    """The port a board of this kind usually appears at: CDC-ACM on Arduinos' own USB chips
    (ttyACM), a USB-serial bridge (CP210x, CH340, FTDI: ttyUSB) on ESP32 boards."""
    return str(board.backend_settings("hardware").get("port_hint", "/dev/ttyACM0"))


def availability(board: Board, port: str | None) -> Availability:
    """Can the lab bring this board to a build here: its uploader installed, the board found?"""
    settings = board.backend_settings("hardware")
    uploader = get_uploader(settings.get("uploader", ""))
    if uploader is None:
        return Availability(False, f"uploader {settings.get('uploader')!r} of {board.name} is "
                            f"not supported (supported: {', '.join(UPLOADERS)})")
    tool = find_tool(uploader.TOOL)
    if not tool.found:
        return Availability(False, tool.missing, tool.install)
    where = port or attached_port(board)
    if labgrid.is_place_url(where) and labgrid.client_path() is None:
        return Availability(False, f"{board.name} is on labgrid place "
                            f"{where[len(labgrid.URL_PREFIX):]} but labgrid is not installed",
                            labgrid.INSTALL)
    if not where:
        return Availability(False, f"no {board.name} attached (looked for VID:PID "
                            f"{usb_ids(board)}); connect one or pass --port",
                            f"connect the board by USB, or pass --port {port_hint(board)}")
    return Availability(True, detail=f"attached at {where}")


@dataclass
class BoardStrategy:
    board: Board
    port: str | None = None                       # --port; else found
    pio: tuple[Path, str] | None = None           # the user's PlatformIO project flashes itself
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    state: str = "new"

    def bring_to(self, firmware, holds_build) -> BoardResource:
        """The board running `firmware`, held for this process. `holds_build(url)` asks the
        board which build it runs (True: the same one, so it is not flashed again)."""
        uploader = get_uploader(self.board.backend_settings("hardware").get("uploader", ""))
        if uploader is None:
            raise BackendError(f"{self.board.name}: its uploader is not supported "
                               f"(supported: {', '.join(UPLOADERS)})")
        where = self.port or attached_port(self.board)
        if not where:
            raise BackendError(f"no {self.board.name} attached (looked for VID:PID "
                               f"{usb_ids(self.board)}): connect one or pass --port")
        self.state = "located"
        resource, upload_port = self._hold(where, uploader)
        self.state = "held"
        try:
            same = not labgrid.is_place_url(where) and not self.pio and holds_build(resource.url)
            self.state = "checked"
            if not same:
                self._flash(firmware, uploader, upload_port)
                self.state = "flashed"
        except BaseException:
            resource.release()
            raise
        resource.flashed = not same
        resource.uploader = "pio" if self.pio else uploader.TOOL
        resource.note = uploader.NOTE
        self.state = "resolved"
        return resource

    def _hold(self, where: str, uploader) -> tuple[BoardResource, str]:
        if labgrid.is_place_url(where):
            place = labgrid.Place(where[len(labgrid.URL_PREFIX):], wait_timeout=self.lock_timeout_s)
            place.acquire()
            try:
                endpoint = place.serial_endpoint()
            except BaseException:
                place.release()
                raise
            return (BoardResource(endpoint.url, f"{self.board.name} on labgrid place {place.name} "
                                  f"({endpoint.url})", place.release),
                    uploader.network_port(endpoint))
        from harness.lab.inventory import lab_board_at
        from harness.lab.locks import BoardLock
        lab_board = lab_board_at(where)
        lock = BoardLock(f"board-{lab_board.name}" if lab_board else f"port-{where}")
        lock.acquire(timeout=self.lock_timeout_s)
        return (BoardResource(where, f"{self.board.name} on {where}", lock.release,
                              lab_board=lab_board.name if lab_board else None), where)

    def _flash(self, firmware, uploader, port: str) -> None:
        if self.pio:
            from harness.lab.uploaders.platformio import flash_project
            flash_project(*self.pio, port)
        else:
            uploader.flash(self.board, firmware, port)


def holds_build_check(board: Board, build_id: str, identify):
    """A `holds_build` for BoardStrategy: `identify(url)` returns the board's Identity or
    raises HarnessError when no tinyhil firmware answers (then it is flashed)."""
    def holds(url: str) -> bool:
        try:
            return identify(url).build_id == build_id
        except HarnessError:
            return False
    return holds
