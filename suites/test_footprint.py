"""Footprint: flash and static RAM read from the ELF, against the board's limits.

A variant that does not fit is a finding, recorded with its sizes, not a test failure."""

from harness.fidelity import STATIC


def test_footprint(firmware, exported, case, record):
    board = case.board
    record("flash_bytes", firmware.flash_bytes, "B", STATIC)
    record("ram_bytes", firmware.ram_bytes, "B", STATIC, detail="static data (.data + .bss)")
    record("stack_bytes", firmware.stack_bytes, "B", STATIC,
           detail="upper bound: every function's frame added up, from gcc -fstack-usage")
    if board.flash_limit:
        record("flash_limit_bytes", board.flash_limit, "B", STATIC)
    if board.ram_limit:
        record("ram_limit_bytes", board.ram_limit, "B", STATIC)
    facts = exported.facts
    if "arena_bytes" in facts:      # an int8 network: its RAM, planned when the C was generated
        record("arena_bytes", facts["arena_bytes"], "B", STATIC,
               detail="tensor arena planned at generation time (part of the static RAM)")
        record("weight_bytes", facts["weight_bytes"], "B", STATIC,
               detail="weights, biases and requantisation constants, kept in flash")
    record("fits", 1.0 if firmware.fits else 0.0, "bool", STATIC, detail="; ".join(firmware.problems))
    assert firmware.flash_bytes > 0 or not firmware.fits
