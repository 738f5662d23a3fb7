"""harness.models: every variant exports, its host reference is sane, the cache holds, and
its C compiles for AVR."""

import hashlib
import re
import subprocess

import numpy as np
import pytest

from harness import models, paths, tools
from harness.errors import HarnessError

ALL = [v.name for v in models.list_variants(include_probes=True)]
ML = [v.name for v in models.list_variants()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def exported(cache):
    return {name: models.export(name, cache) for name in ALL}


def test_variant_list():
    assert {"rf_emlearn", "dtree_emlearn", "rf_m2cgen", "mlp_emlearn"} <= set(ML)
    assert "checksum_128" not in ML and {"checksum_128", "checksum_2048"} <= set(ALL)
    for v in models.list_variants(include_probes=True):
        if v.output_kind == "scores":      # a TFLite classifier: one score per class
            assert v.output_count == 10 and v.output_dtype == "int8"
        else:
            assert v.output_count == 1
            assert v.output_dtype == ("int32" if v.kind == "probe" else "int16")


def test_unknown_variant_names_the_known_ones(cache):
    with pytest.raises(HarnessError, match="unknown model variant 'nope'.*rf_emlearn"):
        models.get_variant("nope")
    with pytest.raises(HarnessError, match="rf_emlearn"):
        models.export("nope", cache)


@pytest.mark.parametrize("name", ALL)
def test_export_shapes(exported, name):
    m = exported[name]
    v = m.variant
    n = len(m.test_inputs)
    assert n > 0 and m.test_inputs.shape == (n, v.input_count)
    assert m.test_inputs.dtype == np.dtype(models.NP_DTYPE[v.input_dtype])
    assert m.test_labels.shape == (n,)
    assert m.host_reference.shape == (n, v.output_count)
    assert all(p.is_file() for p in m.c_sources) and all(d.is_dir() for d in m.include_dirs)
    assert len(m.vector_bytes(0)) == v.input_bytes
    raw = m.host_reference[0].astype(models.NP_DTYPE[v.output_dtype]).tobytes()
    assert np.array_equal(m.decode_output(raw), m.host_reference[0])
    with pytest.raises(HarnessError):
        m.decode_output(raw + b"\0")


@pytest.mark.parametrize("name", ALL)
def test_hash_and_info(exported, name):
    m = exported[name]
    model_c, glue_c = (p.read_text() for p in m.c_sources[:2])   # then any kernels (int8)
    hash_bytes = re.search(r"\.hash = \{([^}]*)\}", glue_c).group(1)
    assert hash_bytes.replace("0x", "").replace(", ", "") == m.model_hash[:16]
    zeroed = glue_c.replace(hash_bytes, ", ".join(["0x00"] * 8))
    assert hashlib.sha256((model_c + zeroed).encode()).hexdigest() == m.model_hash
    # the compiled glue reports what the variant says
    exe = m.c_sources[0].parent / "host_reference"
    info = subprocess.run([exe, "--info"], capture_output=True, text=True, check=True).stdout.split()
    v = m.variant
    assert info == [f"{v.model}/{v.name}", m.model_hash[:16], str(v.input_count),
                    str(models.DTYPE[v.input_dtype]), str(v.output_count),
                    str(models.DTYPE[v.output_dtype])]


@pytest.mark.parametrize("name", ML)
def test_host_reference_accuracy(exported, name):
    m = exported[name]
    assert m.host_accuracy > 0.8
    assert 0.8 < m.train_accuracy_python <= 1.0
    # the C may disagree with scikit-learn on a few close votes, not on many
    assert abs(m.host_accuracy - m.train_accuracy_python) < 0.05


@pytest.mark.parametrize("name", ["checksum_128", "checksum_2048"])
def test_probe_is_the_byte_sum(exported, name):
    m = exported[name]
    sums = m.test_inputs.sum(axis=1, dtype=np.int64)
    assert np.array_equal(m.host_reference[:, 0], sums)
    assert np.array_equal(m.test_labels, sums)
    assert sums.max() == 255 * m.variant.input_count  # the all-0xFF vector is included


def test_cache_is_reused(exported, cache, monkeypatch):
    files = sorted(p for p in cache.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    # a cache hit must not train or compile: make both impossible
    from harness.models import exports, reference
    monkeypatch.setattr(exports, "_GENERATORS", {})
    monkeypatch.setattr(reference, "host_reference", None)
    for name in ALL:
        again = models.export(name, cache)
        assert again.model_hash == exported[name].model_hash
        assert again.c_sources == exported[name].c_sources
        assert np.array_equal(again.host_reference, exported[name].host_reference)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("name", ALL)
def test_compiles_for_avr(exported, name, tmp_path):
    avr_gcc = tools.find_tool("avr-gcc")
    if not avr_gcc.found:
        pytest.skip(f"avr-gcc is not installed: `{avr_gcc.install}`")
    m = exported[name]
    incs = [f"-I{d}" for d in m.include_dirs]
    shim = paths.firmware_dir() / "runtime" / "cxx_shim"   # avr-libc has no C++ headers
    for src in m.c_sources:
        lang = ([tools.require("avr-g++", "to compile C++ for AVR"), *models.CXX_FLAGS, f"-I{shim}"]
                if src.suffix == ".cpp" else [avr_gcc.path, "-std=gnu99"])
        r = subprocess.run([*lang, "-Os", "-mmcu=atmega328p", "-Wall", "-c",
                            src, *incs, "-o", tmp_path / (src.stem + ".o")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        if src.name.endswith("_glue.c"):  # ours must be warning-free (emlearn's headers aren't)
            assert r.stderr == "", r.stderr


def test_export_leaves_the_working_directory_alone(tmp_path, monkeypatch):
    # emlearn's MLP convert compiles into ./tmp of the current directory unless redirected
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    models.export("mlp_emlearn", tmp_path / "cache")
    assert list(cwd.iterdir()) == []
