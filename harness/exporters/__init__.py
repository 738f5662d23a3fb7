"""Exporters as plug-ins: one module each, one interface (harness.exporters.base.Exporter).

Adding an exporter: a module here with an `EXPORTER` object, and its name in MODULES.
Estimator exporters take a fitted scikit-learn estimator; tinyhil-int8 takes a .tflite."""

from __future__ import annotations

import importlib

from harness.errors import HarnessError
from harness.exporters.base import Exporter, Generated, NotExportable

# exporter name -> its module here
MODULES = {"emlearn": "emlearn", "m2cgen": "m2cgen", "micromlgen": "micromlgen",
           "tinyhil-int8": "tinyhil_int8"}


def get_exporter(name: str) -> Exporter:
    if name not in MODULES:
        raise HarnessError(f"unknown exporter {name!r}: use one of {', '.join(MODULES)}")
    return importlib.import_module(f"harness.exporters.{MODULES[name]}").EXPORTER


__all__ = ["Exporter", "Generated", "NotExportable", "get_exporter", "MODULES"]
