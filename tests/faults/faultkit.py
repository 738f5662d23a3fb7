"""Shared by the fault suite: a real session on a real backend, and fault actions on it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from harness.faults.inject import fault_link_wrapper
from harness.session.plan import plan_boards, select_variants
from harness.session.session import Session


def start_session(tmp_path: Path, board: str, backend: str, variant: str,
                  fault_link: str | None = "flip=0", reply_timeout: float | None = None,
                  protocol: str = "tinyhil"):
    """A Session with one case and its running DUT (through a FaultLink when fault_link),
    built for `protocol` (tinyhil, or eembc: MLPerf Tiny's)."""
    from dataclasses import replace
    plans, _ = plan_boards([board], backend, None)
    plans = [replace(p, board=replace(p.board, protocol=protocol)) for p in plans]
    if not plans[0].availability.ok:
        import pytest
        pytest.skip(f"{backend} cannot run {board} here: {plans[0].availability}")
    wrap = fault_link_wrapper(fault_link) if fault_link else None
    session = Session(plans, select_variants([variant]), tmp_path / "results", wrap_target=wrap)
    case = session.cases[0]
    dut = session.dut(case)
    if reply_timeout:
        dut.client.timeout = reply_timeout
    return session, case, dut


def pid_of(dut) -> int:
    return dut.target.pid


def hang(dut) -> None:
    os.kill(pid_of(dut), signal.SIGSTOP)


def kill(dut) -> None:
    os.kill(pid_of(dut), signal.SIGKILL)


def note_link(session, case, dut):
    """The link's failure record since the last one (supervision.note_link_faults)."""
    from harness.dut.supervision import note_link_faults
    return note_link_faults(dut, session.recorder_for(case, dut.firmware, dut.fidelity))


def failures(session) -> list[dict]:
    return [r for r in session.recorder.records if r["metric"] == "failure"] if session.recorder else []


def classify_checked(dut, indices) -> list[bool]:
    """Infer each vector; True where the output equals the host reference."""
    exported = dut.exported
    ok = []
    for i in indices:
        out = exported.decode_output(dut.infer(exported.vector_bytes(i)).output)
        ok.append(list(map(int, list(out))) == list(map(int, list(exported.host_reference[i]))))
    return ok


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
