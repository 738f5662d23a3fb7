"""Compile generated int8 C for the host with the model-ABI driver and run it on vectors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from harness import paths, tools
from harness.errors import BuildError
from harness.int8 import GeneratedModel

NP_DTYPE = {"int8": "<i1", "float32": "<f4"}


def build(model: GeneratedModel, out_dir: Path, extra_flags: tuple[str, ...] = ()) -> Path:
    """A host executable: stdin n input vectors, stdout n outputs (host_reference/reference_main.c)."""
    cc = tools.require("cc", "to compile the int8 host reference")
    out_dir = Path(out_dir)
    exe = out_dir / f"{model.name}_host"
    driver = paths.firmware_dir() / "host_reference" / "reference_main.c"
    cmd = [str(cc), "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", *extra_flags,
           *[f"-I{d}" for d in model.include_dirs], *map(str, model.c_sources(out_dir)),
           str(driver), "-o", str(exe), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise BuildError(f"compiling the int8 host reference for {model.name} failed:\n{r.stderr[-3000:]}")
    return exe


def run(model: GeneratedModel, exe: Path, inputs: np.ndarray) -> np.ndarray:
    stdin = np.ascontiguousarray(inputs, NP_DTYPE[model.input_dtype]).tobytes()
    r = subprocess.run([str(exe)], input=stdin, capture_output=True)
    if r.returncode:
        raise BuildError(f"{exe.name} failed (exit {r.returncode}): {r.stderr.decode()[-500:]}")
    return np.frombuffer(r.stdout, NP_DTYPE[model.output_dtype]).reshape(len(inputs), model.output_count)
