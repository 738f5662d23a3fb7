"""Fault-injection figures: faults injected per kind, recovered, records lost, wrong records,
and the longest time to detect a hang, on the native board and on simavr (the Uno).

    python benchmarks/fault_bench.py [--rounds 3] [--vectors 40] [--targets native,uno-simavr]

A link fault counts as recovered when its run ended with every output recorded and right (the
protocol resent what was damaged). Every vector's output is recorded through the session's recorder as it is taken (metric
`output`); afterwards records.jsonl is read back: a vector without its record is a lost
record, a record whose value differs from the host reference is a wrong one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.results.records import RECORDS_JSONL  # noqa: E402
from harness.faults.inject import fault_link_wrapper
from harness.session.plan import plan_boards, select_variants
from harness.session.session import Session  # noqa: E402

TARGETS = {"native": ("native", "native"), "uno-simavr": ("uno", "simavr")}
LINK = {"flip": "flip=0.01", "drop": "drop=0.002", "dup": "dup=0.005", "delay": "delay=0.01,delay_ms=30"}
VARIANT = "dtree_emlearn"
REPLY_TIMEOUT_S = 0.5


def run_target(name: str, rounds: int, vectors: int, workdir: Path) -> dict:
    board, backend = TARGETS[name]
    plans, _ = plan_boards([board], backend, None)
    if not plans[0].availability.ok:
        return {"skipped": str(plans[0].availability)}
    injected, recovered, detect = Counter(), Counter(), defaultdict(list)
    expected = lost = wrong = 0
    for kind, spec in [("none", "flip=0"), *LINK.items()]:
        session = Session(plans, select_variants([VARIANT]), workdir, run_id=f"{name}-{kind}",
                          wrap_target=fault_link_wrapper(f"{spec},seed=5"))
        case = session.cases[0]
        dut = session.dut(case)
        dut.client.timeout = REPLY_TIMEOUT_S
        faults = [] if kind != "none" else ["dut_hang", "emulator_died", "dut_reset", "port_vanished"] * rounds
        step = max(1, vectors // (len(faults) + 1))
        fault_at = {step * (i + 1): f for i, f in enumerate(faults)}
        total = max(vectors, step * (len(faults) + 1))
        for i in range(total):
            index = i % len(dut.exported.test_inputs)
            if i in fault_at:
                inject(dut, fault_at[i], injected)
            out = dut.exported.decode_output(dut.infer(dut.exported.vector_bytes(index)).output)
            session.record(case, dut.firmware, "output", float(out[0]), "class", dut.fidelity,
                           detail=f"vector {index}")
            expected += 1
        if fault_at:
            dut.supervisor.check_reset("at the end of the bench")
        link = dut.target.info.get("faultlink")
        for key, count in (link.counts.items() if link else ()):
            if key.split("_")[0] in LINK:
                injected[f"link_{key.split('_')[0]}"] += count
        for event in dut.supervisor.events:
            recovered[event.kind] += event.recovered
            detect[event.kind].append(event.detected_after_s)
        session.close()
        records = [json.loads(line) for line in (workdir / f"{name}-{kind}" / RECORDS_JSONL).read_text().splitlines()]
        outputs = [r for r in records if r["metric"] == "output"]
        reference = dut.exported.host_reference
        lost_here = total - len(outputs)
        wrong_here = sum(1 for r in outputs if r["value"] != float(reference[int(r["detail"].split()[1])][0]))
        lost, wrong = lost + lost_here, wrong + wrong_here
        if kind != "none" and not (lost_here or wrong_here):
            # every damaged byte was caught: the run ended with all outputs recorded and right
            recovered[f"link_{kind}"] += injected[f"link_{kind}"]
    return {"injected": dict(injected), "recovered": dict(recovered), "records_expected": expected,
            "records_lost": lost, "records_wrong": wrong,
            "longest_hang_detection_s": max(detect["dut_hang"], default=float("nan")),
            "reply_timeout_s": REPLY_TIMEOUT_S}


def inject(dut, kind: str, injected: Counter) -> None:
    pid = dut.target.pid
    if kind == "dut_hang":
        os.kill(pid, signal.SIGSTOP)
    elif kind == "emulator_died":
        os.kill(pid, signal.SIGKILL)
    elif kind == "dut_reset":
        dut.target.reset()
        time.sleep(0.05)
        dut.supervisor.check_reset("between requests")
    elif kind == "port_vanished":
        link = dut.target.extras["faultlink"]
        link.vanish()
        threading.Timer(0.3, link.reappear).start()
    injected[kind] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="DUT/port faults of each kind per target")
    parser.add_argument("--vectors", type=int, default=40, help="vectors per link-fault kind")
    parser.add_argument("--targets", default="native,uno-simavr")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tinyhil-fault-bench-"))
    for name in args.targets.split(","):
        started = time.monotonic()
        figures = run_target(name, args.rounds, args.vectors, workdir)
        print(f"== {name} ({VARIANT}), {time.monotonic() - started:.0f} s wall")
        if "skipped" in figures:
            print(f"  skipped: {figures['skipped']}")
            continue
        print(f"  {'fault kind':16} {'injected':>9} {'recovered':>10}")
        for kind, count in sorted(figures["injected"].items()):
            unit = "bytes" if kind.startswith("link_") else "events"
            print(f"  {kind:16} {count:>9} {figures['recovered'].get(kind, 0):>10}  ({unit})")
        print(f"  records taken: {figures['records_expected']}, lost: {figures['records_lost']}, "
              f"wrong: {figures['records_wrong']}")
        print(f"  longest time to detect a hang: {figures['longest_hang_detection_s']:.2f} s "
              f"(reply timeout {figures['reply_timeout_s']} s + 0.5 s per inference; wall clock)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
