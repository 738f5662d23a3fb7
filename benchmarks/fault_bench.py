"""Fault-injection figures, counted from the run's records (not from what was injected).

    python benchmarks/fault_bench.py [--rounds 2] [--vectors 24] [--targets native,uno-simavr,uno-qemu]

Per target, with the fault-injecting proxy in front of the DUT and without it ("bare"):
process faults (kill: SIGKILL of the emulator or native DUT; stop: SIGSTOP; reset: the reset
line), the port vanishing and coming back (proxy only: a pty of its own cannot), and link
faults (proxy only: flipped, dropped, duplicated, delayed bytes). Every vector's output is
recorded as it is taken (metric `output`); afterwards records.jsonl is read back:

- recovered: `failure` records of the fault's kind that say it was recovered;
- lost: vectors without an output record (a fault that was not recovered loses its request);
- wrong: output records that differ from the host reference;
- detect: the longest detection time the failure records give.

Link faults are recovered by the protocol itself: their rows count the damaged bytes (B), and
"all" recovered when the `link` record counts the resends and every output is there and right.
The last rows time a noisy link (0.5 % flips, 0.1 % drops) against a clean one: streaming one
vector per request, and the accuracy pass (batches; staged batches once the link lost a frame).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.dut.recovery import DutFault  # noqa: E402
from harness.dut.supervision import after_test  # noqa: E402
from harness.faults.inject import fault_link_wrapper  # noqa: E402
from harness.results.records import RECORDS_JSONL  # noqa: E402
from harness.session.plan import plan_boards, select_variants  # noqa: E402
from harness.session.session import Session  # noqa: E402

TARGETS = {"native": ("native", "native"), "uno-simavr": ("uno", "simavr"), "uno-qemu": ("uno", "qemu")}
PROCESS = {"kill": "emulator_died", "stop": "dut_hang", "reset": "dut_reset", "vanish": "port_vanished"}
LINK = {"flip": "flip=0.01", "drop": "drop=0.002", "dup": "dup=0.005", "delay": "delay=0.01,delay_ms=30"}
NOISY = "flip=0.005,drop=0.001"
VARIANT = "dtree_emlearn"
REPLY_TIMEOUT_S = 0.5


def session_for(target: str, run_id: str, workdir: Path, link: str | None):
    board, backend = TARGETS[target]
    plans, _ = plan_boards([board], backend, None)
    if not plans[0].availability.ok:
        return None, str(plans[0].availability)
    wrap = fault_link_wrapper(f"{link},seed=5") if link else None
    session = Session(plans, select_variants([VARIANT]), workdir, run_id=run_id, reply_timeout=REPLY_TIMEOUT_S,
                      wrap_target=wrap)
    return session, ""


def run_case(session: Session, vectors: int, faults: list[str]) -> tuple[int, float]:
    """Stream `vectors` vectors, injecting `faults` spread among them; returns (vectors, wall s)."""
    case = session.cases[0]
    dut = session.dut(case)
    step = max(1, vectors // (len(faults) + 1))
    fault_at = {step * (i + 1): kind for i, kind in enumerate(faults)}
    total = max(vectors, step * (len(faults) + 1))
    started = time.monotonic()
    for i in range(total):
        index = i % len(dut.exported.test_inputs)
        if i in fault_at:
            inject(dut, fault_at[i])
        try:
            out = dut.exported.decode_output(dut.infer(dut.exported.vector_bytes(index)).output)
        except DutFault:
            dut = session.dut(case)             # what the next test would get: its record is lost
            continue
        session.record(case, dut.firmware, "output", float(out[0]), "class", dut.fidelity,
                       detail=f"vector {index}")
        if i - 1 in fault_at or i + 1 == total:  # one fault per test: the fixture's end-of-test check
            after_test(dut, session.recorder_for(case, dut.firmware, dut.fidelity))
    took = time.monotonic() - started
    return total, took


def inject(dut, kind: str) -> None:
    pid = dut.target.pid
    if kind == "kill":
        os.kill(pid, signal.SIGKILL)
    elif kind == "stop":
        os.kill(pid, signal.SIGSTOP)
    elif kind == "reset":
        dut.target.reset()
    elif kind == "vanish":
        link = dut.target.extras["faultlink"]
        link.vanish()
        threading.Timer(0.3, link.reappear).start()


def count(workdir: Path, run_id: str, exported, expected: int, kind: str | None) -> dict:
    records = [json.loads(line) for line in (workdir / run_id / RECORDS_JSONL).read_text().splitlines()]
    outputs = [r for r in records if r["metric"] == "output"]
    reference = exported.host_reference
    failures = [r["detail"] for r in records if r["metric"] == "failure"]
    mine = [d for d in failures if kind and d.startswith(f"kind={kind};")]
    detect = [float(m.group(1)) for d in mine for m in [re.search(r"detected after ([\d.]+) s", d)] if m]
    return {"recovered": sum("NOT recovered" not in d for d in mine), "events": len(mine),
            "lost": expected - len(outputs),
            "wrong": sum(r["value"] != float(reference[int(r["detail"].split()[1])][0]) for r in outputs),
            "detect": max(detect, default=0.0), "other": [d for d in failures if d not in mine]}


def bench_target(target: str, rounds: int, vectors: int, workdir: Path) -> list[str]:
    lines = [f"  {'mode':6} {'fault':8} {'injected':>8} {'recovered':>9} {'lost':>5} {'wrong':>6} "
             f"{'detect s':>8}  other records"]
    for mode, link in (("proxy", "flip=0"), ("bare", None)):
        for fault, kind in PROCESS.items():
            if fault == "vanish" and not link:
                continue                        # an emulator's own pty never comes back
            run_id = f"{target}-{mode}-{fault}"
            session, why = session_for(target, run_id, workdir, link)
            if session is None:
                return [f"  skipped: {why}"]
            try:
                dut = session.dut(session.cases[0])
                if fault == "reset" and dut.target.reset_fn is None:
                    lines.append(f"  {mode:6} {fault:8} {'n/a: this backend has no reset line':>40}")
                    continue
                total, _ = run_case(session, vectors, [fault] * rounds)
                exported = dut.exported
            finally:
                session.close()
            c = count(workdir, run_id, exported, total, kind)
            lines.append(f"  {mode:6} {fault:8} {rounds:>8} {c['recovered']:>9} {c['lost']:>5} "
                         f"{c['wrong']:>6} {c['detect']:>8.2f}  {len(c['other'])}")
    for fault, spec in LINK.items():
        run_id = f"{target}-link-{fault}"
        session, _ = session_for(target, run_id, workdir, spec)
        try:
            total, _ = run_case(session, vectors, [])
            dut = session.dut(session.cases[0])
            bytes_hit = sum(v for k, v in dut.target.extras["faultlink"].counts.items()
                            if k.startswith(fault))
            exported = dut.exported
        finally:
            session.close()
        c = count(workdir, run_id, exported, total, "link")
        records = [json.loads(line) for line in (workdir / run_id / RECORDS_JSONL).read_text().splitlines()]
        link_details = [r["detail"] for r in records if r["detail"].startswith("kind=link;")]
        resends = sum(int(m.group(1)) for d in link_details for m in [re.search(r"(\d+) resends", d)] if m)
        # the protocol recovers damaged bytes by resending: all of them when the link record
        # exists (or nothing needed a resend) and every vector's output is there and right
        recovered = "all" if (link_details or fault == "delay") and not c["lost"] and not c["wrong"] else "no"
        lines.append(f"  proxy  {fault:8} {f'{bytes_hit} B':>8} {recovered:>9} {c['lost']:>5} {c['wrong']:>6} "
                     f"{'-':>8}  link record: {resends} resends")
    times = {}
    for name, spec in (("clean", "flip=0"), ("noisy", NOISY)):
        session, _ = session_for(target, f"{target}-time-{name}", workdir, spec)
        try:
            _, times[name] = run_case(session, vectors * 2, [])
        finally:
            session.close()
    lines.append(f"  {NOISY}, one INFER per vector: {times['noisy']:.2f} s for {vectors * 2} vectors, clean "
                 f"{times['clean']:.2f} s ({times['noisy'] / max(times['clean'], 1e-9):.1f}x)")
    passes = {}
    for name, spec in (("clean", "flip=0"), ("noisy", NOISY)):
        session, _ = session_for(target, f"{target}-pass-{name}", workdir, spec)
        try:
            dut = session.dut(session.cases[0])
            test_set = [dut.exported.vector_bytes(i) for i in range(len(dut.exported.test_inputs))]
            started = time.monotonic()
            _, _, requests = dut.infer_all(test_set)
            passes[name] = (time.monotonic() - started, requests)
        finally:
            session.close()
    (noisy_s, noisy_n), (clean_s, clean_n) = passes["noisy"], passes["clean"]
    lines.append(f"  accuracy pass ({len(test_set)} vectors): {noisy_s:.2f} s in {noisy_n} requests, "
                 f"clean {clean_s:.2f} s in {clean_n} ({noisy_s / max(clean_s, 1e-9):.1f}x)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="process faults of each kind per run")
    parser.add_argument("--vectors", type=int, default=24, help="vectors per run")
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args()
    unknown = [t for t in args.targets.split(",") if t not in TARGETS]
    if unknown or args.rounds < 1 or args.vectors < 1:
        parser.error(f"targets are {', '.join(TARGETS)}; --rounds and --vectors at least 1")
    workdir = Path(tempfile.mkdtemp(prefix="tinyhil-fault-bench-"))
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} CPUs; records in {workdir}; reply timeout {REPLY_TIMEOUT_S} s")
    for target in args.targets.split(","):
        started = time.monotonic()
        lines = bench_target(target, args.rounds, args.vectors, workdir)
        print(f"== {target} ({VARIANT}), {time.monotonic() - started:.0f} s wall")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
