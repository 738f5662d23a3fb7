"""The DUT runtime and the host client, end to end, on the native build (a real process on a
real pseudo-terminal): identify, echo, both ways of sending a vector, errors, corrupted
frames and a fuzz of the DUT's parser."""

import dataclasses
import os
import random
import struct

import pytest
import serial

from harness.backends import fidelity_of, get_backend
from harness.backends.base import StartRequest
from harness.boards import get_board
from harness.errors import ProtocolError
from harness.build.firmware import build_firmware
from harness.models import export
from harness.protocol.client import DutClient
from harness.protocol.wire import MSG, encode


@pytest.fixture
def client(native_probe):
    target, _, _ = native_probe
    dut = DutClient.open(target.url, timeout=1.0)
    dut.identify()
    yield dut
    dut.close()


def test_identity_describes_the_build(client, native_probe):
    _, exported, firmware = native_probe
    ident = client.identity
    assert ident.board == "native"
    assert ident.model_id == "probe/checksum_2048"
    assert ident.build_id == firmware.build_id
    assert ident.model_hash == exported.model_hash[:16]
    assert (ident.input_count, ident.input_dtype) == (2048, "uint8")
    assert ident.timer_hz == 1_000_000_000


def test_echo_is_binary_safe(client):
    payload = bytes(range(256)) * 3
    assert client.echo(payload) == payload
    assert client.echo(b"") == b""


@pytest.mark.parametrize("max_payload", [1024, 160, 64])
def test_vector_in_chunks_gives_the_host_reference(client, native_probe, max_payload):
    _, exported, _ = native_probe
    client.max_payload = max_payload        # as a smaller board would frame it
    for i in range(4):
        result = client.infer(exported.vector_bytes(i))
        assert exported.decode_output(result.output)[0] == exported.host_reference[i][0]
    assert client.stats.vector_reloads == 0


def test_timed_runs_return_one_count_each(client, native_probe):
    _, exported, _ = native_probe
    result = client.infer(exported.vector_bytes(0), runs=7, warmup=3)
    assert len(result.cycles) == 7
    assert all(c > 0 for c in result.cycles)


def test_the_longest_result_is_accepted_and_sums_its_runs(client, native_probe):
    """The most runs one INFER may ask for: its RESULT is the longest reply a DUT without
    batches sends, so the client's decoder must take a header announcing it. The head's total
    is the sum of the per-run counts."""
    _, exported, _ = native_probe
    client.identity = dataclasses.replace(client.identity, batch_max=0)   # no batch reply is longer
    client._decoder.max_payload = client.reply_limit
    runs = client.identity.max_runs
    result = client.infer(exported.vector_bytes(0), runs=runs)
    assert client.stats.frames_rejected == 0 and client.stats.resends == 0
    assert (result.runs, result.timed_runs, result.total_cycles) == (runs, runs, sum(result.cycles))


def test_runs_out_of_range_is_refused_by_the_dut(client):
    with pytest.raises(ProtocolError, match="RUNS_OUT_OF_RANGE"):
        client._request(MSG["INFER_LOADED"], struct.pack("<HHHH", 0, 0, 2048, 0), MSG["RESULT"])


def test_lost_chunk_is_detected_and_resent(client, native_probe):
    _, exported, _ = native_probe
    client.max_payload = 160
    real_write = client.port.write
    dropped = []

    def drop_second_load(data):
        if data[1] == MSG["LOAD"] and not dropped and data[6:8] != b"\0\0":
            dropped.append(data)
            return len(data)
        return real_write(data)

    client.port.write = drop_second_load
    result = client.infer(exported.vector_bytes(1))
    assert dropped and client.stats.vector_reloads == 1
    assert exported.decode_output(result.output)[0] == exported.host_reference[1][0]


def test_corrupted_request_is_resent_never_accepted(client, native_probe):
    _, exported, _ = native_probe
    real_write = client.port.write
    rng = random.Random(7)
    corrupted = []

    def corrupt_every_third(data):
        data = bytearray(data)
        if len(corrupted) < 20 and rng.random() < 0.34:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            corrupted.append(1)
        return real_write(bytes(data))

    client.port.write = corrupt_every_third
    client.timeout = 0.3
    for i in range(12):
        out = exported.decode_output(client.infer(exported.vector_bytes(i % 16)).output)
        assert out[0] == exported.host_reference[i % 16][0]
    assert corrupted, "the test injected no fault"
    assert client.stats.resends + client.stats.vector_reloads >= 1


def test_parser_survives_any_byte_stream(native_probe):
    """Fuzz: random bytes, truncated frames, damaged frames and oversized lengths; afterwards
    the DUT still answers correctly, and the process is alive."""
    target, exported, _ = native_probe
    rng = random.Random(2026)
    port = serial.serial_for_url(target.url, timeout=0.05)
    valid = [encode(MSG["ECHO"], 1, os.urandom(40)), encode(MSG["INFER"], 2, bytes(6)),
             encode(MSG["LOAD"], 3, b"\xff\xff" + bytes(20)), encode(0x7F, 4, b"x"),
             encode(MSG["INFER_LOADED"], 5, bytes(8))]
    for _ in range(3000):
        choice = rng.random()
        if choice < 0.3:
            chunk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        else:
            chunk = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                chunk[rng.randrange(len(chunk))] = rng.randrange(256)
            chunk = bytes(chunk[: rng.randrange(1, len(chunk) + 1)])
        port.write(chunk)
        port.read(port.in_waiting)
    port.write(bytes(2048))               # flush out any frame still being collected
    port.close()
    assert target.process.poll() is None, "the native DUT died while fuzzed"
    client = DutClient.open(target.url, timeout=1.0)
    client.identify()
    assert client.echo(b"still alive") == b"still alive"
    got = exported.decode_output(client.infer(exported.vector_bytes(2)).output)[0]
    assert got == exported.host_reference[2][0]
    client.close()
