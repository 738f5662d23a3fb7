"""Energy per inference and average power between the DUT's marker edges, MLPerf Tiny style:
windows of N inferences lasting at least --energy-min-window-s, repeated --energy-windows
times, the median reported and the spread kept, on the test set's median-latency input. The same test on every backend; where the
energy comes from is the monitor's business (--energy-monitor), and its fidelity says so:
`hardware` from an instrument, `modelled` from the board's power model."""

import pytest

from harness.dut.timing import energy_input
from harness.energy import EnergyError
from harness.energy.measure import EMULATOR_MIN_WINDOW_S, MLPERF_MIN_WINDOW_S, measure_energy
from harness.fidelity import HARDWARE, MODELLED, SIMULATED_INSTRUMENT
from harness.dut.supervision import FAILURE_METRIC, FAILURE_UNIT


def test_energy(dut, case, record, energy_monitor, run_config):
    opt = run_config
    min_window = opt.energy_min_window_s or (
        MLPERF_MIN_WINDOW_S if case.backend == "hardware" else EMULATOR_MIN_WINDOW_S)
    failed = None
    index, chosen = energy_input(dut)
    try:
        result = measure_energy(dut, energy_monitor, dut.exported.vector_bytes(index),
                                min_window_s=min_window, windows=opt.energy_windows,
                                warmup=opt.warmup)
    except EnergyError as exc:
        failed = exc                # failed outside the except: one message, no chained one
    if failed is not None:
        partial = getattr(failed, "partial", None)
        if partial is not None:     # the windows measured before the failure are kept
            record_windows(record, partial, f"{len(partial.windows)} of {opt.energy_windows} "
                           f"windows, the rest failed; {chosen}; ")
        record(FAILURE_METRIC, 1.0, FAILURE_UNIT, energy_monitor.fidelity,
               detail=f"kind=energy; {failed}")
        pytest.fail(str(failed), pytrace=False)

    assert result.fidelity in (HARDWARE, MODELLED, SIMULATED_INSTRUMENT)   # never cycle-accurate
    for window in result.windows:
        assert window.energy_j > 0 and window.duration_s >= min_window * 0.999, window
        assert window.inferences == result.runs_per_request * result.requests_per_window
    if result.fidelity == MODELLED:
        model = energy_monitor.model
        lowest = min(model.active_mw, model.idle_mw, model.sleep_mw)
        for window in result.windows:       # a mean of the model's figures lies between them
            assert lowest * 0.999 <= window.power_mw <= model.active_mw * 1.001, window
    record_windows(record, result, f"{chosen}; ")


def record_windows(record, result, note: str = "") -> None:
    windows = result.windows
    seconds = result.median("duration_s")
    asleep = result.median("sleep_s") if windows[0].sleep_s is not None else None
    detail = (f"{note}{result.monitor}; median of {len(windows)} windows of "
              f"{result.requests_per_window} x {result.runs_per_request} inferences, "
              f"{seconds * 1e3:.3f} ms marker-high each "
              f"({seconds / windows[0].inferences * 1e6:.2f} us per inference, timing loop included)"
              + (f", {asleep / seconds:.1%} of it asleep" if asleep is not None else ""))
    n = len(windows)
    for metric, unit, attribute in (("energy_uj", "uJ", "energy_uj"), ("power_mw", "mW", "power_mw")):
        low, high = result.spread(attribute)
        record(metric, result.median(attribute), unit, result.fidelity, statistic="median", n=n,
               detail=detail)
        record(metric, low, unit, result.fidelity, statistic="min", n=n)
        record(metric, high, unit, result.fidelity, statistic="max", n=n)
    record("supply_v", result.median("supply_v"), "V", result.fidelity, statistic="median", n=n,
           detail="stated by the power model" if result.fidelity == MODELLED else
           f"as {result.monitor} gives it")        # a PPK2 sets or is told it; a Joulescope measures
