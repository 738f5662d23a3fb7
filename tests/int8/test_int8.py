"""tinyhil-int8: generated C, compiled for the host, must equal TFLite Micro byte for byte.

Needs tflite-micro (the reference interpreter and the .tflite schema): install the `int8`
extra, `pip install -e '.[int8]'` (the `dev` extra includes it). The AVR checks also need
avr-gcc (scripts/setup.sh installs it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="tinyhil-int8 tests need tflite-micro: "
                    "pip install -e '.[int8]' (included in '.[dev]')")

sys.path.insert(0, str(Path(__file__).parent))
import builders  # noqa: E402

from harness.errors import HarnessError  # noqa: E402
from harness.int8 import (SUPPORTED_OPS, UnsupportedModel, examples_dir, flatbuffer,  # noqa: E402
                          generate, host, lower, plan, reference)
from harness.protocol.wire import DTYPE  # noqa: E402

EXAMPLES = ["digits_mlp_int8", "digits_cnn_int8"]


def _assert_bit_exact(m, ours: np.ndarray, ref: np.ndarray):
    ref = np.ascontiguousarray(ref.reshape(ours.shape), ours.dtype)
    bad = np.flatnonzero((ours.view(np.uint8).reshape(len(ours), -1) !=
                          ref.view(np.uint8).reshape(len(ref), -1)).any(axis=1))
    assert bad.size == 0, (f"{m.name}: {bad.size} of {len(ours)} vectors differ from TFLM, first "
                           f"#{bad[0]}: ours {ours[bad[0]]} TFLM {ref[bad[0]]}")


def _inputs(m, n, seed=0):
    rng = np.random.default_rng(seed)
    if m.input_dtype == "int8":
        x = rng.integers(-128, 128, (n, m.input_count)).astype(np.int8)
        x[0], x[1] = -128, 127  # the extremes catch saturation and overflow
    else:
        x = rng.uniform(-3, 3, (n, m.input_count)).astype(np.float32)
        x[0], x[1] = -100.0, 100.0
    return x


@pytest.fixture(scope="module")
def digits():
    d = np.load(examples_dir() / "digits_int8_test.npz")
    return d["X"], d["y"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_model_is_bit_exact_to_tflm(name, digits, tmp_path, record_property):
    buf = (examples_dir() / f"{name}.tflite").read_bytes()
    m = generate(buf, name)
    X, y = digits
    x = reference.quantize_input(X, m.input_scale, m.input_zero_point) if m.input_dtype == "int8" else X
    ours = host.run(m, host.build(m, tmp_path), x)
    _assert_bit_exact(m, ours, reference.tflm_outputs(buf, x))
    accuracy = float(np.mean(ours.argmax(axis=1) == y))
    assert accuracy > 0.93, f"{name}: accuracy {accuracy:.3f} on the digits test split"
    litert = reference.litert_outputs(buf, x)
    if litert is not None:  # a second figure, recorded, not asserted
        agree = float(np.mean((litert.reshape(ours.shape) == ours).all(axis=1)))
        record_property("litert_agreement", agree)
        print(f"{name}: accuracy {accuracy:.4f}, LiteRT agreement {agree:.4f}")


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("build", ["mlp", "cnn", "residual"])
def test_editor_built_model_is_bit_exact_to_tflm(build, seed, tmp_path):
    buf = getattr(builders, build)(seed)
    m = generate(buf, f"{build}{seed}")
    x = _inputs(m, 300, seed)
    ref = reference.tflm_outputs(buf, x)
    # a test where every output saturates would prove little
    assert len(np.unique(ref)) > 10, f"{build}: TFLM gives only {np.unique(ref)}"
    _assert_bit_exact(m, host.run(m, host.build(m, tmp_path), x), ref)


def test_quantize_input_matches_tflite_quantize(tmp_path):
    b = builders.Builder(7)
    x = b.act((1, 64), 0, 0, "FLOAT32")
    buf = b.build(x, b.quantize(x, 0.0627451, -128))
    values = np.concatenate([np.linspace(-10, 30, 4000), np.arange(-2, 20, 0.0313725),
                             [0.0313725, 0.03137255, -0.03137255]]).astype(np.float32)
    X = np.resize(values, (len(values) // 64 + 1, 64)).astype(np.float32)
    ref = reference.tflm_outputs(buf, X)
    assert np.array_equal(reference.quantize_input(X, 0.0627451, -128), ref)
    m = generate(buf, "quant")
    _assert_bit_exact(m, host.run(m, host.build(m, tmp_path), X), ref)


def test_unsupported_operator_is_refused_naming_it_and_the_supported_list():
    with pytest.raises(UnsupportedModel) as e:
        generate(builders.with_tanh(), "tanh")
    msg = str(e.value)
    assert "TANH" in msg and "operator 1" in msg
    assert all(op in msg for op in SUPPORTED_OPS)


def test_unsupported_type_is_refused_naming_it():
    with pytest.raises(UnsupportedModel, match=r"INT16.*expected INT8.*supported operators"):
        generate(builders.int16_activations(), "i16")


def test_bytes_that_are_not_tflite_are_refused():
    with pytest.raises(HarnessError, match="not a .tflite flatbuffer"):
        generate(b"\x00" * 64, "junk")


def test_layer_table_counts_macs_from_shapes():
    m = generate((examples_dir() / "digits_mlp_int8.tflite").read_bytes(), "mlp")
    assert [(l.op, l.macs) for l in m.layers] == [
        ("FULLY_CONNECTED", 64 * 32), ("FULLY_CONNECTED", 32 * 10), ("SOFTMAX", 0)]
    cnn = generate((examples_dir() / "digits_cnn_int8.tflite").read_bytes(), "cnn")
    conv = [l for l in cnn.layers if l.op == "CONV_2D"]
    assert conv[0].macs == 8 * 8 * 8 * 3 * 3 * 1
    assert "SHAPE" not in {l.op for l in cnn.layers}  # Flatten's shape arithmetic was folded


def test_layer_hooks_run_around_every_layer(tmp_path):
    m = generate((examples_dir() / "digits_cnn_int8.tflite").read_bytes(), "cnn")
    hooks = tmp_path / "hooks.c"
    hooks.write_text('#include <stdio.h>\nvoid hook(char c, int i) { fprintf(stderr, "%c%d ", c, i); }\n')
    flags = ("-DTINYHIL_LAYER_BEGIN(i)=hook('B',i)", "-DTINYHIL_LAYER_END(i)=hook('E',i)",
             "-include", str(tmp_path / "hooks.h"))
    (tmp_path / "hooks.h").write_text("void hook(char c, int i);\n")
    exe = host.build(m, tmp_path, flags + (str(hooks),))
    x = np.zeros((1, 64), np.float32).tobytes()
    err = subprocess.run([exe], input=x, capture_output=True).stderr.decode().split()
    assert err == [f"{c}{l.index}" for l in m.layers for c in "BE"]


def test_arena_reuses_memory_without_overlapping_live_tensors():
    buf = (examples_dir() / "digits_cnn_int8.tflite").read_bytes()
    low = lower.lower(flatbuffer.read(buf), "cnn")
    p = plan.plan(low)
    tensors = low.graph.tensors
    live = {}
    for layer in low.layers:
        for t in layer.reads + layer.writes:
            r = t
            while r in low.aliases:
                r = low.aliases[r]
            if p.placements[t].where == "arena":
                a, b = live.get(r, (layer.index, layer.index))
                live[r] = (min(a, layer.index), max(b, layer.index))
    size = {r: tensors[r].size * plan.ITEMSIZE[tensors[r].dtype] for r in live}
    assert p.arena_bytes < sum(size.values())  # memory is reused
    for r in live:
        for q in live:
            if r < q and not (live[r][1] < live[q][0] or live[q][1] < live[r][0]):
                o1, o2 = p.placements[r].offset, p.placements[q].offset
                assert o1 + size[r] <= o2 or o2 + size[q] <= o1, (tensors[r].name, tensors[q].name)


def test_glue_dtype_codes_are_the_wire_codes():
    m = generate(builders.cnn(2), "cnn")
    assert f".input_dtype = {DTYPE['float32']}," in m.glue_c
    assert f".output_dtype = {DTYPE['float32']}," in m.glue_c
    assert generate(builders.mlp(1), "mlp").input_dtype == "int8"


@pytest.mark.skipif(shutil.which("avr-gcc") is None,
                    reason="needs avr-gcc and avr-libc (scripts/setup.sh installs them)")
@pytest.mark.parametrize("name, mcu, flash, ram", [("digits_mlp_int8", "atmega328p", 32768, 2048),
                                                    ("digits_cnn_int8", "atmega2560", 262144, 8192)])
def test_avr_build_keeps_weights_in_flash(name, mcu, flash, ram, tmp_path):
    m = generate((examples_dir() / f"{name}.tflite").read_bytes(), name)
    main = tmp_path / "main.c"
    main.write_text('#include "tinyhil_model.h"\nstatic char in[256], out[64];\n'
                    "int main(void) { return tinyhil_model_infer(in, out); }\n")
    elf = tmp_path / "m.elf"
    subprocess.run(["avr-gcc", "-Os", f"-mmcu={mcu}", "-std=c99", "-Wall", "-Werror",
                    "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections",
                    *[f"-I{d}" for d in m.include_dirs], *map(str, m.c_sources(tmp_path)),
                    str(main), "-o", str(elf), "-lm"], check=True, capture_output=True)
    text, data, bss = map(int, subprocess.run(["avr-size", str(elf)], capture_output=True,
                                              text=True, check=True).stdout.split("\n")[1].split()[:3])
    assert data == 0, f"{data} bytes of .data: constants were copied to RAM"
    assert bss <= m.arena_bytes + 320 + 16  # the arena plus main's buffers
    assert text + data < flash and data + bss < ram
    assert text > m.weight_bytes  # the weights are in the program image
