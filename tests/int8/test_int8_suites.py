"""Your own .tflite through the suites: models built here with tflite-micro's model editor (no
TensorFlow, not the shipped examples), declared in a models file, run on native and the Uno
in simavr. The device must equal TFLite Micro byte for byte; the layer suite times each layer;
an operator the generator lacks is a "not exportable" record naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tflite_micro", reason="tinyhil-int8 needs tflite-micro: pip install -e '.[int8]'")
sys.path.insert(0, str(Path(__file__).parent))
import builders  # noqa: E402


@pytest.fixture(scope="module")
def models_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("own_tflite")
    rng = np.random.default_rng(7)
    (d / "residual.tflite").write_bytes(builders.residual())     # CONV, ADD, MEAN, LOGISTIC
    (d / "mlp.tflite").write_bytes(builders.mlp())               # FC, per-channel FC, SOFTMAX
    (d / "tanh.tflite").write_bytes(builders.with_tanh())        # TANH: not implemented
    np.savez(d / "residual.npz", X=rng.integers(-128, 128, (30, 75)).astype(np.int8))
    np.savez(d / "mlp.npz", X=rng.normal(0, 2, (30, 24)), y=rng.integers(0, 6, 30))
    np.savez(d / "tanh.npz", X=rng.normal(0, 1, (10, 8)))
    (d / "tinyhil.toml").write_text("".join(
        f'[[model]]\nname = "{n}"\ntflite = "{n}.tflite"\ntest_data = "{n}.npz"\n\n'
        for n in ("residual", "mlp", "tanh")))
    return d / "tinyhil.toml"


def test_own_tflite_models_on_native_and_uno(models_file, tmp_path):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "suites/test_accuracy.py", "suites/test_layers.py", f"--models={models_file}",
           "--board=native,uno", "--backend=auto", f"--results-dir={tmp_path}", "--run-id=r"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    records = pd.read_parquet(tmp_path / "r" / "records.parquet")
    by = records.set_index(["board", "variant", "metric"])
    for board in ("native", "uno"):
        for variant in ("residual_int8", "mlp_int8"):
            agreement = by.loc[(board, variant, "python_agreement")]
            assert agreement.value == 100.0 and "TFLite Micro" in agreement.detail
            assert by.loc[(board, variant, "agreement")].value == 100.0
        refused = by.loc[(board, "tanh_int8", "exportable")]
        assert refused.value == 0
        assert "TANH" in refused.detail and "supported operators: FULLY_CONNECTED" in refused.detail
    assert ("uno", "mlp_int8", "accuracy") in by.index                 # labels given
    assert ("uno", "residual_int8", "accuracy_missing") in by.index    # none given
    layers = records[(records.metric == "layer_cycles") & (records.board == "uno")]
    assert list(layers[layers.variant == "residual_int8"].detail) == [
        "00 CONV_2D", "01 ADD", "02 MEAN", "03 LOGISTIC"]
    assert (layers.value > 0).all() and set(layers.fidelity) == {"cycle-accurate"}
    assert by.loc[("uno", "mlp_int8", "cycles_per_mac")].value > 1


@pytest.mark.parametrize("text, problem", [
    ('tflite = "nope.tflite"\ntest_data = "mlp.npz"', "tflite file .* not found: fix the path"),
    ('tflite = "mlp.tflite"\ntest_data = "residual.npz"', "the model takes 24 inputs .* has 75 columns"),
    ('tflite = "mlp.tflite"\ntest_data = "mlp.npz"\nexporters = ["emlearn"]', "exported by tinyhil-int8 only"),
    ('tflite = "mlp.npz"\ntest_data = "mlp.npz"', "not a .tflite flatbuffer"),
])
def test_bad_tflite_model_is_one_line(models_file, text, problem):
    from harness.errors import HarnessError
    from harness.models import modelfile
    bad = models_file.parent / "bad.toml"
    bad.write_text(f'[[model]]\nname = "x"\n{text}\n')
    with pytest.raises(HarnessError, match=problem) as e:
        modelfile.load(bad)
    assert "\n" not in str(e.value)
