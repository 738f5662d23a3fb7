"""Write the seed corpus for fuzz_dut_parser: one valid exchange of each request type, plus a
few broken ones. Run from the repository root: python devices/firmware/fuzz/make_corpus.py"""

import struct
from pathlib import Path

from harness.protocol.wire import MSG, crc16, encode

CORPUS = Path(__file__).resolve().parent / "corpus"
VECTOR = bytes(range(40))   # the fuzz model's input: two STAGE pieces


def seeds() -> dict[str, bytes]:
    infer = encode(MSG["INFER"], 3, struct.pack("<HH", 2, 1) + VECTOR)
    loads = encode(MSG["LOAD"], 4, struct.pack("<H", 0) + VECTOR[:10]) + \
        encode(MSG["LOAD"], 5, struct.pack("<H", 10) + VECTOR[10:])
    loaded = encode(MSG["INFER_LOADED"], 6, struct.pack("<HHHH", 1, 0, len(VECTOR), crc16(VECTOR)))
    pieces = [(slot, part) for slot in range(2) for part in range(2)]
    stages = [encode(MSG["STAGE"], 10 + n, bytes([slot, part]) + VECTOR[part * 32:(part + 1) * 32])
              for n, (slot, part) in enumerate(pieces)]
    damaged = bytearray(stages[1])
    damaged[-3] ^= 0x08
    staged = encode(MSG["INFER_STAGED"], 14, struct.pack("<H", 2))
    return {
        "identify": encode(MSG["IDENTIFY"], 1, b""),
        "echo": encode(MSG["ECHO"], 2, b"hello\xa5\x00\xff"),
        "infer": infer,
        "load_then_infer_loaded": loads + loaded,
        "runs_out_of_range": encode(MSG["INFER"], 7, struct.pack("<HH", 0, 0) + VECTOR),
        "infer_batch": encode(MSG["INFER_BATCH"], 9, struct.pack("<H", 2) + VECTOR * 2),
        "stage_then_infer_staged": b"".join(stages) + staged + staged,
        "stage_damaged_then_again": stages[0] + bytes(damaged) + stages[2] + stages[3] + staged +
        stages[1] + encode(MSG["INFER_STAGED"], 15, struct.pack("<H", 2)),
        "stage_out_of_range": encode(MSG["STAGE"], 16, bytes([9, 7]) + VECTOR[:32]) + staged,
        "new_staged_batch": stages[0] + encode(MSG["INFER_STAGED"], 17, struct.pack("<H", 0)) + staged,
        "infer_then_fetch": infer + encode(MSG["FETCH"], 3, struct.pack("<HH", 0, 8)) +
        encode(MSG["FETCH"], 3, struct.pack("<HH", 8, 200)) + infer,
        "fetch_nothing_held": encode(MSG["FETCH"], 18, struct.pack("<HH", 0, 8)) +
        encode(MSG["FETCH"], 3, struct.pack("<H", 0)),
        "unknown_type": encode(0x7F, 8, b"\x01"),
        "bad_crc": infer[:-1] + bytes([infer[-1] ^ 0x40]),
        "truncated_then_whole": infer[:9] + infer,
    }


if __name__ == "__main__":
    CORPUS.mkdir(exist_ok=True)
    for name, data in seeds().items():
        (CORPUS / name).write_bytes(data)
        print(f"{CORPUS / name}: {len(data)} bytes")
