"""Exporters as plug-ins: one module each, one interface (harness.exporters.base.Exporter).

Adding an exporter: a module here with an `EXPORTER` object, and its name in MODULES."""

from __future__ import annotations

import importlib

from harness.errors import HarnessError
from harness.exporters.base import Exporter, Generated, NotExportable

MODULES = ("emlearn", "m2cgen", "micromlgen")


def get_exporter(name: str) -> Exporter:
    if name not in MODULES:
        raise HarnessError(f"unknown exporter {name!r}: use one of {', '.join(MODULES)}")
    return importlib.import_module(f"harness.exporters.{name}").EXPORTER


__all__ = ["Exporter", "Generated", "NotExportable", "get_exporter", "MODULES"]
