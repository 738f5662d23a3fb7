"""Uploaders: one module each (avrdude through a bootloader, avrdude_isp through an ISP
programmer, esptool, PlatformIO), each with one `flash()`, the tool
it needs (TOOL), what the caller should know after flashing (NOTE) and the port argument that
reaches a board exported over the network (`network_port(endpoint)`). A board file names its
uploader (`[backends.hardware] uploader = "avrdude"`)."""

from __future__ import annotations

import importlib

UPLOADERS = {"avrdude": "harness.lab.uploaders.avrdude",
             "avrdude_isp": "harness.lab.uploaders.avrdude_isp",
             "esptool": "harness.lab.uploaders.esptool"}


def get_uploader(name: str):
    """The uploader module, or None for a name no module implements."""
    return importlib.import_module(UPLOADERS[name]) if name in UPLOADERS else None
