"""Marker-gated windows from an instrument's sample stream: edge detection, window cutting and
integration, shared by every instrument.

An instrument driver only delivers chunks of samples (current, voltage and the marker input,
all on one sample clock). `MarkerWindower` takes them in order, as they arrive, and returns
one `Pulse` per complete marker pulse: the energy between the rising and the falling edge
(sum of current x voltage / sample rate), its duration and mean supply voltage.

- A marker level that lasts fewer than `glitch_samples` samples is a glitch (ringing, a
  crosstalk spike): it is merged into the level around it and counted, never taken as edges.
- An edge may fall anywhere, also on the first sample of a chunk: the level at the end of one
  chunk is carried into the next, and a short run at a chunk's end waits for the next chunk
  before it is judged.
- A stream that starts inside a pulse (its rising edge missed) or ends inside one (its
  falling edge missed) gives no pulse for it; `notes` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DEFAULT_GLITCH_S = 10e-6        # marker runs shorter than this are glitches, not edges
DEFAULT_MAX_EDGE_ERROR = 0.01   # one sample at each edge may be at most 1 % of a window


@dataclass
class SampleChunk:
    """Samples as an instrument delivers them: amperes, volts (array or one constant supply),
    and the marker input (truthy = high), all the same length, on one sample clock."""
    current_a: np.ndarray
    voltage_v: np.ndarray | float
    marker: np.ndarray

    def __post_init__(self):
        self.current_a = np.asarray(self.current_a, dtype=np.float64)
        self.marker = np.asarray(self.marker).astype(bool)
        if np.ndim(self.voltage_v) == 0:
            self.voltage_v = np.full(len(self.current_a), float(self.voltage_v))
        else:
            self.voltage_v = np.asarray(self.voltage_v, dtype=np.float64)
        if not len(self.current_a) == len(self.voltage_v) == len(self.marker):
            raise ValueError(f"sample chunk: current ({len(self.current_a)}), voltage "
                             f"({len(self.voltage_v)}) and marker ({len(self.marker)}) differ in length")

    def __len__(self) -> int:
        return len(self.current_a)


@dataclass(frozen=True)
class Pulse:
    """One marker pulse: the window between a rising and the next falling edge."""
    energy_j: float
    duration_s: float
    supply_v: float            # mean voltage over the window
    samples: int = 0           # instrument samples inside (0: not sampled, e.g. modelled)
    start_s: float = 0.0       # rising edge, from the start of the stream
    active_s: float | None = None   # modelled only: time the CPU ran ...
    sleep_s: float | None = None    # ... and slept inside the window

    @property
    def power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else float("nan")


def min_samples_for(max_edge_error: float = DEFAULT_MAX_EDGE_ERROR) -> int:
    """Samples a window needs so that one sample of edge uncertainty at each end stays within
    `max_edge_error` of its duration."""
    return math.ceil(2 / max_edge_error)


@dataclass
class MarkerWindower:
    sample_rate_hz: float
    glitch_s: float = DEFAULT_GLITCH_S
    pulses: list[Pulse] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    glitches: int = 0

    def __post_init__(self):
        if not self.sample_rate_hz > 0:
            raise ValueError(f"sample rate must be above 0 Hz, not {self.sample_rate_hz}")
        self.glitch_samples = max(2, math.ceil(self.glitch_s * self.sample_rate_hz))
        self._level: bool | None = None     # debounced marker level; None until first seen
        self._index = 0                     # stream index of the first held sample
        self._held: SampleChunk | None = None
        self._open: list | None = None      # [start index, energy J, samples, volt sum, lost]
        self._finished = False

    # --- feeding -----------------------------------------------------------------------------
    def feed(self, chunk: SampleChunk) -> list[Pulse]:
        """Take the next chunk; returns the pulses it completed."""
        if self._finished:
            raise RuntimeError("MarkerWindower.feed after finish()")
        if self._held is not None and len(self._held):
            chunk = SampleChunk(np.concatenate([self._held.current_a, chunk.current_a]),
                                np.concatenate([self._held.voltage_v, chunk.voltage_v]),
                                np.concatenate([self._held.marker, chunk.marker]))
        self._held = None
        return self._process(chunk, final=False)

    def finish(self) -> list[Pulse]:
        """End of the stream: judge what is held back, and drop a pulse left open."""
        pulses = self._process(self._held, final=True) if self._held is not None else []
        self._held = None
        self._finished = True
        if self._open is not None:
            self.notes.append(f"the marker was still high when the stream ended (falling edge "
                              f"missed): the pulse from {self._open[0] / self.sample_rate_hz:.6f} s "
                              "is not counted")
            self._open = None
        return pulses

    # --- the work ----------------------------------------------------------------------------
    def _process(self, chunk: SampleChunk, final: bool) -> list[Pulse]:
        n = len(chunk)
        if n == 0:
            return []
        marker = chunk.marker
        cuts = np.flatnonzero(marker[1:] != marker[:-1]) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [n]])
        if not final and ends[-1] - starts[-1] < self.glitch_samples:
            # Too short to judge yet: it may be a glitch, or the start of a real level that
            # goes on in the next chunk. Hold it back.
            keep = int(starts[-1])
            self._held = SampleChunk(chunk.current_a[keep:], chunk.voltage_v[keep:], marker[keep:])
            starts, ends = starts[:-1], ends[:-1]
        # An instrument marks samples it lost (USB overrun) as NaN: they count as time in the
        # window but add no energy, and the window says how many there were.
        power = chunk.current_a * chunk.voltage_v
        lost = np.isnan(power)
        if lost.any():
            power = np.where(lost, 0.0, power)
        done: list[Pulse] = []
        for start, end in zip(starts.tolist(), ends.tolist()):
            raw = bool(marker[start])
            if end - start < self.glitch_samples and raw != self._level:
                self.glitches += 1
                level = self._level            # merged into the level around it
                if level is None:
                    continue                   # a glitch before any real level: nothing to do
            else:
                level = raw
            if self._level is None:
                self._level = level
                if level:
                    self.notes.append("the stream started with the marker high (rising edge "
                                      "missed): that pulse is not counted")
                    self._open = None
                continue
            if level and not self._level:                      # rising edge
                self._open = [self._index + start, 0.0, 0, 0.0, 0]
            elif not level and self._level and self._open is not None:   # falling edge
                done.append(self._close(self._index + start))
            self._level = level
            if level and self._open is not None:
                self._open[1] += float(np.sum(power[start:end])) / self.sample_rate_hz
                self._open[2] += end - start
                self._open[3] += float(np.nansum(chunk.voltage_v[start:end]))
                self._open[4] += int(np.count_nonzero(lost[start:end])) if lost.any() else 0
        consumed = n - (len(self._held) if self._held is not None else 0)
        self._index += consumed
        self.pulses += done
        return done

    def _close(self, end_index: int) -> Pulse:
        start, energy, samples, volt_sum, lost = self._open
        self._open = None
        if lost:
            self.notes.append(f"{lost} of {samples} samples of the pulse at "
                              f"{start / self.sample_rate_hz:.6f} s were lost by the instrument "
                              "(NaN): its energy is low by about that fraction")
        return Pulse(energy_j=energy, duration_s=(end_index - start) / self.sample_rate_hz,
                     supply_v=volt_sum / (samples - lost) if samples > lost else float("nan"),
                     samples=samples,
                     start_s=start / self.sample_rate_hz)


def cut_windows(chunks, sample_rate_hz: float, glitch_s: float = DEFAULT_GLITCH_S) -> MarkerWindower:
    """Run a whole recorded stream (an iterable of chunks) through a windower; returns it."""
    windower = MarkerWindower(sample_rate_hz, glitch_s)
    for chunk in chunks:
        windower.feed(chunk)
    windower.finish()
    return windower
