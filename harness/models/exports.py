"""Export a variant: train it (a recipe) or load it (the user's files), generate its code with
a plug-in exporter (harness/exporters/), and run the host reference (reference.py).

Each variant is generated model code (emlearn, m2cgen, micromlgen, or our own for probes) plus a glue file
that implements the ABI of devices/firmware/runtime/tinyhil_model.h. The host reference is
that very C compiled for the host and run on every test vector, so the device is checked
against what the C computes, not against Python's prediction (the two can differ).

model_hash is the SHA-256 of `<name>_model.c` followed by `<name>_glue.c` as written with the
8 hash bytes of tinyhil_model_info set to zero (the glue carries the hash, so it cannot
include itself).

Exports are cached under cache_dir()/models/<name>-<key>; the key hashes the variant, the
library and compiler versions, and the sources of this package, the exporters and the host
driver.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness import paths, tools
from harness.errors import BuildError, ProtocolError
from harness.exporters import NotExportable, get_exporter
from harness.models import modelfile, reference
from harness.models.catalogue import get_variant
from harness.models.variant import ModelVariant
from harness.protocol.wire import DTYPE

__all__ = ["ExportedModel", "NotExportable", "export", "NP_DTYPE"]

# Little endian numpy types for the wire dtypes (host and AVR are both little endian).
NP_DTYPE = reference.NP_DTYPE

SEED = 0  # the probes' vectors


@dataclass
class ExportedModel:
    variant: ModelVariant
    c_sources: list[Path]      # generated model C (or C++: .cpp) + glue C, compiled with the runtime
    include_dirs: list[Path]   # the runtime (tinyhil_model.h), the exporter's headers, the export dir
    model_hash: str            # sha256 hex, see the module docstring
    test_inputs: np.ndarray    # (n, input_count), input dtype
    test_labels: np.ndarray    # (n,) true class index (or target value); zeros when absent
    host_reference: np.ndarray  # (n, output_count), output dtype: the C run on the host
    train_accuracy_python: float  # the Python model's test accuracy (nan: probes, regressors, no labels)
    python_outputs: np.ndarray | None = None  # (n,) the Python model's prediction (class index /
    # value); tflite: (n, outputs) TFLite Micro's outputs
    labels_present: bool = True
    scales: list[float] | None = None  # int inputs: round(feature * scale), per feature
    generated_bytes: int = 0           # size of the generated model source
    second_opinion: np.ndarray | None = None  # tflite: LiteRT's outputs (recorded, not asserted)
    facts: dict = field(default_factory=dict)  # from the exporter: arena bytes, layers, ...

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
        return float(np.mean(self.variant.predicted_class(self.host_reference) == self.test_labels))


# ---------------------------------------------------------------------------- generation

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
    sums = x.sum(axis=1, dtype=np.int64)
    return dict(source=model_c, infer_c=infer_c, suffix=".c", inputs=x, labels=sums,
                python=sums, accuracy=float("nan"), scales=None, include_dirs=[])


def _gen_model(v: ModelVariant) -> dict:
    """The estimator (trained from a recipe, or the user's file), the device inputs, the
    Python model's predictions, and the exporter's code."""
    spec = v.spec
    exporter = get_exporter(v.exporter)
    if spec["kind"] == "tflite":
        return _gen_tflite(v, exporter)
    if spec["kind"] == "recipe":
        est, X, y = modelfile.train_recipe(spec["recipe"])
    else:
        est = modelfile.load_estimator(Path(spec["estimator"]))
        X, y = modelfile.load_test_data(Path(spec["test_data"]), spec.get("label"))
    exporter.check(est)
    scales = None
    if v.input_dtype == "float32":
        inputs = X.astype(np.float32)
    else:
        scales = modelfile.choose_scales(X, v.input_dtype, spec.get("scale"))
        info = np.iinfo(NP_DTYPE[v.input_dtype])
        inputs = np.clip(np.round(X * scales), info.min, info.max).astype(NP_DTYPE[v.input_dtype])
    predicted = est.predict(X)
    if v.task == "regression":
        python = predicted.astype(np.float64)
        labels = np.zeros(len(X)) if y is None else np.asarray(y, np.float64)
        accuracy = float("nan")
    else:  # the C returns the class index: labels and predictions as indices into classes_
        classes = list(est.classes_)
        index = {c: i for i, c in enumerate(classes)}
        python = np.array([index[c] for c in predicted], np.int64)
        labels = (np.zeros(len(X), np.int64) if y is None
                  else np.array([index.get(c, -1) for c in y], np.int64))
        accuracy = float("nan") if y is None else float(np.mean(predicted == y))
    gen = exporter.generate(v, est, scales)
    return dict(_generated(gen), inputs=inputs, labels=labels, python=python, accuracy=accuracy,
                labels_present=y is not None,
                scales=None if scales is None else [float(s) for s in scales])


def _generated(gen) -> dict:
    return dict(source=gen.source, infer_c=gen.infer_c, suffix=gen.suffix,
                include_dirs=[str(d) for d in gen.include_dirs],
                extra_sources=[str(f) for f in gen.extra_sources], facts=gen.facts)


def _gen_tflite(v: ModelVariant, exporter) -> dict:
    """A .tflite: inputs quantised as the model's own QUANTIZE would (int8 input) or kept
    float; the reference model's outputs are TFLite Micro's, LiteRT's are a second opinion."""
    from harness.exporters.tinyhil_int8 import TfliteModel
    from harness.int8 import reference as tflm
    spec = v.spec
    model = TfliteModel(Path(spec["tflite"]).read_bytes(), spec["tflite"])
    exporter.check(model)
    gen = exporter.generate(v, model, None)
    X, y = modelfile.load_test_data(Path(spec["test_data"]), spec.get("label"))
    if v.input_dtype == "float32":
        inputs = X.astype(np.float32)
    elif np.all(X == np.round(X)) and X.min() >= -128 and X.max() <= 127 and gen.facts.get("input_scale") is None:
        inputs = X.astype(np.int8)
    else:
        inputs = tflm.quantize_input(X, gen.facts["input_scale"], gen.facts["input_zero_point"])
    python = tflm.tflm_outputs(model.data, inputs)
    litert = tflm.litert_outputs(model.data, inputs)
    classes = v.predicted_class(python.reshape(len(inputs), -1))
    labels = np.zeros(len(X), np.int64) if y is None else np.asarray(y, np.int64)
    accuracy = float("nan") if y is None else float(np.mean(classes == labels))
    facts = dict(gen.facts, second_opinion="LiteRT (ai-edge-litert)" if litert is not None else None)
    return dict(_generated(gen), facts=facts, inputs=inputs, labels=labels, python=python,
                second_opinion=litert, accuracy=accuracy, labels_present=y is not None, scales=None)


_GENERATORS = {"probe": _gen_checksum, "ml": _gen_model}


def _glue(v: ModelVariant, infer_c: str, hash8: bytes) -> str:
    hash_c = ", ".join(f"0x{b:02x}" for b in hash8)
    return f"""\
/* Generated by harness/models/exports.py: {v.exporter} model -> tinyhil model ABI ({v.model}/{v.name}). */
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


# ------------------------------------------------------------------------------- caching

def _cache_key(v: ModelVariant) -> str:
    from importlib.metadata import PackageNotFoundError, version
    libs = {}
    for lib in ("scikit-learn", "scipy", "numpy", "emlearn", "m2cgen", "micromlgen", "skops",
                "tflite-micro", "ai-edge-litert"):
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:
            libs[lib] = None
    h = hashlib.sha256(json.dumps({
        "variant": asdict(v), "libs": libs, "python": platform.python_version(),
        "cc": tools.find_tool("cc").version,
    }, sort_keys=True, default=str).encode())
    harness_dir = Path(__file__).parent.parent
    for src in (*sorted(Path(__file__).parent.glob("*.py")),
                *sorted((harness_dir / "exporters").glob("*.py")),
                *sorted((harness_dir / "int8").glob("*.py")),
                *sorted((paths.firmware_dir() / "int8").glob("*")),
                reference.driver(), reference.runtime_dir() / "tinyhil_model.h"):
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def _build(v: ModelVariant, out: Path) -> None:
    """Train (or load), generate, compile and run the reference in a scratch folder, then rename
    it into place, so an interrupted or concurrent export never leaves a half-written cache."""
    out.parent.mkdir(parents=True, exist_ok=True)
    gen = _GENERATORS["probe" if v.kind == "probe" else "ml"](v)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model_c, infer_c = gen["source"], gen["infer_c"]
        model_file, glue_file = tmp / f"{v.name}_model{gen['suffix']}", tmp / f"{v.name}_glue.c"
        model_file.write_text(model_c)
        extra = [Path(shutil.copy(f, tmp / Path(f).name)) for f in gen.get("extra_sources", [])]
        digest = hashlib.sha256(model_c.encode() + _glue(v, infer_c, bytes(8)).encode()).hexdigest()
        glue_file.write_text(_glue(v, infer_c, bytes.fromhex(digest[:16])))
        includes = [reference.runtime_dir(), *map(Path, gen["include_dirs"]), out]
        host = reference.host_reference(v, [model_file, glue_file, *extra], tmp,
                                        [*includes[:-1], tmp], gen["inputs"])
        second = gen.get("second_opinion")
        np.savez(tmp / "data.npz", test_inputs=gen["inputs"], test_labels=gen["labels"],
                 host_reference=host, python_outputs=gen["python"],
                 **({} if second is None else {"second_opinion": second}))
        meta = {"model_hash": digest, "train_accuracy_python": float(gen["accuracy"]),
                "c_sources": [model_file.name, glue_file.name, *[f.name for f in extra]],
                "facts": gen.get("facts", {}),
                "include_dirs": gen["include_dirs"], "scales": gen["scales"],
                "labels_present": gen.get("labels_present", True),
                "generated_bytes": len(model_c.encode())}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, out)
        except OSError:  # another process finished first: keep its copy
            if not (out / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export(variant: str | ModelVariant, cache_dir: Path | None = None) -> ExportedModel:
    """Export a variant (or load it from the cache: no retraining, no recompiling). Raises
    NotExportable when its exporter cannot handle its estimator.

    cache_dir holds the `<name>-<key>` folders; default harness.paths.cache_dir()/models."""
    v = variant if isinstance(variant, ModelVariant) else get_variant(variant)
    root = Path(cache_dir) if cache_dir is not None else paths.cache_dir() / "models"
    out = root / f"{v.name}-{_cache_key(v)}"
    if not (out / "meta.json").exists():
        _build(v, out)
    meta = json.loads((out / "meta.json").read_text())
    with np.load(out / "data.npz") as data:
        return ExportedModel(
            variant=v,
            c_sources=[out / f for f in meta["c_sources"]],
            include_dirs=[reference.runtime_dir(), *map(Path, meta["include_dirs"]), out],
            model_hash=meta["model_hash"],
            test_inputs=data["test_inputs"],
            test_labels=data["test_labels"],
            host_reference=data["host_reference"],
            train_accuracy_python=meta["train_accuracy_python"],
            python_outputs=data["python_outputs"],
            second_opinion=data["second_opinion"] if "second_opinion" in data else None,
            facts=meta.get("facts", {}),
            labels_present=meta["labels_present"],
            scales=meta["scales"],
            generated_bytes=meta["generated_bytes"],
        )
