"""Wire protocol v5: the one source of its constants, and frame encoding/decoding.

docs/protocol.md specifies it; devices/firmware/runtime/tinyhil_wire.h is generated from this
module (`tinyhil gen-header`), and a test checks that the committed header matches.

Frame (all integers little endian):

    SYNC(1)=0xA5  TYPE(1)  SEQ(1)  LEN(2)  HCRC(1)  PAYLOAD(LEN)  CRC(2)

HCRC is CRC-8 (poly 0x07) over TYPE..LEN, so a corrupted length is rejected at once.
CRC is CRC-16/CCITT-FALSE over TYPE..PAYLOAD.

v3: a resent request keeps its SEQ, and the DUT answers a byte-identical repeat of the
inference request it just served from that request's result (exactly once); INFER_BATCH
carries several vectors in one request (how many: IDENTITY's batch_max, from the board's RAM).
v4: a noisy link stages a batch's vectors in pieces of STAGE_PIECE bytes, one frame each
(STAGE), and runs the vectors whose pieces all arrived intact (INFER_STAGED): a damaged piece
is sent again alone, not its vector or the whole batch.
v5: a RESULT longer than a short frame (an ESP32's 1024 runs are 4 KB of cycles) is fetched in
pieces of at most FETCH_PIECE bytes (FETCH), answered from the held result, after its whole
reply arrived damaged: the inference still runs once.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

PROTOCOL_VERSION = 5
SYNC = 0xA5
HEADER_SIZE = 6          # SYNC TYPE SEQ LEN(2) HCRC
TRAILER_SIZE = 2         # CRC-16
OVERHEAD = HEADER_SIZE + TRAILER_SIZE
# Sent after every frame, both ways (never SYNC, so a receiver hunting for a frame skips it): a
# frame that lost a byte on the link is completed by the pad and fails its CRC at once, so the
# loss is answered (BAD_CRC) or resent now instead of after a reply timeout.
PAD = 0x00
# Bytes of a vector one STAGE frame carries: a short frame crosses a noisy link intact far more
# often than a whole vector does (at 0.6 % damaged bytes, 78 % of 40-byte frames, 43 % of 140)
STAGE_PIECE = 32
# Bytes of a held RESULT one FETCH asks for: a long RESULT that arrived damaged is fetched in
# pieces this long (at 0.6 % damaged bytes, 43 % of 140-byte frames arrive intact, 0 % of 4 KB)
FETCH_PIECE = 128

# Message types. Requests come from the host; every request but LOAD and STAGE gets exactly one
# response carrying the request's SEQ. A resend of a request carries the same SEQ.
MSG = {
    "IDENTIFY": 0x01,        # host -> DUT, empty payload
    "IDENTITY": 0x81,        # DUT -> host
    "ECHO": 0x02,            # host -> DUT, any payload
    "ECHO_REPLY": 0x82,      # DUT -> host, the same payload
    "LOAD": 0x03,            # host -> DUT: offset u16, bytes; no response (checked by INFER_LOADED)
    "INFER": 0x04,           # host -> DUT: runs u16, warmup u16, the whole vector
    "INFER_LOADED": 0x05,    # host -> DUT: runs u16, warmup u16, length u16, crc16 u16
    # DUT -> host: runs u16, loops u32, output bytes, runs x cycles u32 (each run: `loops`
    # inferences back to back, so a host clock's coarse steps never read a run as 0 ticks)
    "RESULT": 0x84,
    # host -> DUT: count u16, count whole vectors; each run once, timed alone
    "INFER_BATCH": 0x06,
    # DUT -> host: count u16, then per vector its output bytes and cycles u32
    "BATCH_RESULT": 0x86,
    # host -> DUT: slot u8, part u8, then bytes part*STAGE_PIECE.. of the vector in that slot
    # (STAGE_PIECE of them, fewer for a vector's last piece); no response. The piece counts as
    # staged only if the frame arrived intact
    "STAGE": 0x07,
    # host -> DUT: count u16; runs once each of slots 0..count-1 whose pieces are all staged,
    # timed alone, and unstages them; count 0 unstages everything (a new batch)
    "INFER_STAGED": 0x08,
    # DUT -> host: count u16, a bitmap of the slots that ran, a bitmap of the pieces still
    # staged (bit slot*parts+part; parts = the vector's pieces), then per slot that ran, in
    # order, its output bytes and cycles u32. Bit k of a bitmap is bit k%8 of its byte k/8
    "STAGED_RESULT": 0x88,
    # host -> DUT, with the SEQ of the INFER or INFER_LOADED whose RESULT the DUT holds:
    # offset u16, length u16; answered from the held RESULT (never run again, never cleared)
    "FETCH": 0x09,
    # DUT -> host: offset u16, then bytes offset.. of the held RESULT's payload (length of
    # them, fewer at its end)
    "RESULT_PART": 0x89,
    "ERROR": 0xEE,           # DUT -> host: code u8, detail u16
}

# Error codes carried by ERROR.
ERR = {
    "BAD_CRC": 1,            # the frame's header was sound but its payload CRC failed
    "UNKNOWN_TYPE": 2,       # no such request type
    "BAD_LENGTH": 3,         # payload length wrong for the request
    "VECTOR_MISMATCH": 4,    # INFER_LOADED: loaded bytes do not match length/CRC (a LOAD was lost)
    "RUNS_OUT_OF_RANGE": 5,  # runs is 0 or larger than the DUT's max_runs
    "BAD_OFFSET": 6,         # LOAD past the vector capacity
    "MODEL_FAILED": 7,       # the model returned non-zero
    "BATCH_OUT_OF_RANGE": 8, # INFER_BATCH: count 0 or above batch_max; INFER_STAGED: above
                             # batch_max or 255 (detail: the most)
    "NOT_HELD": 9,           # FETCH: no RESULT is held for this SEQ (the request never came
                             # intact, or another one came since): send the request again
}

# IDENTITY flag bits.
FLAG = {
    "HOST_CLOCK": 0x01,          # the cycle counter is host wall time (native build)
    "IDENTIFIED_BEFORE": 0x02,   # this DUT has answered IDENTIFY since it booted: when clear on a
                                 # re-IDENTIFY, the DUT was reset in between
    "POLLED_RX": 0x04,           # a polled soft UART: it hears bytes only while it waits for a
                                 # frame, so the host sends no pad after a request
}

# A per-run cycle count the DUT could not measure (its counter ran backwards).
CYCLES_INVALID = 0xFFFFFFFF

# Element types of test vectors and outputs.
DTYPE = {"int8": 1, "uint8": 2, "int16": 3, "int32": 4, "float32": 5}
DTYPE_SIZE = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "float32": 4}
DTYPE_NAME = {code: name for name, code in DTYPE.items()}

MSG_NAME = {code: name for name, code in MSG.items()}
ERR_NAME = {code: name for name, code in ERR.items()}


def _crc8_bitwise(byte: int) -> int:
    crc = byte
    for _ in range(8):
        crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


_CRC8_TABLE = bytes(_crc8_bitwise(b) for b in range(256))   # one lookup per byte, not 8 shifts


def crc8(data: bytes) -> int:
    """CRC-8 (poly 0x07, init 0); crc8(b"123456789") == 0xF4."""
    crc = 0
    for byte in data:
        crc = _CRC8_TABLE[crc ^ byte]
    return crc


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF); crc16(b"123456789") == 0x29B1.
    binascii's crc_hqx is exactly this CRC, computed in C."""
    return binascii.crc_hqx(data, crc)


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes

    @property
    def name(self) -> str:
        return MSG_NAME.get(self.type, f"0x{self.type:02x}")


def encode(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    head = struct.pack("<BBH", msg_type, seq & 0xFF, len(payload))
    body = head + payload
    return bytes([SYNC]) + head + bytes([crc8(head)]) + payload + struct.pack("<H", crc16(body))


class Decoder:
    """Incremental frame decoder: feed it bytes, take whole frames. Never accepts a bad frame.

    Counts what it rejected so a link's health can be reported.
    """

    def __init__(self, max_payload: int = 65535):
        self.max_payload = max_payload
        self.buffer = bytearray()
        self.rejected = 0      # frames whose header or payload CRC failed
        self.skipped = 0       # bytes discarded while hunting for SYNC

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames = []
        while True:
            start = self.buffer.find(SYNC)
            if start < 0:
                self.skipped += len(self.buffer)
                self.buffer.clear()
                return frames
            if start:
                self.skipped += start
                del self.buffer[:start]
            if len(self.buffer) < HEADER_SIZE:
                return frames
            head = bytes(self.buffer[1:5])
            msg_type, seq, length = struct.unpack("<BBH", head)
            if crc8(head) != self.buffer[5] or length > self.max_payload:
                self.rejected += 1
                del self.buffer[:1]          # resynchronise on the next SYNC byte
                continue
            end = HEADER_SIZE + length + TRAILER_SIZE
            if len(self.buffer) < end:
                return frames
            payload = bytes(self.buffer[HEADER_SIZE:HEADER_SIZE + length])
            (crc,) = struct.unpack("<H", self.buffer[end - 2:end])
            if crc16(head + payload) != crc:
                self.rejected += 1
                del self.buffer[:1]
                continue
            del self.buffer[:end]
            frames.append(Frame(msg_type, seq, payload))


def c_header() -> str:
    """The C side's copy of the constants above (devices/firmware/runtime/tinyhil_wire.h)."""
    lines = [
        "/* Generated from harness/protocol/wire.py by `tinyhil gen-header`: do not edit by hand.",
        " * tests/protocol/test_wire.py fails when this file and harness/protocol/wire.py disagree. */",
        "#ifndef TINYHIL_WIRE_H",
        "#define TINYHIL_WIRE_H",
        "",
        f"#define TINYHIL_PROTOCOL_VERSION {PROTOCOL_VERSION}",
        f"#define TINYHIL_SYNC 0x{SYNC:02X}",
        f"#define TINYHIL_HEADER_SIZE {HEADER_SIZE}",
        f"#define TINYHIL_TRAILER_SIZE {TRAILER_SIZE}",
        f"#define TINYHIL_PAD 0x{PAD:02X}",
        f"#define TINYHIL_STAGE_PIECE {STAGE_PIECE}",
        f"#define TINYHIL_CYCLES_INVALID 0x{CYCLES_INVALID:08X}UL",
        "",
    ]
    lines += [f"#define TINYHIL_MSG_{name} 0x{code:02X}" for name, code in MSG.items()]
    lines.append("")
    lines += [f"#define TINYHIL_ERR_{name} {code}" for name, code in ERR.items()]
    lines.append("")
    lines += [f"#define TINYHIL_DTYPE_{name.upper()} {code}" for name, code in DTYPE.items()]
    lines.append("")
    lines += [f"#define TINYHIL_FLAG_{name} 0x{code:02X}" for name, code in FLAG.items()]
    lines += ["", "#endif", ""]
    return "\n".join(lines)
