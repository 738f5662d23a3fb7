"""The DUT owner on a real native DUT: it checks what the board says it runs, rebinds its parts
on recovery, and closes its client and target together."""

from dataclasses import replace

import pytest

from harness.backends import get_backend
from harness.backends.base import StartRequest
from harness.boards import get_board
from harness.build.firmware import build_firmware
from harness.dut.device import Dut
from harness.errors import ProtocolError
from harness.models import export
from harness.protocol.client import DutClient


@pytest.fixture
def native_dut():
    board, exported = get_board("native"), export("dtree_emlearn")
    firmware = build_firmware(board, exported)
    target = get_backend("native", board).start(StartRequest(board, firmware))
    client = DutClient.open(target.url, timeout=2.0)
    dut = Dut(target, firmware, exported, client, client.identify())
    yield dut
    dut.close()


def test_identity_is_checked_against_the_build(native_dut):
    native_dut.check_identity()
    native_dut.rebind(identity=replace(native_dut.identity, build_id="0" * 16))
    with pytest.raises(ProtocolError, match="runs other firmware: build 0000000000000000"):
        native_dut.check_identity()


def test_rebind_replaces_only_what_is_given(native_dut):
    target, identity = native_dut.target, native_dut.identity
    native_dut.client.close()                    # as recovery does: the port reopened
    fresh = DutClient.open(target.url, timeout=2.0)
    native_dut.rebind(client=fresh)
    assert native_dut.client is fresh and native_dut.target is target
    assert native_dut.identity is identity
    vector = native_dut.exported.vector_bytes(0)
    out = native_dut.exported.decode_output(native_dut.infer(vector).output)
    assert out[0] == native_dut.exported.host_reference[0][0]


def test_close_stops_the_process(native_dut):
    process = native_dut.target.process
    native_dut.close()
    assert process.poll() is not None
