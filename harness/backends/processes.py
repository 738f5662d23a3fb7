"""Local programs the backends launch (native DUT, simavr bridge, QEMU): started in their own
process group with a parent-death signal (Linux), so none outlives the harness; stopped with
bounded waits; and the two ways they say they are ready (a line on stdout, a listening port)."""

from __future__ import annotations

import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import time

from harness.errors import BackendError

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 2.0


def _die_with_parent() -> None:           # runs in the child, between fork and exec
    os.setpgrp()
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(command: list, **popen) -> subprocess.Popen:
    """Popen in a process group of its own that is killed when the harness dies."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen([str(c) for c in command], preexec_fn=_die_with_parent, **popen)


def stop_process(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM to its group, SIGKILL after `grace`; never waits without a bound."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass                      # a zombie in D state: nothing more can be done
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def read_announcement(proc: subprocess.Popen, prefix: str, timeout: float, command: list) -> str:
    """Wait for the line `<prefix> <value>` on the program's stdout and return the value."""
    deadline = time.monotonic() + timeout
    seen, pending = [], b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        chunk = os.read(fd, 4096)          # not readline(): it could block past the deadline
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1:]
            if line:
                seen.append(line)
    stop_process(proc)
    raise BackendError(f"`{' '.join(map(str, command))}` did not announce its serial port within "
                       f"{timeout:.0f} s (exit status {proc.returncode}). Output: "
                       f"{' | '.join(seen)[-500:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(proc: subprocess.Popen, port: int, timeout: float = 15) -> bool:
    """QEMU listens before the guest runs: look for the socket in /proc/net/tcp, without
    connecting (a connection would start the guest)."""
    deadline = time.monotonic() + timeout
    needle = f":{port:04X} 00000000:0000 0A"     # LISTEN
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open("/proc/net/tcp") as table:
                if needle in table.read():
                    return True
        except OSError:                          # no procfs: try to connect later instead
            time.sleep(0.5)
            return proc.poll() is None
        time.sleep(0.02)
    return False


def stderr_tail(proc: subprocess.Popen, limit: int = 500) -> str:
    if proc.stderr is None or proc.poll() is None or proc.stderr.closed:
        return ""
    return proc.stderr.read().decode(errors="replace")[-limit:]
