"""The host: the DUT firmware as a local program (the native board), and the same compiler
builds every model's host reference."""

from __future__ import annotations

from pathlib import Path

from harness.boards import Board
from harness.build import elf as elf_file
from harness.build.core import ELF_NAME, Arch, BuildJob, Footprint
from harness.paths import firmware_dir
from harness.tools import Tool, find_tool, require

COMMON_FLAGS = ["-std=gnu99", "-Wall", "-ffunction-sections", "-fdata-sections",
                "-Wl,--gc-sections", "-fstack-usage"]


class HostArch(Arch):
    name = "host"
    cxx = "c++"

    def compiler(self) -> Tool:
        require("cc", "to build the native DUT")
        return find_tool("cc")

    def flags(self, board: Board) -> list[str]:
        return ["-O2", *COMMON_FLAGS]

    def port_sources(self, board: Board) -> list[Path]:
        return [firmware_dir() / "ports" / "native" / "port_native.c"]

    def compile(self, job: BuildJob) -> None:
        job.run([job.compiler.path, *job.flags, *job.defines, *[f"-I{d}" for d in job.include_dirs],
                 *job.sources, "-o", job.tmp / ELF_NAME, "-lm"], f"building the native DUT")

    def footprint(self, elf: Path, board: Board) -> Footprint:
        sizes = elf_file.sizes(elf)
        flash = sum(v for k, v in sizes.items() if k in (".text", ".rodata", ".data"))
        return Footprint(flash, sizes.get(".data", 0) + sizes.get(".bss", 0))


ARCH = HostArch()
