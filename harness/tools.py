"""Every external tool is found the same way: its path, its version, and how to install it."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ToolMissing

APT = "sudo apt-get install"


@dataclass(frozen=True)
class ToolSpec:
    executable: str
    version_args: tuple[str, ...]
    install: str                      # how to install it, shown when it is missing
    env: str = ""                     # environment variable that may point at it
    package: str = ""                 # Debian package to ask for the version when the tool won't say
    module: str = ""                  # a Python package the harness uses as a library: found in
                                      # the harness's own environment, activated or not


SPECS = {
    "cc": ToolSpec("cc", ("--version",), f"{APT} gcc"),
    "c++": ToolSpec("c++", ("--version",), f"{APT} g++"),
    "avr-g++": ToolSpec("avr-g++", ("--version",), f"{APT} gcc-avr avr-libc"),
    "size": ToolSpec("size", ("--version",), f"{APT} binutils"),
    "avr-gcc": ToolSpec("avr-gcc", ("--version",), f"{APT} gcc-avr avr-libc", "TINYHIL_AVR_GCC"),
    "avr-size": ToolSpec("avr-size", ("--version",), f"{APT} binutils-avr"),
    "avr-objcopy": ToolSpec("avr-objcopy", ("--version",), f"{APT} binutils-avr"),
    "avr-objdump": ToolSpec("avr-objdump", ("--version",), f"{APT} binutils-avr"),
    "simavr": ToolSpec("simavr", ("--help",), f"{APT} simavr libsimavr-dev libelf-dev",
                       package="libsimavr-dev"),
    "qemu-system-avr": ToolSpec("qemu-system-avr", ("--version",), f"{APT} qemu-system-misc",
                                "TINYHIL_QEMU_AVR"),
    "avrdude": ToolSpec("avrdude", ("-?",), f"{APT} avrdude", "TINYHIL_AVRDUDE"),
    "esptool": ToolSpec("esptool", ("version",), "pip install esptool (a tinyhil dependency)",
                        "TINYHIL_ESPTOOL", module="esptool"),
    # ESP32: ESP-IDF's compiler when present, else Debian's clang with the lx106 binutils' linker.
    "xtensa-esp32-elf-gcc": ToolSpec("xtensa-esp32-elf-gcc", ("--version",),
                                     "ESP-IDF's install.sh (or use clang-22 from Debian)",
                                     "TINYHIL_XTENSA_GCC"),
    "clang-22": ToolSpec("clang-22", ("--version",), f"{APT} clang-22 llvm-22", "TINYHIL_CLANG"),
    "xtensa-lx106-elf-ld": ToolSpec("xtensa-lx106-elf-ld", ("--version",),
                                    f"{APT} binutils-xtensa-lx106"),
}


@dataclass(frozen=True)
class Tool:
    name: str
    path: Path | None
    version: str | None
    install: str
    problem: str = ""                 # why it was not found, when not simply absent

    @property
    def found(self) -> bool:
        return self.path is not None

    @property
    def missing(self) -> str:
        """`<name> is not installed`, or what is wrong with the variable that names it."""
        return f"{self.name} {self.problem or 'is not installed'}"


def _first_version_line(text: str) -> str | None:
    for line in text.splitlines():
        if re.search(r"\d+\.\d+", line):
            return line.strip()
    return None


@functools.cache
def find_tool(name: str) -> Tool:
    spec = SPECS[name]
    if spec.module and not (spec.env and os.environ.get(spec.env)):
        return _find_module(name, spec)
    explicit = os.environ.get(spec.env) if spec.env else None
    if explicit and not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
        state = "is not an executable file" if Path(explicit).exists() else "does not exist"
        return Tool(name, None, None, f"set {spec.env} to the path of {spec.executable}, or unset "
                    f"it to use the {spec.executable} on PATH",
                    f"is not where {spec.env} says: {explicit} {state}")
    path = explicit or shutil.which(spec.executable)
    if not path or not Path(path).exists():
        return Tool(name, None, None, spec.install)
    run = run_tool([path, *spec.version_args], timeout=10)
    version = _first_version_line(run.stdout + run.stderr) if run.returncode != 127 else None
    if version is None and spec.package:
        version = _package_version(spec.package)
    return Tool(name, Path(path), version, spec.install)


def _find_module(name: str, spec: ToolSpec) -> Tool:
    """A tool the harness imports: it is where this Python finds it, whatever PATH says."""
    import importlib.metadata
    import importlib.util
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.origin:
        return Tool(name, None, None, spec.install)
    try:
        version = f"{spec.module} {importlib.metadata.version(spec.module)}"
    except importlib.metadata.PackageNotFoundError:
        version = None
    return Tool(name, Path(found.origin).parent, version, spec.install)


def _package_version(package: str) -> str | None:
    """simavr prints no version of its own: ask the package manager (Debian) instead."""
    run = run_tool(["dpkg-query", "-W", "-f", "${Version}", package], timeout=10)
    return f"{package} {run.stdout.strip()} (Debian package)" if run.returncode == 0 else None


def run_tool(command: list, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run an external tool, capturing its output as text; never raises for its exit status.
    The one place the harness runs a tool to completion (builds, version probes, uploads)."""
    command = [str(part) for part in command]
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        return subprocess.CompletedProcess(command, 127, "", f"{command[0]} not found: {exc}")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return subprocess.CompletedProcess(command, -9, out, err + f"\n(timed out after {timeout:g} s)")


def require(name: str, purpose: str = "") -> Path:
    tool = find_tool(name)
    if not tool.found:
        why = f" (needed {purpose})" if purpose else ""
        fix = tool.install if tool.problem else f"install it with `{tool.install}`"
        raise ToolMissing(f"{tool.missing}{why}: {fix}")
    return tool.path


def check_variables() -> None:
    """A variable naming a tool that is not there is a mistake to stop at, not a missing tool
    to skip for: raise ToolMissing naming the variable."""
    for name, spec in SPECS.items():
        if spec.env and os.environ.get(spec.env):
            tool = find_tool(name)
            if tool.problem:
                raise ToolMissing(f"{tool.missing}: {tool.install}")


def versions() -> dict[str, str | None]:
    """Versions of every known tool, for the run manifest."""
    return {name: find_tool(name).version for name in SPECS}
