"""The power model, the simavr log it is applied to, monitor selection and the instrument
drivers' conversions (the instruments themselves cannot be attached here)."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.backends.base import Target
from harness.boards import get_board, parse_board
from harness.energy import (EnergyError, MonitorUnavailable, NoPowerModel, open_monitor,
                            power_model, resolve_choice)
from harness.energy.joulescope_source import chunk_from_signals
from harness.energy.model import ModelMonitor, pulses_from_log
from harness.energy.ppk2_source import chunk_from_samples
from harness.errors import BoardError
from harness.protocol.client import InferResult

UNO = get_board("uno")
MODEL = power_model(UNO)
CLOCK = UNO.clock_hz


def target(board=UNO, backend="simavr", marker_log=None, fidelity="cycle-accurate"):
    return Target(url="", backend=backend, fidelity=fidelity, board=board, marker_log=marker_log)


def test_uno_and_mega_models_cite_their_datasheets():
    for name in ("uno", "mega2560"):
        model = power_model(get_board(name))
        assert model.clock_hz == 16_000_000 and model.supply_v == 5.0
        assert model.active_mw > model.idle_mw > model.sleep_mw > 0
        assert "data sheet" in model.datasheet and "DC Characteristics" in model.table
        assert model.derivation and model.scope
    assert "Table 29-12" in MODEL.citation()


def test_native_has_no_power_model_and_says_so():
    with pytest.raises(NoPowerModel, match="native has no power model: .*host time.*\\[power\\] table"):
        power_model(get_board("native"))


def test_a_broken_power_table_is_a_board_error():
    data = {k: getattr(UNO, k) for k in ("name", "description", "arch", "mcu", "toolchain",
                                          "clock_hz", "flash_bytes", "ram_bytes", "max_payload",
                                          "vector_capacity", "max_runs", "default_emulator", "backends")}
    good = dict(UNO.extra["power"])
    for change, message in (({"active_mw": -1}, "active_mw .* >= 0"),
                            ({"active_mw": 0}, "must be above 0"),
                            ({"clock_hz": 8_000_000}, "differs from the board's clock_hz"),
                            ({"datasheet": None}, "lacks datasheet")):
        power = {k: v for k, v in (good | change).items() if v is not None}
        with pytest.raises(BoardError, match=message):
            power_model(parse_board(data | {"power": power}))


def test_log_without_sleep_is_all_active():
    pulses, notes = pulses_from_log(["1 1000", "0 17000"], CLOCK, MODEL)
    pulse, = pulses
    assert pulse.duration_s == pytest.approx(16000 / CLOCK) and pulse.sleep_s == 0
    assert pulse.energy_j == pytest.approx(16000 / CLOCK * MODEL.active_mw / 1e3)
    assert pulse.supply_v == MODEL.supply_v and notes == []


def test_log_credits_each_sleep_mode_at_its_figure():
    lines = ["1 0", "S 1000 0", "W 5000", "S 6000 2", "W 10000", "0 16000"]
    pulse, = pulses_from_log(lines, CLOCK, MODEL)[0]
    assert pulse.active_s == pytest.approx(8000 / CLOCK) and pulse.sleep_s == pytest.approx(8000 / CLOCK)
    expected_mj = (8000 * MODEL.active_mw + 4000 * MODEL.idle_mw + 4000 * MODEL.sleep_mw) / CLOCK
    assert pulse.energy_j == pytest.approx(expected_mj / 1e3)
    assert MODEL.sleep_power_mw(0) == ("idle", MODEL.idle_mw)
    assert MODEL.sleep_power_mw(2) == ("power-down", MODEL.sleep_mw)


def test_log_with_missing_edges_says_so():
    pulses, notes = pulses_from_log(["0 50", "1 100", "0 300", "1 400"], CLOCK, MODEL)
    assert len(pulses) == 1
    assert "without a rising one" in notes[0] and "had not fallen" in notes[1]
    with pytest.raises(EnergyError, match="line 1 is malformed"):
        pulses_from_log(["1 x"], CLOCK, MODEL)


def test_model_monitor_without_log_uses_the_dut_counter(tmp_path):
    monitor = ModelMonitor(MODEL, target(backend="qemu"), timer_hz=CLOCK)
    monitor.begin_window()
    monitor.after_request(4, InferResult(b"", [1600, 1600, 0xFFFFFFFF, 1600], 0.0))
    pulse, = monitor.end_window()
    assert pulse.duration_s == pytest.approx(4 * 1600 / CLOCK)     # the lost run at the mean
    assert pulse.energy_j == pytest.approx(pulse.duration_s * MODEL.active_mw / 1e3)
    assert "counter on qemu" in monitor.describe() and monitor.fidelity == "modelled"


def test_auto_is_the_model_on_emulators_and_none_on_hardware():
    assert resolve_choice("auto", UNO, "simavr") == "model"
    assert resolve_choice("auto", UNO, "hardware") == "none"
    wired = replace(UNO, extra=UNO.extra | {"energy_monitor": {"kind": "ppk2"}})
    assert resolve_choice("auto", wired, "hardware") == "ppk2"
    with pytest.raises(MonitorUnavailable, match="on real hardware: wire a Joulescope or PPK2"):
        open_monitor("auto", target(backend="hardware"), CLOCK)
    with pytest.raises(MonitorUnavailable, match="energy is not measured"):
        open_monitor("none", target(), CLOCK)
    with pytest.raises(EnergyError, match="unknown --energy-monitor"):
        open_monitor("ina219", target(), CLOCK)
    with pytest.raises(NoPowerModel):
        open_monitor("auto", target(board=get_board("native"), backend="native"), 1e9)
    assert isinstance(open_monitor("model", target(backend="hardware", fidelity="hardware"), CLOCK),
                      ModelMonitor)
    with pytest.raises(MonitorUnavailable, match="no modelled energy on qemu: its clock follows"):
        open_monitor("auto", target(backend="qemu", fidelity="functional"), CLOCK)


@pytest.mark.parametrize("name", ["joulescope", "ppk2"])
def test_instruments_measure_real_boards_only(name):
    with pytest.raises(MonitorUnavailable, match=f"{name} measures a real board.*runs on simavr"):
        open_monitor(name, target(), CLOCK)


INSTRUMENT_PACKAGES = {"joulescope": ("joulescope",), "ppk2": ("ppk2_api", "ppk2_api.ppk2_api")}


def test_the_core_never_imports_an_instrument_package():
    """Checked in a fresh interpreter: whatever ran before in this one (the PPK2 tests import
    ppk2_api) cannot hide an import, and no order of the tests makes it fail."""
    tops = sorted({names[0] for names in INSTRUMENT_PACKAGES.values()})
    code = ("import sys; import harness.energy, harness.energy.model, harness.energy.measure, "
            "harness.energy.joulescope_source, harness.energy.ppk2_source, harness.plugin.core, "
            "harness.session.session; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {tops!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]", out


@pytest.mark.parametrize("name", list(INSTRUMENT_PACKAGES))
def test_instrument_packages_are_optional(name, monkeypatch):
    """Choosing an instrument without its package installed says how to install it (the
    package is hidden here, so this runs whether or not it is installed, in any order)."""
    for module in INSTRUMENT_PACKAGES[name]:
        monkeypatch.setitem(sys.modules, module, None)      # None: "import it" raises ImportError
    for module in [m for m in sys.modules if m.startswith(INSTRUMENT_PACKAGES[name][0] + ".")]:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MonitorUnavailable, match=f"pip install 'tinyhil\\[{name}\\]'"):
        open_monitor(name, target(backend="hardware"), CLOCK)


def test_ppk2_needs_a_stated_supply_in_ampere_meter_mode():
    from harness.energy.ppk2_source import Ppk2Source
    with pytest.raises(MonitorUnavailable, match="measures no voltage"):
        Ppk2Source(marker_input=0, source_voltage_mv=None, supply_v=None)


def test_ppk2_samples_and_digital_inputs_become_a_chunk():
    samples_ua = [800.0, 6500.0, 6500.0, 800.0]
    raw_digital = [0b0000, 0b0100, 0b0101, 0b0001]          # marker on D2, something on D0
    chunk = chunk_from_samples(samples_ua, raw_digital, marker_input=2, supply_v=3.3)
    assert chunk.marker.tolist() == [False, True, True, False]
    assert chunk.current_a == pytest.approx([8e-4, 6.5e-3, 6.5e-3, 8e-4])
    assert chunk.voltage_v.tolist() == [3.3] * 4
    with pytest.raises(MonitorUnavailable, match="4 current samples but 3 digital"):
        chunk_from_samples(samples_ua, raw_digital[:3], 2, 3.3)


def test_joulescope_signals_become_a_chunk():
    signals = {"current": {"value": np.array([1e-3, 5e-3])}, "voltage": {"value": np.array([3.3, 3.29])},
               "current_lsb": {"value": np.array([0, 1], dtype=np.uint8)}}
    chunk = chunk_from_signals(signals, marker_input=0)
    assert chunk.marker.tolist() == [False, True] and chunk.voltage_v.tolist() == [3.3, 3.29]
    with pytest.raises(MonitorUnavailable, match="no voltage_lsb signal"):
        chunk_from_signals(signals, marker_input=1)
