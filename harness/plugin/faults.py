"""Optional plugin: `--fault-link`, a fault-injecting link on every target (tests of the
harness's own recovery). The core plugin never imports harness.faults."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.plugin.config import contribute, tinyhil_active


def pytest_addoption(parser):
    parser.getgroup("tinyhil").addoption(
        "--fault-link", default=None,
        help="inject faults on every serial link, e.g. flip=0.01,drop=0.001,dup=0,delay=0,"
             "delay_ms=20,seed=1 (rates per byte; see harness/faults/faultlink.py)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    spec = config.option.fault_link
    if not spec or not tinyhil_active(config):
        return
    from harness.faults.inject import fault_link_wrapper
    try:
        contribute(config, wrap_target=fault_link_wrapper(spec))
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
