"""Reply timeouts follow the emulator's real progress (its CPU time, as twister does), so a
loaded host gives no false timeouts, while a stopped or idle DUT is still caught on time."""

import os
import subprocess
import sys
import time

import pytest

from faultkit import start_session
from harness.cpu_watch import ProgressDeadline, available, process_times
from harness.errors import ProtocolError

pytestmark = pytest.mark.skipif(not available(), reason="needs Linux /proc/PID/task/*/schedstat")

BUSY = [sys.executable, "-c", "while True: pass"]
IDLE = [sys.executable, "-c", "import time; time.sleep(60)"]


def wait_out(deadline: ProgressDeadline) -> float:
    while not deadline.expired():
        time.sleep(0.01)
    return time.monotonic() - deadline.started


@pytest.fixture
def spawn():
    procs = []

    def start(command, cpu=None):
        proc = subprocess.Popen(command)
        if cpu is not None:
            os.sched_setaffinity(proc.pid, {cpu})
        procs.append(proc)
        return proc
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_idle_and_stopped_processes_time_out_on_time(spawn):
    idle = spawn(IDLE)
    assert 0.3 <= wait_out(ProgressDeadline(idle.pid, 0.3)) < 0.6
    busy = spawn(BUSY)
    os.kill(busy.pid, 19)                                   # SIGSTOP: a hung board
    assert 0.3 <= wait_out(ProgressDeadline(busy.pid, 0.3)) < 0.6


def test_a_starved_busy_process_gets_its_cpu_time_before_timing_out(spawn):
    """Four busy processes share one CPU: each gets about a quarter of it. A wall-clock
    timeout of 0.4 s would fire; the deadline waits for 0.4 s of the process's own CPU."""
    cpu = sorted(os.sched_getaffinity(0))[-1]
    target = spawn(BUSY, cpu)
    for _ in range(3):
        spawn(BUSY, cpu)
    time.sleep(0.2)
    waited = wait_out(ProgressDeadline(target.pid, 0.4))
    assert waited > 0.8, f"timed out after {waited:.2f} s of wall time: a false timeout"
    assert waited < 0.4 * 8 + 0.5                             # and never beyond the cap


def test_simavr_on_a_loaded_host_gives_no_false_timeout(tmp_path, spawn):
    """A real request to simavr whose CPU is shared with three busy processes, with a timeout
    of twice the CPU time the request needs: with the CPU watch the reply arrives without a
    resend; the same request timed by the wall clock alone times out. (Three, not more: on a
    host already loaded by others a quarter share must stay well inside the deadline's cap of
    8 timeouts, or the cap itself gives the false timeout this test looks for.)"""
    session, case, dut = start_session(tmp_path, "uno", "simavr", "dtree_emlearn", fault_link=None)
    try:
        vector = dut.exported.vector_bytes(0)
        pid = dut.target.pid
        before = process_times(pid)[0]
        dut.client.infer(vector, runs=1, warmup=30000, timeout=30)
        cpu_needed = process_times(pid)[0] - before
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(pid, {cpu})
        for _ in range(3):
            spawn(BUSY, cpu)
        time.sleep(0.2)
        timeout = max(2 * cpu_needed, 0.1)
        dut.client.retries = dut.client.corrupt_retries = 0
        result = dut.client.infer(vector, runs=1, warmup=30000, timeout=timeout)
        assert dut.client.stats.timeouts == 0, "a false timeout on a loaded host"
        assert result.output
        dut.client.watch_pid = None                           # wall clock only
        try:
            dut.client.infer(vector, runs=1, warmup=30000, timeout=timeout)
        except ProtocolError:
            pass
        assert dut.client.stats.timeouts >= 1, "the wall clock alone should have timed out"
    finally:
        session.close()
