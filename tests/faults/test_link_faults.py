"""The fault-injecting link on the real link to a real DUT: flipped, dropped, duplicated and
delayed bytes are all caught by the protocol and resent; no output is ever wrong."""

import pytest

from faultkit import classify_checked, failures, note_link, start_session
from harness.faults.faultlink import FaultSpec, FaultSpecError

TARGETS = [("native", "native", "dtree_emlearn"), ("uno", "simavr", "dtree_emlearn")]
FAULTS = {
    "flip": "flip=0.005",
    "drop": "drop=0.002",
    "dup": "dup=0.005",
    "delay": "delay=0.01,delay_ms=30",
    "all": "flip=0.003,drop=0.001,dup=0.003,delay=0.002,delay_ms=30",
}
VECTORS = 15


@pytest.mark.parametrize("target", TARGETS, ids=["native", "uno-simavr"])
@pytest.mark.parametrize("kind", FAULTS)
def test_faulty_link_gives_only_correct_outputs(tmp_path, target, kind):
    if kind == "all" and target[1] != "native":
        pytest.skip("every fault at once runs on the native board only, to keep the suite short")
    spec = FAULTS[kind] + ",seed=7"
    session, case, dut = start_session(tmp_path, *target, fault_link=spec, reply_timeout=0.2)
    try:
        ok = classify_checked(dut, range(VECTORS))
        link = dut.target.extras["faultlink"]
        injected = {k: v for k, v in link.counts.items() if v}
        assert injected, f"{spec} injected nothing in {VECTORS} exchanges"
        assert all(ok), f"{ok.count(False)} wrong outputs with {injected}"
        if kind != "delay":       # a 30 ms stall is inside the reply timeout: nothing to resend
            record = note_link(session, case, dut)
            assert record is not None and record["detail"].startswith("kind=link")
        assert all(r["unit"] == "event" for r in failures(session))
    finally:
        session.close()


def test_fault_spec_parses_and_rejects_nonsense():
    spec = FaultSpec.parse("flip=0.01, drop=0.5,seed=3,direction=to_dut")
    assert (spec.flip, spec.drop, spec.seed, spec.direction) == (0.01, 0.5, 3, "to_dut")
    for bad, word in (("flip=2", "between 0 and 1"), ("flop=0.1", "not understood"),
                      ("flip=lots", "not a number"), ("direction=up", "to_dut")):
        with pytest.raises(FaultSpecError, match=word):
            FaultSpec.parse(bad)


def test_a_link_that_damages_every_reply_is_a_clear_link_fault_not_a_hang(tmp_path):
    """Every byte back from the DUT has a 50 % chance of a flipped bit: the DUT answers, never
    intact. After the bounded tries the request fails as a `link` fault saying so."""
    from harness.dut.recovery import DutFault
    session, case, dut = start_session(tmp_path, "native", "native", "dtree_emlearn",
                                       reply_timeout=0.3)
    try:
        link = dut.target.extras["faultlink"]
        link._to_host.spec = FaultSpec.parse("flip=0.5,seed=3")
        link._to_host.active = True
        dut.client.corrupt_retries = 6
        with pytest.raises(DutFault, match="damaged on the link.*check the baud rate"):
            classify_checked(dut, [0])
        assert [r["detail"].split(";")[0] for r in failures(session)] == ["kind=link"]
        assert dut.client.stats.resends >= 6
    finally:
        session.close()


def test_a_damaged_length_is_refused_at_once_not_waited_for(tmp_path):
    """The host's decoder takes no payload longer than this DUT can send: a header whose
    length byte was hit does not swallow the frames behind it."""
    from harness.protocol.wire import MSG, encode
    session, case, dut = start_session(tmp_path, "native", "native", "dtree_emlearn")
    try:
        client = dut.client
        assert client.reply_limit < 8192 and client._decoder.max_payload == client.reply_limit
        forged = bytearray(encode(MSG["ECHO_REPLY"], 9, bytes(10)))
        forged[3:5] = (60000).to_bytes(2, "little")          # the length field, CRC8 fixed below
        from harness.protocol.wire import crc8
        forged[5] = crc8(bytes(forged[1:5]))
        good = encode(MSG["ECHO_REPLY"], 10, b"ok")
        frames = client._decoder.feed(bytes(forged[:6]) + good)
        assert [f.payload for f in frames] == [b"ok"]
    finally:
        session.close()
