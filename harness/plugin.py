"""The pytest plugin: options, the board/variant parametrisation and the fixtures suites use.

Fixture chain: case (board, backend, variant) -> exported (model C + test split)
-> firmware (built, cached) -> dut (flashed or launched, identified). Measurements go
through `record`, which appends them to results/<run-id>/records.jsonl as they are taken.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError

SESSION_KEY = pytest.StashKey()


def pytest_addoption(parser, pluginmanager):
    # Lab scale (lab file, labgrid, pytest-xdist workers, JUnit properties) lives in its own plugin.
    from harness import plugin_lab
    if not pluginmanager.is_registered(plugin_lab):
        pluginmanager.register(plugin_lab, "tinyhil-lab")
    group = parser.getgroup("tinyhil", "tinyhil: boards, backends and model variants")
    group.addoption("--board", default=None,
                    help="comma-separated boards (devices/boards/*.toml); default: every board "
                         "this machine can emulate")
    group.addoption("--backend", default="auto",
                    help="auto (hardware if attached, else the board's default emulator), emulators "
                         "(the default emulator, never hardware), all-emulators (every emulator "
                         "the board has), or a comma list of native, simavr, qemu, hardware")
    group.addoption("--variant", default=None, help="comma-separated model variants; default: all")
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
    group.addoption("--pio-project", default=None,
                    help="your own PlatformIO project (the folder with platformio.ini): built with "
                         "`pio run`, flashed to hardware with `pio run -t upload`; use with --pio-env")
    group.addoption("--pio-env", default=None, help="the PlatformIO environment of --pio-project")
    group.addoption("--reply-timeout", type=float, default=None,
                    help="seconds to wait for a DUT reply before resending (default: the board "
                         "file's reply_timeout_s, else 2); it follows the emulator's CPU time")
    group.addoption("--fault-link", default=None,
                    help="inject faults on every serial link, e.g. flip=0.01,drop=0.001,dup=0,"
                         "delay=0,delay_ms=20,seed=1 (rates per byte; see harness/faultlink.py)")


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _session(config):
    """Built on first use, so that plain unit-test runs create no results folder."""
    from harness.session import Session, plan_boards, select_variants

    if SESSION_KEY not in config.stash:
        opt = config.option
        results = Path(opt.results_dir) if opt.results_dir else Path.cwd() / "results"
        try:
            plans, note = plan_boards(_csv(opt.board), opt.backend, opt.port)
            variants = select_variants(_csv(opt.variant))
            fault_link = getattr(opt, "fault_link", None)
            if fault_link:
                from harness.faultlink import FaultSpec
                FaultSpec.parse(fault_link)
            from harness.results import check_writable
            check_writable(results)
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None
        results = Path(opt.results_dir) if opt.results_dir else Path.cwd() / "results"
        firmware_path = getattr(opt, "firmware", None)
        pio = None
        if opt.pio_project:
            if not opt.pio_env or firmware_path:
                raise pytest.UsageError("--pio-project needs --pio-env ENV (and no --firmware)")
            from harness import platformio
            try:
                firmware_path = platformio.build(Path(opt.pio_project), opt.pio_env)
            except HarnessError as exc:
                raise pytest.UsageError(str(exc)) from None
            pio = (Path(opt.pio_project), opt.pio_env)
        if firmware_path and (len(variants) != 1 or len(plans) != 1):
            raise pytest.UsageError(
                "--firmware runs one prebuilt firmware: name its board with --board, one backend "
                "with --backend and the model variant it contains with --variant")
        session = Session(plans, variants, results, port=opt.port, note=note,
                          extra_manifest={"command": sys.argv},
                          firmware_path=Path(firmware_path) if firmware_path else None,
                          shared_run=hasattr(config, "workerinput"),    # an xdist worker
                          fault_link=fault_link, reply_timeout=getattr(opt, "reply_timeout", None),
                          pio=pio)
        if opt.run_id:
            session.run_id = opt.run_id
            session.run_dir = results / opt.run_id
        config.stash[SESSION_KEY] = session
    return config.stash[SESSION_KEY]


def pytest_report_header(config):
    if not (config.option.board or any("suites" in str(a) for a in config.args)):
        return None
    return _plan_lines(_session(config))


def _plan_lines(session) -> list[str]:
    from harness.session import fidelity_of
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
        session = _session(metafunc.config)
        cases = session.cases
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
    return _session(request.config)


@pytest.fixture
def exported(case, tinyhil_session, progress):
    with progress.step(f"training and exporting {case.variant.name}"):
        return tinyhil_session.exported(case.variant)


@pytest.fixture
def firmware(case, exported, tinyhil_session, progress):
    with progress.step(f"building firmware for {case.board.name} / {case.variant.name}"):
        try:
            return tinyhil_session.firmware(case)
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def dut(case, firmware, tinyhil_session, progress):
    plan = tinyhil_session.plan_for(case)
    if not plan.availability.ok:
        pytest.skip(f"{case.backend} cannot run {case.board.name} here: {plan.availability}")
    if not firmware.fits:
        pytest.skip(f"{case.variant.name} does not fit {case.board.name}: {'; '.join(firmware.problems)}")
    from harness.backends import get_backend
    refusal = get_backend(case.backend).cannot_run(case.board, firmware)
    if refusal:
        pytest.skip(f"{case.variant.name} on {case.board.name}: {refusal}")
    with progress.step(f"starting {case.board.name} on {case.backend}"):
        try:
            running = tinyhil_session.dut(case)
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
    yield running
    from harness.supervision import after_test
    after_test(tinyhil_session, case, running)


@pytest.fixture
def energy_monitor(dut, request):
    """The chosen energy monitor for this DUT (--energy-monitor); skips saying why there is none."""
    from harness.energy import MonitorUnavailable, open_monitor
    try:
        monitor = open_monitor(request.config.option.energy_monitor, dut.target, dut.identity.timer_hz)
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


def pytest_sessionfinish(session, exitstatus):
    tinyhil = session.config.stash.get(SESSION_KEY, None)
    if tinyhil is not None:
        status = "interrupted" if exitstatus == pytest.ExitCode.INTERRUPTED else "complete"
        tinyhil.close(status)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A fault the harness could not recover from is a failure without a traceback: its
    message says what happened, and the run goes on with the next test."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.failed:
        from harness.recovery import DutFault
        if isinstance(call.excinfo.value, DutFault):
            report.longrepr = str(call.excinfo.value)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tinyhil = config.stash.get(SESSION_KEY, None)
    if tinyhil is None or tinyhil.recorder is None:
        return
    from harness.report import comparison_table, load_runs, print_table
    try:
        table = comparison_table(load_runs([tinyhil.run_dir]))
    except HarnessError as exc:
        terminalreporter.write_line(f"tinyhil: no comparison table: {exc}")
        return
    terminalreporter.section("tinyhil comparison table")
    for line in _plan_lines(tinyhil) + tinyhil.target_lines():
        terminalreporter.write_line(line)
    from rich.console import Console
    from harness.report import TERMINAL_WIDTH
    print_table(table, console=Console(file=terminalreporter._tw._file,
                                       width=min(TERMINAL_WIDTH, terminalreporter._tw.fullwidth),
                                       force_terminal=terminalreporter.hasmarkup))
    terminalreporter.write_line(f"records: {tinyhil.run_dir}   (rebuild: tinyhil report {tinyhil.run_dir})")
