"""Accuracy, and the cost of export: the whole test split streamed to the board, each vector
inferred once and timed.

Device outputs are compared with the labels (accuracy), with the same generated C compiled for
the host (agreement; integer-feature models must agree exactly) and with the Python model
(agreement with Python). The Python model's accuracy on the same split is recorded beside the
device's: their difference is the accuracy lost by export. Regressors: MAE and RMSE against
the targets and against the Python model. Without labels, accuracy is left out, with the reason.

A TFLite int8 model's reference model is TFLite Micro's interpreter: the device must equal
its outputs byte for byte (asserted); LiteRT's outputs are a second figure, recorded only.

Each inference's own cycles come back with its output: the latency distribution over the test
set (min, median, p95, max, and which input was the slowest) is recorded beside accuracy, and
the per-vector cycles are kept as one compact record (harness.dut.timing.VECTOR_CYCLES).
"""

import numpy as np

from harness.dut.timing import record_test_set_latency
from harness.fidelity import HOST_MODEL


def test_accuracy(dut, case, record, progress, run_config):
    exported = dut.exported
    limit = run_config.vectors
    total = len(exported.test_inputs) if not limit else min(limit, len(exported.test_inputs))
    count = progress.counter(f"streaming test vectors to {case.board.name}/{case.variant.name}", total)
    raw, cycles, requests = dut.infer_all([exported.vector_bytes(i) for i in range(total)], count)
    outputs = np.asarray([exported.decode_output(out) for out in raw]).reshape(total, -1)
    labels = np.asarray(exported.test_labels[:total])
    reference = np.asarray(exported.host_reference[:total]).reshape(total, -1)
    python = None if exported.python_outputs is None else np.asarray(exported.python_outputs[:total])
    probe = case.variant.kind == "probe"
    variant = case.variant
    tflite = variant.spec.get("kind") == "tflite"
    reference_model = "TFLite Micro's interpreter (tflite-micro)" if tflite else "the Python model"

    agreement = float(np.mean(np.all(outputs == reference, axis=1))) * 100
    # Outputs are exact on every backend that runs the firmware: they carry the backend's label.
    record("agreement", agreement, "%", dut.fidelity, n=total,
           detail="device outputs equal to the same C compiled for the host")
    if case.variant.task == "regression":
        _regression(record, dut.fidelity, outputs[:, 0], labels, python, exported.labels_present, total)
    elif not exported.labels_present:
        record("accuracy_missing", 1, "bool", "static", n=total,
               detail="the test data has no labels (y): accuracy left out, agreement measured")
    else:
        predicted = variant.predicted_class(outputs)
        accuracy = float(np.mean(predicted == labels)) * 100
        record("accuracy", accuracy, "%", dut.fidelity, n=total,
               detail=f"{total} vectors in {requests} requests")
        if not probe:
            python_classes = variant.predicted_class(python.reshape(total, -1))
            py_accuracy = float(np.mean(python_classes == labels)) * 100
            record("python_accuracy", py_accuracy, "%", HOST_MODEL, n=total,
                   detail=f"{reference_model} on the same test vectors")
            record("accuracy_lost", py_accuracy - accuracy, "pp", dut.fidelity, n=total,
                   detail=f"accuracy of {reference_model} minus the device's (percentage points)")
    if python is not None and not probe and variant.task != "regression":
        if tflite:   # every output byte, not only the class
            same = np.all(outputs == python.reshape(total, -1).astype(outputs.dtype), axis=1)
        else:
            same = outputs[:, 0] == python
        record("python_agreement", float(np.mean(same)) * 100, "%", dut.fidelity, n=total,
               detail=f"device outputs equal to {reference_model}'s"
                      + (", byte for byte" if tflite else " predictions"))
    if exported.second_opinion is not None:
        litert = np.asarray(exported.second_opinion[:total]).reshape(total, -1).astype(outputs.dtype)
        record("litert_agreement", float(np.mean(np.all(outputs == litert, axis=1))) * 100, "%",
               dut.fidelity, n=total, detail="device outputs equal to LiteRT's (ai-edge-litert), "
               "byte for byte: its optimised kernels may round differently (recorded, not asserted)")
    dut.test_set["cycles"] = cycles            # the energy test's choice of input reads it
    timed = record_test_set_latency(dut, cycles, record)
    assert timed == total or dut.fidelity != "cycle-accurate", \
        f"{total - timed} of {total} inferences untimed on a cycle-accurate simulator"
    if case.variant.integer_features:
        mismatched = np.flatnonzero(~np.all(outputs == reference, axis=1))
        assert agreement == 100.0, (f"{len(mismatched)} of {total} outputs differ from the host reference, "
                                    f"first at vector {mismatched[:5].tolist()}")
    if tflite:
        differ = np.flatnonzero(~same)
        assert differ.size == 0, (f"{differ.size} of {total} outputs differ from TFLite Micro's, "
                                  f"first at vector {differ[:5].tolist()}")


def _regression(record, fidelity, outputs, labels, python, labels_present, total):
    def errors(prefix, truth, fid, what):
        diff = outputs.astype(np.float64) - truth
        record(f"{prefix}mae", float(np.mean(np.abs(diff))), "target units", fid, n=total, detail=what)
        record(f"{prefix}rmse", float(np.sqrt(np.mean(diff ** 2))), "target units", fid, n=total,
               detail=what)
    if labels_present:
        errors("", labels.astype(np.float64), fidelity, "device outputs vs the test targets")
    else:
        record("accuracy_missing", 1, "bool", "static", n=total,
               detail="the test data has no targets (y): MAE/RMSE vs targets left out")
    errors("python_", python, fidelity, "device outputs vs the Python model's predictions")
