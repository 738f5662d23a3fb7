"""Users' own firmware: an Arduino sketch that uses the exported TinyHIL library, compiled
with Debian's arduino-builder and Arduino AVR core, runs through the unchanged suites on
simavr as a prebuilt firmware (--firmware)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from harness.build.arduino import arduino_builder_missing, build_sketch
from harness.build.arduino_library import export_library
from harness.backends import get_backend
from harness.boards import get_board
from harness.models import export
from harness.paths import REPO_DIR

VARIANT = "dtree_emlearn"


def test_exported_library_layout(tmp_path):
    lib = export_library(tmp_path)
    assert (lib / "library.properties").read_text().startswith("name=TinyHIL")
    manifest = json.loads((lib / "library.json").read_text())
    assert manifest["name"] == "TinyHIL" and manifest["build"]["srcDir"] == "src"
    for name in ("TinyHIL.h", "port_arduino.cpp", "tinyhil_dut.c", "tinyhil_port.h", "tinyhil_wire.h"):
        assert (lib / "src" / name).is_file(), name
    assert (lib / "examples" / "TinyHIL_DUT" / "TinyHIL_DUT.ino").is_file()


@pytest.fixture(scope="module")
def sketch_elf(tmp_path_factory):
    missing = arduino_builder_missing()
    if missing:
        pytest.skip(missing)
    if not get_backend("simavr", get_board("uno")).availability(get_board("uno")).ok:
        pytest.skip(f"simavr cannot run here: {get_backend('simavr', get_board('uno')).availability(get_board('uno'))}")
    import emlearn
    root = tmp_path_factory.mktemp("arduino")
    lib = export_library(root / "libraries")
    sketch = root / "TinyHIL_DUT"
    sketch.mkdir()
    shutil.copy2(lib / "examples" / "TinyHIL_DUT" / "TinyHIL_DUT.ino", sketch)
    exported = export(VARIANT)
    for source in exported.c_sources:                # the model C next to the sketch
        shutil.copy2(source, sketch)
    flags = [f"-I{emlearn.includedir}", '-DTINYHIL_BOARD_NAME="uno"', "-DTINYHIL_CLOCK_HZ=F_CPU"]
    return build_sketch(sketch / "TinyHIL_DUT.ino", root / "libraries", "arduino:avr:uno",
                        root / "build", flags)


def test_arduino_sketch_runs_the_suites_as_prebuilt_firmware(sketch_elf, tmp_path):
    cmd = [sys.executable, "-m", "pytest", str(REPO_DIR / "suites"), "-p", "no:cacheprovider", "-q",
           "--board", "uno", "--backend", "simavr", "--variant", VARIANT, "--firmware", str(sketch_elf),
           "--results-dir", str(tmp_path), "--run-id", "arduino", "--latency-runs", "5"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_DIR, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "arduino" / "records.jsonl").read_text().splitlines()]
    agreement = [r["value"] for r in records if r["metric"] == "agreement"]
    assert agreement == [100.0]
    assert {r["firmware_sha256"] for r in records} == {__import__("hashlib").sha256(
        sketch_elf.read_bytes()).hexdigest()}


def test_firmware_option_needs_one_variant(sketch_elf, tmp_path):
    cmd = [sys.executable, "-m", "pytest", str(REPO_DIR / "suites"), "-p", "no:cacheprovider", "-q",
           "--board", "uno", "--backend", "simavr", "--firmware", str(sketch_elf),
           "--results-dir", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_DIR, timeout=300)
    assert run.returncode != 0 and "--variant" in (run.stdout + run.stderr)


def test_firmware_that_is_not_an_elf_is_refused(tmp_path):
    from harness.errors import HarnessError
    from harness.build.prebuilt import load_prebuilt
    junk = tmp_path / "fw.hex"
    junk.write_text(":00000001FF\n")
    with pytest.raises(HarnessError, match="is not an ELF"):
        load_prebuilt(get_board("uno"), junk, export(VARIANT))
    with pytest.raises(HarnessError, match="does not exist"):
        load_prebuilt(get_board("uno"), tmp_path / "missing.elf", export(VARIANT))
