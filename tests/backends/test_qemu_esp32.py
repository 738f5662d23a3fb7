"""ESP32: the board file, the bare-metal firmware and its flash image (built in CI on every run),
Espressif's QEMU (boot, protocol, determinism, a hung ROM reported quickly) and esptool
flashing through the emulated ROM bootloader in download mode."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import time
from pathlib import Path

import pytest

from harness.backends import fidelity_of, get_backend
from harness.backends.base import StartRequest
from harness.backends import qemu_esp32
from harness.boards import get_board
from harness.errors import BackendError, HarnessError
from harness.build.firmware import build_firmware
from harness.models import export
from harness.protocol.client import DutClient
from harness.build.elf import sections as elf_layout
from harness.build.xtensa import APP_OFFSET, image_info, toolchain

IRAM = (0x40080000, 0x400A0000)
DRAM = (0x3FFB0000, 0x3FFE0000)


def _toolchain_or_skip():
    try:
        return toolchain()
    except HarnessError as exc:
        pytest.skip(f"no ESP32 compiler here: {exc}")


def _qemu_or_skip():
    qemu, why = qemu_esp32.find_esp_qemu()
    if qemu is None:
        pytest.skip(f"Espressif's QEMU is not installed ({why}); {qemu_esp32.INSTALL}")
    return qemu


@pytest.fixture(scope="module")
def esp32():
    return get_board("esp32")


@pytest.fixture(scope="module")
def dtree_fw(esp32):
    _toolchain_or_skip()
    return build_firmware(esp32, export("dtree_emlearn"))


def test_board_file(esp32):
    assert esp32.arch == "xtensa" and esp32.clock_hz == 240_000_000
    assert esp32.flash_bytes == 4 * 1024 * 1024 and esp32.extra["sram_bytes"] == 520 * 1024
    assert (0x10C4, 0xEA60) in {(u.vid, u.pid) for u in esp32.usb}          # CP210x
    assert (0x1A86, 0x7523) in {(u.vid, u.pid) for u in esp32.usb}          # CH340
    assert esp32.backend_settings("hardware")["uploader"] == "esptool"
    assert fidelity_of("qemu", esp32) == "instruction-count"
    assert fidelity_of("qemu", get_board("uno")) == "functional"


def test_firmware_image_and_memory_map(dtree_fw):
    """The ELF's sections sit in the ESP32's IRAM and DRAM, and esptool accepts the image."""
    fw = dtree_fw
    assert fw.fits and fw.runnable and fw.image is not None and fw.image_offset == APP_OFFSET
    layout = elf_layout(fw.elf)
    for name, section in layout.items():
        addr, size = section.address, section.size
        inside = [region for region in (IRAM, DRAM) if region[0] <= addr and addr + size <= region[1]]
        assert inside, f"{name} at 0x{addr:08x}+{size} is outside the ESP32's IRAM and DRAM"
    iram_addr = layout[".iram0.text"].address
    assert iram_addr == IRAM[0]
    data = fw.elf.read_bytes()
    entry = int.from_bytes(data[0x18:0x1C], "little")
    assert IRAM[0] <= entry < IRAM[1], f"entry point 0x{entry:08x} is not in IRAM"
    report = image_info(fw.image)
    assert re.search(r"Checksum: .*\(valid\)", report), report
    assert re.search(r"Validation hash: .*\(valid\)", report), report
    loaded = {s.address for s in layout.values() if s.loaded and s.size}
    segments = {int(a, 16) for a in re.findall(r"\s0x[0-9a-f]+\s+(0x[0-9a-f]{8})\s", report)}
    assert segments == loaded, f"image segments {segments} differ from the ELF's {loaded}"
    assert fw.flash_bytes == fw.image.stat().st_size
    assert 0 < fw.ram_bytes < 196_608


def test_every_variant_builds_for_esp32(esp32):
    """The float MLP and the large forest, too big for an Uno, fit the ESP32."""
    _toolchain_or_skip()
    for name in ("mlp_emlearn", "rf_large_emlearn", "rf_m2cgen"):
        fw = build_firmware(esp32, export(name))
        assert fw.fits, f"{name}: {fw.problems}"


def test_upstream_qemu_is_not_taken_for_espressifs(monkeypatch, tmp_path):
    """Debian's qemu-system-xtensa has no esp32 machine: it must be rejected, with the fix."""
    upstream = Path("/usr/bin/qemu-system-xtensa")
    if not upstream.exists():
        pytest.skip("Debian's qemu-system-xtensa is not installed (apt-get install qemu-system-misc)")
    monkeypatch.setenv(qemu_esp32.ENV, str(upstream))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    qemu, why = qemu_esp32.find_esp_qemu()
    assert qemu is None and "has no esp32 machine" in why
    status = qemu_esp32.availability(get_board("esp32"))
    assert not status.ok and "idf_tools.py install qemu-xtensa" in status.fix


def test_espressif_tools_folder_is_searched(monkeypatch, tmp_path):
    qemu = _qemu_or_skip()
    tools = tmp_path / ".espressif/tools/qemu-xtensa/esp_develop_8.0.0/qemu/bin"
    tools.mkdir(parents=True)
    (tools / "qemu-system-xtensa").symlink_to(qemu.path)
    monkeypatch.delenv(qemu_esp32.ENV, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("HOME", str(tmp_path))
    found, _ = qemu_esp32.find_esp_qemu()
    assert found is not None and found.found_via == "ESP-IDF tools"


def _start(esp32, fw):
    return get_backend("qemu", esp32).start(StartRequest(esp32, fw))


def test_qemu_runs_the_dut_deterministically(esp32, dtree_fw):
    """Boot through the real ROM, identify, infer; -icount makes cycle counts repeatable."""
    _qemu_or_skip()
    exported = export("dtree_emlearn")
    counts = []
    for _ in range(2):
        target = _start(esp32, dtree_fw)
        try:
            assert "entry 0x" in target.extras["boot"] and target.fidelity == "instruction-count"
            client = DutClient.open(target.url, timeout=5)
            try:
                ident = client.identify(attempts=3)
                assert ident.build_id == dtree_fw.build_id and ident.timer_hz == 240_000_000
                result = client.infer(exported.vector_bytes(3), runs=3)
                assert exported.decode_output(result.output)[0] == exported.host_reference[3, 0]
                counts.append(result.cycles)
            finally:
                client.close()
        finally:
            target.stop()
    # CCOUNT is QEMU's virtual time (a fixed 2^shift ns per instruction) scaled to 240 MHz and
    # truncated: the difference of two reads is exact to one count. Run by run, two boots agree.
    assert all(c > 0 for c in counts[0]), counts
    assert all(abs(a - b) <= 1 for a, b in zip(counts[0], counts[1])), counts


def test_a_guest_that_never_boots_is_reported_quickly(esp32, dtree_fw, tmp_path):
    """No valid image at 0x1000: the ROM never jumps to an app. Reported in seconds with the
    command line, not waited on."""
    _qemu_or_skip()
    blank = tmp_path / "blank.bin"
    blank.write_bytes(b"\xff" * 4096)
    broken = dataclasses.replace(dtree_fw, image=blank)
    board = dataclasses.replace(esp32, backends={**esp32.backends,
                                                 "qemu": {**esp32.backends["qemu"], "boot_timeout_s": 3}})
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        _start(board, broken)
    assert time.monotonic() - started < 20
    message = str(info.value)
    assert "did not boot" in message and "qemu-system-xtensa" in message and "-icount" in message


def test_esptool_flashes_through_the_emulated_rom_bootloader(esp32, dtree_fw, tmp_path):
    """esptool (as a library, ROM loader without the stub) writes and verifies the image in
    QEMU's download mode; a second upload is skipped by MD5; the flash then boots the DUT."""
    qemu = _qemu_or_skip()
    from harness.lab.uploaders.esptool import upload_esptool
    flash = tmp_path / "flash.bin"
    flash.write_bytes(b"\xff" * (4 << 20))
    port = qemu_esp32.free_port()
    cmd = qemu_esp32.command(qemu.path, flash, port, icount_shift=None, download_mode=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert qemu_esp32.wait_listening(proc, port)
        qemu_esp32.read_boot(port, proc, qemu_esp32.DOWNLOAD_MODE, 20)
        assert qemu_esp32.wait_listening(proc, port, 5)
        url = f"socket://127.0.0.1:{port}"
        first = upload_esptool(dtree_fw.image, url)
        second = upload_esptool(dtree_fw.image, url)
    finally:
        proc.terminate()
        proc.wait()
    assert first.written and not second.written
    image = dtree_fw.image.read_bytes()
    assert flash.read_bytes()[APP_OFFSET:APP_OFFSET + len(image)] == image
    # Boot what esptool wrote (not the harness's own merge): the DUT must answer.
    port = qemu_esp32.free_port()
    proc = subprocess.Popen(qemu_esp32.command(qemu.path, flash, port), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert qemu_esp32.wait_listening(proc, port)
        qemu_esp32.read_boot(port, proc, qemu_esp32.BOOTED, 20)
        assert qemu_esp32.wait_listening(proc, port, 5)
        client = DutClient.open(f"socket://127.0.0.1:{port}", timeout=5)
        try:
            assert client.identify(attempts=3).build_id == dtree_fw.build_id
        finally:
            client.close()
    finally:
        proc.terminate()
        proc.wait()


def test_esptool_reports_a_missing_port(dtree_fw):
    from harness.lab.uploaders.esptool import upload_esptool
    with pytest.raises(BackendError, match="does not exist|could not"):
        upload_esptool(dtree_fw.image, "/dev/ttyTINYHIL_NONE")
