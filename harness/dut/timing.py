"""A test set timed vector by vector: the accuracy pass's per-inference cycles as the
latency distribution over the inputs (the observed worst case among them), and the one
input energy windows run on (the median-latency one)."""

from __future__ import annotations

import numpy as np

from harness.fidelity import DEVICE_TIME
from harness.protocol.wire import CYCLES_INVALID, FLAG

#: One record per case holding every vector's cycles (value: how many; detail: the counts,
#: comma-separated, in test-set order), never one row per vector.
VECTOR_CYCLES = "vector_cycles"
#: A quantised figure is no latency: a host clock must step by at most 1 % of the median.
MAX_QUANTISATION = 0.01
STATISTICS = {"min": np.min, "median": np.median, "p95": lambda a: np.percentile(a, 95), "max": np.max}


def encode_cycles(cycles: list[int]) -> str:
    return ",".join("-" if c == CYCLES_INVALID else str(c) for c in cycles)


def decode_cycles(detail: str) -> list[int | None]:
    return [None if c == "-" else int(c) for c in detail.split(",")] if detail else []


def median_input(cycles: list[int]) -> int | None:
    """The index of the input whose cycles are the (lower) median of the timed ones."""
    timed = [(c, i) for i, c in enumerate(cycles) if c != CYCLES_INVALID]
    if not timed:
        return None
    timed.sort()
    return timed[(len(timed) - 1) // 2][1]


def record_test_set_latency(dut, cycles: list[int], record) -> int:
    """Record the per-vector cycles and, on a device time fine enough to tell inputs apart,
    their distribution. Returns how many vectors were timed."""
    timed = np.asarray([c for c in cycles if c != CYCLES_INVALID], dtype=float)
    record(VECTOR_CYCLES, len(cycles), "cycles", dut.fidelity, n=len(timed),
           detail=encode_cycles(cycles))
    if dut.fidelity not in DEVICE_TIME or not len(timed):
        return len(timed)                # host-clock emulator time: kept, never a latency
    # A host clock (native) steps coarsely against a 100 ns model; a cycle counter counts every
    # cycle (its "resolution" there is only how far apart two reads of it land).
    host_clock = dut.identity.flags & FLAG["HOST_CLOCK"]
    if host_clock and max(dut.identity.counter_resolution, 1) > MAX_QUANTISATION * np.median(timed):
        return len(timed)
    slowest = int(np.argmax([c if c != CYCLES_INVALID else -1 for c in cycles]))
    detail = (f"each of {len(cycles)} test vectors once" +
              (f"; {len(cycles) - len(timed)} untimed (the counter ran backwards)"
               if len(timed) < len(cycles) else ""))
    us = dut.cycles_to_us(timed)
    for name, fn in STATISTICS.items():
        record("set_latency_us", fn(us), "us", dut.fidelity, statistic=name, n=len(timed), detail=detail)
        record("set_latency_cycles", fn(timed), "cycles", dut.fidelity, statistic=name, n=len(timed),
               detail=f"counter at {dut.identity.timer_hz} Hz; {detail}")
    record("slowest_input", slowest, "index", dut.fidelity, n=len(timed),
           detail=f"test vector {slowest}: {cycles[slowest]} cycles, the observed worst case")
    return len(timed)


def energy_input(dut) -> tuple[int, str]:
    """The test vector energy windows run on, and how it was chosen: the median-latency input
    of the test set as this case's accuracy pass timed it, so one input's unusually short or
    long path does not stand for the model. Without that pass in this run (only the energy
    suite selected), vector 0: streaming the set here would put its requests, and on a board
    without batches their marker pulses, in front of the instrument."""
    cycles = dut.test_set.get("cycles")
    index = median_input(cycles) if cycles else None
    if index is None:
        return 0, "test vector 0 (the accuracy pass did not time this case's test set in this run)"
    return index, (f"test vector {index}, the median-latency input of {len(cycles)} "
                   f"({cycles[index]} cycles)")
