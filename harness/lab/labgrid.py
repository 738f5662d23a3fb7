"""Boards on other hosts, through labgrid (an optional extra: pip install 'tinyhil[labgrid]').

A lab board can name a labgrid place. With a coordinator set (--lg-coordinator HOST:PORT or
LG_COORDINATOR), the hardware backend reserves the place (waiting while someone else holds
it), acquires it, reads the address of its NetworkSerialPort (ser2net on the exporter's host,
raw TCP or RFC 2217), flashes and runs over that link, and releases the place when the target
stops, also when the run fails.

labgrid is driven through its own `labgrid-client` command, not imported: its API is
asynchronous and changes between releases, its command line does not. (labgrid also installs
its fork of pyserial, `pyserial-labgrid`, in place of the `serial` module; the harness uses
only pyserial's stable API, which the fork keeps.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError

URL_PREFIX = "labgrid://"
COORDINATOR_ENV = "LG_COORDINATOR"
INSTALL = "pip install 'tinyhil[labgrid]' (or pip install labgrid)"


class LabgridError(HarnessError):
    """labgrid is missing, or a place cannot be reserved, acquired or reached."""


def coordinator() -> str | None:
    return os.environ.get(COORDINATOR_ENV) or None


def set_coordinator(address: str | None) -> None:
    if address:
        if ":" not in address:
            raise LabgridError(f"--lg-coordinator {address!r}: give HOST:PORT, e.g. "
                               "labgrid.example.org:20408")
        os.environ[COORDINATOR_ENV] = address


def place_url(place: str) -> str:
    return URL_PREFIX + place


def is_place_url(port: str | None) -> bool:
    return bool(port) and port.startswith(URL_PREFIX)


def client_path() -> Path | None:
    """labgrid-client on PATH, or beside this Python (a virtual environment not activated)."""
    found = shutil.which("labgrid-client")
    if found:
        return Path(found)
    beside = Path(sys.executable).parent / "labgrid-client"
    return beside if beside.is_file() else None


@dataclass
class SerialEndpoint:
    host: str
    port: int
    protocol: str                  # "raw" or "rfc2217"
    speed: int

    @property
    def url(self) -> str:
        """The pyserial URL of the port."""
        scheme = "rfc2217" if self.protocol == "rfc2217" else "socket"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def avrdude_port(self) -> str:
        """avrdude reaches a raw TCP serial port as net:HOST:PORT (it has no RFC 2217)."""
        if self.protocol != "raw":
            raise LabgridError(f"avrdude cannot flash over {self.protocol} ({self.host}:{self.port}): "
                               "export the port with `protocol: raw` (ser2net's raw mode)")
        return f"net:{self.host}:{self.port}"


@dataclass
class Place:
    """One labgrid place, reserved and acquired for the time a target runs on it."""
    name: str
    address: str | None = None
    wait_timeout: float = 3600
    token: str | None = None
    acquired: bool = False
    log: list[str] = field(default_factory=list)

    def _client(self, *args: str, token: str | None = None, timeout: float = 60) -> str:
        client = client_path()
        if client is None:
            raise LabgridError(f"labgrid is not installed, so the labgrid place {self.name} cannot "
                               f"be reached: {INSTALL}")
        env = dict(os.environ)
        address = self.address or coordinator()
        if not address:
            raise LabgridError(f"no labgrid coordinator for place {self.name}: pass "
                               "--lg-coordinator HOST:PORT or set LG_COORDINATOR")
        if token:
            env["LG_TOKEN"] = token
        command = [str(client), "-x", address, *args]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise LabgridError(f"`{' '.join(command)}` did not finish within {timeout:.0f} s: is "
                               f"the coordinator at {address} up, and the place free?") from None
        self.log.append(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            raise LabgridError(f"`{' '.join(command)}` failed (exit {result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()[-600:]}")
        return result.stdout

    def acquire(self) -> "Place":
        """Reserve the place (waiting while another user holds it), then acquire it."""
        started = time.monotonic()
        out = self._client("reserve", "--wait", "--shell", f"name={self.name}",
                           timeout=self.wait_timeout)
        for line in out.splitlines():
            if "LG_TOKEN=" in line:
                self.token = line.split("LG_TOKEN=", 1)[1].strip().strip("'\"")
        if not self.token:
            raise LabgridError(f"labgrid-client reserve gave no token for place {self.name}: {out!r}")
        try:
            self._client("-p", "+", "acquire", token=self.token)
        except LabgridError:
            self._cancel()
            raise
        self.acquired = True
        self.waited_s = time.monotonic() - started
        return self

    def serial_endpoint(self) -> SerialEndpoint:
        """The place's NetworkSerialPort, from `labgrid-client env` (YAML)."""
        import yaml    # labgrid depends on PyYAML

        env = yaml.safe_load(self._client("-p", self.name, "env")) or {}
        for target in (env.get("targets") or {}).values():
            for resource in target.get("resources") or []:
                params = resource.get("NetworkSerialPort") if isinstance(resource, dict) else None
                if params is not None:
                    return SerialEndpoint(host=str(params["host"]), port=int(params["port"]),
                                          protocol=str(params.get("protocol", "rfc2217")),
                                          speed=int(params.get("speed", 115200)))
        raise LabgridError(f"labgrid place {self.name} has no NetworkSerialPort: add a match for "
                           "the exporter's NetworkSerialPort (labgrid-client -p PLACE add-match "
                           "'HOST/GROUP/NetworkSerialPort')")

    def _cancel(self) -> None:
        if self.token:
            try:
                self._client("cancel-reservation", self.token)
            except LabgridError:
                pass           # the reservation times out on the coordinator anyway
            self.token = None

    def release(self) -> None:
        """Release the place and drop the reservation; safe to call twice."""
        try:
            if self.acquired:
                self._client("-p", self.name, "release")
                self.acquired = False
        finally:
            self._cancel()

    def __enter__(self) -> "Place":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
