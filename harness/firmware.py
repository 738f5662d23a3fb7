"""Build the DUT firmware (runtime + port + model variant) for a board, cached by content hash.

The cache key covers every input of the build: sources, headers, compiler and flags. An
unchanged firmware is never rebuilt, and its key is compiled into the firmware as its build
id, so a running DUT can say which build it holds (no needless re-flash either).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.boards import Board
from harness.errors import BuildError
from harness.paths import cache_dir, firmware_dir
from harness.tools import find_tool, require
from harness.wire import DTYPE_SIZE

RUNTIME_SOURCES = ("runtime/tinyhil_dut.c", "runtime/tinyhil_main.c")
PORTS = {"host": "ports/native/port_native.c", "avr": "ports/avr/port_avr.c"}
COMPILERS = {"host": "cc", "avr": "avr-gcc"}
SIZE_TOOLS = {"host": "size", "avr": "avr-size"}
# Linker messages that mean "too big for the memory", not "broken code".
OVERFLOW = re.compile(r"overflowed|will not fit|not within region", re.I)
STACK_FILE = "stack-usage.txt"


@dataclass
class Firmware:
    board: Board
    variant: str
    elf: Path
    hex: Path | None
    build_id: str                 # 16 hex digits, also inside the firmware (IDENTITY)
    sha256: str                   # of the ELF: what the records name
    flash_bytes: int
    ram_bytes: int
    vector_bytes: int
    stack_bytes: int = 0          # upper bound: every function's frame added up (-fstack-usage)
    problems: list[str] = field(default_factory=list)   # why it does not fit, if it doesn't
    compiler: str = ""
    runnable: bool = True         # False when the linker refused it (it does not fit)
    image: Path | None = None     # flash image an uploader writes (ESP32: esptool's app image)
    image_offset: int = 0         # where in flash it goes (ESP32: 0x1000)
    prebuilt: bool = False        # the user's own firmware (--firmware): its build id is its own

    @property
    def fits(self) -> bool:
        return not self.problems


def _arch(board: Board) -> str:
    return "host" if board.arch == "host" else board.arch


def _defines(board: Board, exported, build_id: str) -> list[str]:
    variant = exported.variant
    vector = variant.input_count * DTYPE_SIZE[variant.input_dtype]
    output = variant.output_count * DTYPE_SIZE[variant.output_dtype]
    hex_bytes = ",".join(f"0x{build_id[i:i + 2]}" for i in range(0, 16, 2))
    defines = [
        f'-DTINYHIL_BOARD_NAME="{board.name}"',
        f"-DTINYHIL_CLOCK_HZ={board.clock_hz}UL",
        f"-DTINYHIL_MAX_PAYLOAD={board.max_payload}",
        f"-DTINYHIL_VECTOR_CAPACITY={max(vector, 4)}",
        f"-DTINYHIL_OUTPUT_CAPACITY={max(output, 4)}",
        f"-DTINYHIL_MAX_RUNS={board.max_runs}",
        f"-DTINYHIL_BUILD_ID={hex_bytes}",
        f"-DTINYHIL_FLAGS={1 if board.arch == 'host' else 0}",
    ]
    if board.arch == "avr":
        defines += [f"-DF_CPU={board.clock_hz}UL", f"-DTINYHIL_BAUD={board.baud}UL"]
        if board.marker:
            port, bit = board.marker["port"], board.marker["bit"]
            defines += [f"-DTINYHIL_MARKER_PORT=PORT{port}", f"-DTINYHIL_MARKER_DDR=DDR{port}",
                        f"-DTINYHIL_MARKER_BIT={bit}"]
        defines += _soft_uart_defines(board)
    return defines


def _soft_uart_defines(board: Board) -> list[str]:
    """A board without a UART names its software UART's pins: [soft_uart] tx = "B3", rx = "B4".
    The ATtiny port has port B only, so the pins are bits of port B."""
    pins = board.extra.get("soft_uart")
    if not pins:
        return []
    defines = []
    for role in ("tx", "rx"):
        pin = str(pins.get(role, ""))
        if len(pin) != 2 or pin[0] != "B" or pin[1] not in "01234567":
            raise BuildError(f"[soft_uart] {role} = {pin!r} in {board.source or board.name}: "
                             'name a port B pin, like "B3"')
        defines.append(f"-DTINYHIL_{role.upper()}_BIT={pin[1]}")
    return defines


def _flags(board: Board) -> list[str]:
    common = ["-std=gnu99", "-Wall", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections",
              "-fstack-usage"]
    if board.arch == "avr":
        return ["-Os", f"-mmcu={board.mcu}", *common]
    return ["-O2", *common]


def _sources(board: Board, exported) -> list[Path]:
    fw = firmware_dir()
    return [fw / s for s in RUNTIME_SOURCES] + [fw / port_source(board)] + list(exported.c_sources)


def port_source(board: Board) -> str:
    """The board file may name its own port (`port = "attiny"`: ports/attiny/port_attiny.c);
    else the architecture's."""
    name = board.extra.get("port")
    if name:
        return f"ports/{name}/port_{name}.c"
    return PORTS[_arch(board)]


def _include_dirs(exported) -> list[Path]:
    return [firmware_dir() / "runtime", *exported.include_dirs]


def _content_key(compiler: str, version: str, flags: list[str], files: list[Path],
                 headers: list[Path]) -> str:
    digest = hashlib.sha256()
    for part in (compiler, version, *flags):
        digest.update(part.encode() + b"\0")
    for path in sorted(set(files)) + sorted(set(headers)):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _headers(include_dirs: list[Path]) -> list[Path]:
    found = []
    for directory in include_dirs:
        found += [p for p in Path(directory).rglob("*.h")]
    return found


def section_sizes(elf: Path, arch: str) -> dict[str, int]:
    """Section name -> size in bytes, from `size -A` of the toolchain."""
    tool = require(SIZE_TOOLS[arch], "to read flash and RAM use from the ELF")
    out = subprocess.run([str(tool), "-A", str(elf)], capture_output=True, text=True, check=True)
    sizes = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def footprint(sizes: dict[str, int], arch: str) -> tuple[int, int]:
    """(flash, static RAM) in bytes. On AVR .data lives in flash and is copied to RAM."""
    if arch == "avr":
        flash = sizes.get(".text", 0) + sizes.get(".data", 0)
        ram = sizes.get(".data", 0) + sizes.get(".bss", 0) + sizes.get(".noinit", 0)
        return flash, ram
    flash = sum(v for k, v in sizes.items() if k in (".text", ".rodata", ".data"))
    ram = sum(v for k, v in sizes.items() if k in (".data", ".bss"))
    return flash, ram


def stack_bound(su_text: str) -> tuple[int, bool]:
    """Sum of every function's stack frame from gcc's -fstack-usage output.

    For code without recursion this bounds the deepest call chain from above (it is what
    a whole-program call graph would refine). Returns (bytes, exact): exact is False when a
    function has a dynamic frame (alloca, variable-length arrays).
    """
    total, bounded = 0, True
    for line in su_text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].isdigit():
            total += int(parts[1])
            bounded &= parts[2].strip() == "static"
    return total, bounded


def fit_problems(board: Board, flash: int, ram: int, vector: int, stack: int = 0) -> list[str]:
    problems = []
    if board.flash_limit and flash > board.flash_limit:
        problems.append(f"flash {flash:,} B > {board.flash_limit:,} B available on {board.name}"
                        + (f" ({board.flash_bytes:,} B less the {board.bootloader_bytes:,} B bootloader)"
                           if board.bootloader_bytes else ""))
    if board.ram_limit and ram > board.ram_limit:
        problems.append(f"static RAM {ram:,} B > {board.ram_limit:,} B available on {board.name}")
    elif board.ram_bytes and ram + stack + board.stack_reserve_bytes > board.ram_bytes:
        problems.append(f"static RAM {ram:,} B + stack up to {stack:,} B > {board.ram_bytes:,} B on "
                        f"{board.name} (with {board.stack_reserve_bytes} B kept for interrupts)")
    if vector > board.vector_capacity:
        problems.append(f"test vector {vector:,} B > the {board.vector_capacity:,} B {board.name} buffers")
    return problems


def build_firmware(board: Board, exported) -> Firmware:
    """Compile and link the DUT firmware for `board` with the model in `exported`.

    `exported` is a harness.models.ExportedModel. Returns the cached build when its inputs
    are unchanged.
    """
    if board.arch == "xtensa":
        from harness.xtensa_build import build_xtensa_firmware
        return build_xtensa_firmware(board, exported)
    arch = _arch(board)
    compiler_name = COMPILERS[arch]
    compiler = require(compiler_name, f"to build firmware for {board.name}")
    version = find_tool(compiler_name).version or ""
    sources = _sources(board, exported)
    includes = _include_dirs(exported)
    flags = _flags(board)
    key = _content_key(compiler_name, version, flags + _defines(board, exported, "0" * 16),
                       sources, _headers(includes))
    build_id = key[:16]
    defines = _defines(board, exported, build_id)
    variant = exported.variant
    out_dir = cache_dir() / "firmware" / f"{board.name}-{variant.name}-{build_id}"
    elf = out_dir / ("dut.elf" if arch != "host" else "dut")
    link_error = out_dir / "link-overflow.txt"

    if not elf.exists():
        _compile(compiler, flags, defines, includes, sources, out_dir, elf, link_error, arch)

    vector = variant.input_count * DTYPE_SIZE[variant.input_dtype]
    flash, ram = footprint(section_sizes(elf, arch), arch)
    stack, bounded = stack_bound((out_dir / STACK_FILE).read_text())
    problems = fit_problems(board, flash, ram, vector, stack if board.ram_bytes else 0)
    if link_error.exists() and not problems:
        problems.append(f"the linker refused it for {board.name}: {link_error.read_text().strip()}")
    hex_path = elf.with_suffix(".hex") if arch == "avr" and not link_error.exists() else None
    sha = hashlib.sha256(elf.read_bytes()).hexdigest()
    return Firmware(board, variant.name, elf, hex_path, build_id, sha, flash, ram, vector, stack,
                    problems, f"{compiler_name} {version}", runnable=not link_error.exists())


def _compile(compiler, flags, defines, includes, sources, out_dir, elf, link_error, arch):
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=parent))
    try:
        target = tmp / elf.name
        cmd = [str(compiler), *flags, *defines, *[f"-I{d}" for d in includes],
               *[str(s) for s in sources], "-o", str(target), "-lm"]
        run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if run.returncode != 0 and OVERFLOW.search(run.stderr):
            # Too big for the memory map: link anyway (never run it) to measure by how much.
            (tmp / link_error.name).write_text(_last_lines(run.stderr, 2))
            run = subprocess.run(cmd + ["-Wl,--noinhibit-exec"], capture_output=True, text=True, cwd=tmp)
        if run.returncode != 0 or not target.exists():
            raise BuildError(f"firmware build failed for {out_dir.name}:\n{' '.join(cmd)}\n"
                             f"{_last_lines(run.stderr, 30)}")
        if arch == "avr" and not (tmp / link_error.name).exists():
            objcopy = require("avr-objcopy", "to make the Intel hex file avrdude uploads")
            subprocess.run([str(objcopy), "-O", "ihex", "-R", ".eeprom", str(target),
                            str(target.with_suffix(".hex"))], check=True, capture_output=True)
        (tmp / "command.txt").write_text(" ".join(cmd) + "\n")
        publish_build(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_build(tmp: Path, out_dir: Path) -> None:
    """Move a finished build into the cache in one step: a half-built folder is never seen,
    and when a parallel build of the same key got there first, its result stands."""
    (tmp / STACK_FILE).write_text("".join(p.read_text() for p in sorted(tmp.glob("*.su"))))
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if not out_dir.exists():
            raise


def _last_lines(text: str, count: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-count:])
