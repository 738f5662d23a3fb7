"""Exactly once (protocol v3 on): a resent request keeps its sequence number, and the DUT answers
a repeat of the inference it just served from that result, never by running it again. Shown
on simavr, whose marker log has one rising edge per inference request the DUT ran."""

import struct
import time
from pathlib import Path

from faultkit import start_session
from harness.protocol.wire import ERR, HEADER_SIZE, MSG, Decoder, encode


def marker_rises(dut) -> int:
    text = Path(dut.target.marker_log).read_text()
    return sum(1 for line in text.splitlines() if line.split()[:1] == ["1"])


def replies(port, count: int, timeout: float = 10.0) -> list:
    decoder, frames = Decoder(), []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        frames += decoder.feed(port.read(max(1, port.in_waiting)))
    return frames


def test_a_repeated_request_is_answered_from_its_result(tmp_path):
    session, case, dut = start_session(tmp_path, "uno", "simavr", "dtree_emlearn", fault_link=None)
    try:
        port, vector = dut.client.port, dut.exported.vector_bytes(3)
        request = struct.pack("<HH", 2, 1) + vector           # 2 timed runs after 1 warm-up
        before = marker_rises(dut)
        port.write(encode(MSG["INFER"], 200, request))
        port.write(encode(MSG["INFER"], 200, request))        # the same request, resent
        first, again = replies(port, 2)
        assert (first.type, first.seq) == (again.type, again.seq) == (MSG["RESULT"], 200)
        assert first.payload == again.payload
        assert marker_rises(dut) - before == 1, "the resent request ran the inference again"
        port.write(encode(MSG["INFER"], 201, request))        # a new request with equal content
        (new,) = replies(port, 1)
        assert new.seq == 201 and marker_rises(dut) - before == 2
        port.write(encode(MSG["INFER"], 200, request))        # no longer the last one served
        replies(port, 1)
        assert marker_rises(dut) - before == 3
    finally:
        session.close()


def test_damaged_replies_are_resent_without_running_twice(tmp_path):
    """Replies corrupted on the way to the host: the client resends, the DUT answers each
    resend from the held result, so the DUT runs exactly one inference per request."""
    session, case, dut = start_session(tmp_path, "uno", "simavr", "dtree_emlearn",
                                       fault_link="flip=0.004,direction=to_host,seed=5", reply_timeout=1.0)
    try:
        vector = dut.exported.vector_bytes(0)
        expected = dut.client.infer(vector).output
        requests = 40
        before, resends = marker_rises(dut), dut.client.stats.resends
        for _ in range(requests):
            assert dut.client.infer(vector).output == expected
        assert dut.client.stats.resends > resends, "no reply was damaged: raise flip"
        assert marker_rises(dut) - before == requests
    finally:
        session.close()


def test_a_batched_test_set_through_a_noisy_link_is_exact(tmp_path):
    """Frames damaged both ways: INFER_BATCH until the first loss, then staged batches whose
    damaged vectors are staged again; the outputs and each vector's cycles equal a clean link's."""
    clean_session, _, clean = start_session(tmp_path / "clean", "uno", "simavr", "rf_iris", fault_link=None)
    try:
        vectors = [clean.exported.vector_bytes(i) for i in range(len(clean.exported.test_inputs))]
        expected = clean.infer_all(vectors)[:2]
    finally:
        clean_session.close()
    session, _, dut = start_session(tmp_path / "noisy", "uno", "simavr", "rf_iris",
                                    fault_link="flip=0.003,seed=11", reply_timeout=1.0)
    try:
        assert dut.identity.batch_max > 1
        outputs, cycles, requests = dut.infer_all(vectors)
        assert (outputs, cycles) == expected
        assert dut.client.stats.resends > 0, "nothing was damaged: raise flip"
        assert requests < len(vectors), "the staged rounds carried one vector each"
    finally:
        session.close()


def staged_reply(port, vectors: list[bytes], seq: int, damage: set[int] = frozenset()):
    """Stages `vectors` in slots 0.. (those in `damage` with one body byte flipped, so their
    CRC fails), then asks INFER_STAGED for all of them: the STAGED_RESULT frame."""
    for slot, vector in enumerate(vectors):
        frame = bytearray(encode(MSG["STAGE"], seq - 1 - slot, struct.pack("<H", slot) + vector))
        if slot in damage:
            frame[HEADER_SIZE + 3] ^= 0x10
        port.write(bytes(frame))
    port.write(encode(MSG["INFER_STAGED"], seq, struct.pack("<H", len(vectors))))
    (reply,) = replies(port, 1)
    return reply


def test_a_staged_batch_runs_only_the_vectors_that_arrived_intact(tmp_path):
    """STAGE frames, one damaged: INFER_STAGED runs the intact ones (bitmap, then their
    results in slot order, equal to a clean INFER_BATCH's), a repeat of it gets the same reply,
    the next STAGE starts a new batch, and a staged vector never runs twice."""
    session, _, dut = start_session(tmp_path, "uno", "simavr", "rf_iris", fault_link=None)
    try:
        assert dut.identity.batch_max >= 3
        vectors = [dut.exported.vector_bytes(i) for i in range(3)]
        clean = dut.client.infer_batch(vectors)
        per = dut.identity.output_bytes + 4
        port = dut.client.port
        reply = staged_reply(port, vectors, seq=120, damage={1})
        assert (reply.type, reply.seq) == (MSG["STAGED_RESULT"], 120)
        assert reply.payload[:3] == struct.pack("<HB", 3, 0b101)
        results = [reply.payload[3 + n * per:3 + (n + 1) * per] for n in range(2)]
        assert len(reply.payload) == 3 + 2 * per
        for result, k in zip(results, (0, 2)):
            assert result[:-4] == clean.outputs[k]
            assert struct.unpack("<I", result[-4:])[0] == clean.cycles[k]
        port.write(encode(MSG["INFER_STAGED"], 120, struct.pack("<H", 3)))   # resent
        (again,) = replies(port, 1)
        assert (again.type, again.seq, again.payload) == (reply.type, 120, reply.payload)
        fresh = staged_reply(port, vectors[1:2], seq=130)      # a new batch of one
        assert fresh.payload[:3] == struct.pack("<HB", 1, 0b1)
        assert fresh.payload[3:-4] == clean.outputs[1]
        port.write(encode(MSG["INFER_STAGED"], 131, struct.pack("<H", 3)))   # nothing staged
        (rest,) = replies(port, 1)
        assert rest.payload == struct.pack("<HB", 3, 0), "a staged vector ran twice"
        port.write(encode(MSG["INFER_STAGED"], 132, struct.pack("<H", 0)))
        (refused,) = replies(port, 1)
        assert (refused.type, refused.payload[0]) == (MSG["ERROR"], ERR["BATCH_OUT_OF_RANGE"])
    finally:
        session.close()
