"""Models files: the user's models (`--models FILE`, ./tinyhil.toml, [tool.tinyhil] in a
pyproject.toml) and the shipped demo catalogue (devices/models/demo.toml) are the same data.

    [[model]]
    name = "cancer"                    # variants are <name>_<exporter>
    estimator = "cancer.joblib"        # joblib (a pickle: runs code) or skops (safe format)
    test_data = "cancer_test.npz"      # X and y; or .csv / .parquet with label = "column"
    exporters = ["emlearn", "m2cgen", "micromlgen"]
    input = "int16"                    # float32 (default), int8 or int16
    scale = 64                         # optional: int inputs are round(x * scale); default chosen

    [[model]]
    name = "digits_cnn"                # variant digits_cnn_int8 (exporter tinyhil-int8)
    tflite = "digits_cnn_int8.tflite"  # a fully int8-quantised TensorFlow Lite model
    test_data = "digits_test.npz"      # X as the model's float input (quantised with the
                                       # model's input scale/zero point), or already int8

A demo model has a [model.recipe] (a scikit-learn data set, an estimator class, its params)
instead of estimator and test_data. Paths are relative to the file. Every problem is one
line naming the problem and its fix (HarnessError)."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.models.variant import ModelVariant

INPUTS = ("float32", "int16", "int8")
INT_LIMIT = {"int8": 127, "int16": 32767}
DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")
SPLIT = dict(test_size=0.25, random_state=0)  # plus stratify=y for classifiers


def demo_file() -> Path:
    from harness.paths import devices_dir
    return devices_dir() / "models" / "demo.toml"


def default_file(cwd: Path | None = None) -> Path | None:
    """./tinyhil.toml, else a pyproject.toml with [tool.tinyhil] models, else None."""
    cwd = Path(cwd or Path.cwd())
    if (cwd / "tinyhil.toml").is_file():
        return cwd / "tinyhil.toml"
    py = cwd / "pyproject.toml"
    if py.is_file() and "model" in _toml(py).get("tool", {}).get("tinyhil", {}):
        return py
    return None


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise HarnessError(f"models file {path} not found: check the --models path") from None
    except tomllib.TOMLDecodeError as e:
        raise HarnessError(f"models file {path} is not valid TOML ({e}): fix the syntax") from None


def load(path: Path) -> list[ModelVariant]:
    path = Path(path).resolve()
    data = _toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("tinyhil", {})
    models = data.get("model", [])
    if not models and not data.get("probe"):
        raise HarnessError(f"{path} declares no [[model]] table: add one (see README, "
                           "'Benchmark your own model')")
    variants = [_probe(p) for p in data.get("probe", [])]
    for table in models:
        variants += _model(path, table)
    names = [v.name for v in variants]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise HarnessError(f"{path}: variant names {', '.join(dupes)} appear twice: rename a [[model]]")
    return variants


def _probe(t: dict) -> ModelVariant:
    n = int(t["bytes"])
    return ModelVariant(t["name"], "probe", "tinyhil", f"sum of {n} input bytes", n, "uint8", 1,
                        "int32", True, kind="probe")


def _model(path: Path, t: dict) -> list[ModelVariant]:
    from harness.exporters import MODULES
    name = t.get("name")
    where = f"{path} [[model]] {name!r}"
    if not name:
        raise HarnessError(f"{path}: a [[model]] has no name: add name = \"...\"")
    exporters = t.get("exporters") or ([t["exporter"]] if "exporter" in t else [])
    if "tflite" in t:
        return _tflite_model(path, where, name, t, exporters)
    if not exporters:
        raise HarnessError(f"{where}: no exporters: add exporters = [\"emlearn\", \"m2cgen\", \"micromlgen\"]")
    for e in exporters:
        if e not in MODULES:
            raise HarnessError(f"{where}: unknown exporter {e!r}: use one of {', '.join(MODULES)}")
    dtype = t.get("input", "float32")
    if dtype not in INPUTS:
        raise HarnessError(f"{where}: input = {dtype!r}: use one of {', '.join(INPUTS)}")
    if "variant" in t and len(exporters) != 1:
        raise HarnessError(f"{where}: `variant` names one variant: give one exporter, or drop it")
    spec = {"source": str(path), "scale": t.get("scale"), "label": t.get("label")}
    if "recipe" in t:
        recipe = dict(t["recipe"])
        if "weights" in recipe:      # trained elsewhere: the recipe only says how to hold them
            f = (path.parent / recipe["weights"]).resolve()
            if not f.is_file():
                raise HarnessError(f"{where}: recipe weights file {f} not found: fix the path")
            recipe.update(weights=str(f), weights_sha256=hashlib.sha256(f.read_bytes()).hexdigest())
        spec.update(kind="recipe", recipe=recipe)
        n_features, task, cls, has_labels = _recipe_shape(where, t["recipe"])
        model = t["recipe"]["dataset"]
    else:
        spec.update(kind="files", **_files(path, where, t))
        est = load_estimator(Path(spec["estimator"]))
        X, y = load_test_data(Path(spec["test_data"]), spec["label"], where)
        n_features, cls = X.shape[1], type(est).__name__
        expected = getattr(est, "n_features_in_", n_features)
        if expected != n_features:
            raise HarnessError(f"{where}: the estimator takes {expected} features but {spec['test_data']} "
                               f"has {n_features} columns: give the test data the training features")
        task = "regression" if _is_regressor(est) else "classification"
        has_labels = y is not None
        model = name
    spec.update(estimator_class=cls, has_labels=has_labels)
    out_dtype = "float32" if task == "regression" else "int16"
    variants = []
    for e in exporters:
        if e == TFLITE_EXPORTER:
            raise HarnessError(f"{where}: {e} exports a .tflite model: give tflite = \"FILE\" "
                               "instead of an estimator")
        vname = t.get("variant", f"{name}_{e}")
        desc = t.get("description", f"{cls}, {dtype} features")
        desc += f" ({e})" if len(exporters) > 1 or "description" not in t else ""
        variants.append(ModelVariant(vname, model, e, desc, n_features, dtype, 1, out_dtype,
                                     dtype != "float32", task=task, spec=dict(spec)))
    return variants


TFLITE_EXPORTER = "tinyhil-int8"
TFLITE_DTYPES = {"INT8": "int8", "FLOAT32": "float32"}


def _tflite_model(path: Path, where: str, name: str, t: dict, exporters: list) -> list[ModelVariant]:
    """A TensorFlow Lite model: one variant, <name>_int8, exported by tinyhil-int8."""
    if exporters not in ([], [TFLITE_EXPORTER]):
        raise HarnessError(f"{where}: a tflite model is exported by {TFLITE_EXPORTER} only: "
                           f"drop exporters or write exporters = [\"{TFLITE_EXPORTER}\"]")
    files = _files(path, where, t, ("tflite", "test_data"))
    from harness.int8 import flatbuffer
    try:
        graph = flatbuffer.read(Path(files["tflite"]).read_bytes())
    except HarnessError as exc:
        raise HarnessError(f"{where}: {files['tflite']}: {exc}") from None
    tin, tout = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    dtypes = [TFLITE_DTYPES.get(x.dtype) for x in (tin, tout)]
    if None in dtypes or len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise HarnessError(f"{where}: {Path(files['tflite']).name} has {len(graph.inputs)} input(s) "
                           f"of {tin.dtype} and {len(graph.outputs)} output(s) of {tout.dtype}: "
                           f"{TFLITE_EXPORTER} takes one int8 or float32 input and output")
    X, y = load_test_data(Path(files["test_data"]), t.get("label"), where)
    if X.shape[1] != tin.size:
        raise HarnessError(f"{where}: the model takes {tin.size} inputs {tin.shape} but "
                           f"{Path(files['test_data']).name} has {X.shape[1]} columns: give the "
                           "test data the model's input, flattened")
    spec = {"source": str(path), "kind": "tflite", "label": t.get("label"), **files,
            "estimator_class": "TFLite int8", "has_labels": y is not None}
    vname = t.get("variant", f"{name}_int8")
    desc = t.get("description", f"TFLite int8 model {Path(files['tflite']).name}")
    return [ModelVariant(vname, name, TFLITE_EXPORTER, desc, tin.size, dtypes[0], tout.size,
                         dtypes[1], True, output_kind="scores" if tout.size > 1 else "class",
                         spec=spec)]


def _is_regressor(est) -> bool:
    from sklearn.base import is_regressor
    return is_regressor(est)


def _files(path: Path, where: str, t: dict, keys=("estimator", "test_data")) -> dict:
    """The files a [[model]] names, resolved against the models file, with their digests."""
    out = {}
    for key in keys:
        if key not in t:
            raise HarnessError(f"{where}: no {key}: add {key} = \"FILE\""
                               + (" (or a [model.recipe])" if key == "estimator" else ""))
        f = (path.parent / t[key]).resolve()
        if not f.is_file():
            raise HarnessError(f"{where}: {key} file {f} not found: fix the path (relative to {path.parent})")
        out[key] = str(f)
        out[f"{key}_sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def load_estimator(path: Path):
    """A joblib file is a pickle: loading it runs code, so only files the user names are loaded.
    A skops file is data: it loads scikit-learn's and numpy's own types (skops leaves some, such
    as sklearn.tree._tree.Tree, for the caller to trust) and refuses any other, by name."""
    if path.suffix == ".skops":
        import skops.io as sio
        untrusted = sio.get_untrusted_types(file=path)
        foreign = [t for t in untrusted if t.split(".")[0] not in ("sklearn", "numpy")]
        if foreign:
            raise HarnessError(f"{path} holds types tinyhil does not trust ({', '.join(foreign)}): "
                               "save a scikit-learn estimator, or use joblib if you trust the file")
        return sio.load(path, trusted=untrusted)
    import joblib
    return joblib.load(path)


def load_test_data(path: Path, label: str | None, where: str = ""):
    """(X float64, y or None). npz: arrays X and y (y optional); csv/parquet: label = column."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as d:
            if "X" not in d:
                raise HarnessError(f"{where}: {path} has no array X: save it with np.savez(f, X=X, y=y)")
            return np.asarray(d["X"], np.float64), (np.asarray(d["y"]) if "y" in d else None)
    import pandas as pd
    if path.suffix == ".csv":
        df = pd.read_csv(path)
    elif path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        raise HarnessError(f"{where}: test data {path.name}: use .npz, .csv or .parquet")
    if label is None:
        return df.to_numpy(np.float64), None
    if label not in df.columns:
        raise HarnessError(f"{where}: label column {label!r} is not in {path.name}: fix label = \"...\"")
    return df.drop(columns=[label]).to_numpy(np.float64), df[label].to_numpy()


def _dataset(name: str):
    from sklearn import datasets
    if name not in DATASETS:
        raise HarnessError(f"recipe dataset {name!r}: use one of {', '.join(DATASETS)}")
    return getattr(datasets, f"load_{name}")(return_X_y=True)


def _recipe_shape(where: str, recipe: dict):
    X, y = _dataset(recipe["dataset"])
    cls = recipe["estimator"].rsplit(".", 1)[-1]
    task = "regression" if "Regressor" in cls or recipe["dataset"] == "diabetes" else "classification"
    return X.shape[1], task, cls, True


def train_recipe(recipe: dict):
    """Train a demo model: (fitted estimator, X_test, y_test), features transformed as the
    recipe says (feature_scale, round) before training, so the device sees the same numbers."""
    import importlib
    from sklearn.model_selection import train_test_split
    X, y = _dataset(recipe["dataset"])
    X = X * float(recipe.get("feature_scale", 1.0))
    if recipe.get("round"):
        X = np.round(X)
    module, cls = recipe["estimator"].rsplit(".", 1)
    if not module.startswith("sklearn."):
        raise HarnessError(f"recipe estimator {recipe['estimator']}: name a scikit-learn class")
    est = getattr(importlib.import_module(module), cls)(**recipe.get("params", {}))
    regression = "Regressor" in cls or recipe["dataset"] == "diabetes"
    Xtr, Xte, ytr, yte = train_test_split(X, y, stratify=None if regression else y, **SPLIT)
    if "weights" in recipe:
        return _with_weights(est, recipe["weights"], Xtr, ytr), Xte, yte
    return est.fit(Xtr, ytr), Xte, yte


def _with_weights(est, path: str, X, y):
    """An MLP holding weights trained elsewhere (W0, b0, W1, b1, ... in an npz, Keras' layout:
    inputs x outputs): scikit-learn sets up its shapes with one step of training, then the
    weights are replaced, so predictions are the other network's."""
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    with np.load(path) as d:
        layers = len([k for k in d if k.startswith("W")])
        coefs = [np.asarray(d[f"W{i}"], np.float64) for i in range(layers)]
        intercepts = [np.asarray(d[f"b{i}"], np.float64) for i in range(layers)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.set_params(max_iter=1).fit(X, y)
    if [c.shape for c in est.coefs_] != [c.shape for c in coefs]:
        raise HarnessError(f"weights {path}: layer shapes {[c.shape for c in coefs]} do not match "
                           f"the recipe's {[c.shape for c in est.coefs_]}: fix hidden_layer_sizes")
    est.coefs_, est.intercepts_ = coefs, intercepts
    return est


def choose_scales(X: np.ndarray, dtype: str, scale=None) -> np.ndarray:
    """Per-feature scales for an integer input: the given scale, or the largest power of two
    that keeps the test data's largest |x| inside the type (exact to divide by)."""
    n = X.shape[1]
    if scale is not None:
        s = np.broadcast_to(np.asarray(scale, np.float64), (n,)).copy()
        return s
    peak = np.max(np.abs(X), axis=0) if len(X) else np.zeros(n)
    peak[peak == 0] = 1.0
    return np.exp2(np.floor(np.log2(INT_LIMIT[dtype] / peak)))
