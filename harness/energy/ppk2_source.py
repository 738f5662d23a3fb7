"""Nordic Power Profiler Kit II through `ppk2-api` (GPL-2.0: an optional extra that is only
imported when --energy-monitor ppk2 is chosen; the harness never depends on it otherwise).

The PPK2 samples current at 100 kS/s together with its 8 digital inputs D0..D7; the DUT's
marker pin goes to one of them. In source-meter mode the PPK2 powers the DUT at a voltage it
sets (`source_voltage_mv`); in ampere-meter mode it sits in series with the DUT's own supply
and measures no voltage, so the supply must be stated (`supply_v`)."""

from __future__ import annotations

import numpy as np

from harness.energy.errors import MonitorUnavailable
from harness.energy.monitor import SampleSource
from harness.energy.windows import SampleChunk

INSTALL = "pip install 'tinyhil[ppk2]' (or: pip install ppk2-api; it is GPL-2.0)"
SAMPLE_RATE_HZ = 100_000


def chunk_from_samples(samples_ua, raw_digital, marker_input: int, supply_v: float) -> SampleChunk:
    """A SampleChunk from ppk2-api's get_samples(): current in microamperes and the raw byte of
    digital inputs per sample (bit n = input Dn)."""
    bits = np.asarray(raw_digital, dtype=np.int64)
    current = np.asarray(samples_ua, dtype=np.float64) * 1e-6
    if len(bits) != len(current):
        raise MonitorUnavailable(f"the PPK2 gave {len(current)} current samples but "
                                 f"{len(bits)} digital samples: is its firmware current?")
    return SampleChunk(current, supply_v, (bits >> marker_input) & 1)


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
            from ppk2_api.ppk2_api import PPK2_API
        except ImportError:
            raise MonitorUnavailable(f"--energy-monitor ppk2 needs ppk2-api: {INSTALL}") from None
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
        self.ppk2 = PPK2_API(port, timeout=1, write_timeout=1, exclusive=True)
        self.ppk2.get_modifiers()
        if source_voltage_mv:
            self.ppk2.use_source_meter()
            self.ppk2.set_source_voltage(int(source_voltage_mv))
            self.ppk2.toggle_DUT_power("ON")
        else:
            self.ppk2.use_ampere_meter()

    def describe(self) -> str:
        return (f"PPK2 on {self.port} ({self.mode}, {self.supply_v:g} V) at {self.sample_rate_hz:,.0f} "
                f"S/s, marker on D{self.marker_input}")

    def start(self) -> None:
        self.ppk2.start_measuring()

    def read(self) -> SampleChunk | None:
        data = self.ppk2.get_data()
        if not data:
            return None
        samples, raw_digital = self.ppk2.get_samples(data)
        if samples is None:
            return None
        return chunk_from_samples(samples, raw_digital, self.marker_input, self.supply_v)

    def stop(self) -> None:
        self.ppk2.stop_measuring()

    def close(self) -> None:
        try:
            self.ppk2.ser.close()
        except AttributeError:
            pass
