"""Accuracy: the whole test split streamed to the board, each vector inferred once and timed.

Device outputs are compared with the labels (accuracy) and with the same generated C compiled
for the host (agreement). Integer-feature models must agree exactly. Each inference's own
cycles come back with its output: the latency distribution over the test set (min, median,
p95, max, and which input was the slowest) is recorded beside accuracy, and the per-vector
cycles are kept as one compact record (harness.dut.timing.VECTOR_CYCLES).
"""

import numpy as np

from harness.dut.timing import record_test_set_latency


def test_accuracy(dut, case, record, progress, run_config):
    exported = dut.exported
    limit = run_config.vectors
    total = len(exported.test_inputs) if not limit else min(limit, len(exported.test_inputs))
    count = progress.counter(f"streaming test vectors to {case.board.name}/{case.variant.name}", total)
    raw, cycles, requests = dut.infer_all([exported.vector_bytes(i) for i in range(total)], count)
    outputs = np.asarray([exported.decode_output(out) for out in raw]).reshape(total, -1)
    labels = np.asarray(exported.test_labels[:total])
    reference = np.asarray(exported.host_reference[:total]).reshape(total, -1)

    accuracy = float(np.mean(outputs[:, 0] == labels)) * 100
    agreement = float(np.mean(np.all(outputs == reference, axis=1))) * 100
    # Outputs are exact on every backend that runs the firmware: they carry the backend's label.
    record("accuracy", accuracy, "%", dut.fidelity, n=total,
           detail=f"{total} vectors in {requests} requests")
    record("agreement", agreement, "%", dut.fidelity, n=total,
           detail="device outputs equal to the same C compiled for the host")
    dut.test_set["cycles"] = cycles            # the energy test's choice of input reads it
    timed = record_test_set_latency(dut, cycles, record)
    assert timed == total or dut.fidelity != "cycle-accurate", \
        f"{total - timed} of {total} inferences untimed on a cycle-accurate simulator"
    if case.variant.integer_features:
        mismatched = np.flatnonzero(~np.all(outputs == reference, axis=1))
        assert agreement == 100.0, (f"{len(mismatched)} of {total} outputs differ from the host reference, "
                                    f"first at vector {mismatched[:5].tolist()}")
