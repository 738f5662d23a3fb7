"""The run configuration: every tinyhil option read once, typed, and the one check whether a
pytest run is a tinyhil run at all. Optional plugins add to it (`contribute`) before the
session is built: the fault-injecting link, a PlatformIO project."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

CONFIG_KEY = pytest.StashKey()
CONTRIBUTIONS_KEY = pytest.StashKey()


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@dataclass(frozen=True)
class RunConfig:
    boards: list[str] | None
    backend: str
    variants: list[str] | None
    port: str | None
    results_dir: Path
    run_id: str | None
    latency_runs: int
    warmup: int
    vectors: int | None
    firmware: Path | None
    energy_monitor: str
    energy_min_window_s: float | None
    energy_windows: int
    reply_timeout: float | None
    command: tuple[str, ...] = ()
    models: Path | None = None     # --models, else ./tinyhil.toml or [tool.tinyhil]; None: the demo
    protocol: str | None = None    # --protocol: every board's, else each board file's own
    eembc_window_s: float | None = None
    # From optional plugins (harness.plugin.faults, harness.plugin.pio):
    wrap_target: Callable | None = None
    pio: tuple[Path, str] | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_pytest(cls, config) -> "RunConfig":
        opt = config.option
        contributed = config.stash.get(CONTRIBUTIONS_KEY, {})
        return cls(boards=_csv(opt.board), backend=opt.backend, variants=_csv(opt.variant),
                   port=opt.port,
                   results_dir=Path(opt.results_dir) if opt.results_dir else Path.cwd() / "results",
                   run_id=opt.run_id, latency_runs=opt.latency_runs, warmup=opt.warmup,
                   vectors=opt.vectors, firmware=Path(opt.firmware) if opt.firmware else None,
                   energy_monitor=opt.energy_monitor, energy_min_window_s=opt.energy_min_window_s,
                   energy_windows=opt.energy_windows, reply_timeout=opt.reply_timeout,
                   command=tuple(config.invocation_params.args), models=_models_file(opt.models),
                   protocol=opt.protocol, eembc_window_s=opt.eembc_window_s,
                   **contributed)


def _models_file(option: str | None) -> Path | None:
    from harness.models.modelfile import default_file
    return Path(option).resolve() if option else default_file()


def contribute(config, **values) -> None:
    """An optional plugin's part of the run configuration (call it in pytest_configure)."""
    config.stash.setdefault(CONTRIBUTIONS_KEY, {}).update(values)


def tinyhil_active(config) -> bool:
    """A run of the suites (--board given, or a suites/ path among the arguments)."""
    return bool(config.option.board) or any("suites" in str(a) for a in config.args)
