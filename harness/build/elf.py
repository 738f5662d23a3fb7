"""Reading a firmware ELF: its allocated sections, with pyelftools (no toolchain `size` run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import BuildError

SHF_ALLOC = 0x2


@dataclass(frozen=True)
class Section:
    address: int
    size: int
    loaded: bool          # its bytes are in the file (not SHT_NOBITS, such as .bss)


def sections(elf: Path) -> dict[str, Section]:
    """Allocated section name -> Section, for any ELF class and byte order."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        with open(elf, "rb") as stream:
            return {s.name: Section(s["sh_addr"], s["sh_size"], s["sh_type"] != "SHT_NOBITS")
                    for s in ELFFile(stream).iter_sections()
                    if s["sh_flags"] & SHF_ALLOC and s["sh_size"]}
    except (ELFError, OSError) as exc:
        raise BuildError(f"{elf} is not a readable ELF file ({exc}): rebuild it, or pass the "
                         "ELF your build produced") from None


def sizes(elf: Path) -> dict[str, int]:
    return {name: section.size for name, section in sections(elf).items()}


def check_whole(elf: Path) -> None:
    """Raise BuildError unless every section's bytes are in the file: a truncated copy (a
    download or a copy cut short) otherwise fails later, deep inside a tool."""
    from elftools.elf.elffile import ELFFile
    size = Path(elf).stat().st_size
    try:
        with open(elf, "rb") as stream:
            short = [s.name for s in ELFFile(stream).iter_sections()
                     if s["sh_type"] != "SHT_NOBITS" and s["sh_offset"] + s["sh_size"] > size]
            problem = f"sections {', '.join(short[:3])} lie past its end" if short else ""
    except Exception as exc:               # pyelftools raises many kinds on a cut file
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        raise BuildError(f"{elf} is a damaged ELF of {size} bytes, truncated? ({problem}). "
                         "Copy or rebuild it whole") from None


def defines(elf: Path, symbol: str) -> bool:
    """Whether the ELF's symbol table holds `symbol` (False for a stripped or unreadable file)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        with open(elf, "rb") as stream:
            table = ELFFile(stream).get_section_by_name(".symtab")
            return bool(table and table.get_symbol_by_name(symbol))
    except (ELFError, OSError):
        return False
