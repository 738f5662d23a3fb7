"""The lab file and port matching. No USB board exists here, so the attached ports are
replayed as pyserial ListPortInfo objects (the type list_ports.comports() returns), with the
identities real Arduinos report."""

import subprocess
import sys
import textwrap

import pytest

from harness.lab.locks import BoardLock
from serial.tools.list_ports_common import ListPortInfo

from harness.lab import inventory as lab
from harness.boards import load_catalogue
from harness.lab.cli import scan_rows

CATALOGUE = load_catalogue()

LAB_TOML = textwrap.dedent("""
    [[board]]
    name = "uno-1"
    type = "uno"
    serial_number = "75833353035351B0E1F1"

    [[board]]
    name = "mega-1"
    type = "mega2560"
    serial_number = "95530343434351A0C1D2"

    [[board]]
    name = "clone-1"
    type = "uno"
    vid = 0x1A86
    pid = 0x7523
    location = "1-1.4"

    [[board]]
    name = "uno-remote"
    type = "uno"
    place = "rack2-uno"
""")


def _env():
    """Subprocesses import this checkout's harness, wherever they run."""
    import os
    from harness.paths import REPO_DIR
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH")])))


def usb_port(device, vid, pid, serial=None, location=None, description="Arduino"):
    port = ListPortInfo(device, skip_link_detection=True)
    port.vid, port.pid, port.serial_number, port.location = vid, pid, serial, location
    port.description = description
    return port


@pytest.fixture
def lab_file(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text(LAB_TOML)
    return path


def test_board_is_found_by_serial_number_after_it_re_enumerates(lab_file):
    the_lab = lab.load_lab(lab_file, CATALOGUE)
    uno = CATALOGUE["uno"]
    before = [usb_port("/dev/ttyACM0", 0x2341, 0x0043, "75833353035351B0E1F1", "1-1.2")]
    assert lab.find_port(uno, the_lab, lambda: before, CATALOGUE) == "/dev/ttyACM0"
    # Unplugged and plugged in elsewhere; another Uno (not in the lab) now has ttyACM0.
    after = [usb_port("/dev/ttyACM0", 0x2341, 0x0043, "OTHERUNO000000000000", "1-1.2"),
             usb_port("/dev/ttyACM3", 0x2341, 0x0043, "75833353035351B0E1F1", "1-1.3")]
    assert lab.find_port(uno, the_lab, lambda: after, CATALOGUE) == "/dev/ttyACM3"
    assert lab.lab_board_at("/dev/ttyACM3", the_lab, lambda: after, CATALOGUE).name == "uno-1"
    assert lab.lab_board_at("/dev/ttyACM0", the_lab, lambda: after, CATALOGUE) is None


def test_clone_without_serial_is_found_by_location(lab_file):
    the_lab = lab.load_lab(lab_file, CATALOGUE)
    ports = [usb_port("/dev/ttyUSB0", 0x1A86, 0x7523, None, "1-1.1"),
             usb_port("/dev/ttyUSB1", 0x1A86, 0x7523, None, "1-1.4")]
    matches = {m.board.name: m for m in lab.match_ports(the_lab, ports, CATALOGUE)}
    assert matches["clone-1"].device == "/dev/ttyUSB1"
    assert matches["uno-1"].state == "not attached"
    assert matches["uno-remote"].state.startswith("remote")


def test_vid_pid_alone_is_ambiguous_with_two_such_ports():
    the_lab = lab.parse_lab({"board": [{"name": "u", "type": "uno"}]}, catalogue=CATALOGUE)
    ports = [usb_port("/dev/ttyACM0", 0x2341, 0x0043), usb_port("/dev/ttyACM1", 0x2341, 0x0043)]
    match, = lab.match_ports(the_lab, ports, CATALOGUE)
    assert match.device is None and "ambiguous" in match.state and "serial_number" in match.state


def test_without_lab_entry_of_the_type_vid_pid_skips_ports_the_lab_claims(lab_file):
    the_lab = lab.load_lab(lab_file, CATALOGUE)
    ports = [usb_port("/dev/ttyUSB0", 0x1A86, 0x7523, None, "1-1.4"),      # clone-1, an uno
             usb_port("/dev/ttyUSB1", 0x1A86, 0x7523, None, "1-1.5")]
    only_mega_lab = lab.parse_lab({"board": [{"name": "m", "type": "mega2560",
                                              "serial_number": "X"}]}, catalogue=CATALOGUE)
    # The lab has uno entries: an uno is only ever a lab board, never a stray VID:PID match.
    assert lab.find_port(CATALOGUE["uno"], the_lab, lambda: ports, CATALOGUE) == "/dev/ttyUSB0"
    # No lab at all: the first port with one of the board's VID:PIDs.
    assert lab.find_port(CATALOGUE["uno"], None, lambda: ports[::-1], CATALOGUE) == "/dev/ttyUSB1"
    assert lab.find_port(CATALOGUE["uno"], only_mega_lab, lambda: ports, CATALOGUE) == "/dev/ttyUSB0"


def test_remote_board_is_a_labgrid_place_only_with_a_coordinator(lab_file, monkeypatch):
    remote_only = lab.parse_lab({"board": [{"name": "r", "type": "uno", "place": "p1"}]},
                                catalogue=CATALOGUE)
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    assert lab.find_port(CATALOGUE["uno"], remote_only, lambda: [], CATALOGUE) is None
    monkeypatch.setenv("LG_COORDINATOR", "127.0.0.1:20408")
    assert lab.find_port(CATALOGUE["uno"], remote_only, lambda: [], CATALOGUE) == "labgrid://p1"


@pytest.mark.parametrize("entry, message", [
    ({"name": "x"}, "lacks type"),
    ({"name": "x", "type": "pdp11"}, "not a known board"),
    ({"name": "x", "type": "uno", "vid": 0x2341}, "vid and pid together"),
    ({"name": "x", "type": "uno", "vid": "zz", "pid": 1}, "not a hex number"),
    ({"name": "x", "type": "uno", "serial": "1"}, "unknown key(s) serial"),
])
def test_bad_lab_entries_are_named_with_the_fix(entry, message):
    with pytest.raises(lab.LabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lab.parse_lab({"board": [entry]}, catalogue=CATALOGUE)


def test_duplicate_names_and_empty_lab_are_errors(tmp_path):
    with pytest.raises(lab.LabError, match="two boards are named"):
        lab.parse_lab({"board": [{"name": "a", "type": "uno"}, {"name": "a", "type": "uno"}]},
                      catalogue=CATALOGUE)
    (tmp_path / "empty.toml").write_text("")
    with pytest.raises(lab.LabError, match="names no boards"):
        lab.load_lab(tmp_path / "empty.toml", CATALOGUE)
    with pytest.raises(lab.LabError, match="does not exist"):
        lab.load_lab(tmp_path / "missing.toml", CATALOGUE)


def test_scan_rows_say_which_port_is_which_board(lab_file):
    the_lab = lab.load_lab(lab_file, CATALOGUE)
    ports = [usb_port("/dev/ttyACM3", 0x2341, 0x0043, "75833353035351B0E1F1", "1-1.3"),
             usb_port("/dev/ttyUSB0", 0x1A86, 0x7523, None, "2-1")]
    port_rows, board_rows = scan_rows(the_lab, ports, CATALOGUE)
    assert port_rows[0][0] == "/dev/ttyACM3" and port_rows[0][-1] == "uno-1 (uno)"
    assert port_rows[1][-1].startswith("not in the lab file (looks like ") and "uno" in port_rows[1][-1]
    assert ("uno-1", "uno", "serial 75833353035351B0E1F1", "at /dev/ttyACM3") in board_rows


def test_lab_scan_command_runs_on_this_host(lab_file, tmp_path):
    result = subprocess.run([sys.executable, "-m", "harness", "lab", "scan", "--lab", str(lab_file)],
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "uno-remote" in result.stdout and "serial devices on this host" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[[board]]\nname = 'x'\ntype = 'pdp11'\n")
    result = subprocess.run([sys.executable, "-m", "harness", "lab", "scan", "--lab", str(bad)],
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 2 and "not a known board" in result.stderr
    assert "Traceback" not in result.stderr


def test_power_cycle_runs_the_command_and_reports_failure():
    ok = lab.LabBoard("b", "uno", power_cycle="true")
    lab.power_cycle(ok)
    with pytest.raises(lab.LabError, match="failed"):
        lab.power_cycle(lab.LabBoard("b", "uno", power_cycle="false"))
    with pytest.raises(lab.LabError, match="no power_cycle command"):
        lab.power_cycle(lab.LabBoard("b", "uno"))
    with pytest.raises(lab.LabError, match="not installed"):
        lab.power_cycle(lab.LabBoard("b", "uno", power_cycle="no-such-hub-tool -a cycle"))


def test_board_lock_lets_one_process_at_a_time_drive_a_board(tmp_path):
    held = BoardLock("board-uno-1", tmp_path).acquire()
    other = [sys.executable, "-c",
             "import sys; from pathlib import Path; from harness.lab.locks import BoardLock, LabError\n"
             f"try: BoardLock('board-uno-1', Path({str(tmp_path)!r})).acquire(timeout=0.5)\n"
             "except LabError as e: print(e); sys.exit(3)\n"]
    result = subprocess.run(other, capture_output=True, text=True, env=_env(), timeout=60)
    assert result.returncode == 3 and "board-uno-1 is busy" in result.stdout
    assert f"pid {__import__('os').getpid()}" in result.stdout
    held.release()
    result = subprocess.run(other, capture_output=True, text=True, env=_env(), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_board_lock_is_re_entrant_within_a_process(tmp_path):
    first = BoardLock("port-/dev/pts/7", tmp_path).acquire()
    second = BoardLock("port-/dev/pts/7", tmp_path).acquire(timeout=0.5)   # not blocked
    first.release()
    assert second.held
    second.release()
    second.release()                                                          # harmless
