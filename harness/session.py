"""One benchmark session: which boards, backends and model variants to run, and the shared
state behind the pytest fixtures (builds, running targets, the recorder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness import __version__, fidelity
from harness.backends import Availability, get_backend
from harness.boards import Board, CatalogueScan, scan_catalogue
from harness.dut import Dut
from harness.errors import BackendError, BoardError, HarnessError
from harness.firmware import Firmware, build_firmware
from harness.models import ExportedModel, ModelVariant, export, get_variant, list_variants
from harness.protocol import DutClient, LinkStats
from harness.supervision import attach_supervisor, healthy, insert_fault_link
from harness.results import Recorder, new_run_id, write_manifest


@dataclass(frozen=True)
class Case:
    """One (board, backend, model variant) the suites run against."""
    board: Board
    backend: str
    variant: ModelVariant

    @property
    def id(self) -> str:
        return f"{self.board.name}-{self.backend}-{self.variant.name}"

    @property
    def fidelity(self) -> str:
        return fidelity_of(self.backend, self.board)


@dataclass
class BoardPlan:
    board: Board
    backend: str
    why: str
    availability: Availability


def plan_boards(board_names: list[str] | None, backend_choice: str, port: str | None,
                catalogue: dict[str, Board] | None = None) -> tuple[list[BoardPlan], str]:
    """Pick (board, backend) pairs. Returns them and lines saying what was chosen and why."""
    scan = scan_catalogue() if catalogue is None else CatalogueScan(catalogue, {}, {})
    catalogue = scan.boards
    notes = scan.notes()
    if not board_names:
        board_names = [name for name, board in catalogue.items()
                       if get_backend(board.default_emulator).availability(board).ok
                       and _backends_for(board, backend_choice, port, strict=False)]
        notes.insert(0, f"no --board given: running every board this machine can emulate "
                        f"({', '.join(board_names) or 'none'}); pick others with --board NAME "
                        "(`tinyhil boards` lists them)")
    for name in board_names:
        if name in scan.broken:
            raise BoardError(scan.broken[name])
    unknown = [name for name in board_names if name not in catalogue]
    if unknown:
        raise BoardError(f"unknown board {', '.join(unknown)}: known boards are "
                         f"{', '.join(catalogue)} (add one as devices/boards/NAME.toml, or in a "
                         "folder named by TINYHIL_BOARDS_DIR)")
    plans = []
    for name in board_names:
        board = catalogue[name]
        for backend, why in _backends_for(board, backend_choice, port):
            impl = get_backend(backend)
            ok = impl.availability(board, port=port) if backend == "hardware" else impl.availability(board)
            plans.append(BoardPlan(board, backend, why, ok))
    return plans, "\n".join(notes)


def _backends_for(board: Board, choice: str, port: str | None,
                  strict: bool = True) -> list[tuple[str, str]]:
    if choice == "all-emulators":
        return [(name, "every emulator of the board") for name in board.backends if name != "hardware"]
    if choice in ("auto", "emulators"):
        if choice == "auto" and "hardware" in board.backends:
            attached = port or attached_port(board)
            if attached:
                return [("hardware", f"auto: {board.name} attached at {attached}")]
        why = "auto: no board attached" if choice == "auto" else "emulators only"
        return [(board.default_emulator, f"{why}, using its default emulator")]
    wanted = [name.strip() for name in choice.split(",") if name.strip()]
    for name in wanted:
        get_backend(name)                    # unknown backend names fail here, clearly
    chosen = [name for name in wanted if name in board.backends]
    if not chosen and strict:
        raise BackendError(f"{board.name} cannot run on {choice}: its backends are "
                           f"{', '.join(board.backends)} (see {board.source})")
    return [(name, "--backend") for name in chosen]


def select_variants(names: list[str] | None) -> list[ModelVariant]:
    if not names:
        return list_variants()
    return [get_variant(name) for name in names]


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
    fault_link: str | None = None      # a harness.faultlink.FaultSpec text: faults on every link
    reply_timeout: float | None = None # seconds; None: the board file's reply_timeout_s, else 2

    def __post_init__(self):
        self.run_dir = Path(self.results_dir) / self.run_id
        self.recorder: Recorder | None = None
        self._exports: dict[str, ExportedModel] = {}
        self._firmware: dict[str, Firmware] = {}
        self._running: dict[tuple[str, str], tuple[str, Dut]] = {}
        self._link_seen: dict[int, tuple] = {}
        self.targets: list[dict] = []          # every target started: for the manifest and summary

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
            unit=unit, statistic=statistic, n=int(n), firmware_sha256=firmware.sha256, detail=detail)

    def close(self, status: str = "complete") -> None:
        for _, dut in self._running.values():
            _stop(dut)
        self._running.clear()
        if self.recorder is not None:
            if self.targets and not self.shared_run:
                from harness.results import update_manifest
                update_manifest(self.run_dir, targets=self.targets)
            self.recorder.close(status)

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
            self._exports[variant.name] = export(variant.name)
        return self._exports[variant.name]

    def firmware(self, case: Case) -> Firmware:
        key = f"{case.board.name}/{case.variant.name}"
        if key not in self._firmware:
            if self.firmware_path is not None:
                from harness.prebuilt import load_prebuilt
                self._firmware[key] = load_prebuilt(case.board, self.firmware_path,
                                                    self.exported(case.variant))
            else:
                self._firmware[key] = build_firmware(case.board, self.exported(case.variant))
        return self._firmware[key]

    def dut(self, case: Case) -> Dut:
        """A running DUT for this case: reused while its firmware is unchanged."""
        plan = self.plan_for(case)
        if not plan.availability.ok:
            raise BackendError(f"{case.backend} cannot run {case.board.name} here: {plan.availability}")
        firmware = self.firmware(case)
        slot = (case.board.name, case.backend)
        running = self._running.get(slot)
        if running and running[0] == firmware.build_id and healthy(running[1]):
            return running[1]
        if running:
            _stop(running[1])
            del self._running[slot]
        options = {"port": self.port, "pio": self.pio}
        if case.backend == "hardware":
            options["skip_flash"] = self._board_holds(case, firmware)
        target = self._start_target(case, firmware, options)
        self.targets.append(_describe_target(case, target))
        settings = case.board.backend_settings(case.backend)
        try:
            client = DutClient.open(target.url, baud=case.board.baud,
                                    timeout=self.reply_timeout or float(settings.get("reply_timeout_s", 2.0)))
            client.watch_pid = target.info.get("pid")
            identity = self._identify(client, case)
        except Exception:
            target.stop()
            raise
        if firmware.prebuilt:           # the user's own build: its build id is whatever it reports
            firmware.build_id = identity.build_id
        dut = Dut(target, firmware, self.exported(case.variant), client, identity)
        try:
            dut.check_identity()
        except Exception:
            _stop(dut)
            raise
        attach_supervisor(self, dut, case, firmware, options)
        self._running[slot] = (firmware.build_id, dut)
        return dut

    def _start_target(self, case: Case, firmware: Firmware, options: dict):
        target = get_backend(case.backend).start(case.board, firmware, options)
        if self.fault_link:
            target = insert_fault_link(target, self.fault_link)
        return target


    @staticmethod
    def _identify(client: DutClient, case: Case):
        """A real board's bootloader runs after the port opens (Arduino auto-reset): keep asking."""
        if case.backend != "hardware":
            return client.identify()
        timeout, client.timeout = client.timeout, 0.4
        try:
            identity = client.identify(attempts=12)
        finally:
            client.timeout = timeout
        # Asking again while the bootloader ran is expected, not a fault of the link.
        client.stats = LinkStats()
        return identity

    def _board_holds(self, case: Case, firmware: Firmware) -> bool:
        """Does the attached board already run this exact build? Then it is not flashed again."""
        port = self.port or attached_port(case.board)
        if not port:
            return False
        try:
            client = DutClient.open(port, baud=case.board.baud)
        except HarnessError:
            return False
        try:
            return self._identify(client, case).build_id == firmware.build_id
        except HarnessError:
            return False               # no tinyhil firmware answering: flash it
        finally:
            client.close()


def _describe_target(case: Case, target) -> dict:
    """A started target as the manifest keeps it: where it ran, and with which tool."""
    info = target.info
    return {"board": case.board.name, "backend": case.backend, "variant": case.variant.name,
            "url": target.url, "fidelity": target.fidelity, "emulator": info.get("qemu") or (info.get("command") or [None])[0],
            "flashed": info.get("flashed"), "uploader": info.get("uploader"),
            "build_id": info.get("build_id")}


def _stop(dut: Dut) -> None:
    try:
        dut.client.close()
    finally:
        dut.target.stop()


def fidelity_of(backend: str, board: Board) -> str:
    """The one place a figure's fidelity is decided: the backend that ran it, on that board."""
    return get_backend(backend).fidelity_for(board)


def attached_port(board: Board) -> str | None:
    """Where a board of this type is attached (the lab file's, else by USB VID:PID), or None."""
    from harness.backends.hardware import find_port
    return find_port(board)


STATIC = fidelity.STATIC
