"""Write the seed corpus for fuzz_dut_parser: one valid exchange of each request type, plus a
few broken ones. Run from the repository root: python devices/firmware/fuzz/make_corpus.py"""

import struct
from pathlib import Path

from harness.protocol.wire import MSG, crc16, encode

CORPUS = Path(__file__).resolve().parent / "corpus"
VECTOR = bytes(range(16))


def seeds() -> dict[str, bytes]:
    infer = encode(MSG["INFER"], 3, struct.pack("<HH", 2, 1) + VECTOR)
    loads = encode(MSG["LOAD"], 4, struct.pack("<H", 0) + VECTOR[:10]) + \
        encode(MSG["LOAD"], 5, struct.pack("<H", 10) + VECTOR[10:])
    loaded = encode(MSG["INFER_LOADED"], 6, struct.pack("<HHHH", 1, 0, len(VECTOR), crc16(VECTOR)))
    return {
        "identify": encode(MSG["IDENTIFY"], 1, b""),
        "echo": encode(MSG["ECHO"], 2, b"hello\xa5\x00\xff"),
        "infer": infer,
        "load_then_infer_loaded": loads + loaded,
        "runs_out_of_range": encode(MSG["INFER"], 7, struct.pack("<HH", 0, 0) + VECTOR),
        "unknown_type": encode(0x7F, 8, b"\x01"),
        "bad_crc": infer[:-1] + bytes([infer[-1] ^ 0x40]),
        "truncated_then_whole": infer[:9] + infer,
    }


if __name__ == "__main__":
    CORPUS.mkdir(exist_ok=True)
    for name, data in seeds().items():
        (CORPUS / name).write_bytes(data)
        print(f"{CORPUS / name}: {len(data)} bytes")
