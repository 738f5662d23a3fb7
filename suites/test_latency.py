"""Latency: warm-up runs, then N timed runs, timed on the device by its own counter around
the inference alone. Figures carry the backend's fidelity (cycle-accurate on simavr)."""

import numpy as np
import pytest

from harness.fidelity import DEVICE_TIME


def test_latency(dut, case, record, run_config):
    if dut.fidelity not in DEVICE_TIME:
        pytest.skip(f"{case.backend} times {case.board.name} by the host's clock ({dut.fidelity}): "
                    "its counts are no device latency; use --backend simavr (cycle-accurate) or "
                    "a real board")
    runs, warmup = run_config.latency_runs, run_config.warmup
    timing = dut.cycles(dut.exported.vector_bytes(0), runs=runs, warmup=warmup)
    cycles, invalid = np.asarray(timing.per_inference, dtype=float), timing.invalid
    dropped = f"; {invalid} of {runs} runs dropped: the counter ran backwards" if invalid else ""
    # On a host clock each timed run is `loops` inferences back to back (spanning well over
    # the counter's resolution): the figures are per inference.
    loops = (f"; {timing.loops} inferences per timed run, counter resolution "
             f"{dut.identity.counter_resolution} ticks" if timing.loops > 1 else "")
    if dut.lap_timed:       # EEMBC: each run is one window, two laps around `infer N W`
        loops = (f"; each run the m-lap-us laps of `infer {timing.loops} {warmup}`, "
                 f"{dut.window_s:g} s of device time or more, divided by {timing.loops}")
    assert invalid == 0, f"{invalid} untimed runs on {dut.fidelity}: the counter ran backwards"
    assert len(cycles) > 0, f"none of {runs} runs could be timed"
    assert np.all(cycles > 0), "an inference took zero counter ticks: the counter is not running"
    us = dut.cycles_to_us(cycles)
    stats = {"median": np.median, "p95": lambda a: np.percentile(a, 95), "min": np.min, "max": np.max}
    for name, fn in stats.items():
        record("latency_us", fn(us), "us", dut.fidelity, statistic=name, n=len(cycles),
               detail=(dropped + loops).lstrip("; "))
        record("latency_cycles", fn(cycles), "cycles", dut.fidelity, statistic=name, n=len(cycles),
               detail=f"counter at {dut.identity.timer_hz} Hz{dropped}{loops}")
