"""Scratch folders of running emulators and links (/tmp/tinyhil-<kind>-<pid>-*): removed when
their owner stops them or exits, and, since a SIGKILLed harness can clean nothing up, swept by
the next harness that makes one (a folder whose owning process is gone is stale)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "tinyhil-"
_mine: set[Path] = set()


def make(kind: str) -> Path:
    """A fresh folder for one emulator or link of this process."""
    sweep_stale(kind)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-"))
    _mine.add(path)
    return path


def remove(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
        _mine.discard(Path(path))


def sweep_stale(kind: str) -> int:
    """Remove the folders of `kind` whose owning process has exited; how many went."""
    removed = 0
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}{kind}-*"):
        owner = path.name[len(PREFIX) + len(kind) + 1:].split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # another user's process: alive, and not ours to touch
        return True
    return True


@atexit.register
def _remove_mine() -> None:         # a normal exit, or SIGTERM/SIGINT turned into one
    for path in list(_mine):
        remove(path)
