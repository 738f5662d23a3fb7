"""Package the DUT runtime as an Arduino library (also a PlatformIO library: library.json).

`tinyhil export-library DEST` writes DEST/TinyHIL/: library.properties, library.json,
src/ (the portable runtime from devices/firmware/runtime plus the Arduino port) and an
example sketch. Copy it into your sketchbook's libraries/ folder or a PlatformIO project's
lib/ folder; the runtime is copied, so the library is self-contained.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.paths import firmware_dir

RUNTIME = ("tinyhil_dut.c", "tinyhil_dut.h", "tinyhil_model.h", "tinyhil_port.h", "tinyhil_wire.h",
           "tinyhil_crc.h")
PORT = Path("ports") / "arduino"


def export_library(dest: Path) -> Path:
    fw = firmware_dir()
    lib = Path(dest) / "TinyHIL"
    if lib.exists():
        shutil.rmtree(lib)
    (lib / "src").mkdir(parents=True)
    for name in RUNTIME:
        shutil.copy2(fw / "runtime" / name, lib / "src" / name)
    for name in ("TinyHIL.h", "port_arduino.cpp"):
        shutil.copy2(fw / PORT / name, lib / "src" / name)
    for name in ("library.properties", "library.json"):
        shutil.copy2(fw / PORT / name, lib / name)
    shutil.copytree(fw / PORT / "examples", lib / "examples")
    return lib
