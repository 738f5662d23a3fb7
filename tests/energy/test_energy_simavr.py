"""Modelled energy on simavr, for real: the bridge logs marker edges and the CPU's sleeps at
exact cycles, firmware that sleeps is credited for it, and the instrument path (sampled
stream -> shared windowing) agrees with the exact model on a real DUT run."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.boards import get_board
from harness.energy import SampleChunk, WindowTooShort, power_model
from harness.energy.measure import measure_energy
from harness.energy.model import ModelMonitor
from harness.energy.monitor import InstrumentMonitor, SampleSource
from harness.tools import find_tool

serial = pytest.importorskip("serial", reason="pyserial is not installed: pip install pyserial")

from harness.backends.base import StartRequest  # noqa: E402
from harness.backends.simavr import SimavrBackend  # noqa: E402
from tests.backends.test_simavr import compile_avr  # noqa: E402

FIXTURES = Path(__file__).parents[1] / "avr_fixtures"
UNO = get_board("uno")
MODEL = power_model(UNO)
AVAILABLE = SimavrBackend().availability(UNO)
pytestmark = [
    pytest.mark.skipif(not find_tool("avr-gcc").found,
                       reason="avr-gcc is not installed: sudo apt-get install gcc-avr avr-libc"),
    pytest.mark.skipif(not AVAILABLE.ok, reason=f"simavr backend: {AVAILABLE}"),
]


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory):
    elf = compile_avr(FIXTURES / "sleepy.c", tmp_path_factory.mktemp("avr") / "sleepy.elf")
    target = SimavrBackend().start(StartRequest(UNO, SimpleNamespace(elf=elf, hex=None, build_id="test")))
    port = serial.Serial(target.url, 115200, timeout=5)
    yield target, port
    port.close()
    target.stop()


def window(target, port, command: bytes):
    monitor = ModelMonitor(MODEL, target, timer_hz=UNO.clock_hz)
    monitor.begin_window()
    port.write(command)
    assert port.read(1) == command.upper()
    monitor.after_request(1, None)
    pulse, = monitor.end_window()
    return pulse, monitor


def test_sleep_inside_the_window_is_logged_and_credited(sleepy):
    target, port = sleepy
    asleep, monitor = window(target, port, b"s")
    spinning, _ = window(target, port, b"b")
    log = Path(target.marker_log).read_text().splitlines()
    sleeps = [line for line in log if line.startswith("S ")]
    assert len(sleeps) == 4 and all(line.split()[2] == "0" for line in sleeps)   # Idle mode
    assert sum(line.startswith("W ") for line in log) == 4
    # Both windows wait for the same 4 timer ticks (1600 cycles each): about as long.
    assert asleep.duration_s == pytest.approx(spinning.duration_s, rel=0.35)
    assert spinning.sleep_s == 0
    assert 0.5 < asleep.sleep_s / asleep.duration_s < 1
    assert asleep.active_s + asleep.sleep_s == pytest.approx(asleep.duration_s, rel=1e-12)
    assert asleep.energy_j == pytest.approx(
        (asleep.active_s * MODEL.active_mw + asleep.sleep_s * MODEL.idle_mw) / 1e3)
    assert spinning.power_w == pytest.approx(MODEL.active_mw / 1e3)
    assert asleep.power_w < 0.7 * spinning.power_w
    assert "exact cycles running and asleep" in monitor.describe()


def test_sleep_windows_repeat_to_the_cycle(sleepy):
    target, port = sleepy
    first, second = window(target, port, b"s")[0], window(target, port, b"s")[0]
    # The timer's phase differs between windows, so durations may differ by up to one tick;
    # the cycle counts themselves are exact integers.
    for pulse in (first, second):
        assert (pulse.duration_s * UNO.clock_hz) == pytest.approx(round(pulse.duration_s * UNO.clock_hz))
    assert abs(first.duration_s - second.duration_s) * UNO.clock_hz <= 1600


class SampledSimavr(SampleSource):
    """Stand-in for an instrument on the DUT's supply (none can be attached here): samples the
    power model's current at `rate` on the simulated clock, from the bridge's log of marker
    edges, with a little noise. Its chunks go through the same InstrumentMonitor code as a
    Joulescope's."""
    name = "sampled-simavr"

    def __init__(self, log: Path, rate: float, noise_a: float = 20e-6):
        self.log, self.sample_rate_hz, self.noise = log, rate, noise_a
        self.rng = np.random.default_rng(0)

    def start(self):
        self.offset = self.log.stat().st_size
        self.cycle = None          # next sample's time, in cycles
        self.level = 0

    def read(self):
        with open(self.log) as f:
            f.seek(self.offset)
            data = f.read()
        data = data[:data.rfind("\n") + 1]
        if not data:
            return None
        self.offset += len(data.encode())
        per_sample = UNO.clock_hz / self.sample_rate_hz
        current, marker = [], []
        for line in data.splitlines():
            kind, cycle = line.split()[:2]
            if kind not in "01":
                continue
            cycle = int(cycle)
            if self.cycle is None:
                self.cycle = cycle - 50 * per_sample
            count = max(0, math.ceil((cycle - self.cycle) / per_sample))
            current.append(np.full(count, MODEL.active_mw / 1e3 / MODEL.supply_v))
            marker.append(np.full(count, self.level, bool))
            self.cycle += count * per_sample
            self.level = int(kind)
            if not self.level:       # the line stays low until the next request: show some of it
                current.append(np.full(20, MODEL.active_mw / 1e3 / MODEL.supply_v))
                marker.append(np.zeros(20, bool))
                self.cycle += 20 * per_sample
        current = np.concatenate(current) + self.rng.normal(0, self.noise, sum(map(len, marker)))
        return SampleChunk(current, MODEL.supply_v, np.concatenate(marker))

    def stop(self):
        pass


@pytest.fixture(scope="module")
def dtree_dut(tmp_path_factory):
    from harness.models import get_variant
    from harness.session.plan import plan_boards
    from harness.session.session import Session
    plans, _ = plan_boards(["uno"], "simavr", None)
    session = Session(plans, [get_variant("dtree_emlearn")], tmp_path_factory.mktemp("results"))
    yield session.dut(session.cases[0])
    session.close()


def test_instrument_path_agrees_with_the_exact_model_on_a_real_dut(dtree_dut):
    dut = dtree_dut
    vector = dut.exported.vector_bytes(0)
    model = measure_energy(dut, ModelMonitor(MODEL, dut.target, dut.identity.timer_hz), vector,
                           min_window_s=0.005, windows=3)
    log = Path(dut.target.marker_log)
    sampled = measure_energy(dut, InstrumentMonitor(SampledSimavr(log, 1_000_000), settle_s=0.02),
                             vector, min_window_s=0.005, windows=3)
    assert sampled.fidelity == "hardware" and model.fidelity == "modelled"
    assert sampled.requests_per_window == model.requests_per_window
    # One sample (1 us) of edge quantisation per pulse edge, plus the noise.
    assert sampled.median("energy_uj") == pytest.approx(model.median("energy_uj"), rel=0.01)
    assert sampled.median("power_mw") == pytest.approx(MODEL.active_mw, rel=0.01)
    # At the PPK2's 100 kS/s a window of 16 such short inferences is too short to resolve.
    slow = InstrumentMonitor(SampledSimavr(log, 100_000))
    with pytest.raises(WindowTooShort, match="at 100,000 S/s"):
        measure_energy(dut, slow, vector, min_window_s=0.005, windows=1)
