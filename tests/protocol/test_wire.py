"""The frame format: one source of constants, and no damaged frame is ever accepted."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.paths import firmware_dir
from harness.protocol.wire import OVERHEAD, SYNC, Decoder, crc8, crc16, encode, c_header


def test_c_header_is_generated_from_wire_py():
    committed = (firmware_dir() / "runtime" / "tinyhil_wire.h").read_text()
    assert committed == c_header(), "run `tinyhil gen-header` and commit the header"


def test_crc_check_values():
    assert crc16(b"123456789") == 0x29B1      # CRC-16/CCITT-FALSE check value
    assert crc8(b"123456789") == 0xF4         # CRC-8 (poly 0x07) check value


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300))
def test_round_trip(msg_type, seq, payload):
    frame = encode(msg_type, seq, payload)
    assert len(frame) == len(payload) + OVERHEAD
    decoded = Decoder().feed(frame)
    assert [(f.type, f.seq, f.payload) for f in decoded] == [(msg_type, seq, payload)]


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=64), st.data())
def test_any_single_corruption_is_rejected(payload, data):
    frame = bytearray(encode(0x04, 7, payload))
    position = data.draw(st.integers(0, len(frame) - 1))
    flip = data.draw(st.integers(1, 255))
    frame[position] ^= flip
    # Whatever the damage, the original frame must not come out of the decoder.
    decoded = Decoder().feed(bytes(frame))
    assert all(f.payload != payload or f.seq != 7 for f in decoded)


def test_resynchronises_after_garbage_and_split_delivery():
    rng = random.Random(1)
    frames = [encode(0x02, i, bytes([i]) * i) for i in range(1, 20)]
    stream = bytearray()
    for f in frames:
        stream += bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12))) + f
    decoder = Decoder()
    got = []
    i = 0
    while i < len(stream):                        # delivered in random slices, as a UART does
        step = rng.randrange(1, 9)
        got += decoder.feed(bytes(stream[i:i + step]))
        i += step
    assert [f.seq for f in got] == list(range(1, 20))


def test_oversized_length_is_rejected_from_the_header():
    decoder = Decoder(max_payload=16)
    frame = encode(0x02, 1, bytes(32))
    assert decoder.feed(frame) == []
    assert decoder.rejected >= 1
    assert decoder.feed(encode(0x02, 2, b"ok")) != []
    assert frame[0] == SYNC
