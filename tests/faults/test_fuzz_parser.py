"""The DUT's C protocol parser under a coverage-guided fuzzer: libFuzzer with AddressSanitizer
and UBSan, on the runtime built for the host, seeded from the corpus kept in the repository
(devices/firmware/fuzz/corpus). A few seconds per test run; any crash, hang (-timeout) or
sanitizer report fails it."""

import shutil
import subprocess

import pytest

from harness.paths import firmware_dir

FUZZ_SECONDS = 5
CLANGS = ("clang", "clang-19", "clang-16", "clang-15", "clang-14")
INSTALL = "sudo apt-get install clang libclang-rt-dev (Debian 12: clang-14 and libclang-rt-14-dev)"
DEFINES = ["-DTINYHIL_MAX_PAYLOAD=96", "-DTINYHIL_VECTOR_CAPACITY=40", "-DTINYHIL_OUTPUT_CAPACITY=4",
           "-DTINYHIL_MAX_RUNS=4", "-DTINYHIL_BATCH_BYTES=16", '-DTINYHIL_BOARD_NAME="fuzz"']


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    clang = next((c for c in CLANGS if shutil.which(c)), None)
    if clang is None:
        pytest.skip(f"no clang to build the libFuzzer target: {INSTALL}")
    fw = firmware_dir()
    binary = tmp_path_factory.mktemp("fuzz") / "fuzz_dut_parser"
    build = subprocess.run([clang, "-g", "-O1", "-fsanitize=fuzzer,address,undefined",
                            "-fno-sanitize-recover=all", *DEFINES, f"-I{fw / 'runtime'}",
                            str(fw / "fuzz" / "fuzz_dut_parser.c"), str(fw / "runtime" / "tinyhil_dut.c"),
                            "-o", str(binary)], capture_output=True, text=True, timeout=120)
    if build.returncode != 0 and "fuzzer" in build.stderr and "cannot find" in build.stderr:
        pytest.skip(f"{clang} has no libFuzzer runtime: {INSTALL}")
    assert build.returncode == 0, build.stderr[-3000:]
    return binary


def test_corpus_is_in_the_repository():
    corpus = firmware_dir() / "fuzz" / "corpus"
    seeds = sorted(p.name for p in corpus.iterdir())
    assert {"identify", "infer", "load_then_infer_loaded", "bad_crc"} <= set(seeds)
    assert sum(p.stat().st_size for p in corpus.iterdir()) < 4096, "keep the corpus small"


def test_parser_survives_a_short_fuzz_run(fuzzer, tmp_path):
    work = tmp_path / "corpus"           # new inputs go here; the repository's corpus is read only
    work.mkdir()
    run = subprocess.run([str(fuzzer), str(work), str(firmware_dir() / "fuzz" / "corpus"),
                          f"-max_total_time={FUZZ_SECONDS}", "-timeout=2", "-rss_limit_mb=1024",
                          f"-artifact_prefix={tmp_path}/"],
                         capture_output=True, text=True, timeout=FUZZ_SECONDS + 60)
    log = run.stderr
    assert run.returncode == 0, log[-4000:]
    for bad in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: libFuzzer", "timeout"):
        assert bad not in log, log[-4000:]
    runs = int(log.rsplit("Done ", 1)[1].split()[0])
    assert runs > 1000, f"only {runs} inputs in {FUZZ_SECONDS} s"
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
