"""Opening a serial link by pyserial URL, tuned for request/reply traffic.

A TCP link (an emulator's `socket://` UART) sends each small frame at once: without
TCP_NODELAY, Nagle's algorithm holds a frame until the previous one is acknowledged, and the
peer's delayed ACK makes every round trip wait ~40 ms."""

from __future__ import annotations

import socket

import serial


def open_serial(url: str, baud: int, timeout: float, **kwargs) -> serial.SerialBase:
    port = serial.serial_for_url(url, baudrate=baud, timeout=timeout, **kwargs)
    set_nodelay(port)
    return port


def set_nodelay(port: serial.SerialBase) -> None:
    sock = getattr(port, "_socket", None)     # pyserial's socket:// handler keeps it here
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
