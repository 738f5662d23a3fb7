"""The ATtiny85: 8 KB of flash, 512 B of RAM and no UART. Real firmware from avr-gcc, the
bit-banged soft UART worked at cycle level by the simavr bridge, and avrdude's ISP path."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import serial

from harness.backends import get_backend
from harness.backends.base import StartRequest
from harness.boards import get_board
from harness.build.avr import ARCH as AVR
from harness.build.firmware import build_firmware
from harness.errors import BackendError, BuildError
from harness.lab.uploaders import UPLOADERS, get_uploader
from harness.models import ExportedModel, ModelVariant, export
from harness.paths import firmware_dir
from harness.protocol.wire import MSG, Decoder, encode
from harness.session.plan import plan_boards
from harness.tools import find_tool

from faultkit import classify_checked, start_session  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
needs_avr_gcc = pytest.mark.skipif(not find_tool("avr-gcc").found,
                                   reason="avr-gcc is not installed: apt-get install gcc-avr avr-libc")


@pytest.fixture(scope="module")
def board():
    return get_board("attiny85")


def test_board_file_names_its_port_and_soft_uart(board):
    assert (board.clock_hz, board.flash_bytes, board.ram_bytes) == (8_000_000, 8192, 512)
    assert AVR.port_sources(board) == [firmware_dir() / "ports" / "attiny" / "port_attiny.c"]
    assert AVR.port_sources(board)[0].is_file()
    assert AVR.port_sources(get_board("uno")) == [firmware_dir() / "ports" / "avr" / "port_avr.c"]
    assert board.extra["soft_uart"] == {"tx": "B3", "rx": "B4"}
    assert {"-DTINYHIL_TX_BIT=3", "-DTINYHIL_RX_BIT=4"} <= set(AVR.defines(board))
    assert not [d for d in AVR.defines(get_board("uno")) if "_TX_BIT" in d or "_RX_BIT" in d]
    assert board.marker == {"port": "B", "bit": 1}
    # the three pins are distinct, and none is an ISP pin the adapter would fight
    pins = {board.extra["soft_uart"]["tx"], board.extra["soft_uart"]["rx"], "B1"}
    assert len(pins) == 3 and not {"B0", "B2", "B5"} & pins


def test_board_data_errors_name_the_board_file(board):
    """A soft-UART pin off port B, or a port with no C file, fail the build in one sentence."""
    from dataclasses import replace
    bad_pin = replace(board, extra={**board.extra, "soft_uart": {"tx": "C3", "rx": "B4"}})
    with pytest.raises(BuildError, match='tx = .C3.*port B pin'):
        AVR.defines(bad_pin)
    no_port = replace(board, extra={**board.extra, "port": "nosuch"})
    with pytest.raises(BuildError, match="ports/nosuch/port_nosuch.c"):
        AVR.port_sources(no_port)


def test_plan_picks_simavr_when_none_is_attached(board, monkeypatch):
    from serial.tools import list_ports
    monkeypatch.setattr(list_ports, "comports", lambda include_links=False: [])   # nothing on USB
    plans, _ = plan_boards(["attiny85"], "auto", None)
    assert [(p.board.name, p.backend) for p in plans] == [("attiny85", "simavr")]
    assert get_backend("simavr", board).name == "simavr"
    # the hardware plan knows the board's uploader (it may still lack avrdude here)
    plans, _ = plan_boards(["attiny85"], "hardware", "/dev/null")
    assert "not supported" not in plans[0].availability.reason


def test_isp_uploader_is_registered_and_named_by_the_board(board):
    settings = board.backend_settings("hardware")
    assert settings["uploader"] == "avrdude_isp" and "avrdude_isp" in UPLOADERS
    uploader = get_uploader("avrdude_isp")
    assert uploader.TOOL == "avrdude"
    assert "no bootloader" in uploader.NOTE and "no auto-reset" in uploader.NOTE
    command = uploader.isp_command(board, "avrdude", Path("dut.hex"))
    assert command == ["avrdude", "-c", "usbasp", "-p", "t85", "-U", "flash:w:dut.hex:i",
                       "-U", "lfuse:w:0xE2:m"]          # no -P, -b or -D: erase, write, fuses
    # the bootloader boards keep the bootloader uploader
    assert get_board("uno").backend_settings("hardware")["uploader"] == "avrdude"


def test_isp_uploader_refuses_a_network_port(board):
    """The programmer is on USB here: a board on a labgrid place cannot be flashed through it."""
    uploader = get_uploader("avrdude_isp")
    with pytest.raises(BackendError, match="ISP programmer.*labgrid"):
        uploader.flash(board, SimpleNamespace(hex="dut.hex"), "rfc2217://lab:4000")


def test_simavr_bridge_is_started_on_the_soft_uart_pins(board, monkeypatch):
    from harness.backends import simavr
    seen = {}

    def fake_launch(mcu, clock_hz, elf, **kwargs):
        seen.update(mcu=mcu, clock_hz=clock_hz, **kwargs)
        raise BackendError("stop here")

    monkeypatch.setattr(simavr, "launch_bridge", fake_launch)
    with pytest.raises(BackendError, match="stop here"):
        get_backend("simavr", board).start(StartRequest(board, SimpleNamespace(elf="dut.elf")))
    assert seen["mcu"] == "attiny85" and seen["clock_hz"] == 8_000_000
    assert seen["soft_uart"] == {"tx": "B3", "rx": "B4"} and seen["baud"] == 9600
    assert seen["marker"] == "B1"


def _null_model(tmp_path: Path) -> ExportedModel:
    """A model that does nothing: what is left in the ELF is the runtime and the port."""
    variant = ModelVariant("null", "probe", "tinyhil", "returns 0", 1, "uint8", 1, "uint8", True,
                           kind="probe")
    glue = tmp_path / "null_glue.c"
    glue.write_text('#include <string.h>\n#include "tinyhil_model.h"\n'
                    "int tinyhil_model_infer(const void *in, void *out)\n"
                    "{ (void)in; *(unsigned char *)out = 0; return 0; }\n"
                    'const tinyhil_model_info_t tinyhil_model_info = { .id = "probe/null",\n'
                    "  .input_count = 1, .input_dtype = 2, .output_count = 1, .output_dtype = 2 };\n")
    return ExportedModel(variant, [glue], [firmware_dir() / "runtime", tmp_path], "0" * 64,
                         np.zeros((1, 1), np.uint8), np.zeros(1), np.zeros((1, 1), np.uint8), 0.0)


@needs_avr_gcc
def test_runtime_leaves_room_for_a_model(board, tmp_path, monkeypatch, record_property):
    """The protocol runtime + soft-UART port alone, with a model that does nothing."""
    monkeypatch.setenv("TINYHIL_CACHE", str(tmp_path / "cache"))
    fw = build_firmware(board, _null_model(tmp_path))
    record_property("runtime_flash_bytes", fw.flash_bytes)
    record_property("runtime_ram_bytes", fw.ram_bytes)
    print(f"attiny85 runtime alone: flash {fw.flash_bytes} B, static RAM {fw.ram_bytes} B, "
          f"stack bound {fw.stack_bytes} B")
    assert fw.fits, fw.problems
    # room for a ~2 KB model beside it, and RAM for its stack
    assert fw.flash_bytes + 2048 < board.flash_limit
    assert fw.ram_bytes + fw.stack_bytes + board.stack_reserve_bytes < board.ram_bytes


@needs_avr_gcc
@pytest.mark.parametrize("variant, fits", [("dtree_iris", True), ("rf_iris", True),
                                           ("dtree_emlearn", True), ("rf_emlearn", False),
                                           ("mlp_emlearn", False)])
def test_which_variants_fit(board, variant, fits):
    fw = build_firmware(board, export(variant))
    assert fw.fits == fits, fw.problems
    if not fits:
        assert any("attiny85" in p for p in fw.problems)


def _soft_uart_session(tmp_path, variant, fault_link="flip=0", reply_timeout=None):
    return start_session(tmp_path, "attiny85", "simavr", variant, fault_link=fault_link,
                         reply_timeout=reply_timeout)


@needs_avr_gcc
def test_load_chunks_back_to_back_need_no_resend(tmp_path):
    """A 64-byte vector with max_payload 64: two LOAD frames sent back to back with no
    reply, at one stop bit between bytes, like a USB-serial adapter. The polled soft UART
    must keep up while it parses: not one frame resent, every sum right."""
    session, case, dut = _soft_uart_session(tmp_path, "checksum_64", fault_link=None)
    try:
        assert dut.identity.max_payload == 64
        assert all(classify_checked(dut, range(8)))
        stats = dut.client.stats
        assert (stats.resends, stats.vector_reloads, stats.timeouts) == (0, 0, 0), stats
        # and the bridge never had to hold a byte for it inside a burst
        assert "HELD" not in Path(dut.target.extras["stderr_log"]).read_text()
    finally:
        session.close()


@needs_avr_gcc
def test_latency_is_cycle_exact_across_runs(tmp_path):
    """The timing interrupt every 256 cycles is taken off: the same inference on the same
    vector gives the same count whatever the phase of the interrupt, but for the AVR's own
    interrupt response, which waits for the instruction in progress (up to 4 cycles more per
    overflow inside the run)."""
    session, case, dut = _soft_uart_session(tmp_path, "dtree_iris", fault_link=None)
    try:
        counts = [c for _ in range(3) for c in dut.infer(dut.exported.vector_bytes(0), runs=8).cycles]
        assert min(counts) > 50
        overflows = max(counts) // 256 + 1
        assert max(counts) - min(counts) <= 4 * overflows, counts
    finally:
        session.close()


@needs_avr_gcc
def test_bridge_holds_host_bytes_until_the_dut_polls(tmp_path):
    """Two requests written at once: the second arrives while the DUT is busy in the first
    (warm-up inferences, then its reply). The bridge holds it until the DUT polls RX again,
    so both replies come back; nothing is echoed to the host."""
    session, case, dut = _soft_uart_session(tmp_path, "dtree_iris", fault_link=None)
    try:
        port = dut.client.port
        vector = dut.exported.vector_bytes(0)
        infer = encode(MSG["INFER"], 201, (1).to_bytes(2, "little") + (200).to_bytes(2, "little") + vector)
        echo = encode(MSG["ECHO"], 202, bytes(range(60)))
        port.reset_input_buffer()
        port.write(infer + echo)
        decoder, frames = Decoder(), []
        deadline = time.monotonic() + 30
        while len(frames) < 2 and time.monotonic() < deadline:
            frames += decoder.feed(port.read(256))
        assert [(f.type, f.seq) for f in frames] == [(MSG["RESULT"], 201), (MSG["ECHO_REPLY"], 202)]
        assert frames[1].payload == bytes(range(60))
        # ... and it says so: a real adapter would have sent the ECHO into the busy DUT
        assert "HELD" in Path(dut.target.extras["stderr_log"]).read_text()
    finally:
        session.close()


@needs_avr_gcc
@pytest.mark.parametrize("variant", ["dtree_iris", "checksum_64"], ids=["infer", "load-chunks"])
@pytest.mark.parametrize("kind, spec", [("flip", "flip=0.005"), ("drop", "drop=0.002")])
def test_soft_uart_survives_link_faults(tmp_path, variant, kind, spec):
    """The same faults as the UART boards (tests/faults/test_link_faults.py): caught by the
    protocol and resent; every output right."""
    session, case, dut = _soft_uart_session(tmp_path, variant, fault_link=spec + ",seed=7",
                                            reply_timeout=0.3)
    try:
        ok = classify_checked(dut, range(15))
        injected = {k: v for k, v in dut.target.extras["faultlink"].counts.items() if v}
        assert injected, f"{spec} injected nothing"
        assert all(ok), f"{ok.count(False)} wrong outputs with {injected}"
    finally:
        session.close()


@pytest.mark.skipif(not find_tool("avrdude").found, reason="avrdude is not installed: apt-get install avrdude")
def test_isp_upload_without_programmer_fails_clearly(tmp_path):
    """The lab flashes an ATtiny85 with avrdude over a USBasp (no bootloader) before the
    hardware backend binds to it.
    With no programmer attached the run fails in one message that names it and what to check,
    and no traceback. The serial port is a pty standing in for the USB-serial adapter."""
    master, slave = os.openpty()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "suites/test_smoke.py", "-k", "identify", "-p",
             "no:cacheprovider", "--board", "attiny85", "--backend", "hardware", "--port",
             os.ttyname(slave), "--results-dir", str(tmp_path / "results")],
            cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        os.close(master)
        os.close(slave)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "-c usbasp -p t85" in out and "flash:w:" in out and "lfuse:w:0xE2:m" in out
    assert "through the usbasp programmer" in out and "Check:" in out and "ISP cable" in out
    assert "Traceback" not in out


def test_isp_upload_error_is_a_backend_error(board, tmp_path):
    """The uploader called directly: a BackendError, not a crash, when avrdude fails."""
    if not find_tool("avrdude").found:
        pytest.skip("avrdude is not installed: apt-get install avrdude")
    hex_file = tmp_path / "empty.hex"
    hex_file.write_text(":00000001FF\n")
    with pytest.raises(BackendError, match="through the usbasp programmer"):
        get_uploader("avrdude_isp").flash(board, SimpleNamespace(hex=hex_file), "/dev/null")
