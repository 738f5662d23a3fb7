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
    payload = bytes(range(256))[: dut.identity.max_payload] + os.urandom(8)
    payload = payload[: dut.identity.max_payload]
    assert dut.client.echo(payload) == payload
    result = dut.infer(dut.exported.vector_bytes(0))
    record("host_roundtrip_ms", result.roundtrip_s * 1e3, "ms", "wall-clock",
           detail="host time for one inference request, link and emulator included")
