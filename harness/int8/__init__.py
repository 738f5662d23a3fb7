"""tinyhil-int8: TensorFlow Lite int8 models as self-contained C, bit-exact to TFLite Micro.

    from harness.int8 import generate
    m = generate(open("digits_mlp_int8.tflite", "rb").read(), "digits_mlp_int8")
    m.write(out_dir)          # <name>_model.c, <name>_glue.c
    m.c_sources(out_dir), m.include_dirs   # add tinyhil_int8.c and its folder to the build

The pipeline: flatbuffer.read -> lower.lower (checks, folding, quantisation maths) ->
plan.plan (arena offsets) -> codegen (C text).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from harness.int8 import codegen, flatbuffer, lower, plan
from harness.int8.lower import FOLDED_OPS, SUPPORTED_OPS, UnsupportedModel  # noqa: F401

EXPORTER = "tinyhil-int8"
DTYPE_NAMES = {"INT8": "int8", "FLOAT32": "float32"}
_WIRE_CODES = {"int8": 1, "float32": 5}  # harness/wire.py DTYPE (checked by the tests)


def kernels_dir() -> Path:
    """devices/firmware/int8 (tinyhil_int8.c / .h), in the source tree or the installed wheel."""
    from harness import paths
    return paths.firmware_dir() / "int8"


@dataclass
class LayerInfo:
    index: int       # generated layer, the argument of TINYHIL_LAYER_BEGIN/END
    op: str          # TFLite operator
    op_index: int    # its index in the .tflite
    macs: int        # multiply-accumulates, from the shapes (0 for non-MAC layers)


@dataclass
class GeneratedModel:
    name: str
    model_c: str
    glue_c: str
    model_hash: str          # sha256 hex of model C + glue C with a zero hash
    input_count: int
    input_dtype: str         # "int8" or "float32"
    input_shape: tuple
    input_scale: float | None
    input_zero_point: int | None
    output_count: int
    output_dtype: str
    output_shape: tuple
    output_scale: float | None
    output_zero_point: int | None
    arena_bytes: int         # the model's RAM (plus the kernels' stack)
    weight_bytes: int        # flash constants: weights, biases, multipliers, shifts
    layers: list[LayerInfo]

    def write(self, out_dir: Path) -> list[Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        files = [out_dir / f"{self.name}_model.c", out_dir / f"{self.name}_glue.c"]
        files[0].write_text(self.model_c)
        files[1].write_text(self.glue_c)
        return files

    def c_sources(self, out_dir: Path) -> list[Path]:
        """Write the generated C; return it with the kernels' source: everything to compile."""
        return self.write(out_dir) + [kernels_dir() / "tinyhil_int8.c"]

    @property
    def include_dirs(self) -> list[Path]:
        return [kernels_dir(), kernels_dir().parent / "runtime"]


def generate(tflite_bytes: bytes, name: str, model_id: str | None = None) -> GeneratedModel:
    """Generate C for an int8 .tflite model; UnsupportedModel names what it cannot handle."""
    if not name.isidentifier():
        raise UnsupportedModel(f"model name {name!r} must be a C identifier (letters, digits, _)")
    graph = flatbuffer.read(tflite_bytes)
    low = lower.lower(graph, name)
    arena = plan.plan(low)
    source = f"{name}.tflite ({len(tflite_bytes)} bytes, sha256 "\
             f"{hashlib.sha256(tflite_bytes).hexdigest()[:16]})"
    model_c = codegen.model_c(low, arena, name, source)
    inp, out = low.input, low.output
    model_id = model_id or f"int8/{name}"

    def glue(hash8):
        return codegen.glue_c(name, model_id, hash8, inp.size, _WIRE_CODES[DTYPE_NAMES[inp.dtype]],
                              out.size, _WIRE_CODES[DTYPE_NAMES[out.dtype]],
                              DTYPE_NAMES[inp.dtype], DTYPE_NAMES[out.dtype])
    digest = hashlib.sha256(model_c.encode() + glue(bytes(8)).encode()).hexdigest()

    def q(t):
        return (t.scale, t.zero_point) if t.dtype == "INT8" else (None, None)
    return GeneratedModel(
        name=name, model_c=model_c, glue_c=glue(bytes.fromhex(digest[:16])), model_hash=digest,
        input_count=inp.size, input_dtype=DTYPE_NAMES[inp.dtype], input_shape=inp.shape,
        input_scale=q(inp)[0], input_zero_point=q(inp)[1],
        output_count=out.size, output_dtype=DTYPE_NAMES[out.dtype], output_shape=out.shape,
        output_scale=q(out)[0], output_zero_point=q(out)[1],
        arena_bytes=arena.arena_bytes, weight_bytes=sum(c.nbytes for c in low.consts),
        layers=[LayerInfo(l.index, l.op, l.op_index, l.macs) for l in low.layers])


def examples_dir() -> Path:
    """devices/models: the example .tflite files and their test split."""
    return kernels_dir().parent.parent / "models"
