"""One live run per run folder: a second run started with the same --run-id while the first
still runs is refused at once, instead of silently merging two runs' records.

The lock is an flock on a file in the temp folder, named after the run folder's absolute path
(so taking it creates nothing under --results-dir): the kernel drops it when its holder dies,
however it dies, so a killed run never blocks the next one."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

from harness.errors import HarnessError


class RunInUse(HarnessError):
    """Another live process is writing this run."""


class RunLock:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir).absolute()
        digest = hashlib.sha256(str(self.run_dir).encode()).hexdigest()[:16]
        self.path = Path(tempfile.gettempdir()) / f"tinyhil-run-{digest}.lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunInUse(f"run {self.run_dir.name} is in use: another tinyhil run (pid {holder}) "
                           f"is writing {self.run_dir}; give this run another --run-id, or leave "
                           "--run-id out for a fresh one") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Unlinked while still held, so no lock file is left behind per run."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)           # closing drops the flock
            self._fd = None
