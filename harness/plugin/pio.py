"""Optional plugin: `--pio-project/--pio-env`, the user's own PlatformIO project, built with
`pio run` when its firmware is first needed and flashed with `pio run -t upload`."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.plugin.config import contribute, tinyhil_active


def pytest_addoption(parser):
    group = parser.getgroup("tinyhil")
    group.addoption("--pio-project", default=None,
                    help="your own PlatformIO project (the folder with platformio.ini): built with "
                         "`pio run`, flashed to hardware with `pio run -t upload`; use with --pio-env")
    group.addoption("--pio-env", default=None, help="the PlatformIO environment of --pio-project")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    project, env = config.option.pio_project, config.option.pio_env
    if not project or not tinyhil_active(config):
        return
    if not env or config.option.firmware:
        raise pytest.UsageError("--pio-project needs --pio-env ENV (and no --firmware)")
    from harness.build.platformio import check_project
    from harness.errors import HarnessError
    try:
        check_project(Path(project), env)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    contribute(config, pio=(Path(project), env))
