"""Tool discovery: every external tool found the same way, its version, and how to install it."""

import os
import stat

from harness import tools


def test_a_tool_named_by_its_environment_variable_wins(tmp_path, monkeypatch):
    fake = tmp_path / "avrdude"
    fake.write_text("#!/bin/sh\necho 'avrdude version 9.9.9, the one named'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("TINYHIL_AVRDUDE", str(fake))
    tools.find_tool.cache_clear()
    try:
        found = tools.find_tool("avrdude")
        assert found.path == fake and found.version == "avrdude version 9.9.9, the one named"
    finally:
        tools.find_tool.cache_clear()


def test_a_wrong_path_in_the_variable_is_not_found(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYHIL_QEMU_AVR", str(tmp_path / "nowhere" / "qemu-system-avr"))
    tools.find_tool.cache_clear()
    try:
        found = tools.find_tool("qemu-system-avr")
        assert not found.found
        assert "TINYHIL_QEMU_AVR" in found.missing and "does not exist" in found.missing
        assert "unset it" in found.install
    finally:
        tools.find_tool.cache_clear()


def test_a_python_package_tool_is_found_in_this_environment_whatever_path_says(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")           # a venv that was never activated
    tools.find_tool.cache_clear()
    try:
        esptool = tools.find_tool("esptool")
        assert esptool.found and esptool.version.startswith("esptool ")
    finally:
        tools.find_tool.cache_clear()


def test_run_tool_reports_a_missing_program_and_a_timeout_without_raising(tmp_path):
    missing = tools.run_tool([tmp_path / "no-such-tool"])
    assert missing.returncode == 127 and "not found" in missing.stderr
    slow = tools.run_tool(["sleep", "5"], timeout=0.2)
    assert slow.returncode == -9 and "timed out" in slow.stderr
    assert tools.run_tool(["sh", "-c", "echo hi; exit 3"]).returncode == 3
    assert os.environ.get("PATH")
