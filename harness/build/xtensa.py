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
import io
from pathlib import Path

from harness.boards import Board
from harness.build import elf as elf_file
from harness.build.core import ELF_NAME, Arch, BuildJob, Footprint
from harness.errors import BuildError, ToolMissing
from harness.paths import firmware_dir
from harness.tools import Tool, find_tool

PORT_DIR = Path("ports") / "esp32"
PORT_SOURCES = ("port_esp32.c", "libm_esp32.c")
ENTRY_ASM = "start.s"
LINKER_SCRIPT = "esp32.ld"
APP_NAME = "app.bin"
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


class XtensaArch(Arch):
    name = "xtensa"
    cxx = "c++"          # model C++ (micromlgen): clang-22 as C++, or ESP-IDF's g++

    def cxx_flags(self, board: Board) -> list[str]:
        """No C++ library here either: the same shim <cstdarg> as on AVR."""
        shim = firmware_dir() / "runtime" / "cxx_shim"
        return [*super().cxx_flags(board), f"-I{shim}"]

    def compile_cxx(self, job: BuildJob) -> list[Path]:
        """C++ model sources to objects, assembled the same way as the C (see compile)."""
        cpp = [s for s in job.sources if Path(s).suffix == ".cpp"]
        if not cpp:
            return job.sources
        chain = toolchain()
        cxx = find_tool("clang-22" if chain == "clang" else "xtensa-esp32-elf-g++")
        if not cxx.found:
            raise ToolMissing(f"no ESP32 C++ compiler for {Path(cpp[0]).name}: {INSTALL_HINT}")
        objects = []
        inc = [f"-I{d}" for d in job.include_dirs]
        for src in cpp:
            out = job.tmp / (Path(src).stem + (".s" if chain == "clang" else ".o"))
            mode = ["-x", "c++", "-S"] if chain == "clang" else ["-c"]
            job.run([cxx.path, *self.cxx_flags(job.board), *job.defines, *inc, *mode, src, "-o", out],
                    f"compiling {Path(src).name} (C++) for the ESP32")
            objects.append(_assemble(job, out) if chain == "clang" else out)
        return [s for s in job.sources if Path(s).suffix != ".cpp"] + objects

    def compiler(self) -> Tool:
        return find_tool("xtensa-esp32-elf-gcc" if toolchain() == "esp-idf-gcc" else "clang-22")

    def flags(self, board: Board) -> list[str]:
        return _flags(toolchain())

    def defines(self, board: Board) -> list[str]:
        defines = [f"-DTINYHIL_BAUD={board.baud}UL"]
        if board.marker.get("gpio") is not None:
            defines.append(f"-DTINYHIL_MARKER_GPIO={int(board.marker['gpio'])}")
        return defines

    def port_sources(self, board: Board) -> list[Path]:
        return [_port_dir() / s for s in PORT_SOURCES]

    def include_dirs(self, board: Board) -> list[Path]:
        return [_port_dir() / "libc", _port_dir()]

    def key_files(self, board: Board) -> list[Path]:
        return [_port_dir() / ENTRY_ASM, _port_dir() / LINKER_SCRIPT]

    def compile(self, job: BuildJob) -> None:
        port, tmp = _port_dir(), job.tmp
        inc = [f"-I{d}" for d in job.include_dirs]
        if toolchain() == "clang":
            # C to assembly, then assembled: clang's direct object output misplaces literal pools.
            objects = [s for s in job.sources if Path(s).suffix == ".o"]   # C++, see compile_cxx
            for src in [s for s in job.sources if Path(s).suffix != ".o"]:
                asm = tmp / (Path(src).stem + ".s")
                job.run([job.compiler.path, *job.flags, *job.defines, *inc, "-S", src, "-o", asm],
                        f"compiling {Path(src).name} for the ESP32")
                objects.append(_assemble(job, asm))
            entry = _assemble(job, port / ENTRY_ASM)
            link = [find_tool("xtensa-lx106-elf-ld").path, "-T", port / LINKER_SCRIPT, "--gc-sections",
                    "-Map", tmp / "dut.map", entry, *objects, "-o", tmp / ELF_NAME]
            noinhibit = "--noinhibit-exec"
        else:
            link = [job.compiler.path, *job.flags, *job.defines, *inc, "-nostdlib", "-T",
                    port / LINKER_SCRIPT, "-Wl,--gc-sections", f"-Wl,-Map,{tmp / 'dut.map'}",
                    port / ENTRY_ASM, *job.sources, "-lgcc", "-o", tmp / ELF_NAME]
            noinhibit = "-Wl,--noinhibit-exec"
        job.link_allowing_overflow(link, noinhibit, "linking the ESP32 firmware")
        if not job.overflowed:
            make_app_image(tmp / ELF_NAME, tmp / APP_NAME)

    def footprint(self, elf: Path, board: Board) -> Footprint:
        sizes = elf_file.sizes(elf)
        image = elf.parent / APP_NAME
        flash = image.stat().st_size if image.exists() else sum(
            sizes.get(s, 0) for s in (".iram0.text", ".dram0.data", ".dram0.rodata"))
        ram = sum(sizes.get(s, 0) for s in (".dram0.data", ".dram0.rodata", ".dram0.bss"))
        iram_limit, code = int(board.extra.get("iram_bytes", 0)), sizes.get(".iram0.text", 0)
        problems = ((f"code {code:,} B > {iram_limit:,} B of IRAM on {board.name}",)
                    if iram_limit and code > iram_limit else ())
        return Footprint(flash, ram, problems)

    def finish(self, firmware, out_dir: Path) -> None:
        firmware.image, firmware.image_offset = out_dir / APP_NAME, APP_OFFSET


def _assemble(job: BuildJob, asm: Path) -> Path:
    obj = job.tmp / (Path(asm).stem + ".o")
    job.run([job.compiler.path, "--target=xtensa", "-mcpu=esp32", "-c", asm, "-o", obj],
            f"assembling {Path(asm).name}")
    return obj


# ---- images -------------------------------------------------------------------------------

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


ARCH = XtensaArch()
