"""One energy measurement: windows of N inferences between marker edges, repeated, median kept.

A window is at least `min_window_s` of marker-high time (MLPerf Tiny asks for 10 s on
hardware). The DUT runs at most `max_runs` inferences per INFER request with its marker high
around them, so a window is made of as many back-to-back requests as it takes; the serial
traffic between them happens with the marker low, outside the window. Energy per inference
is the window's energy over its inferences, average power its energy over its marker-high
time. Windows are repeated (5 by default); the median is reported and the spread kept.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from harness.energy.errors import EnergyError
from harness.energy.monitor import EnergyMonitor
from harness.energy.windows import Pulse

MLPERF_MIN_WINDOW_S = 10.0      # hardware default: the MLPerf Tiny energy rule
EMULATOR_MIN_WINDOW_S = 0.02    # emulators: simulated time is exact, keep the tests fast
DEFAULT_WINDOWS = 5


@dataclass(frozen=True)
class Window:
    inferences: int
    pulses: int
    energy_j: float
    duration_s: float              # marker-high time, summed over the window's pulses
    supply_v: float
    active_s: float | None = None  # modelled: CPU running ...
    sleep_s: float | None = None   # ... and asleep

    @property
    def energy_uj(self) -> float:
        """Energy per inference, microjoules."""
        return self.energy_j / self.inferences * 1e6

    @property
    def power_mw(self) -> float:
        return self.energy_j / self.duration_s * 1e3

    @classmethod
    def from_pulses(cls, pulses: list[Pulse], inferences: int) -> "Window":
        duration = sum(p.duration_s for p in pulses)
        modelled = all(p.active_s is not None for p in pulses)
        return cls(inferences=inferences, pulses=len(pulses),
                   energy_j=sum(p.energy_j for p in pulses), duration_s=duration,
                   supply_v=sum(p.supply_v * p.duration_s for p in pulses) / duration,
                   active_s=sum(p.active_s for p in pulses) if modelled else None,
                   sleep_s=sum(p.sleep_s for p in pulses) if modelled else None)


@dataclass(frozen=True)
class EnergyMeasurement:
    windows: list[Window]
    runs_per_request: int
    requests_per_window: int
    monitor: str                 # what the figures are based on
    fidelity: str

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(w, attribute) for w in self.windows)

    def spread(self, attribute: str) -> tuple[float, float]:
        values = [getattr(w, attribute) for w in self.windows]
        return min(values), max(values)


def plan_window(latency_s: float, max_runs: int, min_window_s: float) -> tuple[int, int]:
    """(inferences per request, requests per window) so a window lasts at least min_window_s."""
    if not latency_s > 0:
        raise EnergyError(f"an inference took {latency_s} s: cannot size an energy window")
    return max_runs, max(1, math.ceil(min_window_s / (max_runs * latency_s)))


def measure_energy(dut, monitor: EnergyMonitor, vector: bytes, *, min_window_s: float,
                   windows: int = DEFAULT_WINDOWS, warmup: int = 2) -> EnergyMeasurement:
    if windows < 1:
        raise EnergyError(f"--energy-windows must be at least 1, not {windows}")
    runs = dut.identity.max_runs
    valid = dut.cycles(vector, runs=min(runs, 4), warmup=warmup).per_inference
    if not valid:
        raise EnergyError(f"{dut.board.name}: no inference could be timed, so no energy window "
                          "can be sized")
    latency_s = statistics.median(valid) / dut.identity.timer_hz
    if dut.lap_timed:                      # EEMBC: one `infer N 0` per window, N to fill it
        runs, requests = dut.window_loops(vector, min_window_s), 1
    else:
        runs, requests = plan_window(latency_s, runs, min_window_s)
    monitor.check_window(runs * latency_s)
    measured = []
    try:
        for _ in range(windows):
            measured.append(_window(dut, monitor, vector, runs, requests))
    except EnergyError as exc:
        # The windows measured before the failure stay valid: the caller records them.
        exc.partial = (EnergyMeasurement(measured, runs, requests, monitor.describe(), monitor.fidelity)
                       if measured else None)
        raise
    return EnergyMeasurement(measured, runs, requests, monitor.describe(), monitor.fidelity)


def _window(dut, monitor: EnergyMonitor, vector: bytes, runs: int, requests: int) -> Window:
    monitor.begin_window()
    inferences = 0
    try:
        for _ in range(requests):
            result = dut.infer(vector, runs=runs, warmup=0, per_run=False)   # a total is enough
            inferences += result.inferences
            monitor.after_request(runs, result)
    except BaseException:
        try:
            monitor.end_window()
        except Exception:
            pass                     # the first error is the one to report
        raise
    pulses = monitor.end_window()
    if len(pulses) != requests:
        raise EnergyError(f"{monitor.name} saw {len(pulses)} marker pulses for {requests} "
                          f"inference requests in one window: a pulse was lost or split "
                          "(a loose marker wire, or glitches longer than the glitch filter). "
                          "Check the wiring in docs/energy.md")
    return Window.from_pulses(pulses, inferences)
