"""Users' own PlatformIO projects: `pio run` builds them (harness.lab.uploaders.platformio
flashes them with `pio run -t upload`).

The built ELF then runs through the suites like any prebuilt firmware (--firmware). PlatformIO
downloads its platforms and toolchains on first use, so this needs a machine that can reach
PlatformIO's registry; the error says so when the download fails.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from harness.errors import BuildError, HarnessError, ToolMissing
from harness.tools import run_tool

BUILD_TIMEOUT_S = 1800


def pio_command() -> list[str]:
    exe = shutil.which("pio") or shutil.which("platformio")
    if exe:
        return [exe]
    try:
        import platformio  # noqa: F401
    except ImportError:
        raise ToolMissing("PlatformIO is not installed (needed for --pio-project): "
                          "pip install platformio") from None
    return [sys.executable, "-m", "platformio"]


def check_project(project: Path, env: str) -> None:
    ini = project / "platformio.ini"
    if not ini.is_file():
        raise HarnessError(f"{project} is not a PlatformIO project (no platformio.ini): pass the "
                           "folder that holds platformio.ini to --pio-project")
    if f"[env:{env}]" not in ini.read_text():
        raise HarnessError(f"{ini} has no [env:{env}] section: pass one of its environments "
                           "with --pio-env")


def run_pio(args: list[str], what: str, timeout: float = BUILD_TIMEOUT_S) -> None:
    command = [*pio_command(), *args]
    result = run_tool(command, timeout=timeout)
    if result.returncode == -9:
        raise BuildError(f"{what} did not finish within {timeout:.0f} s: {' '.join(command)}")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        hint = (" PlatformIO downloads platforms and toolchains on first use: this machine must "
                "reach its registry." if "HTTP" in tail or "Could not" in tail or "resolve" in tail else "")
        raise BuildError(f"{what} failed: {' '.join(command)}\n{tail}\n{hint}".rstrip())


def build(project: Path, env: str) -> Path:
    """`pio run -d PROJECT -e ENV`; returns the ELF it made."""
    project = Path(project).resolve()
    check_project(project, env)
    run_pio(["run", "-d", str(project), "-e", env], f"pio run -e {env}")
    elf = project / ".pio" / "build" / env / "firmware.elf"
    if not elf.is_file():
        raise BuildError(f"pio run -e {env} succeeded but left no {elf}")
    return elf
