"""One benchmark session: the shared state behind the pytest fixtures: model exports, builds,
running DUTs (reused while their firmware is unchanged) and the recorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness import __version__
from harness.backends import get_backend
from harness.backends.base import StartRequest, Target
from harness.build.core import Firmware
from harness.build.firmware import build_firmware
from harness.dut.device import Dut
from harness.dut.supervision import attach_supervisor, healthy
from harness.energy.measure import EMULATOR_MIN_WINDOW_S, MLPERF_MIN_WINDOW_S
from harness.errors import BackendError, HarnessError
from harness.models import ExportedModel, ModelVariant, export
from harness.protocol import client_class
from harness.protocol.client import DutClient, LinkStats
from harness.results.records import Recorder, new_run_id, write_manifest
from harness.session.plan import BoardPlan, Case


@dataclass
class Session:
    plans: list[BoardPlan]
    variants: list[ModelVariant]
    results_dir: Path
    port: str | None = None
    run_id: str = field(default_factory=new_run_id)
    note: str = ""
    extra_manifest: dict = field(default_factory=dict)
    firmware_path: Path | None = None      # --firmware: the user's own prebuilt firmware
    pio: tuple[Path, str] | None = None    # --pio-project/--pio-env: flashed with `pio run -t upload`
    # An xdist worker: the controller owns the run folder's manifest and parquet; the worker
    # only appends its records to the shared records.jsonl.
    shared_run: bool = False
    reply_timeout: float | None = None # seconds; None: the board file's reply_timeout_s, else 2
    #: EEMBC firmware: device seconds per latency window (None: as the energy suite's windows,
    #: MLPerf's 10 s on hardware, EMULATOR_MIN_WINDOW_S elsewhere)
    eembc_window_s: float | None = None
    # Applied to every target started (the fault-injecting link of harness.faults).
    wrap_target: Callable[[Target], Target] | None = None

    def __post_init__(self):
        self.run_dir = Path(self.results_dir) / self.run_id
        self.recorder: Recorder | None = None
        self._refused: set[tuple[str, str, str]] = set()   # cases recorded as not exportable
        self._exports: dict[str, ExportedModel] = {}
        self._firmware: dict[str, Firmware] = {}
        self._running: dict[tuple[str, str], tuple[str, Dut]] = {}
        self._test_sets: dict[tuple[str, str, str], dict] = {}   # Dut.test_set, per case
        self.targets: list[dict] = []          # every target started: for the manifest and summary
        self.run_lock = None                   # harness.results.runlock.RunLock, when held

    @property
    def cases(self) -> list[Case]:
        return [Case(plan.board, plan.backend, variant) for plan in self.plans for variant in self.variants]

    def plan_for(self, case: Case) -> BoardPlan:
        return next(p for p in self.plans if p.board.name == case.board.name and p.backend == case.backend)

    # --- records -----------------------------------------------------------------------------
    def open_recorder(self) -> Recorder:
        if self.recorder is None and self.shared_run:
            self.recorder = Recorder(self.run_dir, self.run_id, __version__, shared=True)
        if self.recorder is None:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HarnessError(f"cannot create the results folder {self.run_dir}: {exc}. "
                                   "Pick a writable one with --results-dir") from None
            write_manifest(self.run_dir, self.run_id, {
                "boards": [p.board.name for p in self.plans],
                "backends": [f"{p.board.name}:{p.backend}" for p in self.plans],
                "variants": [v.name for v in self.variants],
                **self.extra_manifest,
            })
            self.recorder = Recorder(self.run_dir, self.run_id, __version__)
        return self.recorder

    def record(self, case: Case, firmware: Firmware, metric: str, value: float, unit: str,
               fidelity_label: str, statistic: str = "value", n: int = 1, detail: str = "") -> dict:
        return self.open_recorder().record(
            board=case.board.name, backend=case.backend, fidelity=fidelity_label,
            model=case.variant.model, variant=case.variant.name, metric=metric, value=float(value),
            unit=unit, statistic=statistic, n=int(n), firmware_sha256=firmware.sha256, detail=detail,
            protocol=case.board.protocol)

    def record_not_exportable(self, case: Case, reason: str) -> dict | None:
        """An exporter that cannot handle the estimator: one record per case saying so."""
        key = (case.board.name, case.backend, case.variant.name)
        if key in self._refused:
            return None
        self._refused.add(key)
        return self.open_recorder().record(
            board=case.board.name, backend=case.backend, fidelity="static",
            model=case.variant.model, variant=case.variant.name, metric="exportable", value=0.0,
            unit="bool", statistic="value", n=1, firmware_sha256="", detail=reason,
            protocol=case.board.protocol)

    def close(self, status: str = "complete") -> None:
        try:
            for _, dut in self._running.values():
                dut.close()
            self._running.clear()
            if self.recorder is not None:
                if self.targets and not self.shared_run:
                    from harness.results.records import update_manifest
                    update_manifest(self.run_dir, targets=self.targets)
                self.recorder.close(status)
        finally:
            if self.run_lock is not None:
                self.run_lock.release()

    def target_lines(self) -> list[str]:
        """What each hardware target went through (flashed, or already held the build)."""
        lines = []
        for t in self.targets:
            if t["backend"] == "hardware":
                what = (f"flashed with {t['uploader']}" if t["flashed"] else
                        f"already runs build {t['build_id']}: not flashed again")
                lines.append(f"tinyhil: {t['board']} at {t['url']}: {what}")
        return lines

    # --- builds and targets -----------------------------------------------------------------
    def exported(self, variant: ModelVariant) -> ExportedModel:
        if variant.name not in self._exports:
            self._exports[variant.name] = export(variant)
        return self._exports[variant.name]

    def firmware(self, case: Case) -> Firmware:
        """The case's build; for an emulator at the board's emulator UART rate (a hardware run
        keeps the board's own rate: its USB-serial bridge is set to it)."""
        key = f"{case.board.name}/{case.variant.name}/{case.backend == 'hardware'}"
        if key not in self._firmware:
            if self.pio is not None and self.firmware_path is None:
                from harness.build import platformio           # the user's project builds itself
                self.firmware_path = platformio.build(*self.pio)
            if self.firmware_path is not None:
                from harness.build.prebuilt import load_prebuilt
                self._firmware[key] = load_prebuilt(case.board, self.firmware_path,
                                                    self.exported(case.variant))
            else:
                board = case.board if case.backend == "hardware" else case.board.for_emulator()
                self._firmware[key] = build_firmware(board, self.exported(case.variant))
        return self._firmware[key]

    def recorder_for(self, case: Case, firmware: Firmware, fidelity: str):
        """record(metric, value, unit, detail) for one case's failure events."""
        def record(metric, value, unit, detail=""):
            return self.record(case, firmware, metric, value, unit, fidelity, detail=detail)
        return record

    def dut(self, case: Case) -> Dut:
        """A running DUT for this case: reused while its firmware is unchanged."""
        plan = self.plan_for(case)
        if not plan.availability.ok:
            raise BackendError(f"{case.backend} cannot run {case.board.name} here: {plan.availability}")
        firmware = self.firmware(case)
        slot = (case.board.name, case.backend)
        running = self._running.get(slot)
        if running and running[0] == firmware.build_id and _recovered_between_tests(running[1]):
            return running[1]
        if running:
            running[1].close()
            del self._running[slot]
        target = self.start_target(case, firmware)
        self.targets.append(_describe_target(case, target))
        try:
            client, identity = self._connect(case, target.url, target.pid)
        except Exception:
            target.stop()
            raise
        if firmware.prebuilt:           # the user's own build: its build id is whatever it reports
            firmware.build_id = identity.build_id
        dut = Dut(target, firmware, self.exported(case.variant), client, identity,
                  test_set=self._test_sets.setdefault((case.board.name, case.backend, case.variant.name), {}),
                  window_s=self.eembc_window_s or (MLPERF_MIN_WINDOW_S if case.backend == "hardware"
                                                   else EMULATOR_MIN_WINDOW_S))
        try:
            dut.check_identity()
        except Exception:
            dut.close()
            raise
        attach_supervisor(dut, relaunch=lambda: self.start_target(case, firmware),
                          record=self.recorder_for(case, firmware, target.fidelity))
        self._running[slot] = (firmware.build_id, dut)
        return dut

    def start_target(self, case: Case, firmware: Firmware) -> Target:
        """Launch the case's backend; for a real board, first let the lab bring it to this build."""
        resource = None
        if case.backend == "hardware":
            from harness.lab.strategy import BoardStrategy, holds_build_check
            resource = BoardStrategy(case.board, self.port, self.pio).bring_to(
                firmware, holds_build_check(case.board, firmware.build_id,
                                            lambda url: self._probe(case, url)))
        target = get_backend(case.backend, case.board).start(StartRequest(case.board, firmware, resource))
        return self.wrap_target(target) if self.wrap_target else target

    def _connect(self, case: Case, url: str, pid: int | None):
        settings = case.board.backend_settings(case.backend)
        client = client_class(case.board.protocol).open(
            url, baud=case.board.baud,
            timeout=self.reply_timeout or float(settings.get("reply_timeout_s", 2.0)))
        client.watch_pid = pid
        try:
            return client, self._identify(client, case)
        except Exception:
            client.close()
            raise

    @staticmethod
    def _identify(client: DutClient, case: Case):
        """A real board's bootloader runs after the port opens (Arduino auto-reset): the
        backend says how long to keep asking."""
        backend = get_backend(case.backend, case.board)
        if backend.identify_attempts is None:
            return client.identify()
        timeout, client.timeout = client.timeout, backend.identify_timeout or client.timeout
        try:
            identity = client.identify(attempts=backend.identify_attempts)
        finally:
            client.timeout = timeout
        # Asking again while the bootloader ran is expected, not a fault of the link.
        client.stats = LinkStats()
        return identity

    def _probe(self, case: Case, url: str):
        """Which build does the board at `url` run? (Raises HarnessError if none answers.)"""
        client = client_class(case.board.protocol).open(url, baud=case.board.baud)
        try:
            return self._identify(client, case)
        finally:
            client.close()


def _recovered_between_tests(dut: Dut) -> bool:
    """Usable as it is, or recovered now: a fault between tests (the emulator died while
    nothing ran) is recorded by its supervisor like any other."""
    if healthy(dut):
        return True
    try:
        event = dut.supervisor.recover_idle("found before the next test")
    except HarnessError:
        return False
    return event is None or event.recovered


def _describe_target(case: Case, target: Target) -> dict:
    """A started target as the manifest keeps it: where it ran, and with which tool."""
    resource = target.resource
    return {"board": case.board.name, "backend": case.backend, "variant": case.variant.name,
            "url": target.url, "fidelity": target.fidelity, "emulator": target.emulator or None,
            "clock": target.clock or None,
            "flashed": resource.flashed if resource else None,
            "uploader": resource.uploader if resource else None,
            "build_id": target.build_id or None}
