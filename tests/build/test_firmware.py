"""Firmware builds: cached by the hash of every input, footprint from the ELF, honest fit checks."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.boards import get_board
from harness.build.core import stack_bound
from harness.build.firmware import build_firmware
from harness.models import export, get_variant
from harness.tools import find_tool

needs_avr = pytest.mark.skipif(not find_tool("avr-gcc").found,
                               reason="avr-gcc is not installed: sudo apt-get install gcc-avr avr-libc")

PROBE = """#include <string.h>
#include "tinyhil_model.h"
const tinyhil_model_info_t tinyhil_model_info = {"probe/tmp", {0}, 4, 2, 1, 2};
int tinyhil_model_infer(const void *in, void *out) { memcpy(out, in, 1); return %s; }
"""


def probe_model(tmp_path: Path, body: str = "0"):
    glue = tmp_path / "glue.c"
    glue.write_text(PROBE % body)
    variant = SimpleNamespace(name="tmp_probe", input_count=4, input_dtype="uint8", output_count=1,
                              output_dtype="uint8", input_bytes=4, output_bytes=1)
    return SimpleNamespace(variant=variant, c_sources=[glue], include_dirs=[])


def test_unchanged_inputs_are_not_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYHIL_CACHE", str(tmp_path / "cache"))
    board = get_board("native")
    first = build_firmware(board, probe_model(tmp_path))
    stamp = first.elf.stat().st_mtime_ns
    again = build_firmware(board, probe_model(tmp_path))
    assert again.elf == first.elf and again.elf.stat().st_mtime_ns == stamp
    assert again.build_id == first.build_id and again.sha256 == first.sha256
    changed = build_firmware(board, probe_model(tmp_path, body="1 - 1"))
    assert changed.build_id != first.build_id


@needs_avr
def test_footprint_and_fit_come_from_the_elf():
    uno, mega = get_board("uno"), get_board("mega2560")
    tree = build_firmware(uno, export("dtree_emlearn"))
    assert tree.fits and 0 < tree.flash_bytes < uno.flash_limit and 0 < tree.ram_bytes < uno.ram_bytes
    assert tree.hex and tree.hex.read_text().startswith(":")
    mlp_uno = build_firmware(uno, export("mlp_emlearn"))
    assert not mlp_uno.fits and not mlp_uno.runnable
    assert any("static RAM" in p and "2,048 B" in p for p in mlp_uno.problems)
    assert mlp_uno.ram_bytes > uno.ram_bytes          # measured, not guessed
    assert build_firmware(mega, export("mlp_emlearn")).fits


@needs_avr
def test_stack_hungry_model_does_not_fit_even_when_static_ram_does():
    """m2cgen keeps each leaf as a compound literal on the stack: >10 KB on AVR."""
    mega = get_board("mega2560")
    firmware = build_firmware(mega, export("rf_m2cgen"))
    assert firmware.ram_bytes < mega.ram_bytes
    assert firmware.stack_bytes > mega.ram_bytes
    assert any("stack" in p for p in firmware.problems)


def test_vector_larger_than_the_board_buffers_does_not_fit():
    if not find_tool("avr-gcc").found:
        pytest.skip("avr-gcc is not installed: sudo apt-get install gcc-avr avr-libc")
    firmware = build_firmware(get_board("uno"), export("checksum_2048"))
    assert any("test vector 2,048 B" in p for p in firmware.problems)
    assert get_variant("checksum_2048").kind == "probe"


def test_stack_bound_sums_frames_and_flags_dynamic_ones():
    text = "a.c:1:5:f\t10\tstatic\nb.c:2:6:g\t32\tdynamic,bounded\n"
    assert stack_bound(text) == (42, False)
    assert stack_bound("a.c:1:5:f\t8\tstatic\n") == (8, True)
