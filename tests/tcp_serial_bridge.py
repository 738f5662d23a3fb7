"""A serial port served over raw TCP, as ser2net serves a lab board's USB port: each TCP
connection opens the port (an Arduino resets on open, as DTR does) and closing it closes the
port. One client at a time. Used to export an emulated board's pty to labgrid in tests."""

from __future__ import annotations

import select
import socket
import threading

import serial


class TcpSerialBridge:
    def __init__(self, device: str, baud: int = 115200, host: str = "127.0.0.1"):
        self.device, self.baud = device, baud
        self.server = socket.create_server((host, 0))
        self.host, self.port = self.server.getsockname()[:2]
        self._stop = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # as QEMU's nodelay=on
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            with client, serial.Serial(self.device, self.baud, timeout=0) as port:
                self._pump(client, port)

    def _pump(self, client: socket.socket, port: serial.Serial) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([client, port.fileno()], [], [], 0.2)
            if client in ready:
                data = client.recv(4096)
                if not data:
                    return                       # the client hung up: close the port
                port.write(data)
            if port.fileno() in ready:
                data = port.read(4096)
                if data:
                    client.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self.server.close()
        self.thread.join(5)
