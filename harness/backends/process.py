"""Shared by the backends that launch a local program (native DUT, emulators)."""

from __future__ import annotations

import select
import subprocess
import time

from harness.errors import BackendError


def read_announcement(proc: subprocess.Popen, prefix: str, timeout: float, command: list[str]) -> str:
    """Wait for the line `<prefix> <value>` on the program's stdout and return the value."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if not ready:
            continue
        line = proc.stdout.readline().decode(errors="replace").strip()
        if line.startswith(prefix + " "):
            return line[len(prefix) + 1:]
        if line:
            seen.append(line)
    stop_process(proc)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    raise BackendError(f"`{' '.join(command)}` did not announce its serial port within {timeout:.0f} s "
                       f"(exit status {proc.returncode}). Output: {' | '.join(seen)[-500:]} {err[-500:]}")


def stop_process(proc: subprocess.Popen, grace: float = 2.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
