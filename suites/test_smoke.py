"""Smoke: the DUT identifies itself as the firmware the harness built, and bytes round-trip."""

import os

import pytest


def test_identify(dut, case):
    ident = dut.identity
    if ident.foreign:
        pytest.skip(f"an EEMBC firmware not built by tinyhil names only its model "
                    f"({ident.model_id!r}): board, build and model hash cannot be checked")
    assert ident.board == case.board.name
    assert ident.model_id.endswith(case.variant.name)
    assert (ident.input_count, ident.input_dtype) == (case.variant.input_count, case.variant.input_dtype)
    assert (ident.output_count, ident.output_dtype) == (case.variant.output_count, case.variant.output_dtype)
    assert ident.clock_hz == case.board.clock_hz
    assert ident.build_id == dut.firmware.build_id


def test_round_trip(dut, record):
    """Binary payloads of every byte value come back intact; the host's round trip is recorded
    as what it is: host time, not device latency."""
    # Every byte value, in frames of at most 64 bytes: a long frame seldom crosses a noisy link
    # whole (at 0.5 % damaged bytes, 1 KB arrives intact once in a few hundred tries).
    data = bytes(range(256)) + os.urandom(8)
    step = min(64, dut.identity.max_payload)
    for at in range(0, len(data), step):
        assert dut.client.echo(data[at:at + step]) == data[at:at + step]
    result = dut.infer(dut.exported.vector_bytes(0))
    record("host_roundtrip_ms", result.roundtrip_s * 1e3, "ms", "wall-clock",
           detail="host time for one inference request, link and emulator included")
