"""What every architecture's build shares: the Firmware it yields, the content key (build id),
the flow from sources to a cached ELF, the fit check and the stack bound.

An architecture (harness/build/<arch>.py) says only what differs: its compiler, flags, port
sources, how to compile and link, how to read flash and RAM from the ELF, and which images an
uploader needs. The cache key covers every input of the build (sources, headers, compiler
version, flags), so an unchanged firmware is never rebuilt, and its key is compiled into the
firmware as its build id: a running DUT says which build it holds (no needless re-flash).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from harness.boards import Board
from harness.build.call_graph import deepest_chain, frames_from_su
from harness.errors import BuildError, NotBuildable
from harness.paths import cache_dir, firmware_dir
from harness.tools import Tool, require, run_tool

#: the DUT runtime per protocol (harness.boards.PROTOCOLS): one of them is linked
RUNTIME_SOURCES = {"tinyhil": ("runtime/tinyhil_dut.c", "runtime/tinyhil_main.c"),
                   "eembc": ("runtime/tinyhil_eembc.c", "runtime/tinyhil_main.c")}
# Linker messages that mean "too big for the memory", not "broken code".
OVERFLOW = re.compile(r"overflowed|will not fit|not within region", re.I)
STACK_FILE = "stack-usage.txt"
LINK_OVERFLOW = "link-overflow.txt"
ELF_NAME = "dut.elf"
# Part of every build's key: a build folder laid out by another harness version is never reused.
CACHE_LAYOUT = "tinyhil-build-2"


@dataclass
class Firmware:
    board: Board
    variant: str
    elf: Path
    build_id: str                 # 16 hex digits, also inside the firmware (IDENTITY)
    sha256: str                   # of the ELF: what the records name
    flash_bytes: int
    ram_bytes: int
    vector_bytes: int
    #: upper bound of the stack: the deepest call chain's frames (-fstack-usage and the call
    #: graph, harness.build.call_graph), else every function's frame added up
    stack_bytes: int = 0
    problems: list[str] = field(default_factory=list)   # why it does not fit, if it doesn't
    compiler: str = ""
    runnable: bool = True         # False when the linker refused it (it does not fit)
    hex: Path | None = None       # Intel hex for avrdude (AVR)
    image: Path | None = None     # flash image an uploader writes (ESP32: esptool's app image)
    image_offset: int = 0         # where in flash it goes (ESP32: 0x1000)
    prebuilt: bool = False        # the user's own firmware (--firmware): its build id is its own

    @property
    def fits(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Footprint:
    flash: int
    ram: int
    problems: tuple[str, ...] = ()   # arch-specific limits beyond flash and RAM (ESP32 IRAM)


class Arch(ABC):
    """One architecture's build. Everything else is common (`build`)."""
    name: str = ""

    @abstractmethod
    def compiler(self) -> Tool:
        """The compiler found here; raises ToolMissing saying what to install."""

    @abstractmethod
    def flags(self, board: Board) -> list[str]: ...

    def defines(self, board: Board) -> list[str]:
        """Arch-specific -D flags (clock, baud, marker pin) beside the common ones."""
        return []

    @abstractmethod
    def port_sources(self, board: Board) -> list[Path]: ...

    def include_dirs(self, board: Board) -> list[Path]:
        return []

    def key_files(self, board: Board) -> list[Path]:
        """Build inputs other than C sources and headers (linker script, entry assembly)."""
        return []

    cxx: str = ""        # the arch's C++ compiler (model C++, e.g. micromlgen); "": none

    def cxx_flags(self, board: Board) -> list[str]:
        """The C flags without the C standard, plus the model C++ flags (harness.models)."""
        from harness.models import CXX_FLAGS
        return [f for f in self.flags(board) if not f.startswith("-std=") and not f.startswith("-Wl,")
                ] + CXX_FLAGS

    def compile_cxx(self, job: "BuildJob") -> list[Path]:
        """Compile the C++ sources to objects with the arch's C++ compiler; the sources left
        for compile() (C files and those objects)."""
        cpp = [s for s in job.sources if Path(s).suffix == ".cpp"]
        if not cpp:
            return job.sources
        if not self.cxx:
            raise NotBuildable(f"{job.board.name} ({self.name}) has no C++ compiler in tinyhil: "
                             f"{Path(cpp[0]).name} is C++ (micromlgen), not buildable there")
        cxx = require(self.cxx, f"to compile C++ model code for {job.board.name}")
        objects = []
        for src in cpp:
            obj = job.tmp / (Path(src).stem + ".o")
            job.run([cxx, *self.cxx_flags(job.board), *job.defines,
                     *[f"-I{d}" for d in job.include_dirs], "-c", src, "-o", obj],
                    f"compiling {Path(src).name} (C++) for {job.board.name}")
            objects.append(obj)
        return [s for s in job.sources if Path(s).suffix != ".cpp"] + objects

    @abstractmethod
    def compile(self, job: "BuildJob") -> None:
        """Compile and link job.sources into job.tmp / ELF_NAME, plus any images. When the
        program overflows a memory region, link it anyway (never to be run) and write the
        linker's words to job.tmp / LINK_OVERFLOW."""

    @abstractmethod
    def footprint(self, elf: Path, board: Board) -> Footprint: ...

    def finish(self, firmware: Firmware, out_dir: Path) -> None:
        """Attach the images an uploader needs (hex, app image) to a finished build."""

    def disassemble(self, elf: Path) -> str | None:
        """`objdump -d` of the firmware, for its call graph; None where the stack bound stays
        every frame added up (where RAM is plentiful)."""
        return None


@dataclass
class BuildJob:
    arch: Arch
    board: Board
    compiler: Tool
    flags: list[str]
    defines: list[str]
    include_dirs: list[Path]
    sources: list[Path]
    tmp: Path
    commands: list[list[str]] = field(default_factory=list)

    def run(self, command: list, what: str, check: bool = True):
        """Run one build step in the build folder; a failure names the step and its command."""
        command = [str(c) for c in command]
        self.commands.append(command)
        result = run_tool(command, cwd=self.tmp, timeout=600)
        if check and result.returncode != 0:
            raise BuildError(f"{what} failed:\n{' '.join(command)}\n{last_lines(result.stderr, 30)}")
        return result

    def link_allowing_overflow(self, command: list, noinhibit: str, what: str) -> None:
        """Link; a program too big for the memory map is linked anyway to measure by how much."""
        result = self.run(command, what, check=False)
        if result.returncode != 0 and OVERFLOW.search(result.stderr):
            (self.tmp / LINK_OVERFLOW).write_text(last_lines(result.stderr, 2))
            result = self.run([*command, noinhibit], what, check=False)
        if result.returncode != 0:
            raise BuildError(f"{what} failed:\n{' '.join(map(str, command))}\n"
                             f"{last_lines(result.stderr, 30)}")

    @property
    def overflowed(self) -> bool:
        return (self.tmp / LINK_OVERFLOW).exists()


def batch_bytes(board: Board) -> int:
    """RAM the DUT keeps for one INFER_BATCH's results: a 32nd of the board's RAM (2 KB:
    64 B), at most 4 KB; a host build (no RAM figure) takes the most."""
    return min(board.ram_bytes // 32, 4096) if board.ram_bytes else 4096


def common_defines(board: Board, exported, build_id: str) -> list[str]:
    """What the DUT runtime takes from the board file and the model variant."""
    variant = exported.variant
    hex_bytes = ",".join(f"0x{build_id[i:i + 2]}" for i in range(0, 16, 2))
    return [
        f'-DTINYHIL_BOARD_NAME="{board.name}"',
        f"-DTINYHIL_CLOCK_HZ={board.clock_hz}UL",
        f"-DTINYHIL_MAX_PAYLOAD={board.max_payload}",
        f"-DTINYHIL_VECTOR_CAPACITY={max(variant.input_bytes, 4)}",
        f"-DTINYHIL_OUTPUT_CAPACITY={max(variant.output_bytes, 4)}",
        f"-DTINYHIL_MAX_RUNS={board.max_runs}",
        f"-DTINYHIL_BATCH_BYTES={batch_bytes(board)}",
        f"-DTINYHIL_BUILD_ID={hex_bytes}",
        f"-DTINYHIL_FLAGS={firmware_flags(board)}",
    ]


def firmware_flags(board: Board) -> int:
    """The IDENTITY flags a build reports of itself (harness.protocol.wire.FLAG)."""
    from harness.protocol.wire import FLAG
    return ((FLAG["HOST_CLOCK"] if board.arch == "host" else 0)
            | (FLAG["POLLED_RX"] if "soft_uart" in board.extra else 0))


def runtime_sources(protocol: str = "tinyhil") -> list[Path]:
    return [firmware_dir() / s for s in RUNTIME_SOURCES[protocol]]


def content_key(compiler: Tool, flags: list[str], files: list[Path], include_dirs: list[Path]) -> str:
    """SHA-256 over the compiler and its version, the flags, and every source and header."""
    digest = hashlib.sha256()
    for part in (CACHE_LAYOUT, compiler.name, compiler.version or "", *flags):
        digest.update(part.encode() + b"\0")
    headers = [p for d in include_dirs for p in Path(d).rglob("*.h")]
    for path in sorted(set(files)) + sorted(set(headers)):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build(arch: Arch, board: Board, exported) -> Firmware:
    """Compile and link the DUT firmware for `board` with the model in `exported` (a
    harness.models.ExportedModel); the cached build when its inputs are unchanged."""
    compiler = arch.compiler()
    variant = exported.variant
    sources = [*runtime_sources(board.protocol), *arch.port_sources(board), *exported.c_sources]
    includes = [*arch.include_dirs(board), firmware_dir() / "runtime", *exported.include_dirs]
    flags = arch.flags(board)

    def defines(build_id: str) -> list[str]:
        return common_defines(board, exported, build_id) + arch.defines(board)

    key = content_key(compiler, flags + defines("0" * 16), sources + arch.key_files(board), includes)
    build_id = key[:16]
    protocol = "" if board.protocol == "tinyhil" else f"-{board.protocol}"
    out_dir = cache_dir() / "firmware" / f"{board.name}-{variant.name}{protocol}-{build_id}"
    if not (out_dir / ELF_NAME).exists():
        _compile_into(out_dir, BuildJob(arch, board, compiler, flags, defines(build_id), includes,
                                        sources, tmp=Path()))
    elf = out_dir / ELF_NAME
    size = arch.footprint(elf, board)
    stack = stack_bytes(arch, board, out_dir)
    problems = fit_problems(board, size.flash, size.ram, variant.input_bytes,
                            stack if board.ram_bytes else 0) + list(size.problems)
    overflow = out_dir / LINK_OVERFLOW
    if overflow.exists() and not problems:
        problems.append(f"the linker refused it for {board.name}: {overflow.read_text().strip()}")
    firmware = Firmware(board, variant.name, elf, build_id, hashlib.sha256(elf.read_bytes()).hexdigest(),
                        size.flash, size.ram, variant.input_bytes, stack, problems,
                        f"{compiler.name} {compiler.version or ''}".strip(),
                        runnable=not overflow.exists())
    if firmware.runnable:
        arch.finish(firmware, out_dir)
    return firmware


def _compile_into(out_dir: Path, job: BuildJob) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    job.tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        job.sources = job.arch.compile_cxx(job)
        job.arch.compile(job)
        if not (job.tmp / ELF_NAME).exists():
            raise BuildError(f"the {job.arch.name} build of {out_dir.name} produced no {ELF_NAME}")
        (job.tmp / "command.txt").write_text("\n".join(" ".join(c) for c in job.commands) + "\n")
        publish_build(job.tmp, out_dir)
    finally:
        shutil.rmtree(job.tmp, ignore_errors=True)


def publish_build(tmp: Path, out_dir: Path) -> None:
    """Move a finished build into the cache in one step: a half-built folder is never seen,
    and when a parallel build of the same key got there first, its result stands."""
    (tmp / STACK_FILE).write_text("".join(p.read_text() for p in sorted(tmp.rglob("*.su"))))
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if not out_dir.exists():
            raise


def stack_bytes(arch: Arch, board: Board, out_dir: Path) -> int:
    """The stack bound of a build: its deepest call chain's frames where the arch's disassembly
    gives the calls (harness.build.call_graph), else every frame added up. Worked out when read,
    so a cached build gets the current analysis. Not for a program the linker refused: its
    calls past the flash were cut short, so its disassembly does not say who calls whom."""
    su_text = (out_dir / STACK_FILE).read_text()
    refused = (out_dir / LINK_OVERFLOW).exists()
    disassembly = None if refused else arch.disassemble(out_dir / ELF_NAME)
    chain = deepest_chain(disassembly, frames_from_su(su_text), board.flash_bytes) if disassembly else None
    return chain if chain is not None else stack_bound(su_text)[0]


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


def last_lines(text: str, count: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-count:])
