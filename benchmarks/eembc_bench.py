"""Side by side (issue 15): the same model on the same board and link, once over tinyhil's binary
protocol and once over MLPerf Tiny's EEMBC text protocol, our DUT built each way.

    python benchmarks/eembc_bench.py [--board uno_115200,native] [--variant dtree_emlearn]

Runs the accuracy suite per (board, protocol) in a child pytest, timing the accuracy pass and
reading the link's counters around it. Prints per board and protocol: vectors/s of the pass,
round trips and bytes on the wire per vector, line-seconds per vector (bytes x 10 bits / the
UART rate) and the ratio EEMBC / binary. `uno_115200` is the Uno in simavr built at the
hardware rate (115200 baud), not the emulator's 2 Mbaud. Host-clock figures: the harness's
speed, never a device's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


class PassTimer:
    """A pytest plugin: the accuracy pass's wall time and link traffic."""

    def __init__(self):
        self.result = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        dut = item.funcargs.get("dut")
        if item.originalname != "test_accuracy" or dut is None:
            yield
            return
        stats = dut.client.stats
        before = (stats.bytes_sent, stats.bytes_received, stats.requests)
        started = time.perf_counter()
        yield
        spent = time.perf_counter() - started
        after = (stats.bytes_sent, stats.bytes_received, stats.requests)
        sent, received, requests = (a - b for a, b in zip(after, before))
        vectors = len(dut.exported.test_inputs) if not item.config.option.vectors else \
            min(item.config.option.vectors, len(dut.exported.test_inputs))
        self.result = {"seconds": spent, "bytes": sent + received, "requests": requests,
                       "vectors": vectors, "baud": dut.firmware.board.baud}


def child(board: str, protocol: str, variant: str, results: str) -> None:
    timer = PassTimer()
    code = pytest.main(["-q", "-p", "no:cacheprovider", str(REPO / "suites" / "test_accuracy.py"),
                        f"--board={board}", f"--variant={variant}", f"--protocol={protocol}",
                        f"--results-dir={results}"], plugins=[timer])
    print("RESULT " + json.dumps({**timer.result, "exit": int(code)}))


def uno_115200(folder: Path) -> None:
    """A copy of the Uno built for simavr at the hardware rate (no emulator_baud)."""
    text = (REPO / "devices" / "boards" / "uno.toml").read_text()
    text = re.sub(r"^emulator_baud.*$", "", text, flags=re.M)
    text = re.sub(r'^name = "uno"', 'name = "uno_115200"', text, flags=re.M)
    (folder / "uno_115200.toml").write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--board", default="uno_115200,native")
    parser.add_argument("--variant", default="dtree_emlearn")
    parser.add_argument("--child", nargs=3, metavar=("BOARD", "PROTOCOL", "RESULTS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.variant, args.child[2])
        return 0
    boards_dir = Path(tempfile.mkdtemp(prefix="tinyhil-eembc-boards-"))
    uno_115200(boards_dir)
    env = dict(os.environ, TINYHIL_BOARDS_DIR=str(boards_dir))
    results = tempfile.mkdtemp(prefix="tinyhil-eembc-results-")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; variant {args.variant}")
    print(f"{'board':12} {'protocol':8} {'vectors/s':>10} {'trips/vec':>9} {'bytes/vec':>9} "
          f"{'line-s/vec':>11} {'ratio':>6}")
    failed = 0
    for board in args.board.split(","):
        rows = {}
        for protocol in ("tinyhil", "eembc"):
            out = subprocess.run([sys.executable, __file__, "--variant", args.variant, "--child",
                                  board, protocol, results], capture_output=True, text=True,
                                 env=env, cwd=REPO, timeout=3600)
            found = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
            row = json.loads(found[-1][7:]) if found else {}
            if not row.get("vectors") or row.get("exit"):
                print(f"{board:12} {protocol:8} failed:\n{out.stdout[-2000:]}{out.stderr[-1000:]}")
                failed = 1
                continue
            rows[protocol] = row
            n = row["vectors"]
            rate = n / row["seconds"]
            line_s = row["bytes"] * 10 / row["baud"] / n
            ratio = ""
            if protocol == "eembc" and "tinyhil" in rows:
                base = rows["tinyhil"]
                ratio = f"{(row['seconds'] / n) / (base['seconds'] / base['vectors']):.1f}x"
            print(f"{board:12} {protocol:8} {rate:10.1f} {row['requests'] / n:9.1f} "
                  f"{row['bytes'] / n:9.0f} {line_s * 1e3:9.2f}ms {ratio:>6}")
    print("ratio: the EEMBC pass's seconds per vector over the binary protocol's (same board, "
          "link, model and firmware source; built each way)")
    return failed


if __name__ == "__main__":
    sys.exit(main())
