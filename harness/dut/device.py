"""The one owner of a running device under test: its target, its firmware and model, the
protocol client that talks to it, what it said it is (identity), its supervisor, and the
account of its link. Recovery rebinds its parts through `rebind`, never from outside."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable
import numpy as np

from harness.backends.base import Target
from harness.errors import ProtocolError
from harness.build.core import Firmware
from harness.protocol.client import DutClient, Identity, InferResult, LinkNoisy
from harness.protocol.wire import CYCLES_INVALID, STAGE_PIECE


#: a staged round's vectors are as many as fit a reply of about this many bytes: a long reply
#: rarely crosses a noisy link intact (each damaged copy costs a resend of INFER_STAGED)
STAGED_REPLY_BYTES = 128


@dataclass(frozen=True)
class Timing:
    per_inference: list[float]   # counter ticks per inference, one per timed run
    invalid: int                 # timed runs dropped: the counter ran backwards
    loops: int                   # inferences back to back per timed run (>1 on a host clock)


@dataclass
class Dut:
    target: Target
    firmware: Firmware
    exported: object                  # harness.models.ExportedModel
    client: DutClient
    identity: Identity
    supervisor: object = None         # harness.dut.recovery.Supervisor: recovers from faults
    link_seen: tuple = ()             # link counters at the last `link` record (supervision)
    #: this case's test set timed vector by vector ("cycles"), shared by the case's tests
    #: across relaunches (harness.dut.timing)
    test_set: dict = field(default_factory=dict)
    #: EEMBC firmware: the device time one `infer N W` window of the latency suite spans (the
    #: MLPerf Tiny rule is 10 s on hardware; shorter on emulators)
    window_s: float = 0.02
    _window_loops: dict = field(default_factory=dict)

    @property
    def lap_timed(self) -> bool:
        """Timed by EEMBC laps (microseconds around N inferences), not per-run counts."""
        return self.identity.protocol == "eembc"

    def rebind(self, target: Target | None = None, client: DutClient | None = None,
               identity: Identity | None = None) -> None:
        """Recovery replaced a part: a relaunched target, a reopened client, a new identity."""
        self.target = target or self.target
        self.client = client or self.client
        self.identity = identity or self.identity

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.target.stop()

    @property
    def board(self):
        return self.target.board

    @property
    def fidelity(self) -> str:
        return self.target.fidelity

    def check_identity(self) -> None:
        """The DUT must run exactly the firmware and model the harness built."""
        ident, fw = self.identity, self.firmware
        if ident.foreign:
            if not getattr(fw, "prebuilt", False):
                raise ProtocolError(f"the DUT on {self.target.url} speaks EEMBC but is not the "
                                    "harness's EEMBC build (no m-tinyhil line): flash it again")
            return                        # a lab's own MLPerf Tiny firmware: name and model only
        expected_hash = self.exported.model_hash[:16]
        problems = []
        if ident.board != self.board.name:
            problems.append(f"board {ident.board!r} (expected {self.board.name!r})")
        if ident.model_hash != expected_hash:
            problems.append(f"model hash {ident.model_hash} (expected {expected_hash})")
        if ident.build_id != fw.build_id and not getattr(fw, "prebuilt", False):
            problems.append(f"build {ident.build_id} (expected {fw.build_id})")
        if problems:
            raise ProtocolError(f"the DUT on {self.target.url} runs other firmware: "
                                f"{', '.join(problems)}. Flash the harness's build again "
                                "(hardware) or clear the cache (TINYHIL_CACHE)")

    def infer(self, vector: bytes, runs: int = 1, warmup: int = 0, per_run: bool = True) -> InferResult:
        """`per_run` False: the runs' total is enough (an energy window), see DutClient.infer."""
        timeout = self.reply_timeout(runs + warmup)
        if self.supervisor is None:
            result = self.client.infer(vector, runs=runs, warmup=warmup, timeout=timeout, per_run=per_run)
        else:
            result = self.supervisor.call(lambda client: client.infer(
                vector, runs=runs, warmup=warmup, timeout=timeout, per_run=per_run), "INFER")
        if self.identity.foreign:
            result.output = self._model_output(result.output)
        return result

    def _model_output(self, raw: bytes) -> bytes:
        """Another EEMBC firmware's m-results (floats) as the variant's output type: integer
        outputs must print as integers (as our EEMBC build does) to be compared."""
        variant = self.exported.variant
        values = np.frombuffer(raw, np.float32)
        if variant.output_dtype == "float32":
            return raw
        if not np.all(values == np.round(values)):
            raise ProtocolError(f"the firmware on {self.target.url} prints scores {values[:4].tolist()}..., "
                                f"not {variant.name}'s {variant.output_dtype} outputs: make its "
                                "th_results() print the model's integer outputs (dequantised scores "
                                "cannot be compared with the model's)")
        return values.astype(variant.output_dtype).tobytes()

    def infer_all(self, vectors: list[bytes], done: Callable[[int], None] | None = None
                  ) -> tuple[list[bytes], list[int], int]:
        """Each vector inferred once, as few round trips as the DUT allows (INFER_BATCH of up
        to batch_max vectors; one INFER each when it takes none). Returns the outputs, each
        vector's cycles (CYCLES_INVALID where the counter ran backwards) and the round trips."""
        outputs: list[bytes] = []
        cycles: list[int] = []
        batch = self.identity.batch_max
        # Slow start: 1, 2, 4 ... up to batch_max while the link is clean; once it has lost a
        # frame, staged batches (a long frame rarely crosses a noisy link intact).
        size = 1
        requests = 0
        while len(outputs) < len(vectors):
            if self.identity.stage_slots and self.identity.protocol == "tinyhil" and self.client.stats.resends:
                rest_outputs, rest_cycles, staged = self._infer_staged(vectors[len(outputs):], done,
                                                                       len(outputs))
                return outputs + rest_outputs, cycles + rest_cycles, requests + staged
            chunk = vectors[len(outputs):len(outputs) + size]
            if batch:
                result = self._call(lambda client, c=chunk: client.infer_batch(
                    c, timeout=self.reply_timeout(len(c))), "INFER_BATCH")
                outputs += result.outputs
                cycles += result.cycles
            else:
                result = self.infer(chunk[0])
                outputs.append(result.output)
                run = result.cycles[0]              # `loops` inferences on a host clock
                cycles.append(run if run == CYCLES_INVALID else run // result.loops)
            requests += 1
            size = 1 if self.client.stats.resends else min(max(batch, 1), size * 2)
            if done:
                done(len(outputs))
        return outputs, cycles, requests

    def _infer_staged(self, vectors: list[bytes], done: Callable[[int], None] | None,
                      before: int) -> tuple[list[bytes], list[int], int]:
        """A noisy link: each vector goes in pieces (STAGE) into a slot of a staged batch; a
        round sends the pieces still missing and runs every slot whose pieces all arrived, and
        a slot that ran takes the next vector. Returns as infer_all does, with the rounds."""
        ident = self.identity
        parts = ident.stage_parts
        width = max(1, min(ident.stage_slots, STAGED_REPLY_BYTES // (ident.output_bytes + 4)))
        outputs: list[bytes | None] = [None] * len(vectors)
        cycles: list[int | None] = [None] * len(vectors)
        holds: list[int | None] = [None] * width            # the vector each slot holds
        missing: list[set[int]] = [set() for _ in range(width)]
        upcoming = iter(range(len(vectors)))
        rounds = idle = finished = 0
        self._call(lambda client: client.infer_staged(0, []), "INFER_STAGED")   # a new batch
        while True:
            for slot in range(width):
                if holds[slot] is None:
                    holds[slot] = next(upcoming, None)
                    missing[slot] = set(range(parts))
            held = [slot for slot in range(width) if holds[slot] is not None]
            if not held:
                return outputs, cycles, rounds
            pieces = [(slot, part, vectors[holds[slot]][part * STAGE_PIECE:(part + 1) * STAGE_PIECE])
                      for slot in held for part in sorted(missing[slot])]
            count = held[-1] + 1
            result = self._call(lambda client, n=count, p=pieces: client.infer_staged(
                n, p, timeout=self.reply_timeout(n)), "INFER_STAGED")
            rounds += 1
            ran = [slot for slot in held if result.outputs[slot] is not None]
            for slot in held:
                if slot in ran:
                    outputs[holds[slot]], cycles[holds[slot]] = result.outputs[slot], result.cycles[slot]
                    holds[slot] = None
                else:     # what the reply says is still staged (a relaunched DUT holds nothing)
                    missing[slot] = {part for part in range(parts) if (slot, part) not in result.staged}
            idle = 0 if ran else idle + 1
            if idle > self.client.corrupt_retries:
                raise LinkNoisy(f"{idle} staged batches in a row ran no vector: the link corrupts "
                                "too much to carry a test vector")
            while finished < len(vectors) and outputs[finished] is not None:
                finished += 1
            if done and ran:
                done(before + finished)

    def _call(self, op, what: str):
        return op(self.client) if self.supervisor is None else self.supervisor.call(op, what)

    def reply_timeout(self, inferences: int) -> float:
        if self.lap_timed:            # the client adds its own estimate of N inferences
            return self.client.timeout
        return self.client.timeout + 0.5 * inferences

    def cycles(self, vector: bytes, runs: int, warmup: int) -> "Timing":
        """`runs` timed runs (in as many requests as the DUT's max_runs needs), as counter
        ticks per inference. Runs the DUT could not time (its counter ran backwards, as
        qemu-system-avr's can) are dropped and counted, never reported."""
        totals: list[int] = []
        loops = 1
        done = 0
        while done < runs:
            if self.lap_timed:        # one run: one window of `infer N W` between two laps
                batch, step = self.window_loops(vector, self.window_s), 1
            else:
                batch = step = min(self.identity.max_runs, runs - done)
            result = self.infer(vector, runs=batch, warmup=warmup if not done else 0)
            totals += result.cycles
            loops = result.loops
            done += step
        valid = [c / loops for c in totals if c != CYCLES_INVALID]
        return Timing(valid, len(totals) - len(valid), loops)

    def window_loops(self, vector: bytes, window_s: float) -> int:
        """EEMBC: inferences one `infer N 0` needs for its laps to span `window_s` of device
        time, found by trying (1, then scaled by each lap), once per vector and window length
        (inputs differ in latency: the energy input is not the latency suite's)."""
        from harness.protocol.eembc import lap_loops_for
        key = (vector, window_s)
        if key not in self._window_loops:
            loops = 1
            while True:
                lap = self.infer(vector, runs=loops).cycles[0]
                if lap != CYCLES_INVALID and lap >= window_s * self.identity.timer_hz:
                    break
                loops = lap_loops_for(lap if lap != CYCLES_INVALID else 0, loops, window_s)
            self._window_loops[key] = loops
        return self._window_loops[key]

    def cycles_to_us(self, cycles) -> np.ndarray:
        return np.asarray(cycles, dtype=float) * 1e6 / self.identity.timer_hz
