"""Exactly once (protocol v3 on): a resent request keeps its sequence number, and the DUT answers
a repeat of the inference it just served from that result, never by running it again. Shown
on simavr, whose marker log has one rising edge per inference request the DUT ran."""

import struct
import time
from pathlib import Path

from faultkit import start_session
from harness.protocol.wire import ERR, HEADER_SIZE, MSG, PAD, STAGE_PIECE, Decoder, encode


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


def staged_reply(port, count: int, pieces: list[tuple[int, int, bytes]], seq: int,
                 damage: set[tuple[int, int]] = frozenset()):
    """STAGE frames for `pieces` (slot, part, bytes; those in `damage` with one body byte
    flipped, so their CRC fails), then INFER_STAGED for slots 0..count-1: its reply frame."""
    for n, (slot, part, piece) in enumerate(pieces):
        frame = bytearray(encode(MSG["STAGE"], (seq - 1 - n) & 0xFF, bytes([slot, part]) + piece))
        if (slot, part) in damage:
            frame[HEADER_SIZE + 3] ^= 0x10
        port.write(bytes(frame) + bytes([PAD]))
    port.write(encode(MSG["INFER_STAGED"], seq, struct.pack("<H", count)))
    (reply,) = replies(port, 1)
    return reply


def test_a_staged_batch_runs_only_the_vectors_whose_pieces_all_arrived(tmp_path):
    """Three 128-byte vectors in 32-byte pieces, one piece damaged: INFER_STAGED runs the two
    whole vectors (results equal a clean INFER_BATCH's) and says which pieces of the third it
    holds; that vector's lost piece alone completes it (a damaged second copy of a staged piece
    spoils nothing); a repeat of a request gets the same reply; nothing that ran runs again,
    and count 0 starts a new batch."""
    session, _, dut = start_session(tmp_path, "native", "native", "dtree_emlearn", fault_link=None)
    try:
        ident = dut.identity
        assert ident.stage_slots >= 3 and ident.stage_parts == 4 == -(-ident.input_bytes // STAGE_PIECE)
        vectors = [dut.exported.vector_bytes(i) for i in range(3)]
        clean = dut.client.infer_batch(vectors)
        per, port = ident.output_bytes + 4, dut.client.port

        def piece(slot, part):
            return slot, part, vectors[slot][part * STAGE_PIECE:(part + 1) * STAGE_PIECE]

        def result(reply, n, map_bytes=3):      # count u16, ran map, pieces map, results
            at = 2 + map_bytes + n * per
            return reply.payload[at:at + per - 4], struct.unpack_from("<I", reply.payload, at + per - 4)[0]

        everything = [piece(slot, part) for slot in range(3) for part in range(4)]
        reply = staged_reply(port, 3, everything, seq=120, damage={(1, 2)})
        assert (reply.type, reply.seq) == (MSG["STAGED_RESULT"], 120)
        # ran: slots 0 and 2; still staged: slot 1's parts 0, 1 and 3 (bits 4, 5, 7)
        assert reply.payload[:5] == struct.pack("<HBH", 3, 0b101, 0b1011_0000)
        assert len(reply.payload) == 5 + 2 * per
        # a native build times on the host clock: its cycles vary, its outputs may not
        assert [result(reply, n)[0] for n in range(2)] == [clean.outputs[0], clean.outputs[2]]
        port.write(encode(MSG["INFER_STAGED"], 120, struct.pack("<H", 3)))   # resent
        (again,) = replies(port, 1)
        assert (again.type, again.seq, again.payload) == (reply.type, 120, reply.payload)

        # the lost piece, and a damaged copy of one already staged (which must not spoil it)
        rest = staged_reply(port, 3, [piece(1, 2), piece(1, 0)], seq=130, damage={(1, 0)})
        assert rest.payload[:5] == struct.pack("<HBH", 3, 0b010, 0)
        assert result(rest, 0)[0] == clean.outputs[1]
        nothing = staged_reply(port, 3, [], seq=140)
        assert nothing.payload == struct.pack("<HBH", 3, 0, 0), "a staged vector ran twice"

        staged_reply(port, 1, [piece(0, part) for part in range(3)], seq=150)   # 3 of 4 pieces
        assert staged_reply(port, 0, [], seq=160).payload == struct.pack("<H", 0)   # a new batch
        after = staged_reply(port, 1, [piece(0, 3)], seq=170)
        assert after.payload == struct.pack("<HBB", 1, 0, 0b1000), "a piece outlived its batch"
        port.write(encode(MSG["INFER_STAGED"], 180, struct.pack("<H", 300)))
        (refused,) = replies(port, 1)
        assert (refused.type, refused.payload[0]) == (MSG["ERROR"], ERR["BATCH_OUT_OF_RANGE"])
    finally:
        session.close()


def test_a_long_result_is_fetched_in_pieces_from_the_held_one(tmp_path):
    """A Mega's 64 runs make a 268-byte RESULT. FETCH, sent with the INFER's SEQ, returns any
    piece of it from the held result: the pieces add up to the whole reply, nothing runs again,
    and the result stays held (a repeat of the INFER still gets it). Another SEQ's FETCH finds
    nothing held. The head sums the runs the counter timed."""
    session, _, dut = start_session(tmp_path, "mega2560", "simavr", "dtree_emlearn", fault_link=None)
    try:
        port, runs = dut.client.port, dut.identity.max_runs
        request = struct.pack("<HH", runs, 0) + dut.exported.vector_bytes(1)
        before = marker_rises(dut)
        port.write(encode(MSG["INFER"], 60, request))
        (whole,) = replies(port, 1)
        assert whole.type == MSG["RESULT"] and len(whole.payload) > 2 * 100
        pieces = b""
        for offset in range(0, len(whole.payload) + 100, 100):     # the last asks past the end
            port.write(encode(MSG["FETCH"], 60, struct.pack("<HH", offset, 100)))
            (part,) = replies(port, 1)
            assert (part.type, part.seq, part.payload[:2]) == (MSG["RESULT_PART"], 60, struct.pack("<H", min(offset, len(whole.payload))))
            pieces += part.payload[2:]
        assert pieces == whole.payload
        port.write(encode(MSG["FETCH"], 61, struct.pack("<HH", 0, 100)))
        (refused,) = replies(port, 1)
        assert (refused.type, refused.seq, refused.payload[0]) == (MSG["ERROR"], 61, ERR["NOT_HELD"])
        port.write(encode(MSG["INFER"], 60, request))            # a resend, after the FETCHes
        (again,) = replies(port, 1)
        assert again.payload == whole.payload
        assert marker_rises(dut) - before == 1, "a FETCH or the resend ran the inference again"
        runs_sent, loops, timed, total = struct.unpack_from("<HIHI", whole.payload)
        cycles = struct.unpack_from(f"<{runs}I", whole.payload, len(whole.payload) - 4 * runs)
        assert (runs_sent, loops, timed, total) == (runs, 1, runs, sum(cycles))
    finally:
        session.close()


def test_a_long_result_through_a_noisy_link_is_exact_and_runs_once(tmp_path):
    """Replies damaged on the way to the host: a 268-byte RESULT rarely arrives whole, so the
    client fetches it in pieces (or, for an energy window, only its total), and the DUT still
    runs one inference request per request; the figures equal a clean link's."""
    clean_session, _, clean = start_session(tmp_path / "clean", "mega2560", "simavr", "dtree_emlearn",
                                            fault_link=None)
    try:
        vector, runs = clean.exported.vector_bytes(1), clean.identity.max_runs
        expected = clean.infer(vector, runs=runs)
    finally:
        clean_session.close()
    session, _, dut = start_session(tmp_path / "noisy", "mega2560", "simavr", "dtree_emlearn",
                                    fault_link="flip=0.005,direction=to_host,seed=3", reply_timeout=1.0)
    try:
        before, requests = marker_rises(dut), 8
        for n in range(requests):
            result = dut.infer(vector, runs=runs, per_run=n % 2 == 0)
            assert (result.output, result.runs, result.timed_runs) == (expected.output, runs, runs)
            # simavr is cycle-exact but for where Timer1's overflow interrupt lands: 4 cycles a run
            assert abs(result.total_cycles - expected.total_cycles) <= 4 * runs
            if n % 2 == 0:
                assert all(abs(a - b) <= 4 for a, b in zip(result.cycles, expected.cycles, strict=True))
        assert dut.client.stats.fetches > 0, "no RESULT was fetched: raise flip"
        assert marker_rises(dut) - before == requests
    finally:
        session.close()
