"""The emulator (or native DUT) killed at any moment, on its own link (pty, socket://), with
no fault proxy in front: named `emulator_died`, relaunched, the request resent, one record.
With the proxy the same holds (tests/faults/test_dut_faults.py)."""

import os
import signal
import threading
import time

import pytest

from faultkit import classify_checked, failures, kill, start_session, wait_until

TIMEOUT = 1.0
TARGETS = [("native", "native", "dtree_emlearn"), ("uno", "simavr", "dtree_emlearn"),
           ("uno", "qemu", "dtree_emlearn")]
IDS = ["native-pty", "simavr-pty", "qemu-socket"]


@pytest.fixture(params=TARGETS, ids=IDS)
def bare(request, tmp_path):
    """A DUT on its own link: no fault proxy."""
    session, case, dut = start_session(tmp_path, *request.param, fault_link=None,
                                       reply_timeout=TIMEOUT)
    assert dut.target.extras.get("faultlink") is None
    assert all(classify_checked(dut, range(3))), "the DUT is wrong before any fault"
    yield session, case, dut
    session.close()


def kinds(session):
    return [r["detail"].split(";")[0] for r in failures(session)]


def assert_one_death(session):
    assert kinds(session) == ["kind=emulator_died"], [r["detail"] for r in failures(session)]
    assert "NOT recovered" not in failures(session)[0]["detail"]


def test_killed_between_requests_of_a_pass(bare):
    session, case, dut = bare
    old = dut.target.pid
    kill(dut)
    assert all(classify_checked(dut, range(3, 8)))
    assert dut.target.pid != old
    assert_one_death(session)


def test_killed_in_the_middle_of_a_request(bare):
    """A request in flight is cut by SIGKILL: resent to a fresh emulator. A long request
    (many warm-up runs) is killed while it computes; one too short to hit (the native build)
    is held with SIGSTOP first, so the kill surely lands before the reply."""
    session, case, dut = bare
    vector = dut.exported.vector_bytes(0)
    warmup = 60000
    started = time.monotonic()
    dut.client.infer(vector, runs=1, warmup=warmup, timeout=60)
    took = time.monotonic() - started
    old = dut.target.pid
    if took < 0.3:
        os.kill(old, signal.SIGSTOP)
    killer = threading.Timer(max(took / 3, 0.1), os.kill, (old, signal.SIGKILL))
    killer.start()
    result = dut.supervisor.call(lambda c: c.infer(vector, runs=1, warmup=warmup,
                                                   timeout=took * 3 + TIMEOUT + 5), "INFER")
    killer.join()
    out = dut.exported.decode_output(result.output)
    assert list(map(int, out)) == list(map(int, dut.exported.host_reference[0]))
    assert dut.target.pid != old, "the request finished on the old process: the kill missed it"
    assert_one_death(session)


def test_killed_between_tests_is_recorded(bare):
    """What the next test's fixture meets: a dead emulator is a failure record, not a
    silent new emulator."""
    session, case, dut = bare
    kill(dut)
    assert wait_until(lambda: not dut.supervisor.healthy())
    again = session.dut(case)
    assert all(classify_checked(again, range(3, 6)))
    assert_one_death(session)
    assert "before the next test" in failures(session)[0]["detail"]
