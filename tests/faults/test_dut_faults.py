"""A misbehaving DUT or link, on real backends (the native build and simavr): each fault is
detected within a bounded time, recovered from, recorded as a `failure` record, and the run
goes on with correct outputs."""

import threading
import time

import pytest

from harness.protocol.client import FIRST_FLOOR_S
from faultkit import classify_checked, failures, hang, kill, start_session
from harness.dut.recovery import DutFault

TIMEOUT = 1.0          # reply timeout for these tests, seconds
TARGETS = [("native", "native", "dtree_emlearn"), ("uno", "simavr", "dtree_emlearn")]
IDS = ["native", "uno-simavr"]


@pytest.fixture(params=TARGETS, ids=IDS)
def running(request, tmp_path):
    session, case, dut = start_session(tmp_path, *request.param, reply_timeout=TIMEOUT)
    assert all(classify_checked(dut, range(5))), "the DUT is wrong before any fault"
    yield session, case, dut
    session.close()


def kinds(session):
    return [r["detail"].split(";")[0] for r in failures(session)]


def assert_failure_records(session, kind):
    records = failures(session)
    assert [r["detail"].split(";")[0] for r in records] == [f"kind={kind}"], records
    for r in records:        # an event, never a figure: one event, unit "event"
        assert (r["value"], r["unit"]) == (1.0, "event")
        assert "recovered" in r["detail"] and "NOT recovered" not in r["detail"]


def test_hang_is_detected_within_one_timeout_and_the_target_relaunched(running):
    session, case, dut = running
    old_pid = dut.target.pid
    bound = dut.reply_timeout(1)         # one reply timeout, no retries: the process is stopped
    hang(dut)
    started = time.monotonic()
    assert all(classify_checked(dut, range(5, 10)))
    assert time.monotonic() - started < bound + 1.0
    assert dut.target.pid != old_pid
    assert_failure_records(session, "dut_hang")
    # a kind answered before is waited for many round trips, at least FIRST_FLOOR_S, at most
    # the timeout: a stopped process is then named at once
    assert FIRST_FLOOR_S * 0.9 <= dut.supervisor.events[-1].detected_after_s < bound + 0.3


def test_emulator_death_is_detected_and_the_target_relaunched(running):
    session, case, dut = running
    kill(dut)
    assert all(classify_checked(dut, range(5, 10)))
    assert_failure_records(session, "emulator_died")
    assert dut.supervisor.events[-1].detected_after_s < dut.reply_timeout(1) + 0.3


def test_reset_between_requests_is_detected_by_the_identity_flag(running):
    session, case, dut = running
    dut.target.reset()
    time.sleep(0.1)                                      # the signal is taken asynchronously
    assert all(classify_checked(dut, range(5, 10)))     # a reset loses nothing between requests
    event = dut.supervisor.check_reset("during the test")
    assert event is not None and event.kind == "dut_reset"
    assert dut.supervisor.check_reset() is None          # and is reported once
    assert_failure_records(session, "dut_reset")


def test_reset_in_the_middle_of_a_request_is_resent_and_detected(tmp_path):
    """simavr: a long request (many warm-up runs) is cut by a reset; the reply never comes,
    the request is resent, and the DUT's flag says it restarted."""
    session, case, dut = start_session(tmp_path, "uno", "simavr", "dtree_emlearn", reply_timeout=TIMEOUT)
    try:
        vector = dut.exported.vector_bytes(0)
        started = time.monotonic()
        dut.client.infer(vector, runs=1, warmup=60000, timeout=30)
        long_request = time.monotonic() - started
        assert long_request > 0.1, f"a 60000-run request took only {long_request:.3f} s: too short to cut"
        threading.Timer(long_request / 3, dut.target.reset).start()
        result = dut.supervisor.call(lambda c: c.infer(vector, runs=1, warmup=60000,
                                                       timeout=long_request + TIMEOUT), "INFER")
        assert dut.exported.decode_output(result.output)[0] == dut.exported.host_reference[0][0]
        assert dut.client.stats.timeouts == 1
        assert_failure_records(session, "dut_reset")
    finally:
        session.close()


def test_port_vanishing_and_coming_back_is_reopened_by_serial_number(running):
    session, case, dut = running
    link = dut.target.extras["faultlink"]
    first_pty = link.pty
    link.vanish()
    threading.Timer(0.5, link.reappear).start()
    assert all(classify_checked(dut, range(5, 10)))
    assert link.enumerations == 2
    assert_failure_records(session, "port_vanished")
    assert "serial number " + link.serial_number in failures(session)[0]["detail"]
    assert first_pty is not None


def test_a_fault_that_cannot_be_recovered_is_recorded_and_the_run_goes_on(running):
    """The port vanishes for good: the request fails with a clear error after the reopen
    wait, a failure record says so, and the next test gets a fresh target."""
    session, case, dut = running
    dut.supervisor.reopen_wait_s = 0.5
    dut.target.extras["faultlink"].vanish()
    with pytest.raises(DutFault, match="port_vanished.*NOT recovered"):
        classify_checked(dut, [5])
    assert "NOT recovered" in failures(session)[0]["detail"]
    again = session.dut(case)                           # what the next test's fixture does
    assert again is not dut
    assert all(classify_checked(again, range(5, 10)))
