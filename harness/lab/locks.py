"""One process at a time drives a physical board: a lock file per board."""

from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path

from harness.lab.inventory import LabError


def _lock_dir() -> Path:
    from harness.paths import cache_dir
    path = cache_dir() / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


_held: dict[Path, list] = {}        # lock path -> [fd, holders in this process]


class BoardLock:
    """One process at a time drives a physical board: an flock on a file per board, so the
    lock also holds across separate runs on the host and dies with a killed process. Within
    one process it is re-entrant (a target that was never stopped does not block the next)."""

    def __init__(self, key: str, directory: Path | None = None):
        self.key = key
        self.path = (directory or _lock_dir()) / (re.sub(r"[^A-Za-z0-9_.-]+", "_", key) + ".lock")
        self.held = False

    def acquire(self, timeout: float = 600, poll: float = 0.2) -> "BoardLock":
        if self.held:
            return self
        if self.path in _held:
            _held[self.path][1] += 1
            self.held = True
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise LabError(f"{self.key} is busy: another process ({holder or 'unknown'}) "
                                   f"has driven it for more than {timeout:.0f} s. Wait for it, or "
                                   f"stop it (lock file {self.path})") from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        _held[self.path] = [fd, 1]
        self.held = True
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        entry = _held.get(self.path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _held[self.path]
            fcntl.flock(entry[0], fcntl.LOCK_UN)
            os.close(entry[0])

    def __enter__(self) -> "BoardLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
