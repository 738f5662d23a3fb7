"""A board on another host, through labgrid, for real on loopback: a labgrid coordinator and
exporter started here export a simulated Arduino Uno's serial port (Optiboot in simavr, its
pty served over raw TCP the way ser2net serves a lab board); the suites reserve and acquire
the place, flash the firmware with avrdude over the network port (net:HOST:PORT), run, and
release the place, also when the run fails."""

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.build.optiboot import build_optiboot
from harness.backends.simavr import start_simulated_arduino
from harness.lab.labgrid import client_path
from harness.paths import REPO_DIR
from harness.results.records import read_jsonl

from simulated_arduino import NEEDS_SIMULATED_UNO, UNO  # noqa: E402
from tcp_serial_bridge import TcpSerialBridge  # noqa: E402

CLIENT = client_path()
pytestmark = [
    pytest.mark.skipif(CLIENT is None, reason="labgrid is not installed (labgrid-client not on "
                       "PATH nor beside this Python): pip install 'tinyhil[labgrid]'"),
    *NEEDS_SIMULATED_UNO,
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH")])))
    env.pop("LG_COORDINATOR", None)
    return env | extra


class Lab:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.address = f"127.0.0.1:{free_port()}"
        self.procs = []

    def client(self, *args, user=None, check=True):
        env = _env(LG_USERNAME=user) if user else _env()
        result = subprocess.run([str(CLIENT), "-x", self.address, *args], capture_output=True,
                                text=True, timeout=60, env=env)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    def start(self, exports: dict[str, int]):
        bindir = CLIENT.parent
        log = open(self.tmp / "coordinator.log", "w")
        # The coordinator keeps places.yaml in its working folder: the test's own.
        self.procs.append(subprocess.Popen([str(bindir / "labgrid-coordinator"), "--listen",
                                            self.address], stdout=log, stderr=log, env=_env(),
                                           cwd=self.tmp))
        groups = "".join(textwrap.dedent(f"""
            {group}:
              NetworkSerialPort:
                host: 127.0.0.1
                port: {port}
                speed: 115200
                protocol: raw
            """) for group, port in exports.items())
        (self.tmp / "exporter.yaml").write_text(groups)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:                       # wait for the coordinator
            try:
                host, port = self.address.rsplit(":", 1)
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        log = open(self.tmp / "exporter.log", "w")
        self.procs.append(subprocess.Popen(
            [str(bindir / "labgrid-exporter"), "--coordinator", self.address, "--name", "hostA",
             str(self.tmp / "exporter.yaml")], stdout=log, stderr=log, env=_env(), cwd=self.tmp))
        while time.monotonic() < deadline:
            if all(f"hostA/{group}/NetworkSerialPort" in self.client("resources", check=False)
                   for group in exports):
                return
            time.sleep(0.3)
        raise AssertionError("the labgrid exporter did not register: "
                             + (self.tmp / "exporter.log").read_text()[-2000:])

    def add_place(self, place, group):
        self.client("-p", place, "create")
        self.client("-p", place, "add-match", f"hostA/{group}/NetworkSerialPort")

    def holder(self, place) -> str | None:
        for line in self.client("-p", place, "show").splitlines():
            if line.strip().startswith("acquired:"):
                value = line.split(":", 1)[1].strip()
                return None if value in ("", "None") else value
        return None

    def stop(self):
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def remote_uno(tmp_path):
    pty, simulator = start_simulated_arduino(UNO, build_optiboot())
    bridge = TcpSerialBridge(pty)
    lab = Lab(tmp_path)
    try:
        lab.start({"uno": bridge.port, "dead": free_port()})   # "dead": nothing listens there
        lab.add_place("uno-remote", "uno")
        lab.add_place("uno-dead", "dead")
        yield lab, bridge
    finally:
        lab.stop()
        bridge.close()
        simulator.stop()


def run_suites(tmp_path, lab, place, **popen):
    lab_file = tmp_path / f"lab-{place}.toml"
    lab_file.write_text(f'[[board]]\nname = "{place}"\ntype = "uno"\nplace = "{place}"\n')
    command = [sys.executable, "-m", "pytest", str(REPO_DIR / "suites" / "test_smoke.py"),
               "--board", "uno", "--backend", "hardware", "--variant", "dtree_emlearn",
               "--lab", str(lab_file), "--lg-coordinator", lab.address, "--run-id", place,
               "--results-dir", str(tmp_path / "results"), "-p", "no:cacheprovider"]
    return subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env(), **popen)


def test_suites_run_on_a_labgrid_place_waiting_while_it_is_held(remote_uno, tmp_path):
    lab, bridge = remote_uno
    lab.client("-p", "uno-remote", "acquire", user="colleague")      # someone else has it
    started = time.monotonic()
    run = run_suites(tmp_path, lab, "uno-remote")
    time.sleep(4)
    assert run.poll() is None, "the run went ahead while another user held the place"
    assert bridge.connections == 0, "the board was touched while another user held the place"
    assert lab.holder("uno-remote").endswith("/colleague")
    lab.client("-p", "uno-remote", "release", user="colleague")
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out[-4000:]
    assert time.monotonic() - started >= 4
    assert "tinyhil: uno on hardware (auto" in out or "uno on hardware" in out
    records = read_jsonl(tmp_path / "results" / "uno-remote" / "records.jsonl")
    assert {r["backend"] for r in records} == {"hardware"}
    assert {r["fidelity"] for r in records} == {"wall-clock"}, [(r["metric"], r["detail"]) for r in records]   # host_roundtrip_ms only
    assert bridge.connections >= 2           # avrdude's upload, then the DUT client
    assert lab.holder("uno-remote") is None, "the place was not released after the run"


def test_place_is_released_when_the_run_fails(remote_uno, tmp_path):
    lab, _ = remote_uno
    run = run_suites(tmp_path, lab, "uno-dead")
    out, _ = run.communicate(timeout=300)
    assert run.returncode != 0
    assert "avrdude could not flash the uno on net:127.0.0.1:" in out
    assert lab.holder("uno-dead") is None, "the place stayed acquired after the failed run"
    assert "Traceback" not in out
