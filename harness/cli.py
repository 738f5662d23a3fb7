"""`tinyhil` (also `python -m harness`): the commands that are not tests.

  tinyhil boards           every board, its backends, and whether each can run here
  tinyhil variants         the model variants
  tinyhil bench [...]      the emulator-only benchmark: suites on every board, then the table
  tinyhil report DIR...    rebuild the comparison table from runs (Markdown, CSV, HTML, PNG)
  tinyhil compare A B      what changed between two runs (--fail-on latency_us:+5%: a gate)
  tinyhil lab scan         serial devices on this host and the lab boards they are
  tinyhil gen-header       regenerate the C protocol header from harness/wire.py
  tinyhil export-library D write the DUT runtime as an Arduino / PlatformIO library to D/TinyHIL
  tinyhil mlperf-dataset D a variant's test set in the MLPerf Tiny runner's layout, in D
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.paths import REPO_DIR, firmware_dir

HEADER = Path("runtime") / "tinyhil_wire.h"


def cmd_boards(args) -> int:
    """One line per board, then one per backend: usable here, or why not and how to fix it.
    Plain lines rather than a table: the reasons are sentences and must not be cut."""
    from harness.boards import scan_catalogue
    from harness.session.plan import backend_availability

    scan = scan_catalogue()
    for note in scan.notes():
        print(f"note: {note}")
    for board in scan.boards.values():
        print(f"{board.name}: {board.description}; {board.mcu} at {board.clock_hz / 1e6:g} MHz, "
              f"flash {_size(board.flash_bytes)}, RAM {_size(board.ram_bytes)}  ({board.source})")
        for backend in board.backends:
            status = backend_availability(board, backend, None)
            default = " (default emulator)" if backend == board.default_emulator else ""
            if status.ok:
                state = f"usable here{': ' + status.detail if status.detail else ''}"
            else:
                state = f"not usable here: {status.reason}" + (f"\n      fix: {status.fix}" if status.fix else "")
            print(f"  - {backend}{default}: {state}")
    return 0


def _size(n: int) -> str:
    if not n:
        return "host"
    return f"{n // 1024} KB" if n >= 1024 else f"{n} B"     # an ATtiny85 has 512 B of RAM


def cmd_variants(args) -> int:
    """One line per variant: estimator, exporter, input type, size of the generated code (the
    variant is exported for it: trained or loaded, cached)."""
    from harness.models.modelfile import default_file
    from harness.models import NotExportable, export, list_variants, use_models_file
    path = Path(args.models).resolve() if args.models else default_file()
    use_models_file(path)
    print(f"models file: {path or 'the shipped demo catalogue'}")
    for v in list_variants(include_probes=path is None):
        try:
            m = export(v)
            size = f"{m.generated_bytes / 1024:.1f} KB of generated {'C++' if m.c_sources[0].suffix == '.cpp' else 'C'}"
            scale = (f", scale {_scales(m.scales)}" if m.scales else "")
        except NotExportable as exc:
            size, scale = str(exc), ""
        estimator = v.estimator_name or v.kind
        print(f"{v.name:20} {estimator:24} {v.exporter:10} {v.input_count} x {v.input_dtype}{scale}; {size}")
    return 0


def _scales(scales) -> str:
    unique = sorted(set(scales))
    return f"{unique[0]:g}" if len(unique) == 1 else f"{min(unique):g}..{max(unique):g} per feature"


def cmd_report(args) -> int:
    from harness.report.table import comparison_table, load_runs, print_table, write_report
    paths = [Path(p) for p in args.runs] or [Path("results")]
    if args.trend:
        from harness.report.trend import cmd_trend
        return cmd_trend(paths, Path(args.out) if args.out else None)
    skipped: list = []
    table = comparison_table(load_runs(paths, skipped))
    print_table(table)
    out = Path(args.out) if args.out else (paths[0] if len(paths) == 1 else Path("results")) / "report"
    written = write_report(paths, out, [])
    for kind, path in written.items():
        print(f"{kind}: {path}")
    for run_dir, why in skipped:           # the good runs are reported; the bad one named
        print(f"tinyhil: left out run {run_dir}: {why}", file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    """Run the suites on emulators only (never touching an attached board)."""
    import pytest
    return int(pytest.main(bench_argv(args)))


def bench_argv(args) -> list[str]:
    """pytest's arguments for `tinyhil bench` (benchmarks/throughput_bench.py times them)."""
    suites = REPO_DIR / "suites"
    if not suites.is_dir():
        raise HarnessError(f"the suites folder {suites} is missing: run tinyhil bench from a "
                           "checkout of the repository")
    argv = [str(suites), "-p", "no:cacheprovider", "-q", f"--backend={args.backend}",
            f"--latency-runs={args.latency_runs}"]
    if args.board:
        argv.append(f"--board={args.board}")
    if args.variant:
        argv.append(f"--variant={args.variant}")
    if args.models:
        argv.append(f"--models={Path(args.models).resolve()}")
    if args.results_dir:
        argv.append(f"--results-dir={args.results_dir}")
    if args.vectors:
        argv.append(f"--vectors={args.vectors}")
    if args.workers:
        argv.append(f"-n={args.workers}")        # pytest-xdist: one run folder, one table
    if "hardware" in args.backend.split(","):
        raise HarnessError("tinyhil bench never touches a board: run `pytest suites/ --board NAME` "
                           "for hardware")
    return argv


def cmd_gen_header(args) -> int:
    from harness.protocol.wire import c_header
    path = firmware_dir() / HEADER
    if args.check:
        if path.read_text() != c_header():
            print(f"{path} is out of date: run `tinyhil gen-header`", file=sys.stderr)
            return 1
        print(f"{path} matches harness/wire.py")
        return 0
    path.write_text(c_header())
    print(f"wrote {path}")
    return 0


def cmd_export_library(args) -> int:
    from harness.build.arduino_library import export_library
    lib = export_library(Path(args.dest))
    print(f"wrote {lib} (Arduino: copy it into your sketchbook's libraries/; PlatformIO: into lib/)")
    return 0


def cmd_mlperf_dataset(args) -> int:
    from harness.models import export, get_variant, use_models_file
    from harness.models.mlperf_dataset import write_dataset
    from harness.models.modelfile import default_file
    use_models_file(Path(args.models).resolve() if args.models else default_file())
    exported = export(get_variant(args.variant))
    folder = write_dataset(exported, Path(args.dest))
    print(f"wrote {len(exported.test_inputs)} vectors and y_labels.csv to {folder}, and "
          f"{Path(args.dest) / 'tests.yaml'} (the runner's -s and -t)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyhil", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("boards", help="list boards and whether each backend can run here").set_defaults(fn=cmd_boards)
    variants = sub.add_parser("variants", help="list model variants")
    variants.add_argument("--models", help="a models file (default: ./tinyhil.toml, else the demo catalogue)")
    variants.set_defaults(fn=cmd_variants)
    bench = sub.add_parser("bench", help="emulator-only benchmark of every board and variant")
    bench.add_argument("--board", help="comma-separated boards (default: all this machine can emulate)")
    bench.add_argument("--backend", default="all-emulators",
                       help="all-emulators (default: every emulator each board has: simavr and "
                            "QEMU for the AVR boards, Espressif's QEMU for the ESP32, native), "
                            "emulators (each board's default emulator), or a comma list (simavr,qemu)")
    bench.add_argument("--variant", help="comma-separated variants (default: all)")
    bench.add_argument("--models", help="a models file: benchmark your own models (see README)")
    bench.add_argument("--results-dir")
    bench.add_argument("--vectors", type=int, help="stream only the first N test vectors")
    bench.add_argument("--latency-runs", type=int, default=20)
    bench.add_argument("--workers", help="parallel pytest-xdist workers (a number or auto; "
                                         "needs pip install 'tinyhil[parallel]')")
    bench.set_defaults(fn=cmd_bench)
    report = sub.add_parser("report", help="comparison table from one or more runs")
    report.add_argument("runs", nargs="*", help="run folders, or folders holding runs (default: results/)")
    report.add_argument("--out", help="folder for report.md/.csv/.html and plots")
    report.add_argument("--trend", action="store_true",
                        help="figures over a series of runs (from one or several hosts): one "
                             "plot per metric, trend.csv and trend.html")
    report.set_defaults(fn=cmd_report)
    from harness.report import compare
    from harness.lab import cli as lab_cli
    compare.add_parser(sub)
    lab_cli.add_parser(sub)
    header = sub.add_parser("gen-header", help="regenerate devices/firmware/runtime/tinyhil_wire.h")
    header.add_argument("--check", action="store_true", help="only check that it is up to date")
    header.set_defaults(fn=cmd_gen_header)
    library = sub.add_parser("export-library",
                             help="write the DUT runtime as an Arduino / PlatformIO library")
    library.add_argument("dest", help="folder to write TinyHIL/ into")
    library.set_defaults(fn=cmd_export_library)
    dataset = sub.add_parser("mlperf-dataset",
                             help="write a variant's test set for the MLPerf Tiny runner")
    dataset.add_argument("dest", help="folder to write <variant>/y_labels.csv, the .bin files and tests.yaml into")
    dataset.add_argument("--variant", required=True, help="the model variant (tinyhil variants lists them)")
    dataset.add_argument("--models", help="a models file (default: ./tinyhil.toml, else the demo catalogue)")
    dataset.set_defaults(fn=cmd_mlperf_dataset)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except HarnessError as exc:
        print(f"tinyhil: error: {exc}", file=sys.stderr)
        return 2
