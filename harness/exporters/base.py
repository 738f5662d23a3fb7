"""The exporter interface: does it support an estimator, and the generated source plus the
glue body that implements the model ABI (devices/firmware/runtime/tinyhil_model.h).

The device input is `input_dtype` (int8, int16: the feature times a per-feature scale, rounded;
float32: the feature). `feature_prologue` turns it into the array the exporter's code takes."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError

CTYPE = {"int8": "int8_t", "int16": "int16_t", "float32": "float"}


class NotExportable(HarnessError):
    """This exporter cannot handle this estimator (recorded for the variant, others still run)."""


@dataclass
class Generated:
    source: str                 # the generated model code
    infer_c: str                # C: declarations + tinyhil_model_infer
    suffix: str = ".c"          # ".cpp" for C++ (micromlgen)
    include_dirs: list[Path] = field(default_factory=list)
    extra_sources: list[Path] = field(default_factory=list)   # e.g. kernels, copied with the export
    facts: dict = field(default_factory=dict)   # recorded with the export (arena size, layers)


class Exporter:
    name = ""
    language = "c"
    suffix = ""         # variant names are <model>_<suffix or name>

    @property
    def variant_suffix(self) -> str:
        return self.suffix or self.name

    def supports(self, estimator) -> str | None:
        """None, or why not (a sentence)."""
        raise NotImplementedError

    def generate(self, variant, estimator, scales) -> Generated:
        raise NotImplementedError

    def check(self, estimator) -> None:
        reason = self.supports(estimator)
        if reason:
            raise NotExportable(reason)

    def unsupported(self, estimator) -> str:
        return f"not exportable: {self.name} does not support {type(estimator).__name__}"


def lib(name: str):
    """Import an exporter library, saying how to install it if it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as e:  # emlearn on Python 3.12+ also needs setuptools
        raise HarnessError(f"cannot import {name} ({e}): install it with "
                           f"`pip install {name} setuptools`") from e


def is_regressor(estimator) -> bool:
    from sklearn.base import is_regressor as sk_is_regressor
    return sk_is_regressor(estimator)


def feature_prologue(variant, native: str, scales) -> tuple[str, str]:
    """C statements that make `features` (of C type `native`) from `input`, and the pointer.

    Same type: the input is used in place. Integer input to a float exporter: divided by the
    feature's scale (a power of two: exact)."""
    have, n = CTYPE[variant.input_dtype], variant.input_count
    if have == native:
        return "", f"(const {native} *)input"
    lines = [f"const {have} *x = (const {have} *)input;", f"{native} features[{n}];"]
    if scales is not None and native in ("float", "double") and have != "float":
        table = ", ".join(f"{float(1.0 / s)!r}f" for s in scales)
        lines = [f"static const float inv_scale[{n}] = {{{table}}};", *lines,
                 f"for (uint16_t i = 0; i < {n}; i++)", "    features[i] = x[i] * inv_scale[i];"]
    else:
        lines += [f"for (uint16_t i = 0; i < {n}; i++)", f"    features[i] = ({native})x[i];"]
    return "\n    ".join(lines), "features"


def class_output(call: str, fail: str = "cls < 0") -> str:
    return (f"const int16_t cls = (int16_t){call};\n    memcpy(output, &cls, sizeof cls);\n"
            f"    return {fail};")


def value_output(call: str) -> str:
    return f"const float value = (float){call};\n    memcpy(output, &value, sizeof value);\n    return 0;"


def infer(prologue: str, body: str) -> str:
    pro = f"    {prologue}\n" if prologue else ""
    return f"int tinyhil_model_infer(const void *input, void *output)\n{{\n{pro}    {body}\n}}\n"
