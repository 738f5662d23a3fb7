"""A user's own model, end to end: trained on a data set the demo catalogue does not use
(breast cancer), saved with joblib, its test split as npz, declared in a models file, run
through the suites on native and simavr (Uno; Mega for micromlgen)."""

import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest

from harness import models
from harness.models import modelfile
from harness.errors import HarnessError


@pytest.fixture(scope="module")
def user_models(tmp_path_factory):
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.svm import SVR
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
    d = tmp_path_factory.mktemp("user")
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=1, stratify=y)
    joblib.dump(DecisionTreeClassifier(max_depth=4, random_state=0).fit(Xtr, ytr), d / "tree.joblib")
    joblib.dump(SVR().fit(Xtr[:, :3], Xtr[:, 3]), d / "svr.joblib")   # micromlgen/emlearn: no
    # a regressor: mean area (column 3) from radius, texture and perimeter
    joblib.dump(DecisionTreeRegressor(max_depth=5, random_state=0).fit(Xtr[:, :3], Xtr[:, 3]),
                d / "area_tree.joblib")
    # 250 unpruned trees: about 100 KB of AVR code, three times an Uno's 32 KB of flash
    joblib.dump(RandomForestClassifier(250, random_state=0).fit(Xtr, ytr), d / "big.joblib")
    np.savez(d / "test.npz", X=Xte, y=yte)
    np.savez(d / "unlabelled.npz", X=Xte)
    np.savez(d / "svr_test.npz", X=Xte[:40, :3], y=Xte[:40, 3])
    (d / "models.toml").write_text('''
[[model]]
name = "cancer"
estimator = "tree.joblib"
test_data = "test.npz"
exporters = ["emlearn", "m2cgen", "micromlgen"]
input = "int16"

[[model]]
name = "area_svr"
estimator = "svr.joblib"
test_data = "svr_test.npz"
exporters = ["emlearn", "m2cgen"]

[[model]]
name = "area"
estimator = "area_tree.joblib"
test_data = "svr_test.npz"
exporters = ["emlearn", "m2cgen"]
input = "int16"

[[model]]
name = "nolabels"
estimator = "tree.joblib"
test_data = "unlabelled.npz"
exporters = ["emlearn"]
input = "int16"

[[model]]
name = "big"
estimator = "big.joblib"
test_data = "test.npz"
exporters = ["emlearn"]
input = "int16"
''')
    return d


def run_suites(tmp_path, models_file, board, variant, suites=("suites/test_accuracy.py",)):
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *suites,
           f"--models={models_file}", f"--board={board}", f"--variant={variant}",
           f"--results-dir={tmp_path}", "--run-id=r"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    return pd.read_parquet(tmp_path / "r" / "records.parquet"), r.stdout


def test_variants_are_the_files(user_models):
    variants = modelfile.load(user_models / "models.toml")
    assert [v.name for v in variants] == ["cancer_emlearn", "cancer_m2cgen", "cancer_micromlgen",
                                          "area_svr_emlearn", "area_svr_m2cgen", "area_emlearn",
                                          "area_m2cgen", "nolabels_emlearn", "big_emlearn"]
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
                              "cancer_emlearn,cancer_micromlgen,area_emlearn")
    assert set(records.variant) == {"cancer_emlearn", "cancer_micromlgen", "area_emlearn"}
    assert set(records.board) == {"native", "uno"}
    agree = records[records.metric == "agreement"].set_index(["board", "variant"]).value
    assert agree[("native", "cancer_emlearn")] == 100.0 and agree[("uno", "cancer_emlearn")] == 100.0
    assert agree[("native", "cancer_micromlgen")] == 100.0 and agree[("uno", "cancer_micromlgen")] == 100.0
    by = records.set_index(["board", "variant", "metric"]).value
    lost = by[("uno", "cancer_emlearn", "accuracy_lost")]
    assert lost == pytest.approx(by[("uno", "cancer_emlearn", "python_accuracy")]
                                 - by[("uno", "cancer_emlearn", "accuracy")])
    for board in ("native", "uno"):      # the regressor on the device: errors vs targets and Python
        assert agree[(board, "area_emlearn")] == 100.0
        for metric in ("mae", "rmse", "python_mae", "python_rmse"):
            assert by[(board, "area_emlearn", metric)] >= 0
        assert by[(board, "area_emlearn", "rmse")] >= by[(board, "area_emlearn", "mae")]
    table = subprocess.run([sys.executable, "-m", "harness", "report", str(tmp_path / "r")],
                           capture_output=True, text=True, timeout=300).stdout
    table = " ".join(table.split())      # the legend wraps at the table's width
    assert "py%" in table and "lost" in table and "accuracy lost by export" in table


def test_micromlgen_on_the_mega(user_models, tmp_path):
    records, _ = run_suites(tmp_path, user_models / "models.toml", "mega2560", "cancer_micromlgen")
    agree = records[records.metric == "agreement"].value
    assert list(agree) == [100.0]


def test_unexportable_unlabelled_and_too_big_are_records(user_models, tmp_path):
    """One run: an estimator the exporter cannot handle, a test set without labels and a model
    too big for the board each leave a record saying so, and the run still passes."""
    records, out = run_suites(tmp_path, user_models / "models.toml", "uno",
                              "area_svr_emlearn,nolabels_emlearn,big_emlearn",
                              ("suites/test_footprint.py", "suites/test_accuracy.py"))
    by = records.set_index(["variant", "metric"])
    reason = by.loc[("area_svr_emlearn", "exportable")]
    assert reason.value == 0 and reason.detail == "not exportable: emlearn does not support SVR"
    assert by.loc[("nolabels_emlearn", "agreement")].value == 100.0
    assert "no labels" in by.loc[("nolabels_emlearn", "accuracy_missing")].detail
    assert ("nolabels_emlearn", "accuracy") not in by.index
    assert by.loc[("big_emlearn", "fits")].value == 0
    assert "big_emlearn does not fit uno" in out


def test_skops_safe_format(user_models, tmp_path):
    import skops.io as sio
    tree = joblib.load(user_models / "tree.joblib")
    sio.dump(tree, tmp_path / "tree.skops")
    assert modelfile.load_estimator(tmp_path / "tree.skops").get_depth() == tree.get_depth()


def test_labels_column_in_csv(user_models, tmp_path):
    with np.load(user_models / "test.npz") as d:
        frame = pd.DataFrame(d["X"], columns=[f"f{i}" for i in range(30)]).assign(diagnosis=d["y"])
    frame.to_csv(tmp_path / "test.csv", index=False)
    X, y = modelfile.load_test_data(tmp_path / "test.csv", "diagnosis")
    assert X.shape == (len(frame), 30) and list(y) == list(frame.diagnosis)
    with pytest.raises(HarnessError, match="label column 'label' is not in test.csv"):
        modelfile.load_test_data(tmp_path / "test.csv", "label")


def test_models_file_found_in_the_current_folder(user_models, tmp_path, monkeypatch):
    """No --models: ./tinyhil.toml, else [tool.tinyhil] in ./pyproject.toml, else the demo."""
    monkeypatch.chdir(tmp_path)
    assert modelfile.default_file() is None
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert modelfile.default_file() is None               # no [tool.tinyhil] models there
    text = (user_models / "models.toml").read_text().replace('"tree.joblib"', f'"{user_models}/tree.joblib"')
    text = text.replace('"test.npz"', f'"{user_models}/test.npz"')
    cancer = text.split("[[model]]")[1]
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[[tool.tinyhil.model]]" + cancer)
    assert modelfile.default_file() == tmp_path / "pyproject.toml"
    assert [v.name for v in modelfile.load(tmp_path / "pyproject.toml")] == [
        "cancer_emlearn", "cancer_m2cgen", "cancer_micromlgen"]
    (tmp_path / "tinyhil.toml").write_text("[[model]]" + cancer)
    assert modelfile.default_file() == tmp_path / "tinyhil.toml"   # wins over pyproject.toml


def test_variants_command_lists_the_files_models(user_models):
    r = subprocess.run([sys.executable, "-m", "harness", "variants",
                        f"--models={user_models / 'models.toml'}"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("cancer_micromlgen"))
    assert "DecisionTreeClassifier" in line and "micromlgen" in line and "30 x int16" in line
    assert "KB of generated C++" in line
    assert "not exportable: emlearn does not support SVR" in r.stdout


def test_missing_models_file_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "suites/test_smoke.py", f"--models={tmp_path / 'nope.toml'}",
                        "--board=native", f"--results-dir={tmp_path}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    errors = [x for x in (r.stdout + r.stderr).splitlines() if "nope.toml" in x]
    assert errors and "not found: check the --models path" in errors[0]
    assert "Traceback" not in r.stdout + r.stderr
