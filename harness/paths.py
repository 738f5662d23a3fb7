"""Where the harness finds its data (board files, firmware sources) and keeps its caches."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def devices_dir() -> Path:
    """The devices/ folder: in the source tree, or packaged inside an installed wheel."""
    for candidate in (REPO_DIR / "devices", PACKAGE_DIR / "devices"):
        if (candidate / "boards").is_dir():
            return candidate
    raise FileNotFoundError("tinyhil's devices/ folder is missing from the installation")


BOARDS_ENV = "TINYHIL_BOARDS_DIR"


def boards_dir() -> Path:
    """The built-in board files."""
    return devices_dir() / "boards"


def user_boards_dirs() -> list[Path]:
    """The user's own board folders (TINYHIL_BOARDS_DIR, several joined with ':'): they add to
    the built-in boards, and a board of the same name there wins."""
    return [Path(p).expanduser() for p in os.environ.get(BOARDS_ENV, "").split(os.pathsep) if p]


def firmware_dir() -> Path:
    return devices_dir() / "firmware"


def cache_dir() -> Path:
    """Build cache: firmware, exported models, the simavr bridge. TINYHIL_CACHE moves it."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinyhil"
    path = Path(os.environ.get("TINYHIL_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path
