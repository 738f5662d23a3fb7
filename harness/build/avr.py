"""AVR (ATmega, ATtiny): avr-gcc, the port the board file names (the ATmega port unless it says
`port = "attiny"`), a software UART's pins for a board without a UART (`[soft_uart]`), and the
Intel hex avrdude uploads."""

from __future__ import annotations

from pathlib import Path

from harness.boards import Board
from harness.build import elf as elf_file
from harness.build.core import ELF_NAME, Arch, BuildJob, Footprint
from harness.build.host import COMMON_FLAGS
from harness.errors import BuildError
from harness.paths import firmware_dir
from harness.tools import Tool, find_tool, require, run_tool

HEX_NAME = "dut.hex"
DEFAULT_PORT = "avr"


class AvrArch(Arch):
    name = "avr"
    cxx = "avr-g++"

    def cxx_flags(self, board: Board) -> list[str]:
        """avr-libc has no C++ headers: a shim <cstdarg> (micromlgen includes it)."""
        return [*super().cxx_flags(board), f"-I{firmware_dir() / 'runtime' / 'cxx_shim'}"]

    def compiler(self) -> Tool:
        require("avr-gcc", "to build AVR firmware")
        return find_tool("avr-gcc")

    def flags(self, board: Board) -> list[str]:
        return ["-Os", f"-mmcu={board.mcu}", *COMMON_FLAGS]

    def defines(self, board: Board) -> list[str]:
        defines = [f"-DF_CPU={board.clock_hz}UL", f"-DTINYHIL_BAUD={board.baud}UL"]
        if board.marker:
            port, bit = board.marker["port"], board.marker["bit"]
            defines += [f"-DTINYHIL_MARKER_PORT=PORT{port}", f"-DTINYHIL_MARKER_DDR=DDR{port}",
                        f"-DTINYHIL_MARKER_BIT={bit}"]
        return defines + soft_uart_defines(board)

    def port_sources(self, board: Board) -> list[Path]:
        """The board file may name its own port (`port = "attiny"`: ports/attiny/port_attiny.c);
        else the ATmega port."""
        name = str(board.extra.get("port", DEFAULT_PORT))
        source = firmware_dir() / "ports" / name / f"port_{name}.c"
        if not source.is_file():
            raise BuildError(f"port = {name!r} in {board.source or board.name}: there is no "
                             f"{source.relative_to(firmware_dir())} in {firmware_dir()}")
        return [source]

    def compile(self, job: BuildJob) -> None:
        command = [job.compiler.path, *job.flags, *job.defines,
                   *[f"-I{d}" for d in job.include_dirs], *job.sources, "-o", job.tmp / ELF_NAME, "-lm"]
        job.link_allowing_overflow(command, "-Wl,--noinhibit-exec",
                                   f"building the {job.board.name} firmware")
        if not job.overflowed:
            make_hex(job.tmp / ELF_NAME, job.tmp / HEX_NAME)

    def footprint(self, elf: Path, board: Board) -> Footprint:
        """.data lives in flash and is copied to RAM at start-up."""
        sizes = elf_file.sizes(elf)
        flash = sizes.get(".text", 0) + sizes.get(".data", 0)
        ram = sizes.get(".data", 0) + sizes.get(".bss", 0) + sizes.get(".noinit", 0)
        return Footprint(flash, ram)

    def finish(self, firmware, out_dir: Path) -> None:
        firmware.hex = out_dir / HEX_NAME

    def disassemble(self, elf: Path) -> str | None:
        """A few KB of RAM: the stack bound follows the call graph, not every frame added up."""
        objdump = find_tool("avr-objdump")
        return run_tool([objdump.path, "-d", elf]).stdout if objdump.found else None


def soft_uart_defines(board: Board) -> list[str]:
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


def make_hex(elf: Path, out: Path) -> Path:
    """The Intel hex avrdude writes (flash only, no EEPROM)."""
    objcopy = require("avr-objcopy", "to make the Intel hex file avrdude uploads")
    result = run_tool([str(objcopy), "-O", "ihex", "-R", ".eeprom", str(elf), str(out)], timeout=60)
    if result.returncode != 0:
        raise BuildError(f"avr-objcopy could not make {out} from {elf}: {result.stderr.strip()}")
    return out


ARCH = AvrArch()
