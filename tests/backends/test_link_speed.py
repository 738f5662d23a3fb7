"""The cheap throughput fixes (issue 13, point 3), each on a real emulator or DUT: sockets
without Nagle's delay, one emulator per (board, variant) across tests, the emulator build at
the MCU's exact fast UART rate (hardware keeps its own), and no /proc read per request."""

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "faults"))
from faultkit import start_session  # noqa: E402

from harness import cpu_watch
from harness.boards import get_board
from harness.session.plan import Case


def test_qemu_socket_has_nodelay_and_the_emulator_is_reused(tmp_path):
    session, case, dut = start_session(tmp_path, "uno", "qemu", "rf_iris", fault_link=None)
    try:
        assert "nodelay=on" in dut.target.description
        sock = dut.client.port._socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert dut.supervisor.healthy(), "a socket:// target must count as healthy to be reused"
        again = session.dut(case)                   # the next test of the same (board, variant)
        assert again is dut and again.target.pid == dut.target.pid
        assert again.infer(dut.exported.vector_bytes(0)).output
    finally:
        session.close()


def test_emulator_firmware_runs_at_the_fast_exact_rate_and_hardware_keeps_its_own(tmp_path):
    session, case, dut = start_session(tmp_path, "uno", "simavr", "rf_iris", fault_link=None)
    try:
        board = get_board("uno")
        assert board.for_emulator().baud == board.emulator_baud != board.baud
        # UBRR = F_CPU / (8 x baud) - 1 with U2X must be a whole number: the rate is exact.
        assert board.clock_hz % (8 * board.emulator_baud) == 0
        hardware = session.firmware(Case(case.board, "hardware", case.variant))
        assert hardware.build_id != dut.firmware.build_id
        from harness.build.avr import ARCH
        assert f"-DTINYHIL_BAUD={board.emulator_baud}UL" in ARCH.defines(board.for_emulator())
        assert f"-DTINYHIL_BAUD={board.baud}UL" in ARCH.defines(board)
        assert dut.infer(dut.exported.vector_bytes(0)).output     # and it talks at that rate
    finally:
        session.close()


def test_a_prompt_reply_reads_no_proc(tmp_path, monkeypatch):
    if not cpu_watch.available():
        pytest.skip("needs Linux /proc/PID/task/*/schedstat")
    session, case, dut = start_session(tmp_path, "native", "native", "rf_iris", fault_link=None)
    try:
        reads = []
        real = cpu_watch.process_times
        monkeypatch.setattr(cpu_watch, "process_times", lambda pid: reads.append(pid) or real(pid))
        dut.client.timeout = 30.0                  # a quarter of it never passes for these
        for i in range(20):
            dut.client.infer(dut.exported.vector_bytes(i))
        assert reads == []
    finally:
        session.close()
