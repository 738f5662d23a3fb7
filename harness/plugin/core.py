"""The pytest plugin: options, the board/variant parametrisation and the fixtures suites use.

Fixture chain: case (board, backend, variant) -> exported (model C + test split)
-> firmware (built, cached) -> dut (flashed or launched, identified). Measurements go
through `record`, which appends them to results/<run-id>/records.jsonl as they are taken.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from harness.errors import HarnessError, NotBuildable
from harness.plugin.config import CONFIG_KEY, RunConfig, tinyhil_active
from harness.plugin.progress import Progress

SESSION_KEY = pytest.StashKey()


@pytest.fixture
def progress(request):
    return Progress(request.config)


def pytest_addoption(parser):
    group = parser.getgroup("tinyhil", "tinyhil: boards, backends and model variants")
    group.addoption("--board", default=None,
                    help="comma-separated boards (devices/boards/*.toml); default: every board "
                         "this machine can emulate")
    group.addoption("--backend", default="auto",
                    help="auto (hardware if attached, else the board's default emulator), emulators "
                         "(the default emulator, never hardware), all-emulators (every emulator "
                         "the board has), or a comma list of native, simavr, qemu, hardware")
    group.addoption("--variant", default=None, help="comma-separated model variants; default: all")
    group.addoption("--models", default=None,
                    help="a models file (TOML, [[model]] tables): the run's variants are its own "
                         "(default: ./tinyhil.toml, [tool.tinyhil] in ./pyproject.toml, else the "
                         "shipped demo catalogue)")
    group.addoption("--port", default=None, help="serial port of an attached board (hardware backend)")
    group.addoption("--results-dir", default=None,
                    help="where run folders go (default: results/ in the current folder)")
    group.addoption("--run-id", default=None, help="name of this run's folder (default: UTC time)")
    group.addoption("--latency-runs", type=int, default=20, help="timed inferences per latency figure")
    group.addoption("--warmup", type=int, default=2, help="untimed inferences before timing")
    group.addoption("--firmware", default=None,
                    help="run your own prebuilt firmware (an ELF, or an ESP32 app image) instead of "
                         "building one; it must link the tinyhil runtime and run the --variant given")
    group.addoption("--vectors", type=int, default=None,
                    help="stream only the first N test vectors in the accuracy suite (default: all)")
    group.addoption("--energy-monitor", default="auto",
                    choices=("auto", "model", "joulescope", "ppk2", "none"),
                    help="where energy comes from: auto (the board's power model on emulators; on "
                         "hardware the instrument its board file names, else none), model, "
                         "joulescope, ppk2 or none (docs/energy.md)")
    group.addoption("--energy-min-window-s", type=float, default=None,
                    help="shortest marker-high time per energy window (default: 10 s on hardware, "
                         "the MLPerf Tiny rule; 0.02 s of simulated time on emulators)")
    group.addoption("--energy-windows", type=int, default=5,
                    help="energy windows per figure; the median is reported, the spread kept")
    group.addoption("--protocol", default=None, choices=("tinyhil", "eembc"),
                    help="what the DUT speaks: tinyhil's binary protocol, or eembc (MLPerf Tiny's "
                         "text protocol: the firmware is built so, or --firmware is such "
                         "firmware); default: each board file's `protocol`, else tinyhil")
    group.addoption("--eembc-window-s", type=float, default=None,
                    help="EEMBC: device seconds each latency window of `infer N W` spans "
                         "(default: 10 s on hardware, the MLPerf Tiny rule; 0.02 s elsewhere)")
    group.addoption("--reply-timeout", type=float, default=None,
                    help="seconds to wait for a DUT reply before resending (default: the board "
                         "file's reply_timeout_s, else 2); it follows the emulator's CPU time")


@pytest.hookimpl(trylast=True)       # after the optional plugins have contributed
def pytest_configure(config):
    """Read the options once, and plan the run's cases (no results folder yet: that comes
    with the first record)."""
    if not tinyhil_active(config):
        return
    try:
        config.stash[SESSION_KEY] = build_session(config)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    _interrupt_on_sigterm()


_SIGNALLED: list[str] = []      # the signals that asked this run to stop


def _interrupt_on_sigterm() -> None:
    """A CI timeout sends SIGTERM: end the run as Ctrl-C does, so every DUT is stopped and
    the manifest says `interrupted` (by default SIGTERM kills Python with no clean-up). Both
    signals are remembered too: a KeyboardInterrupt raised where Python cannot pass it on (a
    finaliser, a callback) is lost, and the next test then stops the run instead."""
    import signal
    import threading

    def interrupt(signum, frame):
        _SIGNALLED.append(signal.Signals(signum).name)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt)


def pytest_runtest_setup(item):
    if _SIGNALLED and tinyhil_active(item.config):
        raise KeyboardInterrupt(f"signal {_SIGNALLED[0]}")


def build_session(config):
    from harness.results.records import check_writable
    from harness.session.plan import plan_boards, select_variants
    from harness.session.session import Session

    from harness.tools import check_variables

    run = RunConfig.from_pytest(config)
    config.stash[CONFIG_KEY] = run
    check_variables()
    for name, value, least, most in (("--latency-runs", run.latency_runs, 1, None),
                                     ("--warmup", run.warmup, 0, 65535),   # a 16-bit field
                                     ("--energy-windows", run.energy_windows, 1, None)):
        if value < least:
            raise HarnessError(f"{name} {value}: must be at least {least}")
        if most is not None and value > most:
            raise HarnessError(f"{name} {value}: must be at most {most}")
    if run.vectors is not None and run.vectors < 1:
        raise HarnessError(f"--vectors {run.vectors}: must be at least 1 (leave it out to stream "
                           "the whole test set)")
    if run.port and "://" not in run.port and not os.path.exists(run.port):
        raise HarnessError(f"--port {run.port} does not exist: is the board plugged in? "
                           "`python -m serial.tools.list_ports` lists the ports there are "
                           "(leave --port out to run on emulators)")
    if run.firmware:
        _check_firmware_file(run.firmware)
    if run.eembc_window_s is not None and not run.eembc_window_s > 0:
        raise HarnessError(f"--eembc-window-s {run.eembc_window_s}: must be more than 0 seconds")
    plans, note = plan_boards(run.boards, run.backend, run.port)
    if run.protocol:
        plans = [replace(plan, board=replace(plan.board, protocol=run.protocol)) for plan in plans]
    from harness.models import use_models_file
    use_models_file(run.models)
    variants = select_variants(run.variants)
    check_writable(run.results_dir)
    if (run.firmware or run.pio) and (len(variants) != 1 or len(plans) != 1):
        raise HarnessError("--firmware and --pio-project run one firmware: name its board with "
                           "--board, one backend with --backend and the model variant it contains "
                           "with --variant")
    session = Session(plans, variants, run.results_dir, port=run.port, note=note,
                      extra_manifest={"command": list(run.command),
                                      "models_file": str(run.models) if run.models else None}, firmware_path=run.firmware,
                      shared_run=hasattr(config, "workerinput"),    # an xdist worker
                      reply_timeout=run.reply_timeout, pio=run.pio, wrap_target=run.wrap_target,
                      eembc_window_s=run.eembc_window_s)
    if run.run_id:
        session.run_id = run.run_id
        session.run_dir = run.results_dir / run.run_id
    if not session.shared_run:            # xdist workers write the controller's run
        from harness.results.runlock import RunLock
        session.run_lock = RunLock(session.run_dir).acquire()
    return session


def _check_firmware_file(path) -> None:
    """A missing or cut --firmware file is a usage error, not one failure per test."""
    from pathlib import Path
    from harness.build.elf import check_whole
    path = Path(path).expanduser()
    if not path.is_file():
        raise HarnessError(f"--firmware {path} does not exist: give the path of your firmware's "
                           "ELF (or, for an ESP32, its app image from esptool elf2image)")
    with open(path, "rb") as stream:
        if stream.read(4) == b"\x7fELF":
            try:
                check_whole(path)
            except HarnessError as exc:
                raise HarnessError(f"--firmware: {exc}") from None


def session_of(config):
    """The run's Session; a usage error when this pytest run is not a tinyhil run."""
    if SESSION_KEY not in config.stash:
        raise pytest.UsageError("the tinyhil fixtures need a run of the suites: pass --board, or "
                                "a path under suites/")
    return config.stash[SESSION_KEY]


def pytest_report_header(config):
    session = config.stash.get(SESSION_KEY, None)
    return _plan_lines(session) if session is not None else None


def _plan_lines(session) -> list[str]:
    from harness.backends import fidelity_of
    lines = []
    lines += [f"tinyhil: {note}" for note in session.note.splitlines()]
    for plan in session.plans:
        state = "" if plan.availability.ok else f"  [cannot run here: {plan.availability}]"
        lines.append(f"tinyhil: {plan.board.name} on {plan.backend} ({plan.why}; fidelity "
                     f"{fidelity_of(plan.backend, plan.board)}){state}")
    lines.append(f"tinyhil: variants {', '.join(v.name for v in session.variants)}; "
                 f"results in {session.run_dir}")
    return lines


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        cases = session_of(metafunc.config).cases
        metafunc.parametrize("case", cases, ids=[c.id for c in cases], scope="function")


def pytest_collection_modifyitems(session, config, items):
    """Group tests by case, so that each firmware is built and launched once."""
    def case_key(item):
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("case") if callspec else None
        return (0, case.id) if case is not None else (-1, "")
    order = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (case_key(item), order[id(item)]))


@pytest.fixture(scope="session")
def tinyhil_session(request):
    return session_of(request.config)


@pytest.fixture(scope="session")
def run_config(request, tinyhil_session) -> RunConfig:
    """The run's options, typed (suites read them here, never from pytest's config)."""
    return request.config.stash[CONFIG_KEY]


@pytest.fixture
def exported(case, tinyhil_session, progress):
    from harness.models import NotExportable
    with progress.step(f"training and exporting {case.variant.name}"):
        try:
            return tinyhil_session.exported(case.variant)
        except NotExportable as exc:
            tinyhil_session.record_not_exportable(case, str(exc))
            pytest.skip(f"{case.variant.name}: {exc}")


@pytest.fixture
def firmware(case, exported, tinyhil_session, progress):
    with progress.step(f"building firmware for {case.board.name} / {case.variant.name}"):
        try:
            return tinyhil_session.firmware(case)
        except NotBuildable as exc:
            pytest.skip(f"{case.variant.name} not buildable for {case.board.name}: {exc}")
        except HarnessError as exc:
            problem = str(exc)
    pytest.fail(problem, pytrace=False)         # outside the except: no chained traceback


@pytest.fixture
def dut(case, firmware, tinyhil_session, progress):
    plan = tinyhil_session.plan_for(case)
    if not plan.availability.ok:
        pytest.skip(f"{case.backend} cannot run {case.board.name} here: {plan.availability}")
    if not firmware.fits:
        pytest.skip(f"{case.variant.name} does not fit {case.board.name}: {'; '.join(firmware.problems)}")
    from harness.backends import get_backend
    refusal = get_backend(case.backend, case.board).cannot_run(case.board, firmware)
    if refusal:
        pytest.skip(f"{case.variant.name} on {case.board.name}: {refusal}")
    with progress.step(f"starting {case.board.name} on {case.backend}"):
        try:
            running = tinyhil_session.dut(case)
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
    yield running
    from harness.dut.supervision import after_test
    after_test(running, tinyhil_session.recorder_for(case, firmware, running.fidelity))


@pytest.fixture
def energy_monitor(dut, run_config):
    """The chosen energy monitor for this DUT (--energy-monitor); skips saying why there is none."""
    from harness.energy import MonitorUnavailable, open_monitor
    try:
        monitor = open_monitor(run_config.energy_monitor, dut.target, dut.identity.timer_hz)
    except MonitorUnavailable as exc:
        pytest.skip(str(exc))
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield monitor
    monitor.close()


@pytest.fixture
def record(case, firmware, tinyhil_session):
    """record(metric, value, unit, fidelity, statistic="value", n=1, detail="") -> the record."""
    def _record(metric, value, unit, fidelity_label, statistic="value", n=1, detail=""):
        return tinyhil_session.record(case, firmware, metric, value, unit, fidelity_label,
                                      statistic, n, detail)
    return _record


def pytest_sessionfinish(session, exitstatus):
    tinyhil = session.config.stash.get(SESSION_KEY, None)
    if tinyhil is not None and not session.config.option.collectonly:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or _SIGNALLED
        status = "interrupted" if interrupted else "complete"
        tinyhil.close(status)


def pytest_unconfigure(config):
    """A run that never closed its session (--collect-only, a usage error) lets go of its run id."""
    tinyhil = config.stash.get(SESSION_KEY, None)
    if tinyhil is not None and tinyhil.run_lock is not None:
        tinyhil.run_lock.release()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A fault the harness could not recover from is a failure without a traceback: its
    message says what happened, and the run goes on with the next test."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.failed:
        from harness.dut.recovery import DutFault
        if isinstance(call.excinfo.value, DutFault):
            report.longrepr = str(call.excinfo.value)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tinyhil = config.stash.get(SESSION_KEY, None)
    if tinyhil is None or tinyhil.recorder is None:
        return
    from harness.report.table import comparison_table, load_runs, print_table
    try:
        table = comparison_table(load_runs([tinyhil.run_dir]))
    except HarnessError as exc:
        terminalreporter.write_line(f"tinyhil: no comparison table: {exc}")
        return
    terminalreporter.section("tinyhil comparison table")
    for line in _plan_lines(tinyhil) + tinyhil.target_lines():
        terminalreporter.write_line(line)
    from rich.console import Console
    from harness.report.table import RENDER_WIDTH
    print_table(table, console=Console(file=terminalreporter._tw._file,
                                       width=RENDER_WIDTH,
                                       force_terminal=terminalreporter.hasmarkup))
    terminalreporter.write_line(f"records: {tinyhil.run_dir}   (rebuild: tinyhil report {tinyhil.run_dir})")
