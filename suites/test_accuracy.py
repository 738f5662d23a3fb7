"""Accuracy: the whole test split streamed to the board, one inference per vector.

Device outputs are compared with the labels (accuracy) and with the same generated C compiled
for the host (agreement). Integer-feature models must agree exactly.
"""

import numpy as np


def test_accuracy(dut, case, record, progress, run_config):
    exported = dut.exported
    limit = run_config.vectors
    total = len(exported.test_inputs) if not limit else min(limit, len(exported.test_inputs))
    outputs = []
    count = progress.counter(f"streaming test vectors to {case.board.name}/{case.variant.name}", total)
    for i in range(total):
        outputs.append(exported.decode_output(dut.infer(exported.vector_bytes(i)).output))
        count(i + 1)
    outputs = np.asarray(outputs).reshape(total, -1)
    labels = np.asarray(exported.test_labels[:total])
    reference = np.asarray(exported.host_reference[:total]).reshape(total, -1)

    accuracy = float(np.mean(outputs[:, 0] == labels)) * 100
    agreement = float(np.mean(np.all(outputs == reference, axis=1))) * 100
    # Outputs are exact on every backend that runs the firmware: they carry the backend's label.
    record("accuracy", accuracy, "%", dut.fidelity, n=total)
    record("agreement", agreement, "%", dut.fidelity, n=total,
           detail="device outputs equal to the same C compiled for the host")
    if case.variant.integer_features:
        mismatched = np.flatnonzero(~np.all(outputs == reference, axis=1))
        assert agreement == 100.0, (f"{len(mismatched)} of {total} outputs differ from the host reference, "
                                    f"first at vector {mismatched[:5].tolist()}")
