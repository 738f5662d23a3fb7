"""Energy per inference: one monitor interface, marker-gated windows, shared windowing code.

`open_monitor(choice, target, timer_hz)` picks the monitor (`--energy-monitor`):
  auto        the board's power model on emulators; on hardware the instrument its board
              file names in [energy_monitor], else none
  model       the board's power model ([power] in its board file) applied to measured time
  joulescope  a Joulescope JS110/JS220 (optional extra `joulescope`)
  ppk2        a Nordic PPK2 (optional extra `ppk2`, GPL-2.0)
  none        no energy figures
Instrument packages are imported only when their monitor is chosen.
"""

from __future__ import annotations

from harness.energy.errors import (EnergyError, MonitorUnavailable, NoMarkerEdges, NoPowerModel,
                                   WindowTooShort)
from harness.energy.monitor import EnergyMonitor, InstrumentMonitor, SampleSource
from harness.energy.power_model import PowerModel, power_model
from harness.energy.windows import MarkerWindower, Pulse, SampleChunk
from harness.fidelity import FUNCTIONAL

MONITORS = ("auto", "model", "joulescope", "ppk2", "none")

__all__ = ["EnergyError", "MonitorUnavailable", "NoMarkerEdges", "NoPowerModel", "WindowTooShort",
           "EnergyMonitor", "InstrumentMonitor", "SampleSource", "PowerModel", "power_model",
           "MarkerWindower", "Pulse", "SampleChunk", "MONITORS", "open_monitor", "resolve_choice"]


def resolve_choice(choice: str, board, backend: str) -> str:
    """What `auto` means for this board and backend; checks the name."""
    if choice not in MONITORS:
        raise EnergyError(f"unknown --energy-monitor {choice!r}: choose one of {', '.join(MONITORS)}")
    if choice != "auto":
        return choice
    if backend != "hardware":
        return "model"
    return board.extra.get("energy_monitor", {}).get("kind", "none")


def open_monitor(choice: str, target, timer_hz: float) -> EnergyMonitor:
    """The chosen monitor for a running target; MonitorUnavailable (a skip) says why there is none."""
    board, backend = target.board, target.backend
    resolved = resolve_choice(choice, board, backend)
    if resolved == "none":
        if choice == "auto":
            raise MonitorUnavailable(
                f"no energy monitor for {board.name} on real hardware: wire a Joulescope or PPK2 "
                "(docs/energy.md) and pass --energy-monitor joulescope|ppk2 (or name it in the "
                "board file's [energy_monitor] table), or pass --energy-monitor model for a "
                "modelled figure")
        raise MonitorUnavailable("--energy-monitor none: energy is not measured")
    if resolved == "model":
        from harness.energy.model import ModelMonitor
        if getattr(target, "fidelity", None) == FUNCTIONAL:
            raise MonitorUnavailable(
                f"no modelled energy on {backend}: its clock follows the host's time "
                f"(fidelity {FUNCTIONAL}), so there is no device time to apply {board.name}'s "
                "power model to. Use --backend simavr (exact cycles, sleep included)")
        return ModelMonitor(power_model(board), target, timer_hz)
    settings = dict(board.extra.get("energy_monitor", {}))
    settings.pop("kind", None)
    refusal = MonitorUnavailable(f"--energy-monitor {resolved} measures a real board, but {board.name} "
                                 f"runs on {backend} here: use --backend hardware, or "
                                 "--energy-monitor model on emulators")
    # A PPK2 named by its port may be the test suite's simulator, which can measure an
    # emulator: it says so in its metadata (checked below once it is open).
    if backend != "hardware" and not (resolved == "ppk2" and settings.get("port")):
        raise refusal
    if resolved == "joulescope":
        from harness.energy.joulescope_source import JoulescopeSource
        source = JoulescopeSource(serial=settings.get("serial"),
                                  marker_input=int(settings.get("marker_input", 0)),
                                  sampling_frequency=settings.get("sampling_frequency"))
    else:
        from harness.energy.ppk2_source import Ppk2Source
        supply = settings.get("supply_v") or board.extra.get("power", {}).get("supply_v")
        source = Ppk2Source(port=settings.get("port"), marker_input=int(settings.get("marker_input", 0)),
                            source_voltage_mv=settings.get("source_voltage_mv"), supply_v=supply)
    if backend != "hardware" and not getattr(source, "simulated", False):
        source.close()
        raise refusal
    return InstrumentMonitor(source)
