"""Joulescope JS110 / JS220 through the `joulescope` package (optional extra: only imported
when --energy-monitor joulescope is chosen).

Current and voltage come from the instrument; the DUT's marker pin goes to general-purpose
input IN0 (or IN1), which the instrument samples into the least significant bit of the
current (or voltage) channel, so the marker is on the very same sample clock."""

from __future__ import annotations

import numpy as np

from harness.energy.errors import MonitorUnavailable
from harness.energy.monitor import SampleSource
from harness.energy.windows import SampleChunk

INSTALL = "pip install 'tinyhil[joulescope]' (or: pip install joulescope)"
# General-purpose input -> the channel LSB the instrument routes it to.
GPI_FIELDS = {0: ("current_lsb", "gpi0"), 1: ("voltage_lsb", "gpi1")}


def chunk_from_signals(signals: dict, marker_input: int = 0) -> SampleChunk:
    """A SampleChunk from the `signals` of a joulescope samples_get() result:
    {"current": {"value": A}, "voltage": {"value": V}, "current_lsb": {"value": 0/1}, ...}."""
    field = GPI_FIELDS[marker_input][0]
    try:
        current = signals["current"]["value"]
        voltage = signals["voltage"]["value"]
        marker = signals[field]["value"]
    except KeyError as exc:
        raise MonitorUnavailable(f"the Joulescope delivered no {exc.args[0]} signal: is IN"
                                 f"{marker_input} routed to {field}?") from None
    return SampleChunk(current, voltage, np.asarray(marker) > 0)


class JoulescopeSource(SampleSource):
    name = "joulescope"

    def __init__(self, serial: str | None = None, marker_input: int = 0,
                 sampling_frequency: int | None = None):
        if marker_input not in GPI_FIELDS:
            raise MonitorUnavailable(f"a Joulescope has general-purpose inputs 0 and 1, not "
                                     f"{marker_input}: set [energy_monitor] marker_input")
        try:
            import joulescope
        except ImportError:
            raise MonitorUnavailable(f"--energy-monitor joulescope needs the joulescope package: "
                                     f"{INSTALL}") from None
        devices = joulescope.scan(config="auto")
        if serial:
            devices = [d for d in devices if serial in str(d)]
        if not devices:
            which = f" with serial {serial}" if serial else ""
            raise MonitorUnavailable(f"no Joulescope{which} found on USB: plug it in (and on Linux "
                                     "install its udev rules), or choose another --energy-monitor")
        if len(devices) > 1:
            raise MonitorUnavailable(f"{len(devices)} Joulescopes found ({', '.join(map(str, devices))}): "
                                     "name one with [energy_monitor] serial in the board file")
        self.device = devices[0]
        self.marker_input = marker_input
        self.device.open()
        field, gpi = GPI_FIELDS[marker_input]
        self.device.parameter_set("current_lsb" if marker_input == 0 else "voltage_lsb", gpi)
        if sampling_frequency:
            self.device.parameter_set("sampling_frequency", int(sampling_frequency))
        self.device.parameter_set("i_range", "auto")
        self.device.parameter_set("source", "on")
        self._last = None
        self.sample_rate_hz = float(self.device.output_sampling_frequency)

    def describe(self) -> str:
        return f"Joulescope {self.device} at {self.sample_rate_hz:,.0f} S/s, marker on IN{self.marker_input}"

    def start(self) -> None:
        self._last = None
        self.device.start()

    def read(self) -> SampleChunk | None:
        buffer = self.device.stream_buffer
        first, end = buffer.sample_id_range
        start = first if self._last is None or self._last < first else self._last
        if end <= start:
            return None
        data = buffer.samples_get(start, end)
        self._last = end
        return chunk_from_signals(data["signals"], self.marker_input)

    def stop(self) -> None:
        self.device.stop()

    def close(self) -> None:
        self.device.close()
