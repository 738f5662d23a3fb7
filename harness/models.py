"""Model variants: train on scikit-learn's digits (and iris, for the smallest boards), export
to C, and build a host reference.

Each variant is generated model C (emlearn, m2cgen, or our own for probes) plus a glue file
that implements the ABI of devices/firmware/runtime/tinyhil_model.h. The host reference is
that very C compiled for the host and run on every test vector, so the device is checked
against what the C computes, not against Python's prediction (the two can differ).

model_hash is the SHA-256 of `<name>_model.c` followed by `<name>_glue.c` as written with the
8 hash bytes of tinyhil_model_info set to zero (the glue carries the hash, so it cannot
include itself).

Exports are cached under cache_dir()/models/<name>-<key>; the key hashes the variant, the
library and compiler versions, and the sources of this module and the host driver.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness import paths, tools
from harness.errors import BuildError, HarnessError, ProtocolError
from harness.protocol.wire import DTYPE, DTYPE_SIZE

# Little endian numpy types for the wire dtypes (host and AVR are both little endian).
NP_DTYPE = {"int8": "<i1", "uint8": "<u1", "int16": "<i2", "int32": "<i4", "float32": "<f4"}

SPLIT = dict(test_size=0.25, random_state=0)  # plus stratify=y; one split for every variant
SEED = 0                                      # every estimator's random_state


@dataclass(frozen=True)
class ModelVariant:
    name: str              # e.g. "rf_emlearn"
    model: str             # task / data set: "digits", "iris", or "probe"
    exporter: str          # "emlearn", "m2cgen", "tinyhil"
    description: str
    input_count: int
    input_dtype: str       # a harness.protocol.wire.DTYPE name
    output_count: int
    output_dtype: str
    integer_features: bool  # True: the device must agree 100% with the host reference
    kind: str = "ml"       # "ml" or "probe" (protocol test models, not benchmarked by default)

    @property
    def input_bytes(self) -> int:
        return self.input_count * DTYPE_SIZE[self.input_dtype]

    @property
    def output_bytes(self) -> int:
        return self.output_count * DTYPE_SIZE[self.output_dtype]


# Sizes are chosen to be interesting on an Arduino Uno (32 KB flash, 2 KB RAM) and a Mega
# 2560 (256 KB flash, 8 KB RAM); not fitting is a result the harness reports, not an error.
VARIANTS = (
    # 10 trees x depth 8: ~95% on digits, ~21 KB of AVR if/else code and no RAM: fits an Uno.
    ModelVariant("rf_emlearn", "digits", "emlearn",
                 "random forest, 10 trees, max depth 8, inline if/else C, int16 pixels 0..16",
                 64, "int16", 1, "int16", True),
    # One tree, depth 10: ~86%, ~3 KB of code: the small, fast end of the tree models.
    ModelVariant("dtree_emlearn", "digits", "emlearn",
                 "decision tree, max depth 10, inline if/else C, int16 pixels 0..16",
                 64, "int16", 1, "int16", True),
    # 30 trees x depth 10: ~60 KB of Xtensa code, too big for an Uno; made for the ESP32
    # (128 KB of IRAM), where the bigger forest buys a few points of accuracy.
    ModelVariant("rf_large_emlearn", "digits", "emlearn",
                 "random forest, 30 trees, max depth 10, inline if/else C, int16 pixels 0..16",
                 64, "int16", 1, "int16", True),
    # m2cgen's C grows fast (a 10-tree forest is ~300 KB of source), so 5 trees x depth 6
    # (~61 KB of C, ~14 KB of AVR code). Every leaf is a double[10] compound literal, which
    # avr-gcc keeps in RAM (~5 KB): a Mega, not an Uno. Not integer: the probabilities are
    # summed in double, which is 32-bit float on AVR, so a close vote may differ.
    ModelVariant("rf_m2cgen", "digits", "m2cgen",
                 "random forest, 5 trees, max depth 6, m2cgen C (double), float32 pixels 0..16",
                 64, "float32", 1, "int16", False),
    # 64-16-10 float MLP (emlearn's loadable form): 4.9 KB of const float weights, which
    # avr-gcc keeps in RAM, plus 512 B of buffers: a Mega (8 KB), not an Uno. Inputs are
    # pixels / 16, exact in float32; float math (expf) may round differently on AVR.
    ModelVariant("mlp_emlearn", "digits", "emlearn",
                 "MLP 64-16-10 (ReLU, softmax), emlearn loadable float, float32 pixels / 16",
                 64, "float32", 1, "int16", False),
    # Made for the ATtiny85 (8 KB flash, 512 B RAM): iris, 4 features, 3 classes. The features
    # are the measurements in mm (cm x 10: integers, so the int16 C is exact): an 8-byte vector
    # fits one INFER frame of the smallest max_payload.
    ModelVariant("dtree_iris", "iris", "emlearn",
                 "decision tree, max depth 5, inline if/else C, int16 features in mm",
                 4, "int16", 1, "int16", True),
    ModelVariant("rf_iris", "iris", "emlearn",
                 "random forest, 5 trees, max depth 4, inline if/else C, int16 features in mm",
                 4, "int16", 1, "int16", True),
    # Probes: known answers (sum of the input bytes) for testing and timing the protocol.
    # 64 bytes: more than one INFER frame carries at the smallest max_payload (60 B of vector),
    # so it goes in LOAD chunks, and still fits the ATtiny85's 512 B of RAM.
    ModelVariant("checksum_64", "probe", "tinyhil", "sum of 64 input bytes",
                 64, "uint8", 1, "int32", True, kind="probe"),
    ModelVariant("checksum_128", "probe", "tinyhil", "sum of 128 input bytes",
                 128, "uint8", 1, "int32", True, kind="probe"),
    ModelVariant("checksum_2048", "probe", "tinyhil", "sum of 2048 input bytes",
                 2048, "uint8", 1, "int32", True, kind="probe"),
)


def list_variants(include_probes: bool = False) -> list[ModelVariant]:
    return [v for v in VARIANTS if include_probes or v.kind != "probe"]


def get_variant(name: str) -> ModelVariant:
    for v in VARIANTS:
        if v.name == name:
            return v
    known = ", ".join(v.name for v in VARIANTS)
    raise HarnessError(f"unknown model variant {name!r}; known variants: {known}")


@dataclass
class ExportedModel:
    variant: ModelVariant
    c_sources: list[Path]      # generated model C + glue C, compiled with the DUT runtime
    include_dirs: list[Path]   # the runtime (tinyhil_model.h), emlearn's headers, the export dir
    model_hash: str            # sha256 hex, see the module docstring
    test_inputs: np.ndarray    # (n, input_count), input dtype
    test_labels: np.ndarray    # (n,) true class, or the expected sum for probes
    host_reference: np.ndarray  # (n, output_count), output dtype: the C run on the host
    train_accuracy_python: float  # scikit-learn's test accuracy (nan for probes)

    def vector_bytes(self, i: int) -> bytes:
        return np.ascontiguousarray(self.test_inputs[i], NP_DTYPE[self.variant.input_dtype]).tobytes()

    def decode_output(self, raw: bytes) -> np.ndarray:
        v = self.variant
        if len(raw) != v.output_bytes:
            raise ProtocolError(f"{v.name}: output is {len(raw)} bytes, expected {v.output_bytes} "
                                f"({v.output_count} x {v.output_dtype})")
        return np.frombuffer(raw, NP_DTYPE[v.output_dtype]).copy()

    @property
    def host_accuracy(self) -> float:
        """Accuracy of the host reference on the test labels (probes: fraction of right sums)."""
        return float(np.mean(self.host_reference[:, 0] == self.test_labels))


# ---------------------------------------------------------------------------- generation

def _lib(name: str):
    """Import an exporter library, saying how to install it if it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as e:  # emlearn on Python 3.12+ also needs setuptools
        raise HarnessError(f"cannot import {name} ({e}): install it with "
                           f"`pip install {name} setuptools`") from e


@contextlib.contextmanager
def _scratch_cwd():
    """emlearn's MLP convert compiles a test binary into ./tmp of the current directory at
    once; run it in a throwaway directory so it never litters the user's working tree."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="tinyhil-emlearn-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(old)


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)  # 1797 x 64 pixels, integers 0..16 stored as float64
    return train_test_split(X, y, stratify=y, **SPLIT)


def _iris():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split
    X, y = load_iris(return_X_y=True)   # 150 x 4 measurements in cm, one decimal
    return train_test_split(np.round(X * 10), y, stratify=y, **SPLIT)


def _integer_thresholds(estimator):
    """A copy whose split thresholds emlearn's int16 code generation keeps exact.

    emlearn writes `if (features[f] < (int)threshold)`, truncating scikit-learn's
    `x <= 0.5` into `x < 0` (never true): that costs the forest ~10 points of accuracy.
    For integer x, `x <= t` is `x < floor(t) + 1`, which survives the truncation.
    """
    est = copy.deepcopy(estimator)
    for tree in getattr(est, "estimators_", [est]):
        t = tree.tree_
        split = t.children_left != -1
        t.threshold[split] = np.floor(t.threshold[split]) + 1  # a view: edits the tree
    return est


def _gen_emlearn_tree(v: ModelVariant, estimator, data=_digits):
    emlearn = _lib("emlearn")
    Xtr, Xte, ytr, yte = data()
    estimator.fit(Xtr, ytr)
    # method="inline": if/else code, thresholds as immediates, so the trees live in flash.
    # ("loadable" makes const node tables, which avr-gcc copies to RAM without PROGMEM.)
    # leaf_bits default 0 = hard majority vote; scikit-learn averages probabilities, so the
    # C may pick another class on close votes (ties go to the lowest class index).
    c = emlearn.convert(_integer_thresholds(estimator), method="inline", dtype="int16_t")
    model_c = c.save(name=v.name, include_proba=False)
    infer_c = f"""\
int32_t {v.name}_predict(const int16_t *features, int32_t features_length);

int tinyhil_model_infer(const void *input, void *output)
{{
    const int16_t cls = (int16_t){v.name}_predict((const int16_t *)input, {v.input_count});
    memcpy(output, &cls, sizeof cls);
    return cls < 0;  /* emlearn returns -1 if no class got a vote */
}}
"""
    return model_c, infer_c, Xte.astype(np.int16), yte, estimator.score(Xte, yte)


def _gen_rf_emlearn(v):
    from sklearn.ensemble import RandomForestClassifier
    return _gen_emlearn_tree(v, RandomForestClassifier(n_estimators=10, max_depth=8, random_state=SEED))


def _gen_rf_large_emlearn(v):
    from sklearn.ensemble import RandomForestClassifier
    return _gen_emlearn_tree(v, RandomForestClassifier(n_estimators=30, max_depth=10, random_state=SEED))


def _gen_dtree_emlearn(v):
    from sklearn.tree import DecisionTreeClassifier
    return _gen_emlearn_tree(v, DecisionTreeClassifier(max_depth=10, random_state=SEED))


def _gen_dtree_iris(v):
    from sklearn.tree import DecisionTreeClassifier
    return _gen_emlearn_tree(v, DecisionTreeClassifier(max_depth=5, random_state=SEED), _iris)


def _gen_rf_iris(v):
    from sklearn.ensemble import RandomForestClassifier
    return _gen_emlearn_tree(v, RandomForestClassifier(n_estimators=5, max_depth=4, random_state=SEED),
                             _iris)


def _gen_rf_m2cgen(v):
    from sklearn.ensemble import RandomForestClassifier
    m2cgen = _lib("m2cgen")
    Xtr, Xte, ytr, yte = _digits()
    rf = RandomForestClassifier(n_estimators=5, max_depth=6, random_state=SEED).fit(Xtr, ytr)
    # m2cgen: `void <fn>(double *input, double *output)` writing class probabilities; it also
    # defines global helpers add_vectors/mul_vector_number, so one m2cgen model per firmware.
    model_c = m2cgen.export_to_c(rf, function_name=f"{v.name}_score")
    infer_c = f"""\
void {v.name}_score(double *input, double *output);

int tinyhil_model_infer(const void *input, void *output)
{{
    /* m2cgen wants double; widen (on AVR double is float, so this is a plain copy) */
    const float *x = (const float *)input;
    double features[{v.input_count}], proba[10];
    for (uint16_t i = 0; i < {v.input_count}; i++)
        features[i] = x[i];
    {v.name}_score(features, proba);
    int16_t cls = 0;  /* argmax, first maximum wins like scikit-learn's predict */
    for (int16_t i = 1; i < 10; i++)
        if (proba[i] > proba[cls])
            cls = i;
    memcpy(output, &cls, sizeof cls);
    return 0;
}}
"""
    return model_c, infer_c, Xte.astype(np.float32), yte, rf.score(Xte, yte)


def _gen_mlp_emlearn(v):
    from sklearn.neural_network import MLPClassifier
    emlearn = _lib("emlearn")
    Xtr, Xte, ytr, yte = _digits()
    # Scale to 0..1 for training; k/16 is exact in float32, so host and device see the same.
    mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=1000, random_state=SEED)
    mlp.fit(Xtr / 16.0, ytr)
    # Only the loadable float MLP works in emlearn 0.23.2 (inline and fixed point fail).
    with _scratch_cwd():
        model_c = emlearn.convert(mlp, method="loadable").save(name=v.name)
    infer_c = f"""\
int32_t {v.name}_predict(const float *features, int32_t n_features);

int tinyhil_model_infer(const void *input, void *output)
{{
    const int16_t cls = (int16_t){v.name}_predict((const float *)input, {v.input_count});
    memcpy(output, &cls, sizeof cls);
    return cls < 0;  /* emlearn returns a negative EmlError on failure */
}}
"""
    return model_c, infer_c, (Xte / 16.0).astype(np.float32), yte, mlp.score(Xte / 16.0, yte)


def _gen_checksum(v):
    # Deterministic vectors, plus the extremes (all 0, all 255) to catch overflow.
    rng = np.random.default_rng(SEED)
    x = rng.integers(0, 256, size=(16, v.input_count), dtype=np.uint8)
    x[0], x[1] = 0, 255
    model_c = f"""\
/* tinyhil probe: sum of the input bytes (uint32 accumulator: int is 16-bit on AVR) */
#include <stdint.h>

int32_t {v.name}_sum(const uint8_t *data)
{{
    uint32_t sum = 0;
    for (uint16_t i = 0; i < {v.input_count}; i++)
        sum += data[i];
    return (int32_t)sum;
}}
"""
    infer_c = f"""\
int32_t {v.name}_sum(const uint8_t *data);

int tinyhil_model_infer(const void *input, void *output)
{{
    const int32_t sum = {v.name}_sum((const uint8_t *)input);
    memcpy(output, &sum, sizeof sum);
    return 0;
}}
"""
    return model_c, infer_c, x, x.sum(axis=1, dtype=np.int64), float("nan")


_GENERATORS = {
    "rf_emlearn": _gen_rf_emlearn,
    "dtree_emlearn": _gen_dtree_emlearn,
    "rf_large_emlearn": _gen_rf_large_emlearn,
    "rf_m2cgen": _gen_rf_m2cgen,
    "mlp_emlearn": _gen_mlp_emlearn,
    "dtree_iris": _gen_dtree_iris,
    "rf_iris": _gen_rf_iris,
    "checksum_64": _gen_checksum,
    "checksum_128": _gen_checksum,
    "checksum_2048": _gen_checksum,
}


def _glue(v: ModelVariant, infer_c: str, hash8: bytes) -> str:
    hash_c = ", ".join(f"0x{b:02x}" for b in hash8)
    return f"""\
/* Generated by harness/models.py: {v.exporter} model -> tinyhil model ABI ({v.model}/{v.name}). */
#include <stdint.h>
#include <string.h>

#include "tinyhil_model.h"

{infer_c}
/* dtype codes are harness/wire.py DTYPE (TINYHIL_DTYPE_* in tinyhil_wire.h) */
const tinyhil_model_info_t tinyhil_model_info = {{
    .id = "{v.model}/{v.name}",
    .hash = {{{hash_c}}},
    .input_count = {v.input_count},
    .input_dtype = {DTYPE[v.input_dtype]},  /* {v.input_dtype} */
    .output_count = {v.output_count},
    .output_dtype = {DTYPE[v.output_dtype]},  /* {v.output_dtype} */
}};
"""


# ------------------------------------------------------------------------ host reference

def _runtime_dir() -> Path:
    return paths.firmware_dir() / "runtime"


def _driver() -> Path:
    return paths.firmware_dir() / "host_reference" / "reference_main.c"


def _include_dirs(v: ModelVariant, export_dir: Path) -> list[Path]:
    dirs = [_runtime_dir()]
    if v.exporter == "emlearn":
        dirs.append(Path(_lib("emlearn").includedir))
    return dirs + [export_dir]


def _run(cmd: list, what: str, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, **kw)
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace")[-2000:]
        raise BuildError(f"{what} failed (exit {r.returncode}):\n{err}")
    return r


def _host_reference(v: ModelVariant, sources: list[Path], export_dir: Path,
                    inputs: np.ndarray) -> np.ndarray:
    cc = tools.require("cc", "to compile the host reference")
    exe = export_dir / "host_reference"
    incs = [f"-I{d}" for d in _include_dirs(v, export_dir)]
    _run([cc, "-O2", "-std=c99", *incs, *sources, _driver(), "-o", exe, "-lm"],
         f"compiling the host reference for {v.name}")
    stdin = np.ascontiguousarray(inputs, NP_DTYPE[v.input_dtype]).tobytes()
    out = _run([exe], f"running the host reference for {v.name}", input=stdin).stdout
    if len(out) != len(inputs) * v.output_bytes:
        raise BuildError(f"host reference for {v.name} wrote {len(out)} bytes, "
                         f"expected {len(inputs) * v.output_bytes}")
    return np.frombuffer(out, NP_DTYPE[v.output_dtype]).reshape(len(inputs), v.output_count)


# ------------------------------------------------------------------------------- caching

def _cache_key(v: ModelVariant) -> str:
    from importlib.metadata import PackageNotFoundError, version
    libs = {}
    for lib in ("scikit-learn", "scipy", "numpy", "emlearn", "m2cgen"):
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:
            libs[lib] = None
    h = hashlib.sha256(json.dumps({
        "variant": asdict(v), "libs": libs, "python": platform.python_version(),
        "cc": tools.find_tool("cc").version,
    }, sort_keys=True).encode())
    for src in (Path(__file__), _driver(), _runtime_dir() / "tinyhil_model.h"):
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def _build(v: ModelVariant, out: Path) -> None:
    """Train, generate, compile and run the reference in a scratch folder, then rename it
    into place, so an interrupted or concurrent export never leaves a half-written cache."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model_c, infer_c, inputs, labels, accuracy = _GENERATORS[v.name](v)
        model_file, glue_file = tmp / f"{v.name}_model.c", tmp / f"{v.name}_glue.c"
        model_file.write_text(model_c)
        digest = hashlib.sha256(model_c.encode() + _glue(v, infer_c, bytes(8)).encode()).hexdigest()
        glue_file.write_text(_glue(v, infer_c, bytes.fromhex(digest[:16])))
        reference = _host_reference(v, [model_file, glue_file], tmp, inputs)
        np.savez(tmp / "data.npz", test_inputs=inputs, test_labels=np.asarray(labels, np.int64),
                 host_reference=reference)
        meta = {"model_hash": digest, "train_accuracy_python": float(accuracy),
                "c_sources": [model_file.name, glue_file.name]}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, out)
        except OSError:  # another process finished first: keep its copy
            if not (out / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export(name: str, cache_dir: Path | None = None) -> ExportedModel:
    """Export a variant (or load it from the cache: no retraining, no recompiling).

    cache_dir holds the `<name>-<key>` folders; default harness.paths.cache_dir()/models."""
    v = get_variant(name)
    root = Path(cache_dir) if cache_dir is not None else paths.cache_dir() / "models"
    out = root / f"{v.name}-{_cache_key(v)}"
    if not (out / "meta.json").exists():
        _build(v, out)
    meta = json.loads((out / "meta.json").read_text())
    with np.load(out / "data.npz") as data:
        return ExportedModel(
            variant=v,
            c_sources=[out / f for f in meta["c_sources"]],
            include_dirs=_include_dirs(v, out),
            model_hash=meta["model_hash"],
            test_inputs=data["test_inputs"],
            test_labels=data["test_labels"],
            host_reference=data["host_reference"],
            train_accuracy_python=meta["train_accuracy_python"],
        )
