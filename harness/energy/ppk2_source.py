"""Nordic Power Profiler Kit II through `ppk2-api` (GPL-2.0: an optional extra that is only
imported when --energy-monitor ppk2 is chosen; the harness never depends on it otherwise).

The PPK2 samples current at 100 kS/s together with its 8 digital inputs D0..D7; the DUT's
marker pin goes to one of them. In source-meter mode the PPK2 powers the DUT at a voltage it
sets (`source_voltage_mv`); in ampere-meter mode it sits in series with the DUT's own supply
and measures no voltage, so the supply must be stated (`supply_v`).

Each 4-byte sample also carries a 6-bit counter (bits 18-23). ppk2-api does not look at it;
this source does, and turns every gap into lost (NaN) samples, which fail the window: a host
that cannot keep up with the 400 kB/s stream must not report energy that is low by the lost
fraction. A stream that stops, or a port that disappears, is an EnergyError that says so.

An instrument whose metadata reports HW = SIMULATOR_HW is the test suite's simulator
(tests/ppk2_sim.py): its figures are labelled `simulated-instrument`, never `hardware`."""

from __future__ import annotations

import os
import time

import numpy as np

from harness.energy.errors import EnergyError, MonitorUnavailable
from harness.energy.monitor import SampleSource
from harness.energy.windows import SampleChunk
from harness.fidelity import HARDWARE, SIMULATED_INSTRUMENT

INSTALL = "pip install 'tinyhil[ppk2]' (or: pip install ppk2-api; it is GPL-2.0)"
SAMPLE_RATE_HZ = 100_000
SIMULATOR_HW = "tinyhil-ppk2-simulator"
COUNTER_SHIFT, COUNTER_MASK = 18, 0x3F
STALL_S = 1.0          # a PPK2 streams without pause: this long without a byte is a stall
TAIL_QUIET_S = 0.2     # after AVERAGE_STOP, samples still in flight arrive within this


def chunk_from_samples(samples_ua, raw_digital, marker_input: int, supply_v: float) -> SampleChunk:
    """A SampleChunk from ppk2-api's get_samples(): current in microamperes and the raw byte of
    digital inputs per sample (bit n = input Dn)."""
    bits = np.asarray(raw_digital, dtype=np.int64)
    current = np.asarray(samples_ua, dtype=np.float64) * 1e-6
    if len(bits) != len(current):
        raise MonitorUnavailable(f"the PPK2 gave {len(current)} current samples but "
                                 f"{len(bits)} digital samples: is its firmware current?")
    return SampleChunk(current, supply_v, (bits >> marker_input) & 1)


def counter_gaps(counters: np.ndarray, previous: int | None) -> np.ndarray:
    """Samples missing before each sample, from the 6-bit counters (a gap of 64 or more wraps and
    is seen modulo 64, as in Nordic's own software)."""
    before = np.concatenate([[counters[0] if previous is None else previous + 1], counters[:-1] + 1])
    return (counters - before) & COUNTER_MASK


def insert_lost(chunk: SampleChunk, gaps: np.ndarray, level_before: bool) -> SampleChunk:
    """Put gaps[i] lost samples (NaN current, the marker level of the sample before) ahead of
    sample i: lost time stays in the window, and the windower counts it."""
    reps = 1 + gaps
    index = np.repeat(np.arange(len(chunk)), reps)
    lost = np.ones(len(index), bool)
    lost[np.cumsum(reps) - 1] = False                    # the last copy of each is the real sample
    current = chunk.current_a[index]
    current[lost] = np.nan
    previous = np.concatenate([[level_before], chunk.marker[:-1]])[index]
    marker = np.where(lost, previous, chunk.marker[index])
    return SampleChunk(current, chunk.voltage_v[index], marker)


class Ppk2Source(SampleSource):
    name = "ppk2"
    sample_rate_hz = float(SAMPLE_RATE_HZ)

    def __init__(self, port: str | None = None, marker_input: int = 0,
                 source_voltage_mv: int | None = None, supply_v: float | None = None):
        if not 0 <= marker_input <= 7:
            raise MonitorUnavailable(f"a PPK2 has digital inputs D0..D7, not D{marker_input}: "
                                     "set [energy_monitor] marker_input")
        if not source_voltage_mv and not supply_v:
            raise MonitorUnavailable("the PPK2 in ampere-meter mode measures no voltage: state "
                                     "the DUT's supply ([energy_monitor] supply_v, or the board's "
                                     "[power] supply_v), or let the PPK2 power the DUT "
                                     "([energy_monitor] source_voltage_mv)")
        try:
            import serial
            from ppk2_api.ppk2_api import PPK2_API
        except ImportError:
            raise MonitorUnavailable(f"--energy-monitor ppk2 needs ppk2-api: {INSTALL}") from None
        self._serial_errors = (serial.SerialException, OSError)
        if port is None:
            found = PPK2_API.list_devices()
            ports = [d[0] if isinstance(d, (tuple, list)) else d for d in found]
            if not ports:
                raise MonitorUnavailable("no PPK2 found on USB: plug it in, or name its port with "
                                         "[energy_monitor] port, or choose another --energy-monitor")
            if len(ports) > 1:
                raise MonitorUnavailable(f"{len(ports)} PPK2s found ({', '.join(ports)}): name one "
                                         "with [energy_monitor] port in the board file")
            port = ports[0]
        self.port, self.marker_input = port, marker_input
        self.supply_v = source_voltage_mv / 1000 if source_voltage_mv else float(supply_v)
        self.mode = "source meter" if source_voltage_mv else "ampere meter"
        self._streaming = False
        self._reset_stream()
        try:
            self.ppk2 = PPK2_API(port, timeout=1, write_timeout=1, exclusive=True)
        except self._serial_errors as exc:
            raise MonitorUnavailable(f"cannot open the PPK2's port {port}: {exc}. Check [energy_monitor] "
                                     "port in the board file, and that no other program (nRF "
                                     "Connect's Power Profiler) has it open") from None
        self._identify()
        if source_voltage_mv:
            self.ppk2.use_source_meter()
            self.ppk2.set_source_voltage(int(source_voltage_mv))
            self.ppk2.toggle_DUT_power("ON")
        else:
            self.ppk2.use_ampere_meter()
            # ppk2-api refuses to start without a VDD: its calibration corrects for the voltage.
            self.ppk2.set_source_voltage(round(self.supply_v * 1000))

    def _identify(self) -> None:
        try:
            self.ppk2.stop_measuring()          # a stream left running would garble the metadata
            time.sleep(0.05)
            self.ppk2.ser.reset_input_buffer()
            found = self.ppk2.get_modifiers()
        except (UnicodeDecodeError, *self._serial_errors):
            found = None
        if not found:
            self.close()
            raise MonitorUnavailable(f"no PPK2 metadata from {self.port}: is it a PPK2 running "
                                     "Nordic's firmware? Check [energy_monitor] port; power-cycle "
                                     "the PPK2, or open it once in nRF Connect's Power Profiler, "
                                     "which updates its firmware")
        self.simulated = str(self.ppk2.modifiers.get("HW") or "").startswith(SIMULATOR_HW)
        self.fidelity = SIMULATED_INSTRUMENT if self.simulated else HARDWARE

    def describe(self) -> str:
        what = "simulated PPK2 (tests/ppk2_sim.py)" if self.simulated else "PPK2"
        return (f"{what} on {self.port} ({self.mode}, {self.supply_v:g} V) at {self.sample_rate_hz:,.0f} "
                f"S/s, marker on D{self.marker_input}")

    def _reset_stream(self) -> None:
        self._partial = b""        # bytes of a sample not complete yet
        self._tail = b""           # bytes drained after AVERAGE_STOP
        self._counter = None       # counter of the last sample
        self._level = False        # marker level of the last sample
        self.lost_samples = 0
        self._last_data = time.monotonic()

    def start(self) -> None:
        self._reset_stream()
        self.ppk2.start_measuring()
        self._streaming = True

    def _vanished(self, exc) -> EnergyError:
        return EnergyError(f"the PPK2's port {self.port} vanished while measuring ({exc}): it was "
                           "unplugged, or lost power or USB. Reconnect it (directly, or through a "
                           "powered hub), check [energy_monitor] port, and run again")

    def _get(self) -> bytes:
        try:
            return self.ppk2.get_data()
        except self._serial_errors as exc:
            raise self._vanished(exc) from None

    def _check_stall(self) -> None:
        silent = time.monotonic() - self._last_data
        if self._streaming and silent > STALL_S:
            if os.name == "posix" and not os.path.exists(self.port):
                raise self._vanished("the device node is gone")
            raise self._stalled(silent)

    def _stalled(self, silent: float) -> EnergyError:
        return EnergyError(f"the PPK2 on {self.port} stopped streaming: no sample for {silent:.1f} s "
                           "while measuring (a stalled stream; it sends 100,000 samples a "
                           "second). Unplug and replug it (or power-cycle it), then run again")

    def read(self) -> SampleChunk | None:
        if self._tail:
            data, self._tail = self._tail, b""
        else:
            data = self._get()
            if data:
                self._last_data = time.monotonic()
            else:
                self._check_stall()
        return self._convert(data)

    def _convert(self, data: bytes) -> SampleChunk | None:
        # Whole samples only: ppk2-api misreads a read shorter than the rest of a sample.
        data = self._partial + data
        whole = len(data) - len(data) % 4
        data, self._partial = data[:whole], data[whole:]
        if not data:
            return None
        samples, raw_digital = self.ppk2.get_samples(data)
        counters = (np.frombuffer(data, "<u4") >> COUNTER_SHIFT) & COUNTER_MASK
        if len(samples) != len(counters):
            raise EnergyError(f"ppk2-api converted {len(samples)} of {len(counters)} PPK2 samples "
                              "(values out of range): is the PPK2's firmware current? Update it "
                              "with nRF Connect's Power Profiler")
        chunk = chunk_from_samples(samples, raw_digital, self.marker_input, self.supply_v)
        gaps = counter_gaps(counters.astype(np.int64), self._counter)
        self._counter = int(counters[-1])
        if gaps.any():
            self.lost_samples += int(gaps.sum())
            chunk = insert_lost(chunk, gaps, self._level)
        self._level = bool(chunk.marker[-1])
        return chunk

    def stop(self) -> None:
        """Stop streaming, then take in what was already on its way (USB and OS buffers): those
        samples are part of the window. A streaming PPK2 always has some on the way (400 bytes
        a millisecond): none at all means the stream had stopped before the window ended."""
        silent_since = self._last_data
        self._streaming = False
        if os.name != "posix" or os.path.exists(self.port):     # else: gone, and _get says so
            self.ppk2.stop_measuring()
        stopped = quiet = time.monotonic()
        # The first byte may take a busy host's scheduler a while; after it, a short quiet ends it.
        while time.monotonic() - stopped < 5.0:
            data = self._get()
            if data:
                self._tail += data
                quiet = time.monotonic()
            elif time.monotonic() - quiet > (TAIL_QUIET_S if self._tail else STALL_S):
                break
            else:
                time.sleep(0.01)
        if not self._tail:
            raise self._stalled(time.monotonic() - silent_since)

    def close(self) -> None:
        try:
            self.ppk2.ser.close()
        except (AttributeError, *self._serial_errors):
            pass
