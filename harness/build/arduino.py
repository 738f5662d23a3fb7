"""Compile an Arduino sketch with Debian's arduino-builder and Arduino AVR core (no IDE, no
downloads). Used to test users' own firmware (`--firmware`) for real: a sketch that links the
TinyHIL library, built the way an Arduino user builds it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from harness.tools import run_tool
from harness.errors import BuildError, ToolMissing

ARDUINO_HARDWARE = Path("/usr/share/arduino/hardware/arduino")
BUILDER_PLATFORM = Path("/usr/share/arduino-builder/platform.txt")


def arduino_builder_missing() -> str:
    """Why sketches cannot be built here ('' when they can)."""
    if not shutil.which("arduino-builder") or not BUILDER_PLATFORM.exists():
        return "arduino-builder is not installed (sudo apt-get install arduino-builder arduino-ctags)"
    if not (ARDUINO_HARDWARE / "avr" / "boards.txt").exists():
        return "Debian's Arduino AVR core is not installed (sudo apt-get install arduino-core-avr)"
    return ""


def build_sketch(sketch: Path, libraries: Path, fqbn: str, build_dir: Path,
                 c_flags: list[str] = ()) -> Path:
    """Build `sketch` (a .ino in its own folder) and return the ELF."""
    missing = arduino_builder_missing()
    if missing:
        raise ToolMissing(missing)
    work = Path(tempfile.mkdtemp(prefix="tinyhil-arduino-"))
    try:
        # arduino-builder wants the builder's own platform.txt (ctags) at the hardware root.
        hardware = work / "hardware"
        hardware.mkdir()
        shutil.copy2(BUILDER_PLATFORM, hardware / "platform.txt")
        (hardware / "arduino").symlink_to(ARDUINO_HARDWARE)
        (work / "tools").mkdir()
        build_dir.mkdir(parents=True, exist_ok=True)
        # Debian's core 1.8.7 uses DECIMAL_DIG, which avr-g++ 7 leaves undefined in gnu++11.
        cmd = ["arduino-builder", "-compile", "-hardware", str(hardware), "-tools", str(work / "tools"),
               "-libraries", str(libraries), "-fqbn", fqbn, "-build-path", str(build_dir),
               "-prefs=compiler.cpp.extra_flags=-DDECIMAL_DIG=17",
               f"-prefs=compiler.c.extra_flags={' '.join(c_flags)}", str(sketch)]
        run = run_tool(cmd, timeout=600)
        elf = build_dir / f"{sketch.name}.elf"
        if run.returncode != 0 or not elf.exists():
            raise BuildError(f"arduino-builder failed: {' '.join(cmd)}\n{(run.stdout + run.stderr)[-2000:]}")
        return elf
    finally:
        shutil.rmtree(work, ignore_errors=True)
