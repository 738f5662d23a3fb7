"""The hardware path through the session, against a simulated Arduino Uno (Optiboot in simavr,
every open of the port resetting the MCU like DTR does): the firmware is uploaded with real
avrdude, identified, run; a second session finds the same build on the board and does not
flash it again."""

import sys
from pathlib import Path

import pytest

from harness.build.optiboot import build_optiboot
from harness.backends.simavr import start_simulated_arduino
from harness.fidelity import HARDWARE
from harness.session.plan import Case, plan_boards, select_variants
from harness.session.session import Session

from simulated_arduino import NEEDS_SIMULATED_UNO, UNO  # noqa: E402

pytestmark = NEEDS_SIMULATED_UNO


def session_for(port, tmp_path):
    plans, _ = plan_boards(["uno"], "hardware", port)
    return Session(plans, select_variants(["dtree_emlearn"]), tmp_path, port=port)


def test_upload_run_and_no_needless_reflash(simulated_uno, tmp_path):
    first = session_for(simulated_uno, tmp_path)
    assert first.plans[0].availability.ok, first.plans[0].availability
    case = Case(UNO, "hardware", first.variants[0])
    dut = first.dut(case)
    assert dut.target.resource.flashed is True
    assert dut.fidelity == HARDWARE
    exported = dut.exported
    for i in range(3):
        assert exported.decode_output(dut.infer(exported.vector_bytes(i)).output)[0] == \
            exported.host_reference[i][0]
    first.close()

    second = session_for(simulated_uno, tmp_path)
    dut = second.dut(case)
    assert dut.target.resource.flashed is False, "the board already held this build"
    assert dut.identity.build_id == dut.firmware.build_id
    second.close()


def test_auto_takes_hardware_when_a_port_is_given(simulated_uno):
    plans, _ = plan_boards(["uno"], "auto", simulated_uno)
    assert [(p.backend, p.availability.ok) for p in plans] == [("hardware", True)]
    plans, _ = plan_boards(["uno"], "auto", None)
    assert plans[0].backend == "simavr" and "no board attached" in plans[0].why
