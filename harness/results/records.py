"""Measurements as tidy records, appended to disk as they are taken so that none is ever lost.

A run lives in one folder, results/<run-id>/:
  records.jsonl   one JSON object per line, appended and fsync'ed per record (source of truth)
  records.parquet written from records.jsonl when the run closes (faster to load)
  manifest.json   who/what/where: harness and tool versions, git commit, host, status
"""

from __future__ import annotations

import errno
import fcntl
import importlib.metadata
import json
import math
import numbers
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness import fidelity
from harness.errors import HarnessError

RECORDS_JSONL = "records.jsonl"
RECORDS_PARQUET = "records.parquet"
MANIFEST = "manifest.json"

# Every record has exactly these fields, in this order.
RECORD_FIELDS = ("run_id", "time", "board", "backend", "fidelity", "model", "variant", "metric",
                 "value", "unit", "statistic", "n", "firmware_sha256", "harness_version", "detail",
                 "protocol")
# What the caller gives; the Recorder fills run_id, time and harness_version.
CALLER_FIELDS = ("board", "backend", "fidelity", "model", "variant", "metric", "value", "unit",
                 "statistic", "n", "firmware_sha256")
# protocol: how the harness spoke to the DUT ("tinyhil", or "eembc": MLPerf Tiny's protocol)
OPTIONAL_DEFAULTS = {"detail": "", "protocol": "tinyhil"}
NON_EMPTY = ("fidelity", "unit", "metric")
STATISTICS = ("value", "median", "p95", "min", "max", "mean")
FIDELITIES = tuple(fidelity.DESCRIPTIONS)

# Column types of a loaded run; identical whether read from jsonl or parquet.
DTYPES = {name: "str" for name in RECORD_FIELDS} | {"value": "float64", "n": "int64"}

# Packages whose versions go into the manifest (None when not installed).
PACKAGES = ("pytest", "pyserial", "pandas", "pyarrow", "numpy", "scikit-learn", "emlearn",
            "m2cgen", "esptool")


class RecordsError(HarnessError, ValueError):
    """A run's records cannot be read (corrupt file, no records where some were expected)."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def new_run_id() -> str:
    """Sortable run id: UTC time to the second, plus a short random part against collisions."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def check_writable(results_dir: Path) -> None:
    """Fail early, and clearly, when run folders cannot be written under `results_dir`."""
    path = Path(results_dir)
    # Nothing is created here (a --collect-only run leaves no folder): the folder, or the
    # nearest one that exists above it, must take a new file.
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "not a folder", str(existing))
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise HarnessError(f"the results folder {path} cannot be written ({exc.strerror or exc}): "
                           "pick a writable one with --results-dir, or fix its permissions") from None


def validate(fields: dict) -> dict:
    """Check a caller's fields and return them in record order (without the filled-in ones)."""
    filled = {"run_id", "time", "harness_version"} & fields.keys()
    if filled:
        raise ValueError(f"record: {', '.join(sorted(filled))} are filled in by the Recorder; "
                         "do not pass them")
    unknown = fields.keys() - set(CALLER_FIELDS) - set(OPTIONAL_DEFAULTS)
    if unknown:
        raise ValueError(f"record: unknown field(s) {', '.join(sorted(unknown))}; "
                         f"fields are {', '.join(RECORD_FIELDS)}")
    missing = [name for name in CALLER_FIELDS if fields.get(name) is None]
    if missing:
        raise ValueError(f"record {fields.get('metric', '?')!r} lacks {', '.join(missing)}: "
                         "every measurement needs them (a number without its fidelity or unit "
                         "cannot be trusted or compared)")
    out = OPTIONAL_DEFAULTS | dict(fields)
    for name in CALLER_FIELDS + tuple(OPTIONAL_DEFAULTS):
        if name in ("value", "n"):
            continue
        if not isinstance(out[name], str):
            raise ValueError(f"record field {name} must be a string, not {out[name]!r}")
    empty = [name for name in NON_EMPTY if not out[name].strip()]
    if empty:
        raise ValueError(f"record {out['metric']!r}: {', '.join(empty)} must not be empty")
    if out["fidelity"] not in FIDELITIES:
        raise ValueError(f"record {out['metric']!r}: fidelity {out['fidelity']!r} is not one of "
                         f"{', '.join(FIDELITIES)} (see harness/fidelity.py)")
    if out["statistic"] not in STATISTICS:
        raise ValueError(f"record {out['metric']!r}: statistic {out['statistic']!r} is not one "
                         f"of {', '.join(STATISTICS)}")
    value = out["value"]
    # bool is a Real too: allowed on purpose, so fits=True records as 1.0.
    if not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"record {out['metric']!r}: value must be a finite number, not {value!r}")
    out["value"] = float(value)
    n = out["n"]
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"record {out['metric']!r}: n (sample count) must be an integer >= 0, "
                         f"not {n!r}")
    out["n"] = int(n)
    return out


def _atomic_write_json(path: Path, data: dict) -> None:
    """Write JSON so a reader never sees a half-written file (temp file + os.replace)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _git_state(repo: Path) -> dict | None:
    """Commit and dirtiness of the checkout; None when it is not a git checkout (or no git)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=10)
    try:
        if git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
            return None
        head = git("rev-parse", "HEAD")
        status = git("status", "--porcelain")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": head.stdout.strip() if head.returncode == 0 else None,  # None: no commits yet
            "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def _package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_manifest(run_dir: Path, run_id: str, extra: dict) -> Path:
    """Write run_dir/manifest.json describing the run; `extra` adds command line, boards, ..."""
    # Imported here: tools probes executables, which only a run (not a record reader) needs.
    import harness
    from harness import paths, tools

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "run_id": run_id,
        "started": utc_now(),
        "finished": None,
        "status": "running",
        "harness_version": harness.__version__,
        "git": _git_state(paths.REPO_DIR),
        "tools": tools.versions(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "packages": _package_versions(),
        "host": {"hostname": socket.gethostname(), "platform": platform.platform(),
                 "machine": platform.machine(), "cpu_count": os.cpu_count()},
    }
    clash = manifest.keys() & extra.keys()
    if clash:
        raise ValueError(f"write_manifest: extra must not override {', '.join(sorted(clash))}")
    manifest |= extra
    path = run_dir / MANIFEST
    _atomic_write_json(path, manifest)
    return path


def read_manifest(run_dir: Path) -> dict | None:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def update_manifest(run_dir: Path, **changes) -> Path:
    path = Path(run_dir) / MANIFEST
    manifest = read_manifest(run_dir) or {}
    _atomic_write_json(path, manifest | changes)
    return path


def _repair_tail(path: Path) -> None:
    """Before appending: drop a partial last line left by a killed writer, so it cannot end up
    glued to the next record (which would turn a harmless torn tail into mid-file corruption)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
        keep = data + b"\n"          # complete record, only its newline was lost
    except ValueError:
        keep = data[:start]
    with open(path, "wb") as f:
        f.write(keep)
        f.flush()
        os.fsync(f.fileno())


# Why a write fails, in words, with what to do about it.
WRITE_FAILURES = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space or raise the quota",
    errno.EFBIG: "the file size limit was reached (`ulimit -f`): raise it",
}


def _write_whole(fd: int, file, line: bytes, path: Path) -> None:
    """One record, whole or not at all: after a failed or short write the file is cut back
    to where it was, so no half line is left for the next record to be glued onto."""
    size = os.fstat(fd).st_size            # under the flock: the end this line goes after
    try:
        done = 0
        while done < len(line):            # after a short write, the next one says why
            written = file.write(line[done:])
            if not written:
                raise OSError(errno.EIO, f"write stopped after {done} of {len(line)} bytes")
            done += written
        os.fsync(fd)
    except OSError as exc:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass                           # not a regular file (a device): nothing to cut
        why = WRITE_FAILURES.get(exc.errno, exc.strerror or str(exc))
        raise RecordsError(f"a record could not be written to {path} ({why}); the file was "
                           "cut back to its last whole record and the run is readable") from None


class Recorder:
    """Appends one validated record per measurement to run_dir/records.jsonl, durably.

    Several processes may append to one run (pytest-xdist workers, `shared=True`): each
    record is one write() of one whole line on an O_APPEND descriptor, under an flock, so
    lines never interleave. A shared recorder leaves the manifest and records.parquet to the
    process that owns the run (the xdist controller)."""

    def __init__(self, run_dir: Path, run_id: str, harness_version: str, shared: bool = False):
        self.run_dir = Path(run_dir)
        self.run_id = run_id
        self.harness_version = harness_version
        self.shared = shared
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / RECORDS_JSONL
        self._lock = threading.Lock()
        if shared:
            self._records = []         # this process's records only
        else:
            _repair_tail(self.path)
            # Reopening a run continues it: keep what is there, and drop the parquet it would outdate.
            self._records = read_jsonl(self.path) if self.path.exists() else []
            (self.run_dir / RECORDS_PARQUET).unlink(missing_ok=True)
            if self._records and (self.run_dir / MANIFEST).exists():
                update_manifest(self.run_dir, status="running", finished=None)
        # Unbuffered, O_APPEND: each write() below is one system call at the file's end.
        self._file = open(self.path, "ab", buffering=0)
        self.closed = False

    def record(self, **fields) -> dict:
        checked = validate(fields)
        with self._lock:
            if self.closed:
                raise RuntimeError(f"Recorder for run {self.run_id} is closed")
            rec = {"run_id": self.run_id, "time": utc_now(),
                   "harness_version": self.harness_version} | checked
            rec = {name: rec[name] for name in RECORD_FIELDS}
            # One write of one whole line, then fsync: a SIGKILL after this keeps the record.
            line = (json.dumps(rec, allow_nan=False) + "\n").encode("utf-8")
            fd = self._file.fileno()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                _write_whole(fd, self._file, line, self.path)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._records.append(rec)
        return dict(rec)

    @property
    def records(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._records]

    def close(self, status: str = "complete") -> None:
        """Write records.parquet and mark the manifest finished with `status`."""
        with self._lock:
            if self.closed:
                return
            self._file.close()
            self.closed = True
            if self.shared:
                return
            frame(read_jsonl(self.path)).to_parquet(self.run_dir / RECORDS_PARQUET, index=False)
            if not (self.run_dir / MANIFEST).exists():
                write_manifest(self.run_dir, self.run_id, {})
            update_manifest(self.run_dir, status=status, finished=utc_now())

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("complete" if exc_type is None else "interrupted")


def read_jsonl(path: Path) -> list[dict]:
    """Read records; an unparsable *last* line is a write torn by a kill and is skipped,
    an unparsable line anywhere else is corruption and raises RecordsError."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as e:
            if number == len(lines):
                break
            raise RecordsError(f"{path}: line {number} of {len(lines)} is not a valid record "
                               f"({e}); the file is corrupt, not just cut short: repair or delete that "
                               "line, or move the run folder out of the way") from None
    return records


def frame(records: list[dict]) -> pd.DataFrame:
    """Records as a DataFrame with fixed columns and types."""
    df = pd.DataFrame(records, columns=list(RECORD_FIELDS))
    df["detail"] = df["detail"].fillna("")
    df["protocol"] = df["protocol"].fillna("tinyhil")      # runs from before the field
    return df.astype(DTYPES)


def run_status(manifest: dict | None) -> str:
    """'complete', 'incomplete' (still running or killed; or no manifest), or the status a
    close() gave, such as 'interrupted'."""
    status = (manifest or {}).get("status")
    return "incomplete" if status in (None, "running") else status


def load_run(run_dir: Path) -> pd.DataFrame:
    """One run's records (parquet if closed, else jsonl), with a run_status column."""
    run_dir = Path(run_dir)
    parquet, jsonl = run_dir / RECORDS_PARQUET, run_dir / RECORDS_JSONL
    if parquet.exists():
        try:
            df = pd.read_parquet(parquet)
            if "protocol" not in df:                      # runs from before the field
                df["protocol"] = "tinyhil"
            df = df.astype(DTYPES)
        except Exception as exc:          # pyarrow's errors are many: any is a bad file
            raise RecordsError(f"{parquet} cannot be read ({type(exc).__name__}: {exc}); delete "
                               f"it and {RECORDS_JSONL} is read instead") from None
    elif jsonl.exists():
        df = frame(read_jsonl(jsonl))
    else:
        raise RecordsError(f"{run_dir} holds no {RECORDS_JSONL}: it is not a run folder")
    try:
        manifest = read_manifest(run_dir)
    except ValueError as exc:
        raise RecordsError(f"{run_dir / MANIFEST} is not valid JSON ({exc}): restore or delete "
                           "it (the records are read without it)") from None
    df["run_status"] = run_status(manifest)
    return df
