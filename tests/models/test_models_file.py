"""A user's own model, end to end: trained on a data set the demo catalogue does not use
(breast cancer), saved with joblib, its test split as npz, declared in a models file, run
through the suites on native and simavr (Uno; Mega for micromlgen)."""

import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest

from harness import modelfile, models
from harness.errors import HarnessError


@pytest.fixture(scope="module")
def user_models(tmp_path_factory):
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVR
    from sklearn.tree import DecisionTreeClassifier
    d = tmp_path_factory.mktemp("user")
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=1, stratify=y)
    joblib.dump(DecisionTreeClassifier(max_depth=4, random_state=0).fit(Xtr, ytr), d / "tree.joblib")
    joblib.dump(SVR().fit(Xtr[:, :3], Xtr[:, 3]), d / "svr.joblib")   # micromlgen/emlearn: no
    np.savez(d / "test.npz", X=Xte, y=yte)
    np.savez(d / "svr_test.npz", X=Xte[:40, :3], y=Xte[:40, 3])
    (d / "models.toml").write_text('''
[[model]]
name = "cancer"
estimator = "tree.joblib"
test_data = "test.npz"
exporters = ["emlearn", "m2cgen", "micromlgen"]
input = "int16"

[[model]]
name = "area"
estimator = "svr.joblib"
test_data = "svr_test.npz"
exporters = ["emlearn", "m2cgen"]
''')
    return d


def run_suites(tmp_path, models_file, board, variant):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "suites/test_accuracy.py",
           f"--models={models_file}", f"--board={board}", f"--variant={variant}",
           f"--results-dir={tmp_path}", "--run-id=r"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    return pd.read_parquet(tmp_path / "r" / "records.parquet"), r.stdout


def test_variants_are_the_files(user_models):
    variants = modelfile.load(user_models / "models.toml")
    assert [v.name for v in variants] == ["cancer_emlearn", "cancer_m2cgen", "cancer_micromlgen",
                                          "area_emlearn", "area_m2cgen"]
    assert variants[0].input_count == 30 and variants[0].integer_features
    assert variants[3].task == "regression" and variants[3].output_dtype == "float32"


def test_integer_export_agrees_with_python(user_models, tmp_path):
    v = modelfile.load(user_models / "models.toml")[0]
    m = models.export(v, tmp_path)
    scales = np.asarray(m.scales)
    assert np.all(np.log2(scales) == np.round(np.log2(scales)))   # powers of two, per feature
    assert m.test_inputs.dtype == np.int16 and np.abs(m.test_inputs).max() <= 32767
    # the scaled thresholds keep the tree: the C agrees with scikit-learn on nearly all vectors
    assert np.mean(m.host_reference[:, 0] == m.python_outputs) > 0.95
    assert m.train_accuracy_python > 0.85


def test_unsupported_estimator_is_not_exportable(user_models, tmp_path):
    svr_emlearn = modelfile.load(user_models / "models.toml")[3]
    with pytest.raises(models.NotExportable, match="not exportable: emlearn does not support SVR"):
        models.export(svr_emlearn, tmp_path)
    m = models.export(modelfile.load(user_models / "models.toml")[4], tmp_path)   # m2cgen can
    assert np.allclose(m.host_reference[:, 0], m.python_outputs, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("text, problem", [
    ('estimator = "nope.joblib"\ntest_data = "test.npz"\nexporters = ["m2cgen"]', "not found: fix the path"),
    ('estimator = "tree.joblib"\ntest_data = "svr_test.npz"\nexporters = ["m2cgen"]', "takes 30 features but"),
    ('estimator = "tree.joblib"\ntest_data = "test.npz"\nexporters = ["tflite"]', "unknown exporter 'tflite'"),
])
def test_bad_models_file_is_one_line(user_models, text, problem):
    f = user_models / "bad.toml"
    f.write_text(f'[[model]]\nname = "x"\n{text}\n')
    with pytest.raises(HarnessError, match=problem) as e:
        modelfile.load(f)
    assert "\n" not in str(e.value)


def test_suites_on_native_and_uno(user_models, tmp_path):
    records, out = run_suites(tmp_path, user_models / "models.toml", "native,uno",
                              "cancer_emlearn,cancer_micromlgen,area_m2cgen")
    assert set(records.variant) == {"cancer_emlearn", "cancer_micromlgen", "area_m2cgen"}
    assert set(records.board) == {"native", "uno"}
    agree = records[records.metric == "agreement"].set_index(["board", "variant"]).value
    assert agree[("native", "cancer_emlearn")] == 100.0 and agree[("uno", "cancer_emlearn")] == 100.0
    assert agree[("native", "cancer_micromlgen")] == 100.0 and agree[("uno", "cancer_micromlgen")] == 100.0
    by = records.set_index(["board", "variant", "metric"]).value
    lost = by[("uno", "cancer_emlearn", "accuracy_lost")]
    assert lost == pytest.approx(by[("uno", "cancer_emlearn", "python_accuracy")]
                                 - by[("uno", "cancer_emlearn", "accuracy")])
    assert ("native", "area_m2cgen", "python_mae") in by.index
    table = subprocess.run([sys.executable, "-m", "harness", "report", str(tmp_path / "r")],
                           capture_output=True, text=True, timeout=300).stdout
    table = " ".join(table.split())      # the legend wraps at the table's width
    assert "py%" in table and "lost" in table and "accuracy lost by export" in table


def test_micromlgen_on_the_mega(user_models, tmp_path):
    records, _ = run_suites(tmp_path, user_models / "models.toml", "mega2560", "cancer_micromlgen")
    agree = records[records.metric == "agreement"].value
    assert list(agree) == [100.0]
