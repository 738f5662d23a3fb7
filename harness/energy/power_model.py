"""A board's power model: active, idle and sleep power at a stated supply and clock, read from
the [power] table of its board file, with the datasheet and table the figures come from.

The model is applied to time measured elsewhere (simavr's exact cycles, or the DUT's own
counter), so what it yields is `modelled`, never measured."""

from __future__ import annotations

from dataclasses import dataclass

from harness.boards import Board
from harness.energy.errors import NoPowerModel
from harness.errors import BoardError

REQUIRED = ("supply_v", "clock_hz", "active_mw", "idle_mw", "sleep_mw", "datasheet", "table")

# AVR SMCR sleep-mode bits SM2:0 -> which figure of the model applies while asleep.
# Idle keeps the clocks running (the idle figure); ADC noise reduction stops the CPU and I/O
# clocks but keeps the ADC: it is charged at the idle figure too, an overestimate. Every
# other mode stops the main clock or the oscillator: charged at the sleep figure.
AVR_SLEEP_MODES = {0: ("idle", "idle_mw"), 1: ("adc-noise-reduction", "idle_mw"),
                   2: ("power-down", "sleep_mw"), 3: ("power-save", "sleep_mw"),
                   6: ("standby", "sleep_mw"), 7: ("extended-standby", "sleep_mw")}


@dataclass(frozen=True)
class PowerModel:
    board: str
    supply_v: float          # the rail the figures are for
    clock_hz: int            # the clock the figures are for
    active_mw: float         # CPU running
    idle_mw: float           # CPU halted, clocks running (AVR Idle)
    sleep_mw: float          # deepest sleep the firmware uses (AVR power-down)
    datasheet: str
    table: str
    derivation: str = ""     # how the datasheet's figures became these (scaling, conditions)
    scope: str = ""          # what is and is not included (the MCU alone, the board, ...)

    def sleep_power_mw(self, mode: int | None) -> tuple[str, float]:
        """(mode name, mW) for an AVR sleep mode number; None or unknown: the sleep figure."""
        name, attr = AVR_SLEEP_MODES.get(mode, (f"mode {mode}", "sleep_mw"))
        return name, getattr(self, attr)

    def citation(self) -> str:
        return f"{self.datasheet}, {self.table}"


def power_model(board: Board) -> PowerModel:
    """The board's power model; NoPowerModel (a skip) when its file has no [power] table."""
    data = board.extra.get("power")
    if not data:
        why = (f"{board.name} has no power model: its figures are host time of a local process, "
               "not a microcontroller's" if board.arch == "host" else
               f"{board.name} has no power model")
        raise NoPowerModel(f"{why}. Energy needs a [power] table in {board.source or 'its board file'} "
                           "(active/idle/sleep mW at a stated supply_v and clock_hz, with the "
                           "datasheet and table they come from; see devices/boards/uno.toml), or "
                           "an instrument (--energy-monitor joulescope|ppk2, docs/energy.md)")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise BoardError(f"the [power] table of {board.source or board.name} lacks "
                         f"{', '.join(missing)}; see devices/boards/uno.toml for a complete one")
    for key in ("supply_v", "clock_hz", "active_mw", "idle_mw", "sleep_mw"):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise BoardError(f"[power] {key} in {board.source or board.name} must be a number "
                             f">= 0, not {value!r}")
    if not data["active_mw"] > 0 or not data["supply_v"] > 0:
        raise BoardError(f"[power] active_mw and supply_v in {board.source or board.name} must be "
                         "above 0: a model that says running costs nothing would give zero energy")
    if data["clock_hz"] != board.clock_hz:
        raise BoardError(f"[power] clock_hz = {data['clock_hz']} in {board.source or board.name} "
                         f"differs from the board's clock_hz = {board.clock_hz}: restate the "
                         "figures for the clock the board runs at")
    return PowerModel(board=board.name, supply_v=float(data["supply_v"]),
                      clock_hz=int(data["clock_hz"]), active_mw=float(data["active_mw"]),
                      idle_mw=float(data["idle_mw"]), sleep_mw=float(data["sleep_mw"]),
                      datasheet=str(data["datasheet"]), table=str(data["table"]),
                      derivation=str(data.get("derivation", "")), scope=str(data.get("scope", "")))
