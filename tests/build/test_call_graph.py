"""The stack bound from the call graph: the deepest chain of frames from main, plus the deepest
interrupt handler; no bound (the caller adds up every frame) where the code cannot give one."""

import pytest

from harness.boards import get_board
from harness.build.call_graph import LIBRARY_FRAME, deepest_chain, frames_from_su
from harness.build.core import STACK_FILE, stack_bound
from harness.build.firmware import build_firmware
from harness.models import export
from harness.tools import find_tool

# avr-objdump -d as it prints: main calls a and c; a calls b, and branches inside itself; b calls
# a library routine (no -fstack-usage line); one interrupt handler
DISASSEMBLY = """
00000010 <main>:
      10:\t0e 94 20 00 \tcall\t0x40\t; 0x40 <a>
      14:\t0e 94 30 00 \tcall\t0x60\t; 0x60 <c>
00000040 <a>:
      40:\td8 df       \trcall\t.+62     \t; 0x80 <b>
      42:\tff cf       \trjmp\t.-2      \t; 0x42 <a+0x2>
00000060 <c>:
      60:\t08 95       \tret
00000080 <b>:
      80:\t0e 94 00 01 \tcall\t0x100\t; 0x100 <__mulsi3>
00000100 <__mulsi3>:
     100:\t08 95       \tret
00000120 <__vector_5>:
     120:\t18 95       \treti
"""
SU = "m.c:1:5:main\t2\tstatic\nm.c:2:5:a\t10\tstatic\nm.c:3:5:b\t20\tstatic\n" \
     "m.c:4:5:c\t25\tstatic\nm.c:5:5:__vector_5\t9\tstatic\nm.c:6:5:unused\t99\tstatic\n"


def test_the_deepest_chain_and_one_interrupt_bound_the_stack():
    frames = frames_from_su(SU)
    # main -> a -> b -> __mulsi3 outweighs main -> c; the unused function adds nothing
    assert deepest_chain(DISASSEMBLY, frames) == 2 + 10 + 20 + LIBRARY_FRAME + 9
    assert stack_bound(SU)[0] == 165                       # what adding every frame gives


def test_recursion_and_calls_through_a_pointer_give_no_bound():
    frames = frames_from_su(SU)
    recursive = DISASSEMBLY.replace("call\t0x100\t; 0x100 <__mulsi3>", "call\t0x40\t; 0x40 <a>")
    assert deepest_chain(recursive, frames) is None
    through_pointer = DISASSEMBLY.replace("\tret\n", "\ticall\n", 1)
    assert deepest_chain(through_pointer, frames) is None
    # a library routine on the chain that moves the stack pointer: a frame no line tells
    library_frame = DISASSEMBLY.replace("100:\t08 95       \tret", "100:\tde bf       \tout\t0x3e, r29")
    assert deepest_chain(library_frame, frames) is None
    # the same in a function main never reaches changes nothing
    off_chain = DISASSEMBLY + "00000200 <__ctors_end>:\n     200:\tde bf       \tout\t0x3e, r29\n"
    assert deepest_chain(off_chain, frames) == deepest_chain(DISASSEMBLY, frames)


def test_a_relative_call_that_wraps_around_a_small_flash_is_followed():
    """On an 8 KB AVR an rcall may wrap around the flash; objdump then prints the address
    past 4 GB and names no function."""
    wrapped = DISASSEMBLY.replace("; 0x80 <b>", "; 0xffffe080 <__eeprom_end+0xff7ee080>")
    frames = frames_from_su(SU)
    assert deepest_chain(wrapped, frames, flash_bytes=8192) == deepest_chain(DISASSEMBLY, frames)
    assert deepest_chain(wrapped, frames) < deepest_chain(DISASSEMBLY, frames)   # b was lost


@pytest.mark.skipif(not find_tool("avr-objdump").found or not find_tool("avr-gcc").found,
                    reason="needs avr-gcc and avr-objdump: sudo apt-get install gcc-avr binutils-avr avr-libc")
def test_an_attiny85_build_is_bounded_by_its_call_graph():
    firmware = build_firmware(get_board("attiny85"), export("dtree_iris"))
    frames = frames_from_su((firmware.elf.parent / STACK_FILE).read_text())
    assert max(frames.values()) < firmware.stack_bytes < sum(frames.values())
    # the chain that runs the model is on it: the parser, the model and the timer interrupt
    assert firmware.stack_bytes >= frames["tinyhil_dut_feed"] + frames["dtree_iris_predict"] + frames["__vector_5"]


@pytest.mark.skipif(not find_tool("avr-objdump").found or not find_tool("avr-gcc").found,
                    reason="needs avr-gcc and avr-objdump: sudo apt-get install gcc-avr binutils-avr avr-libc")
def test_a_program_the_linker_refused_keeps_every_frame_added_up():
    """14 KB of int8 CNN in the ATtiny85's 8 KB: its calls past the flash were cut short, so
    its disassembly cannot say who calls whom."""
    firmware = build_firmware(get_board("attiny85"), export("cnn_int8"))
    assert not firmware.runnable
    assert firmware.stack_bytes == stack_bound((firmware.elf.parent / STACK_FILE).read_text())[0]
