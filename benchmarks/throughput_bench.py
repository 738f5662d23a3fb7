"""Throughput benchmark (issue 13): how fast the accuracy pass streams a test set, against the
line-rate bound of each board's UART, and where the wall time of `tinyhil bench` goes.

    python benchmarks/throughput_bench.py [--board uno,mega2560,native,esp32] [--cold]
        [--line-check] [--variant ...] [tinyhil bench options]

Runs `tinyhil bench` (the suites on emulators) in this process, with a pytest plugin that times
each fixture (export, build, launch) and each suite's call (stream = the accuracy pass,
latency, energy), and snapshots the link counters around every accuracy pass. Prints per
backend: vectors/s, round trips and line-seconds per vector (bytes on the wire x 10 bits / the
firmware's UART rate), the line-rate bound (the vectors/s the UART could carry at most), and
the host's own time per inference on native. --line-check adds a simavr Uno built at the
hardware rate (115200 baud), the case the 90 %-of-line-rate goal is about. --cold uses an
empty build cache (a fresh TINYHIL_CACHE) so export and build are counted in full.

Host-clock figures: this is the harness's speed, never a device's.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest

PHASE_OF_FIXTURE = {"exported": "export", "firmware": "build", "dut": "launch"}
PHASE_OF_TEST = {"test_accuracy": "stream", "test_latency": "latency", "test_energy": "energy"}


class Timer:
    """A pytest plugin: wall time per phase, and per accuracy pass its link traffic."""

    def __init__(self):
        self.phases: dict[str, float] = defaultdict(float)
        self.passes: list[dict] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        started = time.perf_counter()
        yield
        phase = PHASE_OF_FIXTURE.get(fixturedef.argname)
        if phase:
            self.phases[phase] += time.perf_counter() - started

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        name = item.originalname
        dut = item.funcargs.get("dut")
        before = _link(dut)
        started = time.perf_counter()
        yield
        spent = time.perf_counter() - started
        self.phases[PHASE_OF_TEST.get(name, "other tests")] += spent
        if name == "test_accuracy" and dut is not None:
            after = _link(dut)
            case = item.funcargs["case"]
            self.passes.append({
                "board": case.board.name, "backend": case.backend, "variant": case.variant.name,
                "seconds": spent, "requests": after[0] - before[0],
                # request and reply follow each other on the line: their times add up
                "bytes": (after[1] - before[1]) + (after[2] - before[2]),
                "vectors": len(dut.test_set.get("cycles", ())),
                "baud": case.board.for_emulator().baud, "hw_baud": case.board.baud, "native": case.board.arch == "host"})


def _link(dut) -> tuple[int, int, int]:
    if dut is None:
        return 0, 0, 0
    s = dut.client.stats
    return s.requests, s.bytes_sent, s.bytes_received


def report(timer: Timer, wall: float) -> None:
    by_backend = defaultdict(lambda: defaultdict(float))
    for p in timer.passes:
        key = f"{p['board']}/{p['backend']}"
        for field in ("seconds", "requests", "bytes", "vectors"):
            by_backend[key][field] += p[field]
        by_backend[key]["baud"] = p["baud"]
        by_backend[key]["hw_baud"] = p["hw_baud"]
        by_backend[key]["native"] = p["native"]
    print("\naccuracy pass (every variant of the board summed; host-clock time)")
    print(f"{'board/backend':24} {'vectors/s':>10} {'round trips/vec':>15} {'line-s/vec':>11} "
          f"{'line bound/s':>12} {'of bound':>8}  (bound: at the firmware's UART rate; and at the board's own)")
    for key, f in sorted(by_backend.items()):
        rate = f["vectors"] / f["seconds"] if f["seconds"] else 0.0
        trips = f["requests"] / f["vectors"] if f["vectors"] else 0.0
        if f["native"]:
            us = 1e6 * f["seconds"] / f["vectors"] if f["vectors"] else 0.0
            print(f"{key:24} {rate:10,.0f} {trips:15.3f} {'(no UART)':>11} {'':>12} {'':>8}"
                  f"   host time per inference {us:.1f} us")
            continue
        line_s = f["bytes"] * 10 / f["baud"] / f["vectors"] if f["vectors"] else 0.0
        bound = 1 / line_s if line_s else 0.0
        hw_bound = f["hw_baud"] / 10 / (f["bytes"] / f["vectors"]) if f["vectors"] else 0.0
        print(f"{key:24} {rate:10,.0f} {trips:15.3f} {line_s * 1e3:9.3f}ms {bound:12,.0f} "
              f"{rate / bound if bound else 0:8.0%}   at {f['baud']:,.0f} baud; "
              f"{hw_bound:,.0f}/s at the board's {f['hw_baud']:,.0f}")
    print(f"\n`tinyhil bench` wall time {wall:.1f} s:")
    accounted = 0.0
    for phase in ("export", "build", "launch", "stream", "latency", "energy", "other tests"):
        seconds = timer.phases.get(phase, 0.0)
        accounted += seconds
        print(f"  {phase:12} {seconds:7.1f} s  {seconds / wall:5.1%}")
    print(f"  {'rest':12} {wall - accounted:7.1f} s  {(wall - accounted) / wall:5.1%}  "
          "(collection, planning, report)")


def line_check_boards(folder: Path) -> str:
    """A copy of the Uno built for simavr at the hardware rate (no emulator_baud)."""
    uno = Path(__file__).resolve().parent.parent / "devices" / "boards" / "uno.toml"
    text = re.sub(r"^emulator_baud.*$", "", uno.read_text(), flags=re.M)
    text = re.sub(r'^name = "uno"', 'name = "uno_115200"', text, flags=re.M)
    (folder / "uno_115200.toml").write_text(text)
    return "uno_115200"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--board", default="uno,mega2560,native,esp32")
    parser.add_argument("--cold", action="store_true", help="an empty build cache")
    parser.add_argument("--line-check", action="store_true",
                        help="add a simavr Uno at 115200 baud (the line-rate goal)")
    known, rest = parser.parse_known_args()
    boards = known.board.split(",")
    if known.cold:
        os.environ["TINYHIL_CACHE"] = tempfile.mkdtemp(prefix="tinyhil-cold-")
    if known.line_check:
        folder = Path(tempfile.mkdtemp(prefix="tinyhil-boards-"))
        boards.append(line_check_boards(folder))
        os.environ["TINYHIL_BOARDS_DIR"] = str(folder)
    from harness.backends import get_backend
    from harness.boards import get_board
    from harness.cli import bench_argv, build_parser
    available = [b for b in boards if any(get_backend(name, get_board(b)).availability(get_board(b)).ok
                                          for name in get_board(b).backends if name != "hardware")]
    skipped = sorted(set(boards) - set(available))
    if skipped:
        print(f"not benchmarked (no emulator here): {', '.join(skipped)}")
    args = build_parser().parse_args(["bench", f"--board={','.join(available)}", *rest])
    timer = Timer()
    started = time.perf_counter()
    code = pytest.main(bench_argv(args), plugins=[timer])
    report(timer, time.perf_counter() - started)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
