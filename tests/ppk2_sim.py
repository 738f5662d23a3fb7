"""A Nordic PPK2 on a pseudo-terminal, for tests only: it answers the PPK2's serial protocol as
ppk2-api (and Nordic's Power Profiler) speak it, and its samples come from a real emulated run.
Written from the protocol's description and the driver's behaviour, not from either's code.

The protocol, host to device: one opcode byte, some with arguments. The device answers two:
  0x19 GET_META_DATA          "name: value" lines (calibration per range 0..4: R, GS, GI, O, S,
                              I, UG; and HW, IA, ...), then "END"
  0x06 AVERAGE_START          4-byte little-endian samples at 100 kS/s, until 0x07 AVERAGE_STOP
and takes the rest silently: 0x0d REGULATOR_SET b1 b2 (VDD = (b1 - 3) * 256 + b2 + 768 mV),
0x11 SET_POWER_MODE m (1 ampere meter, 2 source meter), 0x0c DEVICE_RUNNING_SET on/off, ...
A sample: bits 0-13 ADC code, 14-16 range, 18-23 a counter (mod 64), 24-31 inputs D0..D7.
The host makes amperes of it with that range's calibration,
    x = (4 * code - O) * (1.8 / 163840) / R
    amperes = UG * (x * (GS * x + GI) + S * VDD / 1000 + I),
so the simulator picks a range and a code for a current by inverting that.

Where the samples come from: the simavr bridge's marker log ("1 C" / "0 C": marker edges at
cycle C; "S C mode" / "W C": the CPU sleeps and wakes inside the window) and the board's
power model. Sample k stands for cycles [t_k, t_k + clock / 100 kHz) of the emulated DUT:
its current is the power model's mean current over that span, its D0 the marker level at
t_k, as an instrument on a real board would see them. The emulator runs faster than wall
time, so the sample clock follows the log's cycles, not the host's clock:
  - samples the log already covers are sent at once (the DUT ran ahead of the stream);
  - once the stream has caught up and the marker is low (the DUT waits for the host), samples
    of that level are sent paced at 100 kS/s of wall time, and when the log goes on, all but
    KEEP_LOW samples of the idle gap are skipped: idle time is compressed, marker pulses never;
  - caught up with the marker high, it waits for the log (it cannot know the DUT's future).
So every pulse has its exact length in samples, at a random phase to the sample grid.
Unlike a real PPK2, which drops samples when the host reads too slowly, this one waits for
the host (a busy test machine must not fail the agreement test); loss is injected on purpose.

Faults, for the tests: unplug() (the port vanishes), stall() (the stream stops), lose(n)
(n samples dropped: a counter gap), loose_wire (D0 stays low); arm(fault, session) applies
one at the first rising edge streamed in that measuring session (1 = the first).
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.energy.ppk2_source import SIMULATOR_HW

RATE = 100_000
ADC_MULT = 1.8 / 163840
MAX_CODE = 2**14 - 1
HEADROOM = 0.9              # auto-range: the next range up above 90 % of full scale
KEEP_LOW = 100              # samples of each idle gap always sent (1 ms)
TAIL = 100                  # samples after the last known event when a stream stops
BURST = 20_000              # samples made per pass, at most
AHEAD_S = 0.02              # how far a burst may run ahead of wall time before idle samples resume
OUT_LIMIT = 64 * 1024       # bytes waiting for the host before the simulator waits too
ARGS = {0x01: 3, 0x02: 1, 0x03: 1, 0x04: 1, 0x05: 1, 0x08: 1, 0x09: 1, 0x0C: 1, 0x0D: 2,
        0x0E: 1, 0x0F: 1, 0x11: 1, 0x12: 2, 0x25: 5}    # argument bytes per opcode; others: none
GET_META_DATA, AVERAGE_START, AVERAGE_STOP = 0x19, 0x06, 0x07
DEVICE_RUNNING_SET, REGULATOR_SET, SET_POWER_MODE = 0x0C, 0x0D, 0x11


@dataclass(frozen=True)
class Calibration:
    """One unit's calibration, per range 0..4 (made-up but plausible values)."""
    r: tuple = (1017.3, 100.91, 10.212, 0.9514, 0.04466)   # shunt, ohm
    gs: tuple = (0.0, 0.9, 0.05, 0.004, 0.0002)             # second-order gain
    gi: tuple = (1.0012, 0.9979, 1.0031, 0.9968, 1.0104)    # gain
    o: tuple = (51.2, 44.6, 38.1, 31.7, 25.4)               # offset, in 4 x code units
    s: tuple = (-1.9e-9, -1.2e-8, -7.5e-8, -6.1e-7, -1.4e-5)  # leakage, A per V of VDD
    i: tuple = (1.1e-8, 7.7e-8, 4.8e-7, 3.2e-6, 5.9e-5)     # offset, A
    ug: tuple = (1.0, 1.0, 1.0, 1.0, 1.0)                   # user gain

    def metadata(self, hw: str) -> bytes:
        lines = ["Calibrated: 1"]
        for name in ("r", "gs", "gi", "o", "s", "i", "ug"):
            lines += [f"{name.upper()}{n}: {v:.9g}" for n, v in enumerate(getattr(self, name))]
        lines += ["VDD: 3000", f"HW: {hw}", "mode: 2", "IA: 56", "END"]
        return ("\n".join(lines) + "\n").encode()

    def amperes(self, code, rng, vdd_mv: float):
        """What the host computes from a code in a range."""
        r, gs, gi, o, s, i, ug = (np.asarray(getattr(self, k))[rng] for k in
                                  ("r", "gs", "gi", "o", "s", "i", "ug"))
        x = (4 * np.asarray(code, dtype=np.float64) - o) * (ADC_MULT / r)
        return ug * (x * (gs * x + gi) + (s * vdd_mv / 1000 + i))

    def encode(self, amperes: np.ndarray, vdd_mv: float) -> tuple[np.ndarray, np.ndarray]:
        """(code, range) whose host conversion is nearest each current."""
        table = {k: np.asarray(getattr(self, k)) for k in ("r", "gs", "gi", "o", "s", "i", "ug")}
        full_scale = self.amperes(MAX_CODE, np.arange(5), vdd_mv) * HEADROOM
        rng = np.minimum(np.searchsorted(full_scale, amperes), 4)
        r, gs, gi, o, s, i, ug = (table[k][rng] for k in ("r", "gs", "gi", "o", "s", "i", "ug"))
        y = amperes / ug - (s * vdd_mv / 1000 + i)
        x = 2 * y / (gi + np.sqrt(np.maximum(gi * gi + 4 * gs * y, 0)))    # gs x^2 + gi x = y
        code = np.clip(np.rint((x * r / ADC_MULT + o) / 4), 0, MAX_CODE).astype(np.uint32)
        return code, rng.astype(np.uint32)

    def lsb_a(self, amperes: float, vdd_mv: float) -> float:
        """One code step, in amperes, at this current (the ADC's quantisation)."""
        code, rng = self.encode(np.array([amperes]), vdd_mv)
        return float(np.abs(self.amperes(code + 1, rng, vdd_mv) - self.amperes(code, rng, vdd_mv))[0])


class Timeline:
    """The DUT's current and marker level over cycles, as the marker log tells it: piecewise
    constant from each event on. Cycle 0 (reset): running, marker low."""

    def __init__(self, active_a: float, sleep_a):
        self.active_a, self.sleep_a = active_a, sleep_a
        self.cycles, self.current, self.level = [0], [active_a], [0]
        self.charge = [0.0]         # integral of current up to each breakpoint, A x cycles
        self.lines: list[tuple[int, str]] = []

    @property
    def end(self) -> int:
        return self.cycles[-1]

    def add(self, line: str) -> None:
        parts = line.split()
        if len(parts) < 2 or parts[0] not in ("0", "1", "S", "W"):
            return
        kind, cycle = parts[0], int(parts[1])
        current, level = self.current[-1], self.level[-1]
        if kind in "01":
            level = int(kind)
        elif kind == "S":
            current = self.sleep_a(int(parts[2]) if len(parts) > 2 else None)
        else:
            current = self.active_a
        cycle = max(cycle, self.end)
        self.charge.append(self.charge[-1] + self.current[-1] * (cycle - self.end))
        self.cycles.append(cycle)
        self.current.append(current)
        self.level.append(level)
        self.lines.append((cycle, line))

    def next_event(self, after: float) -> int | None:
        j = int(np.searchsorted(self.cycles, after, side="right"))
        return self.cycles[j] if j < len(self.cycles) else None

    def sample(self, start: float, count: int, period: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean current over each sample's span and the marker level at its start; past the
        last event, the last state goes on."""
        cycles, current = np.asarray(self.cycles, float), np.asarray(self.current)
        charge, level = np.asarray(self.charge), np.asarray(self.level)
        edges = start + period * np.arange(count + 1)
        j = np.searchsorted(cycles, edges, side="right") - 1
        q = charge[j] + current[j] * (edges - cycles[j])
        return np.diff(q) / period, level[j[:-1]]

    def trim(self, before: float) -> None:
        """Forget breakpoints the stream is past (the raw lines are kept for the tests)."""
        keep = max(0, int(np.searchsorted(self.cycles, before, side="right")) - 1)
        if keep > 1000:
            for name in ("cycles", "current", "level", "charge"):
                setattr(self, name, getattr(self, name)[keep:])


class LogFollower:
    """New whole lines of the marker log. `where` is the log, or a folder in which the newest
    `tinyhil-simavr-*/marker.log` is followed (a relaunched DUT starts a new log)."""

    def __init__(self, where: Path):
        self.where = Path(where)
        self.path: Path | None = None if self.where.is_dir() else self.where
        self.offset = 0
        self.seen: set[Path] = set()
        self.looked = 0.0

    def poll(self, look_now: bool = False) -> tuple[bool, list[str]]:
        """(a new log was started, its new lines). New logs are looked for every 50 ms, or at
        once with `look_now`."""
        switched = False
        if self.where.is_dir() and (look_now or time.monotonic() - self.looked > 0.05):
            self.looked = time.monotonic()
            new = set(self.where.glob("tinyhil-simavr-*/marker.log")) - self.seen
            if new:
                self.seen |= new
                self.path = max(new, key=lambda p: p.stat().st_mtime)
                self.offset, switched = 0, True
        if self.path is None:
            return switched, []
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return switched, []
        whole = data[:data.rfind(b"\n") + 1]
        self.offset += len(whole)
        return switched, whole.decode(errors="replace").splitlines()


@dataclass
class Session:
    """One AVERAGE_START .. AVERAGE_STOP: the device time it covered, in cycles."""
    start: float
    end: float | None = None
    rising_edges: int = 0
    samples: int = 0
    lost: int = 0
    lines: list[str] = field(default_factory=list)


class Ppk2Simulator:
    def __init__(self, log: Path, model, clock_hz: float, *, marker_input: int = 0,
                 noise_a: float = 5e-6, seed: int = 0, calibration: Calibration = Calibration(),
                 hw: str = f"{SIMULATOR_HW} 1.0"):
        self.follower = LogFollower(log)
        self.model, self.clock_hz, self.marker_input = model, clock_hz, marker_input
        self.period = clock_hz / RATE               # cycles per sample
        self.noise_a, self.rng = noise_a, np.random.default_rng(seed)
        self.cal, self.hw = calibration, hw       # hw: what it reports itself to be
        self.vdd_mv, self.source_mode, self.dut_power = 3000, False, False
        self.timeline = self._new_timeline()
        self.sessions: list[Session] = []
        self.loose_wire = False
        self._armed: list[tuple[str, int, int]] = []
        self._stalled = self._unplugged = False
        self._to_lose = 0
        self._streaming = False
        self._counter = 0
        self._level = 0                 # D0 level of the last sample sent
        self._out = bytearray()
        self._commands = bytearray()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # --- the instrument's side of the wire --------------------------------------------------
    def start(self) -> "Ppk2Simulator":
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)                     # bytes, not lines: no echo, no CR mapping
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)         # the slave stays open: no EIO when the host closes
        self._thread = threading.Thread(target=self._run, name="ppk2-sim", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError("the PPK2 simulator's thread did not stop")
        self._close_fds()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def _close_fds(self) -> None:
        for name in ("_master", "_slave"):
            fd = getattr(self, name, None)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    # --- faults -------------------------------------------------------------------------------
    def unplug(self) -> None:
        self._unplugged = True

    def stall(self) -> None:
        self._stalled = True

    def lose(self, samples: int) -> None:
        self._to_lose += samples

    def arm(self, fault: str, session: int, samples: int = 50) -> None:
        assert fault in ("unplug", "stall", "lose", "loose_wire"), fault
        self._armed.append((fault, session, samples))

    # --- the loop -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set() and not self._unplugged:
                want_write = [self._master] if self._out else []
                select.select([self._master], want_write, [], 0.001)
                self._read_commands()
                self._follow_log()
                if self._streaming and not self._stalled:
                    self._make_samples()
                self._write()
        except BaseException as exc:        # the test reads it; a thread must not die silently
            self.error = exc
        finally:
            if self._unplugged:
                self._close_fds()           # the device node disappears with the master

    def _read_commands(self) -> None:
        try:
            self._commands += os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            pass
        while self._commands:
            opcode = self._commands[0]
            need = 1 + ARGS.get(opcode, 0)
            if len(self._commands) < need:
                return
            args = bytes(self._commands[1:need])
            del self._commands[:need]
            self._command(opcode, args)

    def _command(self, opcode: int, args: bytes) -> None:
        if opcode == GET_META_DATA:
            self._out += self.cal.metadata(self.hw)
        elif opcode == REGULATOR_SET:
            self.vdd_mv = (args[0] - 3) * 256 + args[1] + 800 - 32
        elif opcode == SET_POWER_MODE:
            self.source_mode = args[0] == 2
        elif opcode == DEVICE_RUNNING_SET:
            self.dut_power = bool(args[0])
        elif opcode == AVERAGE_START and not self._streaming:
            # Everything the DUT did before this command is past: read the whole log first (a
            # log found only later would replay from its start, pulses before the session too)
            self._follow_log(look_now=True)
            self._streaming = True
            self._wall0, self._sent = time.monotonic(), 0
            self._cursor = float(self.timeline.end)     # "now": the DUT is at least this far
            self._live = True
            self.sessions.append(Session(start=self._cursor))
        elif opcode == AVERAGE_STOP and self._streaming:
            if not self._stalled:
                self._make_samples(final=True)
            session = self.sessions[-1]
            session.end = self._cursor
            session.lines = [line for cycle, line in self.timeline.lines
                             if session.start < cycle < session.end]
            self._streaming = False

    def _follow_log(self, look_now: bool = False) -> None:
        switched, lines = self.follower.poll(look_now)
        if switched:
            self.timeline = self._new_timeline()
            if self._streaming:
                self._cursor, self._live = 0.0, True
        for line in lines:
            self.timeline.add(line)

    def _new_timeline(self) -> Timeline:
        m = self.model
        return Timeline(m.active_mw / m.supply_v / 1e3,
                        lambda mode: m.sleep_power_mw(mode)[1] / m.supply_v / 1e3)

    def _make_samples(self, final: bool = False) -> None:
        if len(self._out) > OUT_LIMIT and not final:
            return                                  # the host is behind: wait for it
        timeline, period = self.timeline, self.period
        if self._live:
            # Caught up in an idle gap: now that the log went on, skip most of the gap.
            upcoming = timeline.next_event(self._cursor)
            if upcoming is not None:
                skip = (upcoming - self._cursor) // period - KEEP_LOW
                if skip > 0:
                    self._cursor += skip * period
                self._live = False
        # Samples whose instant the log covers (the level there is known).
        known = max(0, int(np.ceil((timeline.end - self._cursor) / period)))
        if known:
            self._emit(known if final else min(known, BURST))
        if final:
            self._emit(TAIL)                        # the last state goes on: show some of it
        elif not known and timeline.level[-1] == 0:
            self._live = True                       # idle: paced to wall time, device time held
            now = time.monotonic()
            # After a burst, idle samples resume within AHEAD_S: the stream never goes quiet.
            self._wall0 = min(self._wall0, now - self._sent / RATE + AHEAD_S)
            due = int((now - self._wall0) * RATE) - self._sent
            if due > 0:
                self._emit(min(due, BURST), live=True)
        # else: inside a pulse, caught up: wait for the log

    def _emit(self, count: int, live: bool = False) -> None:
        timeline = self.timeline
        if live:
            current = np.full(count, timeline.current[-1])
            level = np.full(count, timeline.level[-1])
        else:
            current, level = timeline.sample(self._cursor, count, self.period)
        rises = np.flatnonzero(np.diff(np.concatenate([[self._level], level])) > 0)
        fire = bool(len(rises)) and any(when == len(self.sessions) for _, when, _ in self._armed)
        if fire:                                    # a fault strikes right at the rising edge
            count = int(rises[0]) + 1
            current, level = current[:count], level[:count]
        if not live:
            self._cursor += count * self.period
            timeline.trim(self._cursor)
        if self.source_mode and not self.dut_power:
            current = np.zeros(count)               # the PPK2 does not power the DUT
        if self.noise_a:
            current = current + self.rng.normal(0, self.noise_a, count)
        code, rng = self.cal.encode(current, self.vdd_mv)
        logic = np.zeros(count, np.uint32) if self.loose_wire else \
            level.astype(np.uint32) << self.marker_input
        counter = (self._counter + np.arange(count, dtype=np.uint32)) & 0x3F
        self._counter = (self._counter + count) & 0x3F
        words = code | rng << 14 | counter << 18 | logic << 24
        session = self.sessions[-1]
        keep = np.ones(count, bool)
        if self._to_lose:                           # dropped from mid-chunk: a counter gap
            keep[count // 2:count // 2 + self._to_lose] = False
            dropped = int(np.count_nonzero(~keep))
            self._to_lose -= dropped
            session.lost += dropped
        self._out += words[keep].astype("<u4").tobytes()
        self._sent += count
        session.samples += count
        session.rising_edges += int(np.count_nonzero(np.diff(np.concatenate([[self._level], level])) > 0))
        self._level = int(level[-1])
        if fire:
            self._fire_armed(len(self.sessions))

    def _fire_armed(self, session: int) -> None:
        for armed in list(self._armed):
            fault, when, samples = armed
            if when == session:
                self._armed.remove(armed)
                if fault == "lose":
                    self.lose(samples)
                elif fault == "loose_wire":
                    self.loose_wire = True
                else:
                    getattr(self, fault)()

    def _write(self) -> None:
        if not self._out or self._unplugged:
            return
        try:
            written = os.write(self._master, self._out[:16384])
        except (BlockingIOError, InterruptedError):
            return
        del self._out[:written]
