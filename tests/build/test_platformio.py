"""Users' PlatformIO projects (--pio-project/--pio-env): checked up to where PlatformIO would
download its platforms, which no machine here can do."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.build import platformio
from harness.errors import BuildError, HarnessError
from harness.paths import REPO_DIR

INI = "[env:uno]\nplatform = atmelavr\nboard = uno\nframework = arduino\n"


def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.cpp").write_text("void setup() {}\nvoid loop() {}\n")
    (tmp_path / "platformio.ini").write_text(INI)
    return tmp_path


def test_a_folder_without_platformio_ini_is_refused(tmp_path):
    with pytest.raises(HarnessError, match="not a PlatformIO project"):
        platformio.build(tmp_path, "uno")


def test_an_unknown_environment_is_refused(tmp_path):
    with pytest.raises(HarnessError, match=r"no \[env:esp32dev\] section"):
        platformio.build(project(tmp_path), "esp32dev")


def test_pio_project_needs_an_environment(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pytest", str(REPO_DIR / "suites"), "--board", "uno",
                             "--pio-project", str(project(tmp_path)), "-p", "no:cacheprovider",
                             "--results-dir", str(tmp_path / "r")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "--pio-project needs --pio-env" in result.stdout + result.stderr


@pytest.mark.skipif(not os.environ.get("TINYHIL_PIO_TESTS"),
                    reason="runs the real `pio run`, which needs PlatformIO's registry to download "
                           "atmelavr (offline it fails after ~1 min of retries): set TINYHIL_PIO_TESTS=1")
def test_pio_run_builds_the_project_or_says_it_needs_the_registry(tmp_path):
    pytest.importorskip("platformio", reason="pip install platformio")
    try:
        elf = platformio.build(project(tmp_path), "uno")
    except BuildError as exc:
        assert "registry" in str(exc)         # no network: the error says what is missing
    else:
        assert elf.is_file() and elf.read_bytes()[:4] == b"\x7fELF"
