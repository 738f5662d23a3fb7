"""Optiboot for a simulated Arduino Uno, rebuilt from Debian's arduino-core-avr sources.

The prebuilt optiboot_atmega328.hex in that package is 532 bytes: it overruns the 512-byte boot
section (0x7E00-0x7FFF) and its version bytes land on code. Rebuilding the shipped optiboot.c
with -fno-inline-functions-called-once gives about 500 bytes, which fit. Only the simulator
uses this hex: real boards keep the bootloader they came with.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from harness.errors import BuildError, DoesNotFit, ToolMissing
from harness.paths import cache_dir
from harness.tools import require, run_tool

OPTIBOOT_DIR = Path("/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot")
BOOT_START = 0x7E00          # 512-byte boot section of an ATmega328P (BOOTSZ = 256 words)
VERSION_ADDR = 0x7FFE        # Optiboot keeps its version in the last flash word
FLASH_END = 0x8000

# The Makefile's atmega328 target, plus the flag that makes it fit.
CFLAGS = ("-g", "-Wall", "-Os", "-fno-inline-small-functions", "-fno-split-wide-types",
          "-mshort-calls", "-fno-inline-functions-called-once", "-mmcu=atmega328p")
LDFLAGS = (f"-Wl,--section-start=.text={BOOT_START:#x}",
           f"-Wl,--section-start=.version={VERSION_ADDR:#x}",
           "-Wl,--relax", "-Wl,--gc-sections", "-nostartfiles", "-nostdlib")


def optiboot_source() -> Path:
    source = OPTIBOOT_DIR / "optiboot.c"
    if not source.is_file():
        raise ToolMissing(f"Optiboot's source {source} is missing (needed to simulate an Arduino "
                          "bootloader): install it with `sudo apt-get install arduino-core-avr`")
    return source


def build_optiboot(f_cpu: int = 16_000_000, baud: int = 115200, led_flashes: int = 3) -> Path:
    """Build Optiboot for an ATmega328P into the cache and return the Intel hex path."""
    source = optiboot_source()
    gcc = require("avr-gcc", "to build the Optiboot bootloader")
    objcopy = require("avr-objcopy", "to build the Optiboot bootloader")
    defines = (f"-DF_CPU={f_cpu}L", f"-DBAUD_RATE={baud}", f"-DLED_START_FLASHES={led_flashes}")

    key = hashlib.sha256(source.read_bytes() + repr((CFLAGS, LDFLAGS, defines)).encode())
    out_dir = cache_dir() / "optiboot" / key.hexdigest()[:16]
    hex_path = out_dir / "optiboot_atmega328.hex"
    if hex_path.is_file():
        return hex_path

    out_dir.mkdir(parents=True, exist_ok=True)
    elf = out_dir / f"optiboot.{os.getpid()}.elf"
    _run([str(gcc), *CFLAGS, *defines, f"-I{OPTIBOOT_DIR}", *LDFLAGS, str(source), "-o", str(elf)])
    _check_fits(elf)
    tmp_hex = out_dir / f"optiboot.{os.getpid()}.hex"
    # .version is not an allocated section: without --set-section-flags objcopy leaves it out.
    _run([str(objcopy), "-j", ".text", "-j", ".data", "-j", ".version",
          "--set-section-flags", ".version=alloc,load", "-O", "ihex", str(elf), str(tmp_hex)])
    elf.unlink()
    _drop_start_address(tmp_hex)
    low, high = hex_extent(tmp_hex)
    if low < BOOT_START or high > FLASH_END:
        raise DoesNotFit(f"Optiboot's hex covers {low:#x}-{high:#x}, outside the boot section "
                         f"{BOOT_START:#x}-{FLASH_END:#x}")
    tmp_hex.replace(hex_path)    # atomic: a concurrent build never sees half a file
    return hex_path


def _run(command: list[str]) -> None:
    result = run_tool(command, timeout=120)
    if result.returncode != 0:
        raise BuildError(f"building Optiboot failed: {' '.join(command)}\n{result.stderr[-2000:]}")


def _drop_start_address(hex_path: Path) -> None:
    """Remove the start-address record (type 03): meaningless on an AVR, and simavr's hex
    reader complains about it."""
    lines = [line for line in hex_path.read_text().splitlines() if line[7:9] != "03"]
    hex_path.write_text("\n".join(lines) + "\n")


def _check_fits(elf: Path) -> None:
    """The code must end before the version word; nothing may fall outside the boot section."""
    sizes = _section_sizes(elf)
    text_end = BOOT_START + sizes.get(".text", 0) + sizes.get(".data", 0)
    if text_end > VERSION_ADDR:
        raise DoesNotFit(f"Optiboot built to {text_end - BOOT_START} bytes of code, more than the "
                         f"{VERSION_ADDR - BOOT_START} bytes free in the 512-byte boot section at "
                         f"{BOOT_START:#x}: this avr-gcc inlines differently; try led_flashes=0")


def _section_sizes(elf: Path) -> dict[str, int]:
    from harness.build.elf import sizes
    return sizes(elf)


def hex_extent(hex_path: Path) -> tuple[int, int]:
    """Lowest address and one past the highest address an Intel hex file writes."""
    low, high, base = None, 0, 0
    for line in hex_path.read_text().splitlines():
        if not line.startswith(":"):
            continue
        count, address, kind = int(line[1:3], 16), int(line[3:7], 16), int(line[7:9], 16)
        if kind == 0x02:
            base = int(line[9:13], 16) << 4
        elif kind == 0x04:
            base = int(line[9:13], 16) << 16
        elif kind == 0x00 and count:
            start = base + address
            low = start if low is None else min(low, start)
            high = max(high, start + count)
    return (low or 0, high)
