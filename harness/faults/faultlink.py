"""A fault-injecting serial link: a pseudo-terminal proxy on the real link to the real DUT.

    harness --(pty this module creates)--> FaultLink --(the DUT's own URL)--> DUT

Bytes are forwarded both ways; each byte may be flipped (one random bit), dropped,
duplicated or delayed, each at its own rate, from a seeded generator so that a run can be
repeated. The link can also vanish and come back, as a USB serial board does when it
re-enumerates: the pty is closed (its /dev/pts node disappears, an open port reads EOF) and a
new one is made, usually under another /dev/pts number. Like udev's /dev/serial/by-id, the
link keeps a symlink named after its serial number pointing at the current pty, so the
harness can find the port again by identity.

    link = FaultLink("/dev/pts/7", FaultSpec.parse("flip=0.01,seed=3")).start()
    client = DutClient.open(link.url)
"""

from __future__ import annotations

import os
import random
import select
import termios
import threading
import time
import tty
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path

import serial

from harness import workdirs
from harness.errors import HarnessError
from harness.protocol.link import open_serial

KINDS = ("flip", "drop", "dup", "delay")


class FaultSpecError(HarnessError):
    """A --fault-link specification that cannot be parsed."""


@dataclass(frozen=True)
class FaultSpec:
    """Per-byte probabilities of each fault, in each direction."""
    flip: float = 0.0          # one random bit of the byte inverted
    drop: float = 0.0          # the byte never arrives
    dup: float = 0.0           # the byte arrives twice
    delay: float = 0.0         # the link stalls before the byte (delay_ms)
    delay_ms: float = 20.0
    seed: int = 0
    direction: str = "both"    # both, to_dut, to_host

    @classmethod
    def parse(cls, text: str) -> "FaultSpec":
        """`flip=0.01,drop=0.001,seed=3` -> FaultSpec."""
        known = {f.name: f.type for f in fields(cls)}
        values = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, value = item.partition("=")
            key = key.strip()
            if key not in known or not value:
                raise FaultSpecError(f"fault link setting {item!r} is not understood: write "
                                     f"NAME=VALUE with NAME one of {', '.join(known)} "
                                     "(for example flip=0.01,drop=0.001,seed=1)")
            try:
                values[key] = value.strip() if key == "direction" else (
                    int(value) if key == "seed" else float(value))
            except ValueError:
                raise FaultSpecError(f"fault link setting {item!r}: {value!r} is not a number") from None
        spec = cls(**values)
        for kind in KINDS:
            rate = getattr(spec, kind)
            if not 0.0 <= rate <= 1.0:
                raise FaultSpecError(f"fault link {kind}={rate}: a rate is a probability per byte, "
                                     "between 0 and 1")
        if spec.direction not in ("both", "to_dut", "to_host"):
            raise FaultSpecError(f"fault link direction={spec.direction!r}: use both, to_dut or to_host")
        return spec

    @property
    def any(self) -> bool:
        return any(getattr(self, kind) > 0 for kind in KINDS)


class _Mangler:
    """Applies a FaultSpec to a byte stream, counting what it did."""

    def __init__(self, spec: FaultSpec, seed: int, counts: Counter, name: str, active: bool):
        self.spec, self.rng, self.counts, self.name = spec, random.Random(seed), counts, name
        self.active = active

    def __call__(self, data: bytes) -> list[tuple[float, bytes]]:
        """[(stall seconds before, bytes)]: consecutive unstalled bytes stay in one piece."""
        if not self.active or not self.spec.any:
            return [(0.0, data)]
        spec, rng, out, piece = self.spec, self.rng, [], bytearray()
        for byte in data:
            if spec.delay and rng.random() < spec.delay:
                out.append((0.0, bytes(piece)))
                piece = bytearray()
                out.append((spec.delay_ms / 1000, b""))
                self.counts[f"delay_{self.name}"] += 1
            if spec.drop and rng.random() < spec.drop:
                self.counts[f"drop_{self.name}"] += 1
                continue
            if spec.flip and rng.random() < spec.flip:
                byte ^= 1 << rng.randrange(8)
                self.counts[f"flip_{self.name}"] += 1
            piece.append(byte)
            if spec.dup and rng.random() < spec.dup:
                piece.append(byte)
                self.counts[f"dup_{self.name}"] += 1
        out.append((0.0, bytes(piece)))
        return [(stall, chunk) for stall, chunk in out if stall or chunk]


class FaultLink:
    """The proxy. `url` is what the harness opens; `counts` says what was injected."""

    def __init__(self, upstream_url: str, spec: FaultSpec | None = None, *, baud: int = 115200,
                 serial_number: str | None = None, by_id_dir: Path | None = None):
        self.upstream_url = upstream_url
        self.spec = spec or FaultSpec()
        self.baud = baud
        self.serial_number = serial_number or f"TH{os.getpid():06d}{id(self) & 0xFFFF:04X}"
        self._own_dir = by_id_dir is None          # made here: removed by stop()
        self.by_id_dir = Path(by_id_dir) if by_id_dir else workdirs.make("by-id")
        self.counts: Counter = Counter()
        self.enumerations = 0               # how many ptys this link has had
        self._upstream: serial.SerialBase | None = None
        self._master = self._slave = -1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        both = self.spec.direction == "both"
        self._to_dut = _Mangler(self.spec, self.spec.seed, self.counts, "to_dut",
                                both or self.spec.direction == "to_dut")
        self._to_host = _Mangler(self.spec, self.spec.seed + 1, self.counts, "to_host",
                                 both or self.spec.direction == "to_host")

    # --- the port the harness sees ---------------------------------------------------------
    @property
    def url(self) -> str:
        """The by-id symlink: stable across vanish/reappear, like /dev/serial/by-id/..."""
        return str(self.by_id_dir / f"usb-tinyhil_FaultLink_{self.serial_number}-if00")

    @property
    def pty(self) -> str | None:
        return os.ttyname(self._slave) if self._slave >= 0 else None

    def start(self) -> "FaultLink":
        try:
            self._upstream = open_serial(self.upstream_url, self.baud, timeout=0.02)
        except (serial.SerialException, OSError) as exc:
            raise HarnessError(f"the fault link cannot open the DUT's port {self.upstream_url}: {exc}") from None
        self._enumerate()
        for target in (self._pump_to_dut, self._pump_to_host):
            thread = threading.Thread(target=target, daemon=True, name=f"faultlink-{target.__name__}")
            thread.start()
            self._threads.append(thread)
        return self

    def _enumerate(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)          # raw before the harness's first byte
        with self._lock:
            self._master, self._slave = master, slave
            self.enumerations += 1
        link = Path(self.url)
        tmp = link.with_name(link.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(link)

    def vanish(self) -> None:
        """Unplug: the pty and its by-id link disappear; an open port reads EOF from now on."""
        Path(self.url).unlink(missing_ok=True)
        with self._lock:
            master, slave, self._master, self._slave = self._master, self._slave, -1, -1
        for fd in (slave, master):
            if fd >= 0:
                os.close(fd)
        self.counts["vanish"] += 1

    def reappear(self) -> None:
        """Plug back in: a new pty (another /dev/pts number), the by-id link pointing at it."""
        self._enumerate()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1.0)
        self.vanish()
        self.counts["vanish"] -= 1
        if self._upstream is not None:
            self._upstream.close()
        if self._own_dir:
            workdirs.remove(self.by_id_dir)

    # --- pumps ------------------------------------------------------------------------------
    def _pump_to_dut(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                master = self._master
            if master < 0:
                time.sleep(0.01)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.02)
                data = os.read(master, 4096) if ready else b""
            except OSError:                         # vanished under us, or no slave open (EIO)
                time.sleep(0.005)
                continue
            for stall, chunk in self._to_dut(data) if data else ():
                if stall:
                    time.sleep(stall)
                if chunk:
                    try:
                        self._upstream.write(chunk)
                    except (serial.SerialException, OSError):
                        return                      # the DUT's side closed: the emulator died

    def _pump_to_host(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._upstream.read(max(1, self._upstream.in_waiting))
            except (serial.SerialException, OSError, TypeError):
                return                              # the DUT's side closed: the emulator died
            for stall, chunk in self._to_host(data) if data else ():
                if stall:
                    time.sleep(stall)
                with self._lock:
                    master = self._master
                if chunk and master >= 0:           # unplugged: a board's bytes are lost
                    try:
                        os.write(master, chunk)
                    except OSError:
                        pass
