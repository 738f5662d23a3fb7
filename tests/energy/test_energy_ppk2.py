"""Energy through a PPK2, end to end: the energy suite, unchanged, on a simavr Uno, measured by
the real ppk2-api package over a real pseudo-terminal from a simulated PPK2 (tests/ppk2_sim.py)
whose samples come from that very run. Its figures must agree with the power model applied to
the same windows within the PPK2's sampling and quantisation error, and carry their own
fidelity; the faults a real instrument shows must each end in a clear failure and a record.

The bound, per window of pulses j lasting T_j (docs/energy.md, "How close an instrument can
get"): each edge is known to one sample period Ts = 10 us, so each pulse's energy is off by
less than Ts x P_max (the highest power next to an edge); each sample's current is rounded to
the ADC step q of its range (at most q/2 each); the instrument's noise sigma averages down as
sqrt(N) over the window's N samples (4 sigma taken):
    |E_ppk2 - E_model| <= n_pulses Ts P_max + V sum(T_j) q/2 + 4 sigma V Ts sqrt(N)
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.backends import get_backend
from harness.backends.base import Target
from harness.boards import get_board
from harness.energy import MonitorUnavailable, open_monitor, power_model
from harness.energy.model import pulses_from_log
from harness.energy.ppk2_source import counter_gaps, insert_lost
from harness.energy.windows import SampleChunk
from harness.fidelity import SIMULATED_INSTRUMENT
from harness.paths import devices_dir
from harness.tools import find_tool
from tests.ppk2_sim import RATE, Ppk2Simulator

REPO = Path(__file__).resolve().parents[2]
# The Mega runs 64 inferences per request (the Uno 16): with a ~130 us model a pulse holds
# ~800 PPK2 samples, where the Uno's would be too short for 100 kS/s (WindowTooShort).
BASE = get_board("mega2560")
MODEL = power_model(BASE)
BOARD = "mega2560_ppk2sim"  # its own name: works whether a user boards folder adds or replaces
VARIANT = "rf_emlearn"
NO_PPK2_API = importlib.util.find_spec("ppk2_api") is None
needs_ppk2_api = pytest.mark.skipif(NO_PPK2_API, reason="ppk2-api is not installed: pip install "
                                    "'tinyhil[ppk2]' (scripts/setup.sh installs it)")
SIMAVR = get_backend("simavr", BASE).availability(BASE)


def needs_simavr(test):
    test = pytest.mark.skipif(not find_tool("avr-gcc").found, reason="avr-gcc is not installed: "
                              "sudo apt-get install gcc-avr avr-libc")(test)
    return pytest.mark.skipif(not SIMAVR.ok, reason=f"simavr backend: {SIMAVR}")(test)


@pytest.fixture
def no_stray_threads():
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) <= before, "a thread outlived the test"


# --- the counter: lost samples ---------------------------------------------------------------

def test_counter_gaps_become_lost_samples_at_the_level_before():
    counters = np.array([62, 63, 0, 5, 6])            # wraps at 64; 1..4 are missing
    assert counter_gaps(counters, previous=61).tolist() == [0, 0, 0, 4, 0]
    assert counter_gaps(counters, previous=None)[0] == 0
    assert counter_gaps(np.array([3]), previous=0).tolist() == [2]
    chunk = SampleChunk([1e-3, 2e-3, 3e-3], 5.0, [0, 1, 1])
    out = insert_lost(chunk, np.array([0, 0, 2]), level_before=False)
    assert len(out) == 5 and np.isnan(out.current_a[2:4]).all() and out.current_a[4] == 3e-3
    assert out.marker.tolist() == [False, True, True, True, True]


# --- the source against the simulator, in process ---------------------------------------------

def stub_target(port, backend="simavr", source_voltage_mv=5000):
    monitor = {"kind": "ppk2", "port": port, "marker_input": 0}
    if source_voltage_mv:
        monitor["source_voltage_mv"] = source_voltage_mv
    board = replace(BASE, name=BOARD, extra=BASE.extra | {"energy_monitor": monitor})
    return Target(url="", backend=backend, fidelity="cycle-accurate", board=board)


@needs_ppk2_api
def test_a_pty_that_is_not_a_ppk2_is_refused_with_the_fix(no_stray_threads):
    master, slave = os.openpty()
    try:
        with pytest.raises(MonitorUnavailable, match=r"no PPK2 metadata from /dev/.*Check \[energy_monitor\] port"):
            open_monitor("ppk2", stub_target(os.ttyname(slave), backend="hardware"), 16e6)
    finally:
        os.close(master)
        os.close(slave)


@needs_ppk2_api
def test_only_a_simulated_ppk2_may_measure_an_emulator(tmp_path, no_stray_threads):
    log = tmp_path / "marker.log"
    log.write_text("")
    with Ppk2Simulator(log, MODEL, BASE.clock_hz) as sim:
        monitor = open_monitor("ppk2", stub_target(sim.port), 16e6)
        assert monitor.fidelity == SIMULATED_INSTRUMENT and "simulated PPK2" in monitor.describe()
        monitor.close()
        # On the hardware backend too: the label comes from the instrument, not the backend.
        monitor = open_monitor("ppk2", stub_target(sim.port, backend="hardware", source_voltage_mv=None), 16e6)
        assert monitor.fidelity == SIMULATED_INSTRUMENT and "ampere meter" in monitor.describe()
        monitor.close()
    with Ppk2Simulator(log, MODEL, BASE.clock_hz, hw="4086464") as real_looking:
        with pytest.raises(MonitorUnavailable, match=f"measures a real board, but {BOARD} runs on simavr"):
            open_monitor("ppk2", stub_target(real_looking.port), 16e6)
    assert sim.error is None and real_looking.error is None


# --- the energy suite through the simulated PPK2 ----------------------------------------------

def board_file(folder: Path, port: str, ampere_meter: bool) -> None:
    text = (devices_dir() / "boards" / f"{BASE.name}.toml").read_text()
    text = re.sub(rf'^name = "{BASE.name}"$', f'name = "{BOARD}"', text, count=1, flags=re.M)
    # An instrument measures a real board, at its real UART rate: the emulator's 2 Mbaud would
    # shrink the marker-low gaps between pulses to a few samples, where the simulated PPK2's
    # session boundaries can catch the previous pulse.
    text = re.sub(r"^emulator_baud.*$", "", text, flags=re.M)
    table = f'\n[energy_monitor]\nkind = "ppk2"\nport = "{port}"\nmarker_input = 0\n'
    if not ampere_meter:
        table += "source_voltage_mv = 5000\n"      # else: the [power] table's supply_v
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{BOARD}.toml").write_text(text + table)


def run_suite(tmp_path: Path, *, fault: str | None = None, windows: int = 5,
              ampere_meter: bool = False):
    """The energy suite in its own pytest process with --energy-monitor ppk2; the simulator
    follows the marker log of the simavr bridge it starts. Returns (process, records, sim)."""
    bridges = tmp_path / "tmp"          # the suite's TMPDIR: where the bridge keeps its log
    bridges.mkdir()
    with Ppk2Simulator(bridges, MODEL, BASE.clock_hz) as sim:
        if fault:
            sim.arm(fault, session=2)   # mid-way through the second window
        board_file(tmp_path / "boards", sim.port, ampere_meter)
        env = dict(os.environ, TINYHIL_BOARDS_DIR=str(tmp_path / "boards"), TMPDIR=str(bridges))
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(REPO / "suites" / "test_energy.py"), "-q",
             "-p", "no:cacheprovider", "--board", BOARD, "--backend", "simavr", "--variant", VARIANT,
             "--energy-monitor", "ppk2", "--energy-windows", str(windows),
             "--results-dir", str(tmp_path / "results"), "--run-id", "run"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert sim.error is None, sim.error
    path = tmp_path / "results" / "run" / "records.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return proc, records, sim


def figure(records, metric, statistic):
    found = [r for r in records if r["metric"] == metric and r["statistic"] == statistic]
    assert len(found) == 1, (metric, statistic, records)
    return found[0]


@needs_ppk2_api
@needs_simavr
def test_energy_suite_through_the_simulated_ppk2_agrees_with_the_model(tmp_path, no_stray_threads):
    proc, records, sim = run_suite(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    energy = [r for r in records if r["metric"] in ("energy_uj", "power_mw", "supply_v")]
    assert energy and {r["fidelity"] for r in energy} == {SIMULATED_INSTRUMENT}
    median = figure(records, "energy_uj", "median")
    assert "simulated PPK2" in median["detail"] and median["unit"] == "uJ"
    requests, runs = map(int, re.search(r"windows of (\d+) x (\d+) inferences", median["detail"]).groups())

    # The model applied to the same windows: the log lines each measuring session covered.
    assert len(sim.sessions) == 5
    period_s, volts = 1 / RATE, MODEL.supply_v
    active_a = MODEL.active_mw / 1e3 / volts
    step_a = sim.cal.lsb_a(active_a, sim.vdd_mv)
    modelled, bounds = [], []
    for session in sim.sessions:
        pulses, _ = pulses_from_log(session.lines, BASE.clock_hz, MODEL)
        assert len(pulses) == requests and session.lost == 0
        joules = sum(p.energy_j for p in pulses)
        seconds = sum(p.duration_s for p in pulses)
        samples = seconds / period_s
        bound_j = (len(pulses) * period_s * MODEL.active_mw / 1e3      # edges
                   + volts * seconds * step_a / 2                        # ADC steps
                   + 4 * sim.noise_a * volts * period_s * np.sqrt(samples))   # noise
        modelled.append(joules / (requests * runs) * 1e6)
        bounds.append(bound_j / joules)
    bound = max(bounds)
    for statistic, model_uj in (("min", min(modelled)), ("median", float(np.median(modelled))),
                                ("max", max(modelled))):
        measured = figure(records, "energy_uj", statistic)["value"]
        error = abs(measured / model_uj - 1)
        print(f"energy_uj {statistic}: ppk2 {measured:.5f} uJ, model {model_uj:.5f} uJ, "
              f"error {error:.4%} <= bound {bound:.4%}")
        assert error <= bound, (statistic, measured, model_uj, bound)
    assert bound < 0.01         # the sizing rule: one sample per edge at most 1 % of a window
    assert figure(records, "power_mw", "median")["value"] == pytest.approx(MODEL.active_mw, rel=bound)


FAULTS = {
    "unplug": r"port /dev/\S+ vanished while measuring .*Reconnect it",
    "stall": r"stopped streaming: no sample for [\d.]+ s .*Unplug and replug it",
    "lose": r"lost 50 samples in this window \(gaps in its sample counter\).*run again",
    "loose_wire": r"saw no complete marker pulse in its sample stream.*Check that the DUT's marker pin is wired",
}


@needs_ppk2_api
@needs_simavr
@pytest.mark.parametrize("fault", list(FAULTS))
def test_an_instrument_fault_mid_run_fails_clearly_and_keeps_what_was_measured(tmp_path, fault,
                                                                               no_stray_threads):
    proc, records, sim = run_suite(tmp_path, fault=fault, windows=3, ampere_meter=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert re.search(FAULTS[fault], output, re.S), output[-3000:]
    assert "Traceback" not in output
    failure = figure(records, "failure", "value")
    assert failure["unit"] == "event" and failure["detail"].startswith("kind=energy; ")
    assert re.search(FAULTS[fault], failure["detail"], re.S)
    # The first window was measured before the fault and is kept, with its own label.
    kept = figure(records, "energy_uj", "median")
    assert kept["n"] == 1 and kept["detail"].startswith("1 of 3 windows") and kept["value"] > 0
    assert kept["fidelity"] == SIMULATED_INSTRUMENT and "ampere meter" in kept["detail"]
    assert len(sim.sessions) == 2
