"""Long steps say what they are doing: a live counter on a terminal, a line otherwise."""

from __future__ import annotations

import sys
import time

import pytest


class Progress:
    """Long steps say what they are doing: a live counter on a terminal, a line otherwise."""

    def __init__(self, config):
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.live = sys.__stderr__.isatty() if sys.__stderr__ else False

    def _write(self, text: str, end: str = "\n") -> None:
        if self.reporter is not None and self.reporter.verbosity >= 0:
            if self.live:
                sys.__stderr__.write(text + end)
                sys.__stderr__.flush()

    class _Step:
        def __init__(self, progress, what):
            self.progress, self.what = progress, what

        def __enter__(self):
            self.started = time.monotonic()
            self.progress._write(f"\r  {self.what} ...", end="")
            return self

        def __exit__(self, *exc):
            self.progress._write(f"\r  {self.what}: {time.monotonic() - self.started:.1f} s\033[K", end="")
            return False

    def step(self, what: str):
        return self._Step(self, what)

    def counter(self, what: str, total: int):
        def update(done: int):
            if done == total or done % 10 == 0:
                self._write(f"\r  {what}: {done}/{total}\033[K", end="")
        return update


@pytest.fixture
def progress(request):
    return Progress(request.config)
