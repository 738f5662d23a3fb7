"""The `model` monitor: the board's power model applied to measured time.

On simavr the bridge logs the marker edges, and the CPU's sleeps and wake-ups inside the
marker window, at exact cycle counts: each window is split into cycles running (active power)
and cycles asleep (idle or sleep power, by the sleep mode the firmware chose), so firmware
that sleeps is credited for it. On a real board without an instrument the window is the time
the DUT's own counter measured, all of it charged as active. (QEMU gets no model: its time
follows the host's clock; see open_monitor.) Either way
the energy is `modelled`: the time may be exact, the power is a datasheet's typical figure.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.energy.errors import EnergyError, NoMarkerEdges
from harness.energy.monitor import EnergyMonitor
from harness.energy.power_model import PowerModel
from harness.energy.windows import Pulse
from harness.fidelity import MODELLED

LOG_WAIT_S = 5.0      # the bridge flushes every line at once; this only covers a slow host


def pulses_from_log(lines: list[str], clock_hz: float, model: PowerModel) -> tuple[list[Pulse], list[str]]:
    """Marker pulses from bridge log lines: "1 CYCLE" / "0 CYCLE" (marker edges), "S CYCLE MODE"
    / "W CYCLE" (the CPU went to sleep in SMCR mode MODE / woke up). Returns pulses and notes."""
    pulses, notes = [], []
    start = asleep_at = None
    mode = None
    sleep_cycles: dict[int | None, int] = {}
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        kind = parts[0]
        try:
            cycle = int(parts[1])
        except (IndexError, ValueError):
            raise EnergyError(f"marker log line {number} is malformed: {line!r}") from None
        if kind == "1":
            start, asleep_at, sleep_cycles = cycle, None, {}
        elif kind == "S" and start is not None:
            asleep_at, mode = cycle, int(parts[2]) if len(parts) > 2 else None
        elif kind == "W" and start is not None and asleep_at is not None:
            sleep_cycles[mode] = sleep_cycles.get(mode, 0) + cycle - asleep_at
            asleep_at = None
        elif kind == "0":
            if start is None:
                notes.append(f"a falling marker edge at cycle {cycle} without a rising one")
                continue
            if asleep_at is not None:       # cannot happen: a sleeping CPU drives no pin
                sleep_cycles[mode] = sleep_cycles.get(mode, 0) + cycle - asleep_at
            pulses.append(_modelled_pulse(start, cycle, sleep_cycles, clock_hz, model))
            start = None
    if start is not None:
        notes.append(f"the marker rose at cycle {start} and had not fallen yet")
    return pulses, notes


def _modelled_pulse(start: int, end: int, sleep_cycles: dict, clock_hz: float,
                    model: PowerModel) -> Pulse:
    duration = (end - start) / clock_hz
    asleep = sum(sleep_cycles.values()) / clock_hz
    energy_mj = (duration - asleep) * model.active_mw
    for mode, cycles in sleep_cycles.items():
        energy_mj += cycles / clock_hz * model.sleep_power_mw(mode)[1]
    return Pulse(energy_j=energy_mj / 1e3, duration_s=duration, supply_v=model.supply_v,
                 start_s=start / clock_hz, active_s=duration - asleep, sleep_s=asleep)


class ModelMonitor(EnergyMonitor):
    name = "model"
    fidelity = MODELLED

    def __init__(self, model: PowerModel, target, timer_hz: float):
        self.model = model
        self.clock_hz = target.board.clock_hz
        self.timer_hz = timer_hz
        log = target.marker_log
        self.log = Path(log) if log else None
        self.backend = target.backend
        self._offset = 0
        self._requests = 0
        self._counted: list[Pulse] = []

    def describe(self) -> str:
        basis = ("exact cycles running and asleep between the marker edges (simavr)" if self.log
                 else f"the DUT's own counter on {self.backend}, all of it charged as active")
        return (f"power model ({self.model.citation()}; {self.model.active_mw:g} mW active, "
                f"{self.model.idle_mw:g} mW idle, {self.model.sleep_mw:g} mW sleep at "
                f"{self.model.supply_v:g} V, {self.model.clock_hz / 1e6:g} MHz) applied to {basis}")

    def begin_window(self) -> None:
        self._requests = 0
        self._counted = []
        if self.log:
            self._offset = self.log.stat().st_size if self.log.exists() else 0

    def after_request(self, runs: int, result) -> None:
        self._requests += 1
        if self.log:
            return
        if not result.timed_runs:
            raise EnergyError(f"none of the {runs} runs of a request could be timed on "
                              f"{self.backend}: no time to apply the power model to")
        # Runs the counter could not time are charged at the mean of those it could.
        seconds = result.total_cycles / result.timed_runs * runs / self.timer_hz
        self._counted.append(Pulse(energy_j=seconds * self.model.active_mw / 1e3,
                                   duration_s=seconds, supply_v=self.model.supply_v,
                                   active_s=seconds, sleep_s=0.0))

    def end_window(self) -> list[Pulse]:
        if not self.log:
            return self._counted
        deadline = time.monotonic() + LOG_WAIT_S
        while True:
            lines = self._new_lines()
            pulses, notes = pulses_from_log(lines, self.clock_hz, self.model)
            if len(pulses) >= self._requests or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not pulses:
            raise NoMarkerEdges(f"the simavr bridge logged no complete marker pulse for "
                                f"{self._requests} requests in {self.log}"
                                + (f" ({'; '.join(notes)})" if notes else "")
                                + ": does the firmware drive the board's [marker] pin?")
        return pulses

    def _new_lines(self) -> list[str]:
        with open(self.log, "rb") as f:
            f.seek(self._offset)
            data = f.read().decode(errors="replace")
        return data[:data.rfind("\n") + 1].splitlines()     # whole lines only
