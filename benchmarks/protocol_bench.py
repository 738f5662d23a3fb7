"""Protocol benchmark: wire efficiency, round trips per test vector, and host overhead.

Runs against the native DUT (a real process on a real pseudo-terminal) and counts the bytes
the client really writes. Framing for the AVR boards is reproduced by capping the client's
frame payload at each board's max_payload (the DUT accepts any frame up to its own limit).

    python benchmarks/protocol_bench.py [--inferences 2000]

Goals (issue 2): >= 90 % of the bytes on the wire are test-vector payload, 1 round trip per
test vector, under 1 ms host overhead per inference on the native board. MLPerf Tiny's hex
protocol reaches at most 41 %.
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness.backends import fidelity_of, get_backend
from harness.backends.base import StartRequest
from harness.boards import get_board, load_catalogue
from harness.build.firmware import build_firmware
from harness.models import export
from harness.protocol.client import DutClient


def start(variant: str):
    board = get_board("native")
    exported = export(variant)
    target = get_backend("native", board).start(StartRequest(board, build_firmware(board, exported)))
    client = DutClient.open(target.url)
    client.identify()
    return target, client, exported


def efficiency(client: DutClient, vector: bytes, max_payload: int) -> dict:
    client.max_payload = max_payload
    sent, received, requests = client.stats.bytes_sent, client.stats.bytes_received, client.stats.requests
    client.infer(vector)
    sent = client.stats.bytes_sent - sent
    received = client.stats.bytes_received - received
    return {"to_dut": len(vector) / sent, "both_ways": len(vector) / (sent + received),
            "round_trips": client.stats.requests - requests, "bytes_sent": sent}


def host_overhead(client: DutClient, vector: bytes, count: int) -> tuple[float, float]:
    """Per inference: host round trip minus the DUT's own timed inference, in microseconds."""
    overheads = []
    for _ in range(count):
        result = client.infer(vector)
        overheads.append(result.roundtrip_s * 1e6 - result.cycles[0] / 1e3)
    return statistics.median(overheads), sorted(overheads)[int(0.95 * len(overheads))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inferences", type=int, default=2000)
    args = parser.parse_args()
    boards = load_catalogue()
    print("wire efficiency: test-vector bytes / bytes on the wire (unit: %)")
    print(f"{'vector':>8} {'framed as':>10} {'max_payload':>11} {'host->DUT':>10} {'both ways':>10} "
          f"{'round trips':>11}")
    for variant, size in (("checksum_128", 128), ("checksum_2048", 2048)):
        target, client, exported = start(variant)
        try:
            vector = exported.vector_bytes(0)
            assert len(vector) == size
            for name in ("native", "mega2560", "uno"):
                e = efficiency(client, vector, boards[name].max_payload)
                print(f"{size:>7}B {name:>10} {boards[name].max_payload:>11} {e['to_dut'] * 100:>9.1f}% "
                      f"{e['both_ways'] * 100:>9.1f}% {e['round_trips']:>11}")
        finally:
            client.close()
            target.stop()
    target, client, exported = start("checksum_128")
    try:
        started = time.perf_counter()
        median, p95 = host_overhead(client, exported.vector_bytes(0), args.inferences)
        elapsed = time.perf_counter() - started
    finally:
        client.close()
        target.stop()
    print(f"host overhead per inference on native (round trip minus device time, fidelity "
          f"wall-clock, n={args.inferences}): median {median:.1f} us, p95 {p95:.1f} us "
          f"({args.inferences / elapsed:.0f} inferences/s)")


if __name__ == "__main__":
    main()
