"""Latency: warm-up runs, then N timed runs, timed on the device by its own counter around
the inference alone. Figures carry the backend's fidelity (cycle-accurate on simavr)."""

import numpy as np


def test_latency(dut, case, record, request):
    runs, warmup = request.config.option.latency_runs, request.config.option.warmup
    valid, invalid = dut.cycles(dut.exported.vector_bytes(0), runs=runs, warmup=warmup)
    cycles = np.asarray(valid, dtype=float)
    dropped = f"; {invalid} of {runs} runs dropped: the counter ran backwards" if invalid else ""
    # Only an emulator with a lagging timer (qemu-system-avr, `functional`) may lose runs.
    assert invalid == 0 or dut.fidelity == "functional", f"{invalid} untimed runs on {dut.fidelity}"
    assert len(cycles) > 0, f"none of {runs} runs could be timed"
    assert np.all(cycles > 0), "an inference took zero counter ticks: the counter is not running"
    us = dut.cycles_to_us(cycles)
    stats = {"median": np.median, "p95": lambda a: np.percentile(a, 95), "min": np.min, "max": np.max}
    for name, fn in stats.items():
        record("latency_us", fn(us), "us", dut.fidelity, statistic=name, n=len(cycles),
               detail=dropped.lstrip("; "))
        record("latency_cycles", fn(cycles), "cycles", dut.fidelity, statistic=name, n=len(cycles),
               detail=f"counter at {dut.identity.timer_hz} Hz{dropped}")
