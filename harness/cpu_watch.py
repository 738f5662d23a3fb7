"""Reply timeouts that follow the emulator's real progress, not wall time alone.

A loaded CI host can leave an emulator waiting for a CPU long enough that a wall-clock reply
timeout fires although the guest is fine, only slow. Like Zephyr's twister, the harness looks
at the emulator process's own CPU time: while the process is still burning CPU (or waiting
for a CPU it asked for), the reply deadline is moved on. A stopped or idle process (a hung
board, a DUT waiting for bytes that were lost) gets no extension, so a real hang is still
caught at the timeout; a guest spinning forever is caught once it has used `timeout` seconds
of CPU, and a hard cap bounds the wait in every case.

Linux's /proc/PID/task/*/schedstat gives, per thread, the time spent on a CPU and the time
spent runnable but waiting for one (run_delay), in nanoseconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Below this share of one CPU (running + waiting to run) the process is idle or stopped. A
#: busy process is either on a CPU or queued for one, so its share stays near 1 however
#: loaded the host is; an idle simavr polling its pty measures about 0.05.
ACTIVE_SHARE = 0.5
#: Never wait longer than this many times the nominal timeout (wall time).
CAP_FACTOR = 8.0


def process_times(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, run-queue wait seconds) of every thread of `pid`; None when it is gone."""
    total_cpu = total_wait = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            cpu, wait, _ = (task / "schedstat").read_text().split()[:3]
        except (OSError, ValueError):
            continue                   # a thread that just ended
        total_cpu += int(cpu)
        total_wait += int(wait)
    return total_cpu / 1e9, total_wait / 1e9


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of `pid` (R running, S sleeping, T stopped, Z zombie...)."""
    for _ in range(3):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None                  # no such process
        if ")" in stat:
            return stat[stat.rindex(")") + 2]
        time.sleep(0.01)                 # a torn read: ask again rather than guess
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "?"                           # alive, state unknown: not a fault by itself


def available() -> bool:
    return Path("/proc/self/task").is_dir() and process_times(_self_pid()) is not None


def _self_pid() -> int:
    import os
    return os.getpid()


@dataclass
class ProgressDeadline:
    """One reply wait: `expired()` is true once the emulator has had `timeout` seconds to
    answer, counted in its own progress rather than in wall time (see the module doc)."""
    pid: int | None
    timeout: float
    cap_factor: float = CAP_FACTOR
    started: float = field(default_factory=time.monotonic)
    extended_s: float = 0.0            # how far the deadline moved beyond `timeout`

    def __post_init__(self):
        # /proc is read only once a reply is late (a quarter of the timeout gone): a request
        # answered in time, which is nearly every one, costs no /proc read at all. CPU time is
        # counted from that first read, so a spinning guest is caught within 1.25 x timeout.
        self._start_times = None
        self._last = None
        self._baseline_at = self.started + self.timeout / 4
        self._deadline = self.started + self.timeout

    def _baseline(self, now: float) -> bool:
        """Take the first reading; False when there is nothing to watch."""
        if self._start_times is None and self.pid:
            self._start_times = process_times(self.pid)
            self._last = (now, self._start_times)
        return self._start_times is not None

    def expired(self) -> bool:
        now = time.monotonic()
        if now < self._deadline:
            if now >= self._baseline_at and self._last is None:
                self._baseline(now)
            return False
        if now - self.started >= self.timeout * self.cap_factor:
            return True
        if self._last is None:           # no reading before the deadline (a long poll gap)
            if not self._baseline(now):
                return True
            self._deadline = now + min(0.25, self.timeout)
            return False
        if self._start_times is None:
            return True
        times = process_times(self.pid)
        if times is None or process_state(self.pid) in ("T", "t", "Z", "X"):
            return True                 # stopped, or gone: no amount of waiting helps
        last_wall, last_times = self._last
        self._last = (now, times)
        cpu_used = times[0] - self._start_times[0]
        if cpu_used >= self.timeout:
            return True                 # it had its timeout's worth of CPU and did not answer
        share = ((times[0] - last_times[0]) + (times[1] - last_times[1])) / max(now - last_wall, 1e-3)
        if share < ACTIVE_SHARE:
            return True                 # idle: waiting for bytes that will not come, or hung
        step = min(0.25, self.timeout)  # busy but slow: look again shortly
        self._deadline = now + step
        self.extended_s = self._deadline - self.started - self.timeout
        return False
