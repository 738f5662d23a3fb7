"""The host side of MLPerf Tiny's device protocol (EEMBC's text protocol, as mlcommons/tiny's
benchmark/api defines it): drives any firmware that speaks it, our DUT built in EEMBC mode
(devices/firmware/runtime/tinyhil_eembc.c) or a lab's own MLPerf Tiny port.

Commands end in '%'; each reply is lines ending with `m-ready`. A vector travels as `db load
N`, then `db <hex>` lines of 31 bytes (the runner's DUT-direct size), then `infer N W`, whose
reply holds two `m-lap-us-<n>` timestamps of the device's timer around the N inferences and
`m-results-[...]`. The text protocol has no checksum, so this client checks the grammar of
every line (a damaged line is dropped and counted), takes a reply whose `m-ready` was lost once
all its lines came, and resends on silence. Our EEMBC build adds what the runner ignores: a
CRC line ending each reply and the loaded buffer's CRC, so nothing damaged is taken; with another
firmware, after any damage, each loaded vector is read back with `db print` and compared. It has the DutClient's interface (harness.dut uses either).
"""

from __future__ import annotations

import math
import re
import struct
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import serial

from harness.cpu_watch import ProgressDeadline
from harness.errors import ProtocolError
from harness.protocol.client import (QUICK_RTTS, QUICK_TRIES, Identity, InferResult, LinkLost,
                                     LinkNoisy, LinkStats, NoReply)
from harness.protocol.link import open_serial
from harness.protocol.wire import DTYPE_NAME, FLAG, PROTOCOL_VERSION, crc16

#: a quick resend's floor, and the quiet step that ends a drain: the text lines have no
#: exactly-once, so a command resent too soon runs again (hence longer than the binary client's)
QUICK_FLOOR_S = 0.02
DRAIN_STEP_S = 0.01
#: bytes per `db` line: the runner's DUT-direct size (26 through its energy interface board)
DB_BYTES = 31
#: the same `e-` reply this many times in a row is the DUT's answer, not a damaged command
REFUSALS = 3
#: the laps are microseconds of the device's timer
LAP_HZ = 1_000_000
#: the most inferences one `infer N W` asks for (the API parses N as an int)
MAX_INFERENCES = 2**31 - 1

LINE = re.compile(r"^(m-|e-)[\x20-\x7e]*$")
LAP = re.compile(r"^m-lap-us-(\d+)$")
RESULTS = re.compile(r"^m-results-\[([^\]]*)\]$")
RAW = re.compile(r"^m-tinyhil-raw-\[([0-9a-f]*)\]$")
NAME = re.compile(r"^m-name-dut-\[([^\]]+)\]$")
MODEL = re.compile(r"^m-model-\[([^\]]+)\]$")
TINYHIL = re.compile(r"^m-tinyhil-\[([^\]]+)\]$")
LOADED = re.compile(r"^m-tinyhil-load-\[([0-9a-f]{4})\]$")
CRC = re.compile(r"^m-tinyhil-crc-\[([0-9a-f]{4})\]$")
BUFFER = re.compile(r"^m-buffer-([0-9a-f]{2}(?:-[0-9a-f]{2})*)$")
#: what the firmware prints when it starts (ee_benchmark_initialize)
BOOT = {"m-init-done", "m-timestamp-mode-performance", "m-timestamp-mode-energy"}
NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^-?(inf|nan)$")


@dataclass
class EembcClient:
    port: serial.SerialBase
    timeout: float = 2.0             # seconds to wait for a reply before resending
    retries: int = 5                 # resends after silence before giving up
    corrupt_retries: int = 40        # resends after damaged replies (the DUT answers)
    stats: LinkStats = field(default_factory=LinkStats)
    identity: Identity | None = None
    watch_pid: int | None = None     # the emulator's pid: timeouts follow its CPU time
    alive_check: Callable[[], tuple[str, str] | None] | None = None
    #: the firmware's own words for what it runs (`name%`, `profile%`)
    names: dict = field(default_factory=dict)

    def __post_init__(self):
        self._buffer = b""
        self._per_inference_s = 0.0     # device time of one inference, once seen
        self.boots = 0                  # start-up banners seen in place of a reply
        self._srtt: dict[str, float] = {}   # smoothed round trip per command
        self._boots_identified = -1

    @classmethod
    def open(cls, url: str, baud: int = 115200, **kwargs) -> "EembcClient":
        from harness.protocol.client import DutClient
        binary = DutClient.open(url, baud)      # the same checks and messages for the port
        return cls(binary.port, **kwargs)

    def close(self) -> None:
        self.port.close()

    @property
    def max_payload(self) -> int:
        return self.identity.max_payload if self.identity else 64

    # --- requests ----------------------------------------------------------------------------
    def identify(self, attempts: int | None = None) -> Identity:
        """`name%` and `profile%`. Our EEMBC build adds a `m-tinyhil-[...]` line with what the
        binary IDENTITY holds; another firmware is known by its name and model alone."""
        name = self._ask("name", lambda ls: _match(NAME, ls), retries=attempts)
        # Another firmware has no m-tinyhil line; ours may have lost it to a damaged line: a
        # reply without it counts only when nothing in it was damaged.
        for _ in range(self.corrupt_retries):
            rejected = self.stats.frames_rejected
            lines = self._ask("profile", lambda ls: _match(MODEL, ls) and _facts_whole(ls),
                              retries=attempts)
            if _match(TINYHIL, lines) or self.stats.frames_rejected == rejected:
                break
        self.names = {"name": _match(NAME, name).group(1), "model": _match(MODEL, lines).group(1)}
        facts = _match(TINYHIL, lines)
        identity = _identity(facts.group(1) if facts else None, self.names["model"])
        if identity.foreign and self.boots == self._boots_identified:
            # another firmware cannot say it answered before: no start-up lines since is the sign
            identity = replace(identity, flags=identity.flags | FLAG["IDENTIFIED_BEFORE"])
        self._boots_identified = self.boots
        self.identity = identity
        return identity

    def echo(self, data: bytes) -> bytes:
        """A round trip through the DUT: loaded with `db`, read back with `db print`."""
        self._load(data, verify=False)
        return self._read_back(len(data))

    def infer(self, vector: bytes, runs: int = 1, warmup: int = 0,
              timeout: float | None = None, per_run: bool = True) -> InferResult:
        """`infer runs warmup`: `runs` inferences back to back between two laps. The result
        holds one timed run (the lap difference, in microseconds) of `runs` loops, so
        `per_run` changes nothing."""
        if not 0 < runs <= MAX_INFERENCES:
            raise ValueError(f"infer takes 1..{MAX_INFERENCES} inferences, not {runs}")
        started = time.perf_counter()
        wait = (timeout or self.timeout) + 4 * (runs + warmup) * self._per_inference_s
        refused = ""
        # the counts echoed back: a digit changed on the way would run another N
        echoed = lambda ls: (_infer_complete(ls) and f"m-infer-start-{runs}" in ls
                             and f"m-warmup-start-{warmup}" in ls)
        for attempt in range(3):
            self._load(vector, verify=attempt > 0 or self._damaged)
            try:
                lines = self._ask(f"infer {runs} {warmup}", echoed, timeout=wait)
                break
            except _Refused as exc:       # e.g. the vector arrived short: load it again
                refused = str(exc)
        else:
            raise ProtocolError(f"the DUT on {self.port.portstr} refused `infer {runs} {warmup}`: "
                                f"{refused}")
        laps = [int(m.group(1)) for m in (LAP.match(l) for l in lines) if m]
        output = self._output(lines)
        if output is None:                    # the laps came, the outputs were damaged
            output = self._output(self._ask("results", lambda ls: self._output(ls) is not None))
        spent = laps[1] - laps[0]
        if spent > 0:
            self._per_inference_s = spent / runs / LAP_HZ
        return InferResult(output, [spent if spent >= 0 else 0xFFFFFFFF], time.perf_counter() - started,
                           runs)

    @property
    def _damaged(self) -> bool:
        return bool(self.stats.resends or self.stats.frames_rejected)

    def infer_batch(self, vectors, timeout=None):
        raise ProtocolError("the EEMBC protocol has no batches: one `infer 1 0` per vector")

    # --- vectors -----------------------------------------------------------------------------
    def _load(self, vector: bytes, verify: bool) -> None:
        """`db load N` and the `db` lines. A `db` line appends, so a lost reply restarts the
        whole load; on a link that has damaged anything the buffer is read back and compared."""
        for _ in range(self.corrupt_retries + 1):
            self._ask(f"db load {len(vector)}", lambda ls: _has(ls, f"m-[Expecting {len(vector)} bytes]"))
            try:
                for at in range(0, len(vector), DB_BYTES):
                    last = at + DB_BYTES >= len(vector)
                    lines = self._ask("db " + vector[at:at + DB_BYTES].hex(),
                                      (lambda ls: _has(ls, "m-load-done")) if last else None,
                                      once=True)
                    if _errors(lines):
                        raise _Reload()
                loaded = _match(LOADED, lines)
                if self._ours:                # our build says what it holds
                    if loaded and int(loaded.group(1), 16) == crc16(vector):
                        return
                elif not verify or self._read_back(len(vector)) == vector:
                    return
            except (_Reload, _Refused):
                pass
            self.stats.vector_reloads += 1
            self.stats.resends += 1
        raise LinkNoisy(f"the DUT on {self.port.portstr} never held the whole {len(vector)}-byte "
                        f"vector intact after {self.corrupt_retries + 1} loads: the link corrupts "
                        "too much (check the baud rate, the cable and its ground)")

    def _read_back(self, size: int) -> bytes:
        lines = self._ask("db print", lambda ls: sum(len(m.group(1)) + 1 for m in
                                                     (BUFFER.match(l) for l in ls) if m) // 3 >= size)
        data = bytes.fromhex("".join(m.group(1).replace("-", "") for m in (BUFFER.match(l) for l in lines) if m))
        return data[:size]

    def _output(self, lines: list[str]) -> bytes | None:
        """The output bytes, in the model's dtype: our build's exact hex for float outputs,
        else the integers of m-results; another firmware's floats as float32."""
        raw = _match(RAW, lines)
        if raw:
            return bytes.fromhex(raw.group(1))
        found = _match(RESULTS, lines)
        if not found:
            return None
        words = [w.strip() for w in found.group(1).split(",") if w.strip()]
        if not all(NUMBER.match(w) for w in words):
            return None
        ident = self.identity
        dtype = ident.output_dtype if ident else "float32"
        if ident and not ident.foreign and len(words) != ident.output_count:
            return None
        if dtype == "float32":
            return struct.pack(f"<{len(words)}f", *map(float, words))
        code = {"int8": "b", "uint8": "B", "int16": "h", "int32": "i"}[dtype]
        try:
            return struct.pack(f"<{len(words)}{code}", *(int(w) for w in words))
        except (ValueError, struct.error):
            return None

    # --- lines -------------------------------------------------------------------------------
    def _ask(self, command: str, complete: Callable[[list[str]], object] | None = None,
             timeout: float | None = None, retries: int | None = None, once: bool = False) -> list[str]:
        """Send `command%`; its reply lines up to m-ready. `complete(lines)` says whether the
        lines the caller needs have come: such a reply is taken when its m-ready was lost.
        A command that must not run twice (`once`: a `db` line appends) raises _Reload
        instead of being resent; an `e-` reply other than a damaged command raises _Refused."""
        self.stats.requests += 1
        retries = self.retries if retries is None else retries
        silent = damaged = 0
        refused: list[str] = []
        key = "db" if command.startswith("db ") and not command.startswith(("db load", "db print")) \
            else command
        while True:
            if silent or damaged:
                self.stats.resends += 1
                self._drain()
            wait = self._wait(key, timeout or self.timeout, silent + damaged)
            sent = time.perf_counter()
            self._write(command + "%")
            lines, ready, heard = self._gather(wait, complete)
            while ready and lines and all(l in BOOT for l in lines):
                self.boots += 1           # the DUT's start-up lines, not this reply: it follows
                lines, ready, heard = self._gather(wait, complete)
            ok = complete is None or complete(lines)
            if ready and ok:
                if not (silent or damaged):   # a first send's round trip only (Karn's rule)
                    rtt = time.perf_counter() - sent
                    self._srtt[key] = rtt if key not in self._srtt else 0.875 * self._srtt[key] + 0.125 * rtt
                return lines
            if ok and lines:              # everything but m-ready: taken, counted
                self.stats.timeouts += 1
                self.stats.frames_rejected += 1
                return lines
            errors = _errors(lines)
            if ready and errors:
                # A damaged command gets any refusal (`db lad 128` is read as hex digits): only
                # the same refusal REFUSALS times in a row is the DUT's answer to this command.
                refused = refused + [errors[0]] if refused[-1:] == [errors[0]] else [errors[0]]
                if len(refused) >= REFUSALS:
                    raise _Refused(errors[0])
            if once:
                self.stats.timeouts += not ready
                raise _Reload()
            if not ready:
                self.stats.timeouts += 1
            problem = self.alive_check() if self.alive_check else None
            if problem:
                raise NoReply(f"`{command[:20]}%` got no reply on {self.port.portstr}: {problem[1]}")
            if heard:
                damaged += 1
            else:
                silent += 1
            if silent > retries:
                raise NoReply(f"`{command[:20]}%` got no reply on {self.port.portstr} after "
                              f"{silent} tries. Is the board running EEMBC-protocol (MLPerf Tiny) "
                              "firmware, at the right baud rate?")
            if damaged > self.corrupt_retries:
                raise LinkNoisy(f"`{command[:20]}%` failed on {self.port.portstr}: {damaged} "
                                "replies in a row were damaged on the link")

    def _wait(self, key: str, timeout: float, tries: int) -> float:
        """The whole timeout on a clean link; once it has damaged anything, a few smoothed round
        trips of this command (as the binary client does), so a lost '%' or a lost reply costs
        little. A command resent too soon only runs again: `db` lines are never resent."""
        if not self._damaged or key not in self._srtt or tries >= QUICK_TRIES:
            return timeout
        return min(timeout, QUICK_FLOOR_S + QUICK_RTTS * self._srtt[key])

    def _gather(self, timeout: float, complete) -> tuple[list[str], bool, bool]:
        """Lines until m-ready or the timeout: (lines, m-ready seen, any byte heard)."""
        deadline = ProgressDeadline(self.watch_pid, timeout)
        lines: list[str] = []
        heard = False
        while True:
            while b"\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n", 1)
                text = raw.replace(b"\r", b"").replace(b"\0", b"").decode("ascii", "replace")
                if not text:
                    continue
                if text == "m-ready":
                    if not lines and self._ours:
                        continue          # a late reply's end: ours always has a CRC line first
                    return self._checked(lines), True, True
                if text.endswith("m-ready"):  # its line end was lost: the runner's rule, too
                    self.stats.frames_rejected += 1
                    return self._checked(lines + [text[:-len("m-ready")]]), True, True
                if LINE.match(text):
                    lines.append(text)
                    if self._ours and CRC.match(text):
                        return self._checked(lines), True, True   # m-ready follows: not waited for
                else:
                    self.stats.frames_rejected += 1      # a damaged line: its grammar is gone
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:
                raise LinkLost(f"reading from {self.port.portstr} failed: {exc}") from None
            if data:
                heard = True
                self.stats.bytes_received += len(data)
                self._buffer += data
            elif deadline.expired():
                return lines, False, heard

    @property
    def _ours(self) -> bool:
        """Talking to our EEMBC build (every reply ends with its CRC line)."""
        return self.identity is not None and not self.identity.foreign

    def _checked(self, lines: list[str]) -> list[str]:
        """The reply's lines, checked against its m-tinyhil-crc line (our build's): on a
        mismatch, or with the line missing from our build, none of them can be trusted."""
        found = CRC.match(lines[-1]) if lines else None
        if found is None:
            if lines and all(line in BOOT for line in lines):
                return lines              # a start-up banner carries no CRC
            if self.identity is not None and not self.identity.foreign:
                self.stats.frames_rejected += 1
                return []
            return lines
        body = lines[:-1]
        text = "".join(line + "\r\n" for line in body).encode("ascii", "replace")
        if crc16(text) != int(found.group(1), 16):
            self.stats.frames_rejected += 1
            return [line for line in body if LOADED.match(line)]   # it carries its own check
        return body

    def _write(self, text: str) -> None:
        try:
            self.port.write(text.encode("ascii"))
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"writing to {self.port.portstr} failed: {exc}") from None
        self.stats.bytes_sent += len(text)

    def _drain(self) -> None:
        """Before a resend: the rest of a late reply is read and dropped, and a '%' ends any
        command the DUT holds half-received (an empty command: only m-ready comes back)."""
        self._write("%")
        quiet_until = time.monotonic() + 5 * DRAIN_STEP_S
        seen = b""
        while time.monotonic() < quiet_until:
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:
                raise LinkLost(f"reading from {self.port.portstr} failed: {exc}") from None
            if data:
                self.stats.bytes_received += len(data)
                seen = (seen + data)[-64:]
                # our build answers the '%' with its CRC line and m-ready: the end is known
                step = 1 if self._ours and re.search(rb"crc-\[[0-9a-f]{4}\]\r?\nm-ready", seen) else 5
                quiet_until = time.monotonic() + step * DRAIN_STEP_S
        self._buffer = b""


class _Refused(ProtocolError):
    """The DUT answered with an `e-[...]` line."""


class _Reload(Exception):
    """A `db` line was refused or its reply lost: the vector is loaded again from `db load`."""


def _match(pattern: re.Pattern, lines: list[str]):
    for line in lines:
        found = pattern.match(line)
        if found:
            return found
    return None


def _has(lines: list[str], text: str) -> bool:
    return text in lines


def _errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("e-")]


def _infer_complete(lines: list[str]) -> bool:
    return sum(bool(LAP.match(l)) for l in lines) == 2 and "m-infer-done" in lines


def _facts_whole(lines: list[str]) -> bool:
    """No m-tinyhil line (another firmware), or one that parses."""
    facts = _match(TINYHIL, lines)
    try:
        return facts is None or _identity(facts.group(1), "") is not None
    except ProtocolError:
        return False


def _identity(facts: str | None, model: str) -> Identity:
    """An Identity from our build's m-tinyhil line; another firmware's says only its model."""
    if facts is None:
        return Identity(PROTOCOL_VERSION, 0, 0, LAP_HZ, 1, 64, 0, 1, 0, "?", 0, "float32",
                        "", "", "", model, protocol="eembc", foreign=True)
    values = dict(part.split("=", 1) for part in facts.split(",") if "=" in part)
    try:
        in_count, in_dtype = (int(v) for v in values["in"].split("x"))
        out_count, out_dtype = (int(v) for v in values["out"].split("x"))
        capacity = int(values["capacity"])
        return Identity(PROTOCOL_VERSION, int(values["flags"]), int(values["clock"]), LAP_HZ, 1,
                        capacity, capacity, 1, in_count, DTYPE_NAME.get(in_dtype, f"?{in_dtype}"),
                        out_count, DTYPE_NAME.get(out_dtype, f"?{out_dtype}"), values["hash"],
                        values["build"], values["board"], values["model"], protocol="eembc")
    except (KeyError, ValueError) as exc:
        raise ProtocolError(f"the DUT's m-tinyhil line is damaged or from another version "
                            f"({exc}): {facts[:80]}") from None


def lap_loops_for(lap_us: int, loops: int, window_s: float) -> int:
    """Inferences for the next try at a window of `window_s`: a lap of `lap_us` for `loops`."""
    if lap_us <= 0:
        return min(MAX_INFERENCES, loops * 16)
    want = math.ceil(loops * window_s * LAP_HZ / lap_us * 1.05)
    return min(MAX_INFERENCES, max(loops * 2, want))
