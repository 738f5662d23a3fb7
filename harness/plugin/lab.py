"""Lab scale for the pytest plugin (registered by harness.plugin): the lab file, labgrid, many
boards in one run with pytest-xdist, and JUnit XML properties.

With `-n N` (pytest-xdist) the controller picks the run id and hands it to every worker, so
all records land in one run folder: workers append to its records.jsonl (one locked write
per line), the controller writes the manifest before they start and records.parquet and the
table after they finish. Tests are grouped (`--dist loadgroup`): all tests of one physical
board go to one worker, so a board is driven by exactly one worker at a time (a file lock per
board guards it from other runs on the host too); each emulated (board, variant) is its own
group, so several instances of one emulated board run side by side on different workers.
"""

from __future__ import annotations

import argparse
import os
import socket

import pytest

from harness.errors import HarnessError
from harness.plugin.config import tinyhil_active

RUN_ID_KEY = "tinyhil_run_id"
LOADGROUP_KEY = "tinyhil_loadgroup"


def pytest_addoption(parser):
    group = parser.getgroup("tinyhil")
    group.addoption("--lab", default=None,
                    help="lab file naming each physical board (see lab.example.toml); default: "
                         "$TINYHIL_LAB")
    # labgrid's own pytest plugin (loaded whenever labgrid is installed, in either order with
    # this one) defines the same option with the same meaning and dest: leave it to it then.
    if _labgrid_plugin_installed():
        return
    try:
        group.addoption("--lg-coordinator", default=None, metavar="HOST:PORT", dest="lg_coordinator",
                        help="labgrid coordinator, for lab boards that name a labgrid place; "
                             "default: $LG_COORDINATOR")
    except (argparse.ArgumentError, ValueError):
        pass


def _labgrid_plugin_installed() -> bool:
    from importlib.metadata import entry_points
    return any(ep.value.split(".")[0] == "labgrid" for ep in entry_points(group="pytest11"))


def _distributed(config) -> bool:
    """This process is an xdist controller that will hand tests to workers."""
    return (not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist")
            and config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))
            and not config.getoption("collectonly"))


@pytest.hookimpl(tryfirst=True)       # the lab is active before the core plans the run
def pytest_configure(config):
    from harness.lab import inventory as lab
    from harness.lab import labgrid
    try:
        if config.option.lab:
            lab.activate(config.option.lab)
        elif os.environ.get(lab.LAB_ENV):
            lab.active_lab()                 # a bad TINYHIL_LAB fails here, clearly
        labgrid.set_coordinator(getattr(config.option, "lg_coordinator", None))
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None

    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        if workerinput.get(RUN_ID_KEY):
            config.option.run_id = workerinput[RUN_ID_KEY]
        if workerinput.get(LOADGROUP_KEY):
            config.option.loadgroup = True     # the worker's own args may not say --dist loadgroup
    elif _distributed(config):
        from harness.results.records import new_run_id
        if not config.option.run_id:
            config.option.run_id = new_run_id()
        if config.option.dist == "load":       # -n alone: keep each physical board on one worker
            config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist controller, per worker: the run id all workers record under."""
    node.workerinput[RUN_ID_KEY] = node.config.option.run_id
    node.workerinput[LOADGROUP_KEY] = node.config.option.dist == "loadgroup"


def group_of(case) -> str:
    """The xdist group of a case: a physical board is one group (one worker drives it); an
    emulated board gets one group per (board, backend, variant), so instances run in parallel."""
    if case.backend == "hardware":
        return f"board-{case.board.name}"
    return f"case-{case.id}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("case") if callspec else None
        if case is not None and hasattr(case, "backend"):
            item.add_marker(pytest.mark.xdist_group(group_of(case)))


def pytest_sessionstart(session):
    """Controller: write the run's manifest once, before the workers record into the folder."""
    config = session.config
    if _distributed(config) and tinyhil_active(config):
        from harness.plugin.core import session_of
        tinyhil = session_of(config)
        tinyhil.extra_manifest["xdist_workers"] = len(config.getoption("tx"))
        try:
            tinyhil.open_recorder()
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """Controller: workers recorded into a run this process has not opened yet (a run the
    header did not foresee): take it over now, so its parquet and manifest get written."""
    config = session.config
    if not _distributed(config):
        return
    from harness.plugin.core import SESSION_KEY
    from harness.results.records import RECORDS_JSONL
    tinyhil = config.stash.get(SESSION_KEY, None)
    if tinyhil is not None and tinyhil.recorder is None and (tinyhil.run_dir / RECORDS_JSONL).exists():
        tinyhil.extra_manifest["xdist_workers"] = len(config.getoption("tx"))
        tinyhil.open_recorder()


@pytest.fixture(autouse=True)
def _tinyhil_test_properties(request):
    """JUnit XML (--junitxml) properties of every suite test: board, backend, fidelity,
    variant, firmware hash, run id, host."""
    if "case" not in request.fixturenames:
        yield
        return
    case = request.getfixturevalue("case")
    props = request.node.user_properties
    props += [("board", case.board.name), ("backend", case.backend),
              ("fidelity", case.fidelity), ("model", case.variant.model),
              ("variant", case.variant.name), ("host", socket.gethostname())]
    props.append(("run_id", request.getfixturevalue("tinyhil_session").run_id))
    yield
    # After the test: the firmware it ran, if it got as far as building one.
    firmware = request.node.funcargs.get("firmware")
    if firmware is not None:
        props += [("firmware_sha256", firmware.sha256), ("build_id", firmware.build_id)]
