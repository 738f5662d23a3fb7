"""Faults of the board, the link or the host: detect them in bounded time, recover where
possible, and report each one as a failure event, never as a figure.

| kind            | how it shows                                | recovery                             |
|-----------------|---------------------------------------------|--------------------------------------|
| `link`          | BAD_CRC, rejected frames, lost replies      | resend (the protocol does it)        |
| `dut_reset`     | a lost reply, then IDENTITY without its     | resend; re-identify: same build?     |
|                 | IDENTIFIED_BEFORE flag                      |                                      |
| `dut_hang`      | no reply; the process stopped or idle       | reset, else relaunch the target      |
| `emulator_died` | no reply, or EOF; the process has exited    | relaunch the target                  |
| `port_vanished` | the port reads EOF or fails; its path gone  | wait for a port with the same serial |
|                 |                                             | number (by-id, USB), reopen it       |

A `Supervisor` runs each request of a `Dut` through this; the session turns its events into
`failure` records.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.cpu_watch import process_state
from harness.errors import HarnessError, ProtocolError
from harness.protocol.client import DutClient, LinkLost, LinkNoisy, NoReply
from harness.protocol.wire import FLAG

KINDS = {
    "link": "frames corrupted or lost on the link, resent",
    "dut_reset": "the DUT restarted in the middle of the run",
    "dut_hang": "the DUT stopped answering",
    "emulator_died": "the emulator or DUT process exited",
    "port_vanished": "the serial port disappeared (unplugged or re-enumerated)",
}
BY_ID_DIRS = (Path("/dev/serial/by-id"),)
REOPEN_WAIT_S = 10.0        # how long a vanished port may take to come back
EXIT_WAIT_S = 2.0           # a killed process's link reads EOF before the process is reaped
RESET_SETTLE_S = 0.05


@dataclass
class FaultEvent:
    kind: str
    detail: str
    detected_after_s: float          # from the start of the failing request to the diagnosis
    action: str = ""                 # what the harness did about it
    recovered: bool = False
    recovery_s: float = 0.0

    def describe(self) -> str:
        state = "recovered" if self.recovered else "NOT recovered"
        return (f"{self.kind}: {self.detail}; detected after {self.detected_after_s:.2f} s; "
                f"{self.action or 'no action'} ({state} in {self.recovery_s:.2f} s)")


class DutFault(ProtocolError):
    """A fault the harness could not recover from; the run carries on with the next test."""

    def __init__(self, event: FaultEvent):
        super().__init__(f"the DUT failed and could not be recovered: {event.describe()}")
        self.event = event


# --- what is wrong ---------------------------------------------------------------------------

def process_problem(target) -> tuple[str, str] | None:
    """(kind, detail) when the target's process has exited or is stopped; None otherwise."""
    proc, pid = target.process, target.pid
    if proc is not None and proc.poll() is not None:
        return "emulator_died", f"process {proc.pid} exited with status {proc.returncode}"
    if pid:
        state = process_state(pid)
        if state is None:
            return "emulator_died", f"process {pid} is gone"
        if state in ("T", "t"):
            return "dut_hang", f"process {pid} is stopped (state {state}): it cannot answer"
    return None


# --- finding a port again by identity --------------------------------------------------------

@dataclass(frozen=True)
class PortIdentity:
    """What a port is, independent of its /dev name: its USB serial number (and ids)."""
    url: str
    serial_number: str | None = None
    vid: int | None = None
    pid: int | None = None
    by_id_dirs: tuple[Path, ...] = BY_ID_DIRS

    @classmethod
    def of(cls, url: str, extra_dirs: tuple[Path, ...] = ()) -> "PortIdentity":
        dirs = tuple(extra_dirs) + BY_ID_DIRS
        serial_number = _serial_from_by_id(Path(url)) if Path(url).parent in dirs else None
        vid = pid = None
        if serial_number is None:
            info = _comport(os.path.realpath(url))
            if info is not None:
                serial_number, vid, pid = info.serial_number, info.vid, info.pid
        return cls(url, serial_number, vid, pid, dirs)

    def find(self) -> str | None:
        """The port's current path, or None while it is absent."""
        if "://" in self.url:
            return self.url          # a network URL (an emulator's socket) has no node to vanish
        if not self.serial_number:
            present = "://" in self.url or Path(self.url).exists()   # socket:// has no path
            return self.url if present else None
        for directory in self.by_id_dirs:
            try:
                entries = sorted(directory.iterdir())
            except OSError:
                continue
            for entry in entries:
                if _serial_from_by_id(entry) == self.serial_number and entry.exists():
                    return str(entry)
        try:
            from serial.tools import list_ports
            for port in list_ports.comports():
                if port.serial_number == self.serial_number and (self.vid is None or port.vid == self.vid):
                    return port.device
        except ImportError:
            pass
        return None


def _serial_from_by_id(path: Path) -> str | None:
    """udev names: usb-<vendor>_<model>_<serial>-if<NN>[-port<N>]."""
    name = path.name
    if not name.startswith("usb-") or "-if" not in name:
        return None
    return name[4:name.rindex("-if")].rsplit("_", 1)[-1] or None


def _comport(device: str):
    try:
        from serial.tools import list_ports
    except ImportError:
        return None
    return next((p for p in list_ports.comports() if os.path.realpath(p.device) == device), None)


# --- the supervisor -------------------------------------------------------------------------------

@dataclass
class Supervisor:
    """Runs a Dut's requests, recovering from faults. `relaunch()` starts a fresh target for
    the same board and firmware (None: cannot); `on_fault(event)` records each event."""
    dut: object                                   # harness.dut.device.Dut: rebound on recovery
    relaunch: Callable[[], object] | None = None
    on_fault: Callable[[FaultEvent], None] | None = None
    reopen_wait_s: float = REOPEN_WAIT_S
    max_recoveries: int = 2
    events: list[FaultEvent] = field(default_factory=list)

    def __post_init__(self):
        self.port_identity = PortIdentity.of(self.dut.target.url, self._extra_dirs())
        self._arm(self.dut.client)

    def _extra_dirs(self) -> tuple[Path, ...]:
        return tuple(self.dut.target.port_dirs)

    def _arm(self, client: DutClient) -> None:
        client.watch_pid = self.dut.target.pid
        client.alive_check = lambda: process_problem(self.dut.target)

    def call(self, op: Callable[[DutClient], object], what: str = "request"):
        """op(client) with recovery; raises DutFault when the DUT cannot be brought back."""
        for _ in range(self.max_recoveries + 1):
            client = self.dut.client
            timeouts = client.stats.timeouts
            started = time.monotonic()
            try:
                result = op(client)
                if client.stats.timeouts > timeouts:
                    self._check_for_reset(client, started, what)
                return result
            except LinkNoisy as exc:             # alive but unreadable: relaunching cannot help
                raise DutFault(self._report(FaultEvent(
                    "link", str(exc), time.monotonic() - started,
                    "gave up: resending did not get one intact reply"))) from None
            except (NoReply, LinkLost) as exc:
                event = self._recover(exc, time.monotonic() - started, what)
                if not event.recovered:
                    raise DutFault(event) from None
        raise DutFault(self.events[-1])

    def healthy(self) -> bool:
        return self.problem() is None

    def problem(self) -> tuple[str, str] | None:
        """(kind, detail) when the DUT cannot be used as it is: its process gone or stopped,
        or its port absent."""
        problem = process_problem(self.dut.target)
        if problem is None and self.port_identity.find() is None:
            problem = ("port_vanished", f"the port {self.port_identity.url} is gone")
        return problem

    def recover_idle(self, when: str) -> FaultEvent | None:
        """A fault found while no request ran (between tests): recorded and recovered like
        one met by a request. None when there is nothing wrong."""
        problem = self.problem()
        if problem is None:
            return None
        return self._recover(LinkLost(problem[1]), 0.0, "no request", when=when)

    # --- diagnosis and recovery -------------------------------------------------------------
    def _report(self, event: FaultEvent) -> FaultEvent:
        self.events.append(event)
        if self.on_fault is not None:
            self.on_fault(event)
        return event

    def _recover(self, exc: Exception, detected: float, what: str, when: str = "") -> FaultEvent:
        problem = process_problem(self.dut.target)
        if problem is None and isinstance(exc, LinkLost):
            problem = self._lost_link_problem(exc)
        kind, detail = problem or ("dut_hang", f"no reply to {what}: {exc}")
        event = FaultEvent(kind, f"{detail} ({when})" if when else detail, detected)
        started = time.monotonic()
        try:
            if kind == "port_vanished" and not self._port_can_return():
                event.action = self._relaunch(prefix="the link cannot come back by itself: ")
            elif kind == "port_vanished":
                event.action = self._reopen()
            elif kind == "dut_hang":
                event.action = self._reset_or_relaunch()
            else:
                event.action = self._relaunch()
            event.recovered = True
        except Exception as failure:            # recovery failed: say why, carry on
            event.action += f"recovery failed: {failure}"
        event.recovery_s = time.monotonic() - started
        return self._report(event)

    def _lost_link_problem(self, exc: Exception) -> tuple[str, str]:
        """The link failed. A dying process closes its end before it can be reaped: give it
        a bounded moment to show as exited, so the death is named as such."""
        if self.dut.target.pid:
            deadline = time.monotonic() + EXIT_WAIT_S
            while time.monotonic() < deadline:
                problem = process_problem(self.dut.target)
                if problem is not None:
                    return problem[0], f"{problem[1]} (its link failed: {exc})"
                time.sleep(0.02)
        return "port_vanished", str(exc)

    def _port_can_return(self) -> bool:
        """Only a port known by a serial number can reappear; an emulator's pty or socket
        never does (its process must be relaunched)."""
        return bool(self.port_identity.serial_number) or not self.dut.target.pid

    def _reopen(self) -> str:
        deadline = time.monotonic() + self.reopen_wait_s
        self._close_client()
        while time.monotonic() < deadline:
            path = self.port_identity.find()
            if path is not None:
                try:
                    self._connect(path)
                    return f"reopened the port with serial number {self.port_identity.serial_number} at {path}"
                except (ProtocolError, OSError):
                    pass                         # still enumerating: try again shortly
            time.sleep(0.1)
        raise ProtocolError(f"no port with serial number {self.port_identity.serial_number} came "
                            f"back within {self.reopen_wait_s:.0f} s")

    def _reset_or_relaunch(self) -> str:
        target = self.dut.target
        if target.reset_fn is None or process_problem(target) is not None:
            return self._relaunch()               # a stopped process cannot take a reset
        try:
            target.reset()
            time.sleep(RESET_SETTLE_S)
            self.dut.client.port.reset_input_buffer()
            self._identify(self.dut.client)
            return "reset the DUT"
        except (HarnessError, OSError):       # BackendError too: the process cannot take it
            return self._relaunch(prefix="reset did not help: ")

    def _relaunch(self, prefix: str = "") -> str:
        if self.relaunch is None:
            raise ProtocolError("this target cannot be relaunched (a real board: power-cycle it)")
        old = self.dut.target
        pid = old.pid
        if pid and process_state(pid) not in (None, "Z"):
            try:
                os.kill(pid, signal.SIGKILL)      # hung or stopped: no grace to wait for
            except ProcessLookupError:
                pass
        self._close_client()
        try:
            old.stop()
        except Exception:
            pass
        self.dut.rebind(target=self.relaunch())
        self.port_identity = PortIdentity.of(self.dut.target.url, self._extra_dirs())
        self._connect(self.dut.target.url)
        return prefix + f"relaunched {self.dut.target.backend}"

    def _connect(self, url: str) -> None:
        old = self.dut.client
        # the same protocol's client (DutClient or harness.protocol.eembc.EembcClient)
        client = type(old).open(url, baud=self.dut.board.baud, timeout=old.timeout, retries=old.retries)
        client.stats = old.stats                  # one account of the link per DUT
        self.dut.rebind(client=client)
        self._arm(client)
        try:
            self._identify(client)
        except Exception:
            client.close()
            raise

    def _identify(self, client: DutClient) -> None:
        self.dut.rebind(identity=client.identify())
        self.dut.check_identity()                 # the same build, or stop here

    def _close_client(self) -> None:
        try:
            self.dut.client.close()
        except Exception:
            pass

    def check_reset(self, when: str = "since the last check") -> FaultEvent | None:
        """Ask the DUT whether it restarted since its last IDENTIFY (its IDENTITY flag)."""
        started = time.monotonic()
        return self.call(lambda client: self._reset_event(client, started, when), "IDENTIFY")

    def _check_for_reset(self, client: DutClient, started: float, what: str) -> None:
        """A reply was lost and resent. Was it the link, or did the DUT restart?"""
        self._reset_event(client, started, f"during {what} (its reply was lost and resent)")

    def _reset_event(self, client: DutClient, started: float, when: str) -> FaultEvent | None:
        identity = client.identify()
        if identity.flags & FLAG["IDENTIFIED_BEFORE"]:
            return None
        self.dut.rebind(identity=identity)
        self.dut.check_identity()
        return self._report(FaultEvent("dut_reset", f"the DUT restarted {when}",
                                       time.monotonic() - started,
                                       "re-identified the same build; requests resent", True))
