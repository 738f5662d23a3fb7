"""The shared windowing code against physically plausible sample streams: what a Joulescope or
PPK2 would deliver for a DUT whose marker pin gates its inference loop (no instrument is
attached here, so the streams are generated: a known supply, a known current while the
marker is high, measurement noise, glitches, edges at chunk boundaries, lost samples)."""

import numpy as np
import pytest

from harness.energy import MarkerWindower, NoMarkerEdges, SampleChunk, WindowTooShort
from harness.energy.monitor import InstrumentMonitor, SampleSource, check_pulses
from harness.energy.windows import cut_windows, min_samples_for

RATE = 100_000                 # PPK2's sample rate
SUPPLY = 3.3                   # V
IDLE_A, BUSY_A = 0.8e-3, 6.5e-3   # a Cortex-M-class DUT waiting on its UART, then inferring


def stream(pulses, rate=RATE, gap=200, noise=0.0, seed=0):
    """(current, voltage, marker) arrays: `gap` idle samples, then for each pulse length L,
    L busy samples with the marker high, then `gap` idle samples."""
    rng = np.random.default_rng(seed)
    current, marker = [np.full(gap, IDLE_A)], [np.zeros(gap, bool)]
    for length in pulses:
        current += [np.full(length, BUSY_A), np.full(gap, IDLE_A)]
        marker += [np.ones(length, bool), np.zeros(gap, bool)]
    current = np.concatenate(current)
    current = current + rng.normal(0, noise, len(current)) if noise else current
    voltage = SUPPLY + (rng.normal(0, 0.002, len(current)) if noise else 0)
    return current, np.broadcast_to(voltage, current.shape).astype(float), np.concatenate(marker)


def chunks(current, voltage, marker, cuts):
    """Split one stream into chunks at the given sample indices."""
    bounds = [0, *sorted(cuts), len(current)]
    return [SampleChunk(current[a:b], voltage[a:b], marker[a:b]) for a, b in zip(bounds, bounds[1:])]


def expected_energy(length, rate=RATE):
    return BUSY_A * SUPPLY * length / rate


def test_clean_pulses_give_exact_energy_duration_and_voltage():
    lengths = [1000, 2500, 1000]
    windower = cut_windows(chunks(*stream(lengths), []), RATE)
    assert [p.samples for p in windower.pulses] == lengths
    for pulse, length in zip(windower.pulses, lengths):
        assert pulse.energy_j == pytest.approx(expected_energy(length), rel=1e-12)
        assert pulse.duration_s == pytest.approx(length / RATE)
        assert pulse.supply_v == pytest.approx(SUPPLY)
        assert pulse.power_w == pytest.approx(BUSY_A * SUPPLY)
    assert windower.pulses[1].start_s == pytest.approx((200 + 1000 + 200) / RATE)
    assert windower.glitches == 0 and windower.notes == []


def test_noise_averages_out_within_a_fraction_of_a_percent():
    current, voltage, marker = stream([5000] * 3, noise=0.5e-3, seed=3)
    windower = cut_windows(chunks(current, voltage, marker, []), RATE)
    assert len(windower.pulses) == 3, windower.notes
    for pulse in windower.pulses:
        assert pulse.energy_j == pytest.approx(expected_energy(5000), rel=3e-3)


@pytest.mark.parametrize("cut_offset", [-2, -1, 0, 1, 2])
def test_edge_at_a_chunk_boundary(cut_offset):
    """Chunks that end just before, on, or just after each edge change nothing."""
    current, voltage, marker = stream([1000, 1000])
    edges = list(np.flatnonzero(np.diff(marker.astype(int))) + 1)
    cuts = [e + cut_offset for e in edges]
    whole = cut_windows(chunks(current, voltage, marker, []), RATE).pulses
    split = cut_windows(chunks(current, voltage, marker, cuts), RATE).pulses
    assert [(p.samples, p.start_s) for p in split] == [(p.samples, p.start_s) for p in whole]
    assert [p.energy_j for p in split] == pytest.approx([p.energy_j for p in whole], rel=1e-12)


def test_any_chunking_gives_the_same_windows():
    """Instruments deliver whatever the USB transfer held: random chunk sizes, one-sample chunks."""
    current, voltage, marker = stream([700, 1500, 900], noise=0.2e-3, seed=1)
    marker = marker.copy()
    marker[[100, 1100, 1101]] = ~marker[[100, 1100, 1101]]    # and a few glitches
    whole = cut_windows(chunks(current, voltage, marker, []), RATE)
    rng = np.random.default_rng(7)
    for _ in range(20):
        cuts = rng.choice(np.arange(1, len(current)), size=rng.integers(1, 60), replace=False)
        split = cut_windows(chunks(current, voltage, marker, cuts), RATE)
        assert [p.samples for p in split.pulses] == [p.samples for p in whole.pulses]
        assert [p.energy_j for p in split.pulses] == pytest.approx([p.energy_j for p in whole.pulses],
                                                                  rel=1e-9)
        assert split.glitches == whole.glitches
    tiny = cut_windows(chunks(current[:3000], voltage[:3000], marker[:3000], range(1, 3000)), RATE)
    assert [p.samples for p in tiny.pulses] == [700, 1498]     # the third ends after 3000


def test_glitches_are_neither_edges_nor_holes():
    current, voltage, marker = stream([2000])
    marker = marker.copy()
    marker[50] = True                 # a one-sample spike on the idle line: no pulse
    marker[200 + 700] = False         # a one-sample dropout inside the window: no split
    windower = cut_windows(chunks(current, voltage, marker, [51, 900]), RATE)
    assert len(windower.pulses) == 1 and windower.glitches == 2
    assert windower.pulses[0].samples == 2000
    assert windower.pulses[0].energy_j == pytest.approx(expected_energy(2000))


def test_longer_glitch_filter_for_a_faster_instrument():
    """At 1 MS/s the default 10 us filter ignores blips up to 9 samples long."""
    rate = 1_000_000
    current, voltage, marker = stream([5000], rate=rate)
    marker = marker.copy()
    marker[10:19] = True
    windower = cut_windows(chunks(current, voltage, marker, []), rate)
    assert len(windower.pulses) == 1 and windower.glitches == 1


def test_missing_rising_edge_drops_that_pulse_and_says_so():
    current, voltage, marker = stream([1000, 1000])
    start = 200 + 300                   # the instrument started in the middle of pulse 1
    windower = cut_windows(chunks(current[start:], voltage[start:], marker[start:], []), RATE)
    assert [p.samples for p in windower.pulses] == [1000]
    assert "rising edge missed" in windower.notes[0]


def test_missing_falling_edge_drops_that_pulse_and_says_so():
    current, voltage, marker = stream([1000, 1000])
    end = 200 + 1000 + 200 + 500        # the stream stopped in the middle of pulse 2
    windower = cut_windows(chunks(current[:end], voltage[:end], marker[:end], [end - 1]), RATE)
    assert [p.samples for p in windower.pulses] == [1000]
    assert "falling edge missed" in windower.notes[0]


def test_no_edges_is_an_error_not_a_zero():
    current, voltage, marker = stream([])
    windower = cut_windows(chunks(current, voltage, marker, []), RATE)
    with pytest.raises(NoMarkerEdges, match="no complete marker pulse.*common ground"):
        check_pulses(windower, "ppk2", 200, lambda s, n: "")


def test_pulses_only_as_long_as_glitches_are_reported_as_such():
    current, voltage, marker = stream([1, 1, 1])
    windower = cut_windows(chunks(current, voltage, marker, []), RATE)
    with pytest.raises(NoMarkerEdges, match="3 marker blips shorter than 2 samples"):
        check_pulses(windower, "ppk2", 200, lambda s, n: "")


def test_lost_samples_are_counted_not_hidden():
    current, voltage, marker = stream([1000])
    current = current.copy()
    current[300:310] = np.nan           # a USB overrun inside the window
    windower = cut_windows(chunks(current, voltage, marker, []), RATE)
    pulse, = windower.pulses
    assert pulse.samples == 1000 and pulse.energy_j == pytest.approx(expected_energy(990))
    assert "10 of 1000 samples" in windower.notes[0]


class Replay(SampleSource):
    """Recorded chunks, delivered through the same monitor code a real instrument goes through."""
    name = "replay"

    def __init__(self, recorded, rate):
        self.recorded, self.sample_rate_hz, self.queue = recorded, rate, []

    def start(self):
        self.queue = list(self.recorded)

    def read(self):
        return self.queue.pop(0) if self.queue else None

    def stop(self):
        pass


def test_instrument_monitor_cuts_windows_from_a_stream():
    current, voltage, marker = stream([1500, 1500, 1500], noise=0.2e-3)
    monitor = InstrumentMonitor(Replay(chunks(current, voltage, marker, range(0, 6000, 512)), RATE),
                                settle_s=0.01)
    monitor.check_window(1500 / RATE)
    monitor.begin_window()
    pulses = monitor.end_window()
    assert len(pulses) == 3 and all(p.samples == 1500 for p in pulses)
    assert monitor.fidelity == "hardware"


def test_window_too_short_for_the_sample_rate():
    monitor = InstrumentMonitor(Replay([], RATE))
    assert min_samples_for(0.01) == 200
    with pytest.raises(WindowTooShort, match=r"holds only 50 samples at 100,000 S/s.*at least 200"):
        monitor.check_window(0.5e-3)
    current, voltage, marker = stream([1000, 100])       # the second pulse is too short
    monitor = InstrumentMonitor(Replay(chunks(current, voltage, marker, []), RATE), settle_s=0)
    monitor.begin_window()
    with pytest.raises(WindowTooShort, match="only 100 samples"):
        monitor.end_window()


def test_a_chunk_must_be_consistent():
    with pytest.raises(ValueError, match="differ in length"):
        SampleChunk(np.zeros(3), np.zeros(2), np.zeros(3))
    MarkerWindower(RATE).feed(SampleChunk([], 3.3, []))        # an empty read is fine
