"""Build the DUT firmware for the ESP32 (Xtensa LX6) without ESP-IDF.

Two toolchains, the first found wins:
  - ESP-IDF's `xtensa-esp32-elf-gcc` (what ESP32 users have), when it is on PATH or named by
    TINYHIL_XTENSA_GCC: compile and link in one go against the same linker script;
  - Debian's `clang-22` (its Xtensa backend knows the ESP32's windowed ABI, FPU, MUL32 and
    DIV32) with `xtensa-lx106-elf-ld` from binutils-xtensa-lx106: C is compiled to assembly
    and then assembled (clang's direct object output misplaces literal pools), and linked
    with devices/firmware/ports/esp32/esp32.ld, which places literal pools before code and
    takes libgcc helpers and mem* from the ESP32's mask ROM.

The ELF becomes an application image with esptool (elf2image) that the ROM bootloader loads
from flash offset 0x1000; esptool's merge-bin makes the full flash image QEMU boots.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from harness.boards import Board
from harness.errors import BuildError, ToolMissing
from harness.firmware import (OVERFLOW, STACK_FILE, Firmware, publish_build, _content_key, _defines, _headers,
                              _last_lines, stack_bound)
from harness.paths import cache_dir, firmware_dir
from harness.tools import find_tool
from harness.wire import DTYPE_SIZE

PORT_DIR = Path("ports") / "esp32"
PORT_SOURCES = ("port_esp32.c", "libm_esp32.c")
ENTRY_ASM = "start.s"
LINKER_SCRIPT = "esp32.ld"
APP_OFFSET = 0x1000                 # where the ESP32 ROM bootloader looks for the image
FLASH_IMAGE_ARGS = {"flash_mode": "dio", "flash_freq": "40m", "flash_size": "4MB"}
# Everything the ESP32 (LX6) core has that clang can use; dfpaccel is left out on purpose.
CLANG_FEATURES = ("fp", "windowed", "div32", "mul32", "mul32high", "mul16", "density", "loop",
                  "sext", "nsa", "mac16", "bool", "minmax", "clamps", "s32c1i", "threadptr",
                  "timers1", "timers2", "timers3", "interrupt", "exception", "debug", "prid",
                  "miscsr", "coprocessor")
COMMON_FLAGS = ("-O2", "-std=gnu99", "-Wall", "-ffreestanding", "-ffunction-sections",
                "-fdata-sections", "-fstack-usage")
INSTALL_HINT = ("install Debian's clang-22, llvm-22 and binutils-xtensa-lx106 "
                "(`sudo apt-get install clang-22 llvm-22 binutils-xtensa-lx106`), or put ESP-IDF's "
                "xtensa-esp32-elf-gcc on PATH")


def toolchain() -> str:
    """'esp-idf-gcc' or 'clang'; raises ToolMissing saying what to install."""
    if find_tool("xtensa-esp32-elf-gcc").found:
        return "esp-idf-gcc"
    missing = [name for name in ("clang-22", "xtensa-lx106-elf-ld") if not find_tool(name).found]
    if missing:
        raise ToolMissing(f"no ESP32 compiler: {', '.join(missing)} not found; {INSTALL_HINT}")
    return "clang"


def toolchain_description() -> str:
    try:
        chain = toolchain()
    except ToolMissing as exc:
        return str(exc)
    if chain == "esp-idf-gcc":
        return f"xtensa-esp32-elf-gcc ({find_tool('xtensa-esp32-elf-gcc').version})"
    return f"{find_tool('clang-22').version} + {find_tool('xtensa-lx106-elf-ld').version}"


def _port_dir() -> Path:
    return firmware_dir() / PORT_DIR


def _flags(chain: str) -> list[str]:
    flags = list(COMMON_FLAGS)
    if chain == "clang":
        flags = ["--target=xtensa", *flags]
        for feature in CLANG_FEATURES:
            flags += ["-Xclang", "-target-feature", "-Xclang", f"+{feature}"]
        flags.append("-nostdlibinc")     # the host's glibc headers are not ours: see ports/esp32/libc
    else:
        flags += ["-mlongcalls"]
    return flags


def _board_defines(board: Board, exported, build_id: str) -> list[str]:
    defines = _defines(board, exported, build_id)
    defines.append(f"-DTINYHIL_BAUD={board.baud}UL")
    if board.marker.get("gpio") is not None:
        defines.append(f"-DTINYHIL_MARKER_GPIO={int(board.marker['gpio'])}")
    return defines


def build_xtensa_firmware(board: Board, exported) -> Firmware:
    chain = toolchain()
    compiler_name = "xtensa-esp32-elf-gcc" if chain == "esp-idf-gcc" else "clang-22"
    compiler = find_tool(compiler_name)
    port = _port_dir()
    sources = [firmware_dir() / "runtime" / "tinyhil_dut.c", firmware_dir() / "runtime" / "tinyhil_main.c",
               *[port / s for s in PORT_SOURCES], *exported.c_sources]
    includes = [port / "libc", firmware_dir() / "runtime", port, *exported.include_dirs]
    flags = _flags(chain)
    key = _content_key(compiler_name, compiler.version or "",
                       flags + _board_defines(board, exported, "0" * 16),
                       sources + [port / ENTRY_ASM, port / LINKER_SCRIPT], _headers(includes))
    build_id = key[:16]
    defines = _board_defines(board, exported, build_id)
    variant = exported.variant
    out_dir = cache_dir() / "firmware" / f"{board.name}-{variant.name}-{build_id}"
    elf = out_dir / "dut.elf"
    link_error = out_dir / "link-overflow.txt"
    if not elf.exists():
        _build(chain, compiler.path, flags, defines, includes, sources, out_dir)

    sizes = elf_sections(elf)
    image = out_dir / "app.bin"
    runnable = not link_error.exists()
    flash = image.stat().st_size if image.exists() else sum(
        sizes.get(s, 0) for s in (".iram0.text", ".dram0.data", ".dram0.rodata"))
    ram = sum(sizes.get(s, 0) for s in (".dram0.data", ".dram0.rodata", ".dram0.bss"))
    stack, _ = stack_bound((out_dir / STACK_FILE).read_text())
    vector = variant.input_count * DTYPE_SIZE[variant.input_dtype]
    from harness.firmware import fit_problems
    problems = fit_problems(board, flash, ram, vector, stack)
    iram_limit = int(board.extra.get("iram_bytes", 0))
    if iram_limit and sizes.get(".iram0.text", 0) > iram_limit:
        problems.append(f"code {sizes['.iram0.text']:,} B > {iram_limit:,} B of IRAM on {board.name}")
    if not runnable and not problems:
        problems.append(f"the linker refused it for {board.name}: {link_error.read_text().strip()}")
    sha = hashlib.sha256(elf.read_bytes()).hexdigest()
    firmware = Firmware(board, variant.name, elf, None, build_id, sha, flash, ram, vector, stack,
                        problems, f"{compiler_name} {compiler.version or ''}".strip(),
                        runnable=runnable)
    firmware.image = image if runnable else None
    firmware.image_offset = APP_OFFSET
    return firmware


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    run = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd)
    if run.returncode != 0:
        raise BuildError(f"{what} failed:\n{' '.join(map(str, cmd))}\n{_last_lines(run.stderr, 30)}")
    return run


def _build(chain, compiler, flags, defines, includes, sources, out_dir: Path) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    port = _port_dir()
    script = port / LINKER_SCRIPT
    commands = []
    try:
        inc = [f"-I{d}" for d in includes]
        if chain == "clang":
            objects = []
            for src in sources:
                asm, obj = tmp / (Path(src).stem + ".s"), tmp / (Path(src).stem + ".o")
                cmd = [compiler, *flags, *defines, *inc, "-S", src, "-o", asm]
                _run(cmd, tmp, f"compiling {Path(src).name} for the ESP32")
                commands.append(cmd)
                objects.append(_assemble(compiler, asm, obj, tmp, commands))
            entry = _assemble(compiler, port / ENTRY_ASM, tmp / "start.o", tmp, commands)
            ld = find_tool("xtensa-lx106-elf-ld").path
            link = [ld, "-T", script, "--gc-sections", "-Map", tmp / "dut.map", entry, *objects,
                    "-o", tmp / "dut.elf"]
        else:
            link = [compiler, *flags, *defines, *inc, "-nostdlib", "-T", script,
                    "-Wl,--gc-sections", f"-Wl,-Map,{tmp / 'dut.map'}", port / ENTRY_ASM, *sources,
                    "-lgcc", "-o", tmp / "dut.elf"]
        run = subprocess.run([str(c) for c in link], capture_output=True, text=True, cwd=tmp)
        if run.returncode != 0 and OVERFLOW.search(run.stderr):
            # Too big for IRAM or DRAM: link anyway (never run it) to measure by how much.
            (tmp / "link-overflow.txt").write_text(_last_lines(run.stderr, 2))
            noinhibit = "--noinhibit-exec" if chain == "clang" else "-Wl,--noinhibit-exec"
            run = subprocess.run([str(c) for c in link] + [noinhibit], capture_output=True, text=True,
                                 cwd=tmp)
        if run.returncode != 0 or not (tmp / "dut.elf").exists():
            raise BuildError(f"linking the ESP32 firmware failed:\n{' '.join(map(str, link))}\n"
                             f"{_last_lines(run.stderr, 30)}")
        commands.append(link)
        if not (tmp / "link-overflow.txt").exists():
            make_app_image(tmp / "dut.elf", tmp / "app.bin")
        (tmp / "command.txt").write_text("\n".join(" ".join(map(str, c)) for c in commands) + "\n")
        publish_build(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _assemble(compiler, asm: Path, obj: Path, cwd: Path, commands: list) -> Path:
    cmd = [compiler, "--target=xtensa", "-mcpu=esp32", "-c", asm, "-o", obj]
    _run(cmd, cwd, f"assembling {Path(asm).name}")
    commands.append(cmd)
    return obj


# ---- sections and images -------------------------------------------------------------------

def elf_sections(elf: Path) -> dict[str, int]:
    """Allocated section name -> size in bytes (read with pyelftools, which esptool brings)."""
    return {name: size for name, (_, size, _) in elf_layout(elf).items()}


def elf_layout(elf: Path) -> dict[str, tuple[int, int, bool]]:
    """Allocated section name -> (address, size, loaded from the image), from the ELF32
    section headers (the few fields needed; no ELF library is a dependency)."""
    data = Path(elf).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1:
        raise BuildError(f"{elf} is not a 32-bit ELF file")
    order = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(order + "I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x2E)
    headers = [struct.unpack_from(order + "IIIIIIIIII", data, shoff + i * shentsize)
               for i in range(shnum)]
    names_at = headers[shstrndx][4]
    layout = {}
    for name_off, kind, flags, addr, _, size, *_ in headers:
        if flags & 0x2 and size:                                  # SHF_ALLOC
            end = data.index(b"\0", names_at + name_off)
            name = data[names_at + name_off:end].decode()
            layout[name] = (addr, size, kind != 8)                # 8: SHT_NOBITS
    return layout


def _esptool(fn, *args, **kwargs):
    """Call an esptool command quietly; its printed output comes back for error messages."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            result = fn(*args, **kwargs)
    except Exception as exc:             # esptool's FatalError and friends
        raise BuildError(f"esptool {fn.__name__} failed: {exc}\n{out.getvalue()[-800:]}") from None
    return result, out.getvalue()


def make_app_image(elf: Path, app: Path) -> Path:
    """esptool elf2image: the image the ROM bootloader loads from APP_OFFSET."""
    from esptool.cmds import elf2image
    _esptool(elf2image, str(elf), "esp32", output=str(app), **FLASH_IMAGE_ARGS)
    return app


def make_flash_image(app: Path, out: Path) -> Path:
    """esptool merge-bin: a whole 4 MB flash with the app at 0x1000, as QEMU's flash drive."""
    from esptool.cmds import merge_bin
    _esptool(merge_bin, [(APP_OFFSET, str(app))], "esp32", output=str(out), pad_to_size="4MB")
    return out


def image_info(app: Path) -> str:
    """esptool image-info's report (segments, checksum, hash); raises BuildError if invalid."""
    from esptool.cmds import image_info as info
    _, text = _esptool(info, str(app), chip="esp32")
    return text
