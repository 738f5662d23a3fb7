"""The host reference: the generated model code compiled for the host (C++ with the host's C++
compiler) with devices/firmware/host_reference/reference_main.c, run on every test vector. The
device is checked against what the C computes, not against Python's prediction."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from harness import paths, tools
from harness.errors import BuildError
from harness.models.variant import ModelVariant

NP_DTYPE = {"int8": "<i1", "uint8": "<u1", "int16": "<i2", "int32": "<i4", "float32": "<f4"}

def runtime_dir() -> Path:
    return paths.firmware_dir() / "runtime"


def driver() -> Path:
    return paths.firmware_dir() / "host_reference" / "reference_main.c"


def run(cmd: list, what: str, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, **kw)
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace")[-2000:]
        raise BuildError(f"{what} failed (exit {r.returncode}):\n{err}")
    return r


def host_reference(v: ModelVariant, sources: list[Path], export_dir: Path,
                    include_dirs: list[Path], inputs: np.ndarray) -> np.ndarray:
    """The generated code compiled for the host (C++ with the host's C++ compiler) and run."""
    cc = tools.require("cc", "to compile the host reference")
    exe = export_dir / "host_reference"
    incs = [f"-I{d}" for d in include_dirs]
    objects = []
    for src in [s for s in sources if s.suffix == ".cpp"]:
        cxx = tools.require("c++", "to compile C++ model code (micromlgen) for the host")
        obj = export_dir / (src.stem + ".o")
        run([cxx, "-O2", *CXX_FLAGS, *incs, "-c", src, "-o", obj],
             f"compiling the C++ model of {v.name} for the host")
        objects.append(obj)
    c_sources = [s for s in sources if s.suffix != ".cpp"]
    run([cc, "-O2", "-std=c99", *incs, *c_sources, *objects, driver(), "-o", exe, "-lm"],
         f"compiling the host reference for {v.name}")
    stdin = np.ascontiguousarray(inputs, NP_DTYPE[v.input_dtype]).tobytes()
    out = run([exe], f"running the host reference for {v.name}", input=stdin).stdout
    if len(out) != len(inputs) * v.output_bytes:
        raise BuildError(f"host reference for {v.name} wrote {len(out)} bytes, "
                         f"expected {len(inputs) * v.output_bytes}")
    return np.frombuffer(out, NP_DTYPE[v.output_dtype]).reshape(len(inputs), v.output_count)


# Model C++ (micromlgen) relies on Arduino.h for uint8_t, pow and exp: include them first.
CXX_FLAGS = ["-std=gnu++11", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics",
             "-include", "stdint.h", "-include", "math.h"]
