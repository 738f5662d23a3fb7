"""The host side of wire protocol v5: a DUT client over any pyserial URL.

Every request but LOAD and STAGE gets one response carrying its sequence number. A corrupted
or lost frame is never accepted: it is resent with the same sequence number (the DUT says
BAD_CRC at once when it can, a timeout covers the rest). The DUT answers a repeat of the inference it just
served from its held result, so a resend never runs an inference twice; a long RESULT that
arrives damaged is fetched from that held result in short pieces instead of being resent whole.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, field
from typing import Callable

import serial

from harness.cpu_watch import ProgressDeadline
from harness.errors import ProtocolError
from harness.protocol.link import open_serial
from harness.protocol.wire import (CYCLES_INVALID, DTYPE_NAME, DTYPE_SIZE, ERR, ERR_NAME, FETCH_PIECE, FLAG, HEADER_SIZE, MSG,
                                   MSG_NAME, OVERHEAD, PAD, PROTOCOL_VERSION, STAGE_PIECE, Decoder,
                                   Frame, crc16, encode)

IDENTITY_FIXED = struct.Struct("<BBIIIHHHHBHB8s8sH")
# RESULT before its output and per-run cycles: runs, loops, timed runs, their total ticks
RESULT_HEAD = struct.Struct("<HIHI")
TOTAL_OVERFLOW = 0xFFFFFFFF           # the total did not fit 32 bits: sum the per-run cycles
# The longest IDENTITY: its fixed part and two length-prefixed names of up to 255 bytes.
IDENTITY_MAX = IDENTITY_FIXED.size + 2 * 256


@dataclass(frozen=True)
class Identity:
    protocol_version: int
    flags: int
    clock_hz: int
    timer_hz: int               # ticks per second of the cycle counter
    counter_resolution: int     # smallest step the counter moves by, in ticks (0: never moved)
    max_payload: int
    vector_capacity: int
    max_runs: int
    input_count: int
    input_dtype: str
    output_count: int
    output_dtype: str
    model_hash: str             # 16 hex digits
    build_id: str               # 16 hex digits
    board: str
    model_id: str
    batch_max: int = 0          # vectors one INFER_BATCH may carry (0: one INFER per vector)
    #: "eembc": MLPerf Tiny's text protocol (harness.protocol.eembc): timed by laps in
    #: microseconds around `infer N W`, one vector per request
    protocol: str = "tinyhil"
    #: an EEMBC firmware not built by tinyhil: known by its name and model only
    foreign: bool = False

    @property
    def input_bytes(self) -> int:
        return self.input_count * DTYPE_SIZE.get(self.input_dtype, 4)

    @property
    def output_bytes(self) -> int:
        return self.output_count * DTYPE_SIZE.get(self.output_dtype, 4)

    @property
    def stage_parts(self) -> int:
        """STAGE pieces per vector."""
        return -(-self.input_bytes // STAGE_PIECE)

    @property
    def stage_slots(self) -> int:
        """Vectors one INFER_STAGED may run (a STAGE frame names its slot and part in a byte)."""
        return min(self.batch_max, 255) if self.stage_parts <= 255 else 0

    @classmethod
    def parse(cls, payload: bytes) -> "Identity":
        if len(payload) < IDENTITY_FIXED.size + 2:
            raise ProtocolError(f"IDENTITY reply is {len(payload)} bytes, too short for protocol v{PROTOCOL_VERSION}")
        if payload[0] != PROTOCOL_VERSION:    # another layout: only the version is readable
            raise ProtocolError(f"the DUT speaks protocol v{payload[0]}, this harness "
                                f"v{PROTOCOL_VERSION}: rebuild the firmware with this harness's runtime")
        (version, flags, clock, timer, resolution, max_payload, capacity, max_runs, in_count,
         in_dtype, out_count, out_dtype, model_hash, build_id, batch_max) = IDENTITY_FIXED.unpack_from(payload)
        rest = payload[IDENTITY_FIXED.size:]
        board_len = rest[0]
        board = rest[1:1 + board_len].decode("ascii", "replace")
        rest = rest[1 + board_len:]
        model_id = rest[1:1 + rest[0]].decode("ascii", "replace") if rest else ""
        return cls(version, flags, clock, timer, resolution, max_payload, capacity, max_runs, in_count,
                   DTYPE_NAME.get(in_dtype, f"?{in_dtype}"), out_count,
                   DTYPE_NAME.get(out_dtype, f"?{out_dtype}"), model_hash.hex(), build_id.hex(),
                   board, model_id, batch_max)


@dataclass
class InferResult:
    output: bytes                # raw little-endian output of the last run
    #: per timed run, in counter ticks (Identity.timer_hz); empty when only their total was
    #: asked for (`infer(per_run=False)`) and the reply had to be fetched
    cycles: list[int]
    roundtrip_s: float           # host time from first byte sent to reply decoded
    loops: int = 1               # inferences back to back in each timed run
    runs: int = 0                # timed runs (0: as many as `cycles` holds)
    timed_runs: int = 0          # of them, those the counter could time (not CYCLES_INVALID)
    total_cycles: int = 0        # their ticks, summed

    def __post_init__(self):
        if not self.runs:
            valid = [c for c in self.cycles if c != CYCLES_INVALID]
            self.runs, self.timed_runs, self.total_cycles = len(self.cycles), len(valid), sum(valid)

    @property
    def inferences(self) -> int:
        """Inferences inside the marker window: every timed run's loops."""
        return self.runs * self.loops


@dataclass
class BatchResult:
    outputs: list[bytes]         # raw output of each vector, in order
    cycles: list[int]            # each vector's one inference, in counter ticks
    roundtrip_s: float


@dataclass
class StagedResult:
    outputs: list[bytes | None]  # per slot: the output of the vector that ran, None if none ran
    cycles: list[int | None]     # and its one inference's counter ticks
    staged: set[tuple[int, int]]  # the (slot, part) pieces still staged: those of slots not run


@dataclass
class LinkStats:
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    resends: int = 0
    timeouts: int = 0
    crc_errors_reported: int = 0     # BAD_CRC replies from the DUT
    frames_rejected: int = 0         # frames the host's decoder refused
    vector_reloads: int = 0
    quick_resends: int = 0           # resends after a short wait on a link that has lost frames
    fetches: int = 0                 # pieces of a held RESULT fetched after it arrived damaged


@dataclass
class DutClient:
    port: serial.SerialBase
    timeout: float = 2.0             # seconds to wait for a reply before resending
    retries: int = 5                 # resends after silence (no byte back) before giving up
    #: resends after the DUT showed it is alive but the frame was damaged (BAD_CRC, a garbled
    #: reply): a noisy link is worth many more tries than a silent one
    corrupt_retries: int = 40
    max_payload: int = 64            # until IDENTIFY tells the real value
    stats: LinkStats = field(default_factory=LinkStats)
    identity: Identity | None = None
    #: pid of the emulator or native DUT process: reply timeouts then follow its CPU time
    #: (harness.cpu_watch), so a loaded host gives no false timeouts
    watch_pid: int | None = None
    #: called after a reply timed out: (kind, detail) when the DUT's process has exited or is
    #: stopped, so a dead or hung DUT is reported at once instead of after every retry
    alive_check: Callable[[], tuple[str, str] | None] | None = None

    def __post_init__(self):
        # Smoothed round trip per (request type, payload length), from replies to a first send.
        self._srtt: dict[tuple[int, int], float] = {}
        self._seq = 0
        self._decoder = Decoder(self.reply_limit)
        self._last_sent = 0

    @property
    def reply_limit(self) -> int:
        """The longest payload this DUT can send: a header whose damaged length says more is
        refused at once (not waited for, up to 64 KB), and the decoder hunts for the next frame."""
        ident = self.identity
        if ident is None:
            return max(self.max_payload, IDENTITY_MAX)
        out = ident.output_bytes
        result = RESULT_HEAD.size + out + 4 * ident.max_runs
        batch = 2 + ident.batch_max * (out + 4)          # BATCH_RESULT: outputs and cycles
        slots = ident.stage_slots                       # STAGED_RESULT: and two bitmaps
        staged = batch + (slots + 7) // 8 + (slots * ident.stage_parts + 7) // 8
        return max(ident.max_payload, result, staged, IDENTITY_MAX)

    @classmethod
    def open(cls, url: str, baud: int = 115200, **kwargs) -> "DutClient":
        device = "://" not in url
        if device and not os.path.exists(url):
            raise ProtocolError(f"serial port {url} does not exist: is the board plugged in? "
                                "`python -m serial.tools.list_ports` lists the ports there are; "
                                "pass the right one with --port")
        try:
            # exclusive: a second program on the same port would steal bytes from either side
            # Reads return within READ_STEP_S: a quick resend's short wait is kept to that step.
            port = open_serial(url, baud, timeout=READ_STEP_S, **({"exclusive": True} if device else {}))
        except (serial.SerialException, OSError, ValueError) as exc:   # ValueError: unknown URL scheme
            busy = "lock" in str(exc).lower() or "busy" in str(exc).lower()
            problem = "is busy: another program holds it" if busy else f"cannot be opened: {exc}"
            raise ProtocolError(f"serial port {url} {problem}. Close the other program (a serial "
                                "monitor, avrdude, another test run) and try again") from None
        return cls(port, **kwargs)

    def close(self) -> None:
        self.port.close()

    # --- requests --------------------------------------------------------------------------
    def identify(self, attempts: int | None = None) -> Identity:
        frame = self._request(MSG["IDENTIFY"], b"", MSG["IDENTITY"], retries=attempts)
        identity = Identity.parse(frame.payload)
        if identity.protocol_version != PROTOCOL_VERSION:
            raise ProtocolError(f"the DUT speaks protocol v{identity.protocol_version}, this harness "
                                f"v{PROTOCOL_VERSION}: rebuild the firmware with this harness's runtime")
        self.identity = identity
        self.max_payload = identity.max_payload
        self._decoder.max_payload = self.reply_limit
        return identity

    def echo(self, data: bytes) -> bytes:
        return self._request(MSG["ECHO"], data, MSG["ECHO_REPLY"]).payload

    def infer(self, vector: bytes, runs: int = 1, warmup: int = 0, timeout: float | None = None,
              per_run: bool = True) -> InferResult:
        """Run the model on `vector` `warmup` times untimed, then `runs` times timed. `per_run`
        False: only the runs' total is needed (an energy window), so a long RESULT that arrives
        damaged is fetched without its per-run cycles."""
        identity = self.identity or self.identify()
        if runs < 1 or runs > identity.max_runs:
            raise ValueError(f"runs must be 1..{identity.max_runs} on {identity.board}, not {runs}")
        head = struct.pack("<HH", runs, warmup)
        summary = RESULT_HEAD.size + identity.output_bytes     # all but the per-run cycles
        reply = summary + 4 * runs
        # A RESULT longer than a FETCH piece is fetched in pieces if it arrives damaged
        fetch = (reply if per_run else summary) if reply > FETCH_PIECE else 0
        started = time.perf_counter()
        if len(head) + len(vector) <= self.max_payload:
            frame = self._request(MSG["INFER"], head + vector, MSG["RESULT"], timeout=timeout,
                                  work=runs + warmup, fetch=fetch)
        else:
            frame = self._infer_loaded(head, vector, timeout, runs + warmup, fetch)
        payload = frame.payload
        if len(payload) < RESULT_HEAD.size or RESULT_HEAD.unpack_from(payload)[0] != runs or \
                len(payload) not in (summary, reply):
            raise ProtocolError(f"RESULT reply of {len(payload)} bytes does not hold {runs} runs")
        _, loops, timed, total = RESULT_HEAD.unpack_from(payload)
        if total == TOTAL_OVERFLOW and len(payload) < reply:   # too long to sum in 32 bits
            payload += self._fetch(frame.seq, reply, timeout, start=len(payload))
        roundtrip = time.perf_counter() - started
        output = payload[RESULT_HEAD.size:summary]
        cycles = list(struct.unpack_from(f"<{runs}I", payload, summary)) if len(payload) == reply else []
        if total == TOTAL_OVERFLOW:
            valid = [c for c in cycles if c != CYCLES_INVALID]
            timed, total = len(valid), sum(valid)
        return InferResult(output, cycles, roundtrip, max(loops, 1), runs, timed, total)

    def infer_batch(self, vectors: list[bytes], timeout: float | None = None) -> BatchResult:
        """Each vector once, in one request (at most Identity.batch_max of them)."""
        identity = self.identity or self.identify()
        if not 0 < len(vectors) <= identity.batch_max:
            raise ValueError(f"a batch holds 1..{identity.batch_max} vectors on {identity.board}, "
                             f"not {len(vectors)}")
        started = time.perf_counter()
        frame = self._request(MSG["INFER_BATCH"], struct.pack("<H", len(vectors)) + b"".join(vectors),
                              MSG["BATCH_RESULT"], timeout=timeout, work=len(vectors))
        roundtrip = time.perf_counter() - started
        per = len(frame.payload) - 2
        if per % len(vectors) or struct.unpack_from("<H", frame.payload)[0] != len(vectors):
            raise ProtocolError(f"BATCH_RESULT of {len(frame.payload)} bytes does not hold "
                                f"{len(vectors)} results")
        per //= len(vectors)
        outputs, cycles = [], []
        for k in range(len(vectors)):
            at = 2 + k * per
            outputs.append(frame.payload[at:at + per - 4])
            cycles.append(struct.unpack_from("<I", frame.payload, at + per - 4)[0])
        return BatchResult(outputs, cycles, roundtrip)

    def infer_staged(self, count: int, pieces: list[tuple[int, int, bytes]],
                      timeout: float | None = None) -> StagedResult:
        """A batch over a noisy link: each (slot, part, bytes) piece in its own STAGE frame, then
        one INFER_STAGED for slots 0..count-1. Only slots whose pieces all arrived intact run;
        the reply says which pieces of the others to send again. Count 0 starts a new batch."""
        identity = self.identity or self.identify()
        if not 0 <= count <= identity.stage_slots:
            raise ValueError(f"a staged batch holds 0..{identity.stage_slots} vectors on "
                             f"{identity.board}, not {count}")
        for slot, part, piece in pieces:
            self._send(MSG["STAGE"], bytes([slot, part]) + piece)
        frame = self._request(MSG["INFER_STAGED"], struct.pack("<H", count),
                              MSG["STAGED_RESULT"], timeout=timeout, work=count)
        parts, payload = identity.stage_parts, frame.payload
        ran_at, staged_at = 2, 2 + (count + 7) // 8
        results_at = staged_at + (count * parts + 7) // 8

        def bit(at: int, k: int) -> bool:
            return bool(payload[at + k // 8] >> (k % 8) & 1)

        per = identity.output_bytes + 4
        ran = [k for k in range(count) if len(payload) > ran_at + k // 8 and bit(ran_at, k)]
        if (len(payload) < 2 or struct.unpack_from("<H", payload)[0] != count or
                len(payload) != results_at + len(ran) * per):
            raise ProtocolError(f"STAGED_RESULT of {len(payload)} bytes does not answer "
                                f"{count} staged vectors")
        outputs: list[bytes | None] = [None] * count
        cycles: list[int | None] = [None] * count
        for n, k in enumerate(ran):
            at = results_at + n * per
            outputs[k] = payload[at:at + per - 4]
            cycles[k] = struct.unpack_from("<I", payload, at + per - 4)[0]
        staged = {(k, p) for k in range(count) for p in range(parts) if bit(staged_at, k * parts + p)}
        return StagedResult(outputs, cycles, staged)

    def _infer_loaded(self, head: bytes, vector: bytes, timeout: float | None, work: int,
                      fetch: int) -> Frame:
        chunk = self.max_payload - 2
        check = struct.pack("<HH", len(vector), crc16(vector))
        # An intact LOAD is kept and a damaged one dropped, so every try completes more of the
        # vector; a mismatch shows the DUT alive, so it counts against corrupt_retries.
        for _ in range(self.corrupt_retries + 1):
            for offset in range(0, len(vector), chunk):
                self._send(MSG["LOAD"], struct.pack("<H", offset) + vector[offset:offset + chunk])
            try:
                return self._request(MSG["INFER_LOADED"], head + check, MSG["RESULT"], timeout=timeout,
                                     work=work, fetch=fetch)
            except _VectorMismatch:
                self.stats.vector_reloads += 1
        raise ProtocolError(f"the DUT never received the whole {len(vector)}-byte vector intact "
                            f"after {self.corrupt_retries + 1} tries: the link loses or corrupts too much")

    def _fetch(self, seq: int, end: int, timeout: float | None, start: int = 0) -> bytes:
        """Bytes start..end of the RESULT the DUT holds for request `seq`, in FETCH_PIECE
        pieces (each FETCH carries that SEQ, so the DUT knows which result is meant and keeps
        it). Raises _NotHeld when the DUT holds none: the request itself must be sent again."""
        got = bytearray()
        while start + len(got) < end:
            want = struct.pack("<H", start + len(got))
            frame = self._request(MSG["FETCH"], want + struct.pack("<H", min(FETCH_PIECE, end - start - len(got))),
                                  MSG["RESULT_PART"], timeout=timeout, seq=seq,
                                  accept=lambda reply: reply.type != MSG["RESULT_PART"] or
                                  reply.payload[:2] == want)      # not a late copy of a piece before
            self.stats.fetches += 1
            if len(frame.payload) <= 2:
                raise ProtocolError(f"FETCH at byte {start + len(got)} of a RESULT got no bytes: "
                                    "the DUT's RESULT is shorter than its request asked for")
            got += frame.payload[2:]
        return bytes(got)

    # --- framing ---------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _send(self, msg_type: int, payload: bytes, seq: int | None = None) -> int:
        """One frame; a resend passes its request's `seq` (the DUT then answers from the
        result it holds), a new request (and every LOAD) takes the next one."""
        seq = self._next_seq() if seq is None else seq
        frame = encode(msg_type, seq, payload)
        if self.identity is not None and not self.identity.flags & FLAG["POLLED_RX"]:
            frame += bytes([PAD])      # a DUT that hears bytes while busy: the pad (wire.PAD)
        try:
            self.port.write(frame)
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"writing to {self.port.portstr} failed: {exc}") from None
        self.stats.bytes_sent += len(frame)
        self._last_sent = len(frame)
        return seq

    def _request(self, msg_type: int, payload: bytes, reply_type: int,
                 timeout: float | None = None, retries: int | None = None, *, work: int = 0,
                 fetch: int = 0, seq: int | None = None,
                 accept: Callable[[Frame], bool] | None = None) -> Frame:
        """Send one request until its reply arrives intact. `work`: inferences it asks for
        (round trips are learnt per kind of request, and 1024 runs take longer than 4);
        `fetch`: the reply's length, when it is long enough to be fetched in pieces after it
        arrived damaged; `seq`: the SEQ of the request a FETCH is for; `accept`: which reply
        frames with the right SEQ answer this very request."""
        if accept is None and msg_type != MSG["FETCH"]:
            accept = _not_a_fetch_reply
        if len(payload) > self.max_payload:
            raise ValueError(f"payload of {len(payload)} B exceeds the DUT's {self.max_payload} B")
        self.stats.requests += 1
        retries = self.retries if retries is None else retries
        last_problem = "no reply"
        silent = damaged = 0
        timed_out = maybe_held = False
        seq = self._next_seq() if seq is None else seq
        kind, quick_tries = (msg_type, len(payload), work), 0
        while silent <= retries and damaged <= self.corrupt_retries:
            if silent or damaged or quick_tries:
                self.stats.resends += 1
            if timed_out:
                self._resync()
            if maybe_held:
                # The DUT may hold this request's long reply: fetch it in pieces, not resent whole
                try:
                    return Frame(reply_type, seq, self._fetch(seq, fetch, timeout))
                except _NotHeld:
                    maybe_held = False           # the request never arrived whole: send it again
            quick = self._quick_wait(kind, timeout or self.timeout) if quick_tries < QUICK_TRIES else None
            sent = time.perf_counter()
            self._send(msg_type, payload, seq)
            wait = quick or timeout or self.timeout
            if not quick and not self.stats.resends and kind in self._srtt:
                # A clean link so far: a kind answered before is waited for many of its round
                # trips (of the DUT's CPU time), not the whole timeout; a miss is a timeout.
                wait = min(wait, max(FIRST_FLOOR_S, FIRST_RTTS * self._srtt[kind]))
            frame = self._await(seq, wait, accept)
            timed_out = frame is None
            maybe_held = bool(fetch) and frame is None
            if frame is None and quick:
                problem = self.alive_check() if self.alive_check else None
                if problem:          # a dead or stopped DUT is said at once, as after a timeout
                    raise NoReply(f"{_name(msg_type)} got no reply on {self.port.portstr}: {problem[1]}")
                # Resent at once; the DUT answers a repeat without rerunning it. A damaged reply
                # shows the DUT alive: it counts against corrupt_retries, not the quick tries.
                if self._heard:
                    damaged += 1
                else:
                    quick_tries += 1
                self.stats.quick_resends += 1
                continue
            if frame is not None and not (silent or damaged or quick_tries):
                rtt = time.perf_counter() - sent   # a first send's reply only (Karn's rule)
                self._srtt[kind] = rtt if kind not in self._srtt else 0.875 * self._srtt[kind] + 0.125 * rtt
            if frame is None:
                self.stats.timeouts += 1
                last_problem = f"no reply within {timeout or self.timeout:.1f} s"
                problem = self.alive_check() if self.alive_check else None
                if problem:
                    raise NoReply(f"{_name(msg_type)} got no reply on {self.port.portstr}: {problem[1]}")
                if self._heard:
                    damaged += 1         # bytes came back, but no intact reply: a damaged one
                else:
                    silent += 1
                continue
            if frame.type == reply_type:
                return frame
            if frame.type == MSG["ERROR"]:
                code = frame.payload[0] if frame.payload else 0
                if code == ERR["BAD_CRC"]:
                    self.stats.crc_errors_reported += 1
                    last_problem = "the DUT received a corrupted frame"
                    damaged += 1
                    continue
                if code == ERR["VECTOR_MISMATCH"]:
                    raise _VectorMismatch()
                if code == ERR["NOT_HELD"]:
                    raise _NotHeld()
                detail = struct.unpack_from("<H", frame.payload, 1)[0] if len(frame.payload) >= 3 else 0
                raise ProtocolError(f"the DUT refused {_name(msg_type)}: "
                                    f"{ERR_NAME.get(code, code)} (detail {detail})")
            last_problem = f"unexpected {frame.name} reply"
            damaged += 1
        if damaged > self.corrupt_retries:     # it answers, but never intact: not a hang
            raise LinkNoisy(f"{_name(msg_type)} failed on {self.port.portstr}: {damaged} tries "
                            f"in a row were damaged on the link ({last_problem}). The DUT answers "
                            "but the link corrupts its frames: check the baud rate, the cable and "
                            "its ground, or a --fault-link rate set too high")
        raise NoReply(f"{_name(msg_type)} failed after {silent + damaged} tries on "
                            f"{self.port.portstr}: {last_problem}. Is the board running the tinyhil "
                            "firmware, at the right baud rate?")

    def _quick_wait(self, kind: tuple[int, int], timeout: float) -> float | None:
        """On a link that has already lost frames, a lost request or reply is resent after a
        few round trips, not after the whole reply timeout (a noisy link would otherwise spend
        nearly all its time waiting). Safe because a repeated request keeps its SEQ and the DUT
        answers it from its held result. (On a clean link _request shortens only the first wait,
        and a miss there is a timeout like any other.)"""
        if not self.stats.resends:
            return None
        if kind not in self._srtt:
            # No round trip of this kind seen yet: the slowest kind seen stands in for it, up to
            # a share of the wait. Resending too soon costs only a second copy of the reply: the
            # DUT answers a repeat from its held result.
            if not self._srtt:
                return timeout / 4
            return min(timeout / 4, QUICK_FLOOR_S + QUICK_RTTS * max(self._srtt.values()))
        return min(timeout, QUICK_FLOOR_S + QUICK_RTTS * self._srtt[kind])

    def _resync(self) -> None:
        """After a lost reply the DUT's parser may sit inside a frame that lost a byte, waiting
        for up to max_payload more: it would swallow the start of the resent frame too. Zero
        bytes (never SYNC) complete any such frame, which then fails its CRC, and leave the
        parser hunting for SYNC: one timeout per lost byte instead of two. The host's own
        decoder may hold a reply that lost a byte in the same way: it starts afresh."""
        self._decoder = Decoder(self.reply_limit)
        # The frame that may be stuck is the last one sent: as many bytes as it had suffice.
        padding = bytes(self._last_sent or (self.max_payload + OVERHEAD))
        try:
            self.port.write(padding)
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"writing to {self.port.portstr} failed: {exc}") from None
        self.stats.bytes_sent += len(padding)

    def _await(self, seq: int, timeout: float, accept: Callable[[Frame], bool] | None = None) -> Frame | None:
        deadline = ProgressDeadline(self.watch_pid, timeout)
        self._heard = damaged = False
        while True:
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:
                # TypeError: pyserial's pty read after the other side vanished (fd is None)
                raise LinkLost(f"reading from {self.port.portstr} failed: {exc}") from None
            if not data:
                # A damaged reply, and the link has fallen quiet: resend now, not after the
                # timeout. (Not while bytes still come: the rest of a long damaged frame holds
                # many a false SYNC, and its reply may follow it.)
                if damaged and len(self._decoder.buffer) < HEADER_SIZE or deadline.expired():
                    return None
                continue
            self.stats.bytes_received += len(data)
            self._heard = True
            rejected = self._decoder.rejected
            frames = self._decoder.feed(data)
            self.stats.frames_rejected += self._decoder.rejected - rejected
            for frame in frames:         # replies to earlier requests are dropped
                if frame.seq == seq and (accept is None or accept(frame)):
                    return frame
            damaged |= self._decoder.rejected > rejected
            if deadline.expired():       # a stream of garbage must not hold us either
                return None


# A quick resend waits QUICK_FLOOR_S + QUICK_RTTS round trips (of the DUT's CPU time, like
# every reply deadline), at most QUICK_TRIES times per request before the full timeout. The
# floor can be a few ms: a resend that overtakes a slow reply is answered from the held result.
QUICK_FLOOR_S = 0.003
READ_STEP_S = 0.002
QUICK_RTTS = 4
QUICK_TRIES = 10
# Before a link has lost anything: FIRST_RTTS round trips, at least FIRST_FLOOR_S.
FIRST_RTTS = 10
FIRST_FLOOR_S = 0.25


class NoReply(ProtocolError):
    """The DUT did not answer a request, even after every resend."""


class LinkLost(ProtocolError):
    """The serial port itself failed (unplugged, re-enumerated, the other end closed)."""


class LinkNoisy(ProtocolError):
    """The DUT answers, but every reply (or request) arrives damaged: resending will not help."""


class _VectorMismatch(ProtocolError):
    """INFER_LOADED found the loaded vector incomplete: the chunks must be sent again."""


class _NotHeld(ProtocolError):
    """FETCH found no held RESULT for its SEQ: the request itself must be sent again."""


def _not_a_fetch_reply(frame: Frame) -> bool:
    """A FETCH carries its request's SEQ: its late replies answer no other request."""
    return frame.type != MSG["RESULT_PART"] and not (
        frame.type == MSG["ERROR"] and frame.payload[:1] == bytes([ERR["NOT_HELD"]]))


def _name(msg_type: int) -> str:
    return MSG_NAME.get(msg_type, hex(msg_type))
