"""The run's model variants: a models file's (the user's, `--models`) or the shipped demo
catalogue's (devices/models/demo.toml). Loaded once per file."""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.models import modelfile
from harness.models.variant import ModelVariant

# The catalogue: the shipped demo file (devices/models/demo.toml) unless a models file is used.
_CATALOGUE: dict[str, list[ModelVariant]] = {}
_ACTIVE: list[Path | None] = [None]


def use_models_file(path: Path | None) -> list[ModelVariant]:
    """Make a models file's variants the run's variants (None: the shipped demo catalogue)."""
    _ACTIVE[0] = Path(path).resolve() if path is not None else None
    return catalogue()


def catalogue() -> list[ModelVariant]:
    path = _ACTIVE[0] or modelfile.demo_file()
    if str(path) not in _CATALOGUE:
        _CATALOGUE[str(path)] = modelfile.load(path)
    return _CATALOGUE[str(path)]


def list_variants(include_probes: bool = False) -> list[ModelVariant]:
    return [v for v in catalogue() if include_probes or v.kind != "probe"]


def get_variant(name: str) -> ModelVariant:
    for v in catalogue():
        if v.name == name:
            return v
    known = ", ".join(v.name for v in catalogue())
    raise HarnessError(f"unknown model variant {name!r}; known variants: {known}")
