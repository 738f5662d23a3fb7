"""The energy-monitor interface, and the monitor that every sampling instrument shares.

A monitor brackets each measurement window: `begin_window()`, then the suite drives the DUT
(one INFER request per marker pulse, `after_request()` after each), then `end_window()`
returns the marker pulses it saw. The model monitor computes them from time; an instrument
monitor cuts them out of the instrument's sample stream with the shared windowing code.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

from harness.energy.errors import EnergyError, NoMarkerEdges, WindowTooShort
from harness.energy.windows import (DEFAULT_GLITCH_S, DEFAULT_MAX_EDGE_ERROR, MarkerWindower,
                                    Pulse, SampleChunk, min_samples_for)
from harness.fidelity import HARDWARE


class EnergyMonitor(ABC):
    name: str = ""
    fidelity: str = ""

    def describe(self) -> str:
        """One line for records: what the energy figure is based on."""
        return self.name

    def check_window(self, expected_s: float) -> None:
        """Fail before measuring when a window of `expected_s` cannot be resolved."""

    @abstractmethod
    def begin_window(self) -> None: ...

    def after_request(self, runs: int, result) -> None:
        """Called after each INFER request (a harness.protocol.InferResult) in the window."""

    @abstractmethod
    def end_window(self) -> list[Pulse]: ...

    def close(self) -> None:
        """Release the instrument."""


class SampleSource(ABC):
    """What an instrument driver implements: a stream of SampleChunks on one sample clock."""
    name: str = ""
    sample_rate_hz: float = 0.0
    fidelity: str = HARDWARE        # a simulated instrument says so (fidelity.SIMULATED_INSTRUMENT)
    lost_samples: int = 0           # samples the instrument reports lost since start()

    @abstractmethod
    def start(self) -> None:
        """Start streaming (the instrument powers and samples the DUT)."""

    @abstractmethod
    def read(self) -> SampleChunk | None:
        """The samples that arrived since the last read, or None when there are none yet."""

    @abstractmethod
    def stop(self) -> None:
        """Stop streaming; samples already delivered stay valid."""

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.name} at {self.sample_rate_hz:,.0f} S/s"


class InstrumentMonitor(EnergyMonitor):
    """Any sampling instrument: a thread drains its SampleSource into a MarkerWindower while the
    suite drives the DUT."""

    def __init__(self, source: SampleSource, glitch_s: float = DEFAULT_GLITCH_S,
                 max_edge_error: float = DEFAULT_MAX_EDGE_ERROR, settle_s: float = 0.05):
        self.source = source
        self.name = source.name
        self.fidelity = source.fidelity
        self.glitch_s = glitch_s
        self.min_samples = min_samples_for(max_edge_error)
        self.max_edge_error = max_edge_error
        self.settle_s = settle_s        # stream on before the first and after the last pulse
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.windower: MarkerWindower | None = None

    def describe(self) -> str:
        return self.source.describe()

    def check_window(self, expected_s: float) -> None:
        samples = expected_s * self.source.sample_rate_hz
        if samples < self.min_samples:
            raise WindowTooShort(self._too_short(expected_s, samples))

    def _too_short(self, seconds: float, samples: float) -> str:
        return (f"a marker window of {seconds * 1e3:.3f} ms holds only {samples:.0f} samples at "
                f"{self.source.sample_rate_hz:,.0f} S/s ({self.name}); one sample of edge timing "
                f"at each end needs at least {self.min_samples} samples to stay within "
                f"{self.max_edge_error:.0%}. Make each window longer: more inferences per "
                "request (a board with a larger max_runs) or a slower model, or use a faster "
                "instrument")

    def begin_window(self) -> None:
        self.windower = MarkerWindower(self.source.sample_rate_hz, self.glitch_s)
        self._stop.clear()
        self._error = None
        self.source.start()
        self._thread = threading.Thread(target=self._drain, name=f"tinyhil-{self.name}", daemon=True)
        self._thread.start()
        time.sleep(self.settle_s)       # a low marker level before the first rising edge

    def after_request(self, runs: int, result) -> None:
        if self._error is not None:     # the instrument failed: stop driving the DUT for nothing
            raise self._failed()

    def _failed(self) -> EnergyError:
        if isinstance(self._error, EnergyError):
            return self._error
        return EnergyError(f"{self.name} failed while streaming: {self._error}")

    def _drain(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self.source.read()
                if chunk is None or not len(chunk):
                    time.sleep(0.002)
                    continue
                self.windower.feed(chunk)
        except BaseException as exc:    # re-raised in end_window, on the suite's thread
            self._error = exc

    def end_window(self) -> list[Pulse]:
        time.sleep(self.settle_s)       # the last falling edge reaches the instrument
        self._stop.set()
        self._thread.join(timeout=10)
        if self._error is not None:
            try:
                self.source.stop()
            except EnergyError:
                pass                    # the first failure is the one to report
            raise self._failed()
        self.source.stop()
        while (chunk := self.source.read()) is not None and len(chunk):
            self.windower.feed(chunk)
        self.windower.finish()
        lost = self.source.lost_samples
        if lost:
            raise EnergyError(f"{self.name} lost {lost} samples in this window (gaps in its sample "
                              f"counter): the host did not read its stream in time, so the "
                              "window's energy would be low by the lost fraction and is not "
                              "reported. Give the harness a less busy CPU, connect the instrument "
                              "directly (no unpowered hub), and run again")
        return check_pulses(self.windower, self.name, self.min_samples, self._too_short)

    def close(self) -> None:
        self.source.close()


def check_pulses(windower: MarkerWindower, name: str, min_samples: int, too_short) -> list[Pulse]:
    """The pulses of a window, or a clear error: none seen, or one too short to trust."""
    pulses = windower.pulses
    if not pulses:
        glitchy = (f"; {windower.glitches} marker blips shorter than {windower.glitch_samples} "
                   "samples were taken as glitches: if they were the windows, they are too "
                   "short for this sample rate" if windower.glitches else "")
        notes = f" ({'; '.join(windower.notes)})" if windower.notes else ""
        raise NoMarkerEdges(f"{name} saw no complete marker pulse in its sample stream{glitchy}"
                            f"{notes}. Check that the DUT's marker pin is wired to the "
                            "instrument's digital input named in its settings, with a common "
                            "ground (docs/energy.md)")
    for pulse in pulses:
        if pulse.samples < min_samples:
            raise WindowTooShort(too_short(pulse.duration_s, pulse.samples))
    return pulses
