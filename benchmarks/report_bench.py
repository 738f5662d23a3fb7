"""How long the comparison table takes to build from many records (harness.report.comparison_table).

    python benchmarks/report_bench.py [--records 1000000] [--repeat 3]

Synthetic records shaped like a large lab's history: many runs, boards, backends and
variants, every suite's metrics and latency statistics. Prints the wall time of the table
(seconds, host wall clock; goal: under 3 s for 1,000,000 records on a 2-core machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.report.table import comparison_table  # noqa: E402
from harness.results.records import DTYPES, RECORD_FIELDS  # noqa: E402

# (metric, statistic, unit, fidelity); "*" takes the backend's fidelity.
SUITE_RECORDS = [("accuracy", "value", "%", "*"), ("agreement", "value", "%", "*"),
                 *[("latency_us", s, "us", "*") for s in ("median", "p95", "min", "max")],
                 *[("latency_cycles", s, "cycles", "*") for s in ("median", "p95", "min", "max")],
                 ("flash_bytes", "value", "B", "static"), ("ram_bytes", "value", "B", "static"),
                 ("stack_bytes", "value", "B", "static"),
                 ("flash_limit_bytes", "value", "B", "static"),
                 ("ram_limit_bytes", "value", "B", "static"), ("fits", "value", "bool", "static"),
                 ("host_roundtrip_ms", "value", "ms", "wall-clock")]
BACKENDS = {"simavr": "cycle-accurate", "qemu": "functional", "hardware": "hardware",
            "native": "wall-clock"}


def synthetic_records(count: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    boards = [f"board{i:02d}" for i in range(40)]
    variants = [f"variant{i:02d}" for i in range(25)]
    backends = list(BACKENDS)
    per_case = len(SUITE_RECORDS)
    cases = -(-count // per_case)
    board = rng.integers(0, len(boards), cases)
    backend = rng.integers(0, len(backends), cases)
    variant = rng.integers(0, len(variants), cases)
    run = rng.integers(0, 200, cases)
    base = pd.Timestamp("2026-01-01", tz="UTC")
    seconds = run * 86400 + rng.integers(0, 3600, cases)
    spec = pd.DataFrame(SUITE_RECORDS, columns=["metric", "statistic", "unit", "fidelity"])
    idx = np.repeat(np.arange(cases), per_case)[:count]
    rec = np.tile(np.arange(per_case), cases)[:count]
    backend_names = np.asarray(backends)[backend[idx]]
    fidelity = spec["fidelity"].to_numpy()[rec]
    fidelity = np.where(fidelity == "*", np.vectorize(BACKENDS.get)(backend_names), fidelity)
    times = (base + pd.to_timedelta(seconds[idx] + rec, unit="s"))
    df = pd.DataFrame({
        "run_id": np.char.add("run", run[idx].astype(str)),
        "time": times.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00"),
        "board": np.asarray(boards)[board[idx]], "backend": backend_names, "fidelity": fidelity,
        "model": "digits", "variant": np.asarray(variants)[variant[idx]],
        "metric": spec["metric"].to_numpy()[rec], "value": rng.random(count) * 1000,
        "unit": spec["unit"].to_numpy()[rec], "statistic": spec["statistic"].to_numpy()[rec],
        "n": 20, "firmware_sha256": "ab" * 32, "harness_version": "0.1.0", "detail": "",
    })
    df.loc[df["metric"] == "fits", "value"] = 1.0
    df = df[list(RECORD_FIELDS)].astype(DTYPES)
    df["run_status"] = "complete"
    return df


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    df = synthetic_records(args.records)
    print(f"synthesised {len(df):,} records in {time.perf_counter() - started:.2f} s")
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        table = comparison_table(df)
        timings.append(time.perf_counter() - started)
    print(f"comparison table: {len(table):,} rows from {len(df):,} records; "
          f"best {min(timings):.2f} s, median {sorted(timings)[len(timings) // 2]:.2f} s "
          f"of {args.repeat} (host wall clock)")
    # End to end, as `tinyhil report` does it: the records as a closed run folder's parquet.
    import tempfile

    from harness.report.table import load_runs
    from harness.results.records import RECORDS_PARQUET
    with tempfile.TemporaryDirectory() as tmp:
        df.drop(columns="run_status").to_parquet(Path(tmp) / RECORDS_PARQUET, index=False)
        started = time.perf_counter()
        table = comparison_table(load_runs(Path(tmp)))
        print(f"load records.parquet + comparison table: {time.perf_counter() - started:.2f} s "
              "(host wall clock)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
