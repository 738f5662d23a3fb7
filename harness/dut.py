"""A device under test as the suites see it: firmware + running target + protocol client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.backends import Target
from harness.errors import ProtocolError
from harness.firmware import Firmware
from harness.protocol import DutClient, Identity, InferResult
from harness.wire import CYCLES_INVALID


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
    supervisor: object = None         # harness.recovery.Supervisor: recovers from faults

    @property
    def board(self):
        return self.target.board

    @property
    def fidelity(self) -> str:
        return self.target.fidelity

    def check_identity(self) -> None:
        """The DUT must run exactly the firmware and model the harness built."""
        ident, fw = self.identity, self.firmware
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

    def infer(self, vector: bytes, runs: int = 1, warmup: int = 0) -> InferResult:
        timeout = self.reply_timeout(runs + warmup)
        if self.supervisor is None:
            return self.client.infer(vector, runs=runs, warmup=warmup, timeout=timeout)
        return self.supervisor.call(lambda client: client.infer(vector, runs=runs, warmup=warmup,
                                                                timeout=timeout), "INFER")

    def reply_timeout(self, inferences: int) -> float:
        return self.client.timeout + 0.5 * inferences

    def classify_all(self, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Stream the whole test split, one inference per vector; returns decoded outputs."""
        exported = self.exported
        outputs = []
        for i in range(len(exported.test_inputs)):
            result = self.infer(exported.vector_bytes(i))
            outputs.append(exported.decode_output(result.output))
            if progress:
                progress(i + 1)
        return np.asarray(outputs)

    def cycles(self, vector: bytes, runs: int, warmup: int) -> "Timing":
        """`runs` timed runs (in as many requests as the DUT's max_runs needs), as counter
        ticks per inference. Runs the DUT could not time (its counter ran backwards, as
        qemu-system-avr's can) are dropped and counted, never reported."""
        totals: list[int] = []
        loops = 1
        done = 0
        while done < runs:
            batch = min(self.identity.max_runs, runs - done)
            result = self.infer(vector, runs=batch, warmup=warmup if not done else 0)
            totals += result.cycles
            loops = result.loops
            done += batch
        valid = [c / loops for c in totals if c != CYCLES_INVALID]
        return Timing(valid, len(totals) - len(valid), loops)

    def cycles_to_us(self, cycles) -> np.ndarray:
        return np.asarray(cycles, dtype=float) * 1e6 / self.identity.timer_hz
