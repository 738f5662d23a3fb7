"""qemu-system-avr end to end: the guest is held until the harness connects, answers the
protocol, and its outputs match the host reference; its timing is labelled functional."""

import pytest

from harness.backends import get_backend
from harness.boards import get_board
from harness.fidelity import FUNCTIONAL
from harness.session.plan import Case, plan_boards, select_variants
from harness.session.session import Session

QEMU = get_backend("qemu", get_board("uno"))


@pytest.mark.parametrize("board_name", ["uno", "mega2560"])
def test_qemu_runs_the_firmware(board_name, tmp_path):
    board = get_board(board_name)
    status = QEMU.availability(board)
    if not status.ok:
        pytest.skip(f"qemu backend: {status}")
    plans, _ = plan_boards([board_name], "qemu", None)
    session = Session(plans, select_variants(["dtree_emlearn"]), tmp_path)
    try:
        dut = session.dut(Case(board, "qemu", session.variants[0]))
        assert dut.fidelity == FUNCTIONAL
        assert dut.identity.board == board_name and dut.identity.clock_hz == 16_000_000
        exported = dut.exported
        for i in range(5):
            output = exported.decode_output(dut.infer(exported.vector_bytes(i)).output)
            assert output[0] == exported.host_reference[i][0]
        assert dut.target.url.startswith("socket://127.0.0.1:")
    finally:
        session.close()
    assert session._running == {}


def test_programs_above_64_kb_are_refused_on_qemu_avr_with_the_reason(tmp_path):
    """rf_large_emlearn is ~97 KB on the Mega: qemu-system-avr starts it with garbage in RAM
    (the DUT then fails its identity check), so the backend says so up front instead."""
    from harness.build.firmware import build_firmware
    from harness.models import export
    board = get_board("mega2560")
    firmware = build_firmware(board, export("rf_large_emlearn"))
    assert firmware.flash_bytes > 0x10000
    reason = QEMU.cannot_run(board, firmware)
    assert reason and "64 KB" in reason and "simavr" in reason
    small = build_firmware(board, export("dtree_emlearn"))
    assert QEMU.cannot_run(board, small) is None
