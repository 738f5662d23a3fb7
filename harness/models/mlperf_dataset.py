"""A variant's test set in the MLPerf Tiny runner's dataset layout, so the official runner
(mlcommons/tiny, benchmark/runner) can run any tinyhil model on our DUT built in EEMBC mode:

  OUT/<model>/y_labels.csv   one line per vector: file name, number of classes, true class
  OUT/<model>/<file>.bin     the vector's bytes, exactly as the DUT takes them (`db` loads them)
  OUT/tests.yaml             the runner's test script for <model>: every vector, `infer 1 0`

<model> is the name the firmware gives in `m-model-[...]` (the variant's name), which the
runner looks its test script up by."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import HarnessError

#: what the runner's performance mode expects: 5 windows (its "error 1" otherwise)
PERFORMANCE_LOOPS = 5


def write_dataset(exported, out: Path, performance_inferences: int = 1) -> Path:
    """Write the test set of `exported` (a harness.models.ExportedModel) under `out`."""
    variant = exported.variant
    if variant.task == "regression":
        raise HarnessError(f"{variant.name} is a regressor: the MLPerf Tiny runner scores classes "
                           "(y_labels.csv holds a class per vector), so it cannot score it")
    if not exported.labels_present:
        raise HarnessError(f"{variant.name}'s test data has no labels (y): the runner needs a true "
                           "class per vector; add them to the test data")
    folder = Path(out) / variant.name
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(exported.test_labels).astype(int)
    classes = max(int(labels.max()) + 1, variant.output_count if variant.output_count > 1 else 0)
    rows = []
    for i in range(len(exported.test_inputs)):
        name = f"{variant.name}_{i:05d}.bin"
        (folder / name).write_bytes(exported.vector_bytes(i))
        rows.append(f"{name},{classes},{labels[i]}\n")
    (folder / "y_labels.csv").write_text("".join(rows))
    (Path(out) / "tests.yaml").write_text(
        f"{variant.name}:\n"
        f"  name: {variant.name}\n"
        f"  model: {variant.name}\n"
        f"  truth_file: y_labels.csv\n"
        f"  script:\n"
        f"    - loop {len(rows)}:\n"
        f"      - download\n"
        f"      - infer {performance_inferences} 0\n")
    return folder
