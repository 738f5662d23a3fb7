"""The user's own firmware (`--firmware PATH`): a prebuilt ELF (any board) or an ESP32 app image.

It must speak the tinyhil protocol (it links the DUT runtime, e.g. through the Arduino/PlatformIO
library that `tinyhil export-library` writes) and run the model variant named with --variant,
so that its outputs can be checked against the host reference. Its build id is its own: the
harness checks the board name and the model hash it reports, not the build id.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.boards import Board
from harness.errors import HarnessError
from harness.build.core import Firmware, fit_problems
from harness.build.firmware import arch_of
from harness.paths import cache_dir

ELF_MAGIC = b"\x7fELF"
ESP_IMAGE_MAGIC = 0xE9


class FirmwareFileError(HarnessError):
    """--firmware names a file the harness cannot use."""


def load_prebuilt(board: Board, path: Path, exported) -> Firmware:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FirmwareFileError(f"--firmware {path} does not exist: give the path of your firmware's "
                                "ELF (or, for an ESP32, its app image from esptool elf2image)")
    data = path.read_bytes()
    variant = exported.variant
    vector = variant.input_bytes
    sha = hashlib.sha256(data).hexdigest()
    image, offset, elf = None, 0, path
    if data[:4] == ELF_MAGIC:
        from harness.build.elf import check_whole
        try:
            check_whole(path)
        except HarnessError as exc:
            raise FirmwareFileError(f"--firmware: {exc}") from None
        if board.arch == "xtensa":
            from harness.build.elf import sizes as section_sizes
            from harness.build.xtensa import APP_OFFSET, make_app_image
            image = cache_dir() / "prebuilt" / f"{sha[:16]}.bin"
            image.parent.mkdir(parents=True, exist_ok=True)
            if not image.exists():
                make_app_image(path, image)
            offset = APP_OFFSET
            sizes = section_sizes(path)
            flash = image.stat().st_size
            ram = sum(v for k, v in sizes.items() if k.startswith(".dram") or k in (".data", ".bss"))
        else:
            size = arch_of(board).footprint(path, board)
            flash, ram = size.flash, size.ram
    elif board.arch == "xtensa" and data[:1] == bytes([ESP_IMAGE_MAGIC]):
        from harness.build.xtensa import APP_OFFSET
        image, offset, flash, ram = path, APP_OFFSET, len(data), 0
    else:
        kind = "an ELF or an ESP32 app image (esptool elf2image)" if board.arch == "xtensa" else "an ELF"
        raise FirmwareFileError(f"--firmware {path} is not {kind}: for {board.name}, pass the ELF "
                                "your build produced (Arduino: the sketch's .elf in the build folder)")
    firmware = Firmware(board, variant.name, elf, "", sha, flash, ram, vector, 0,
                        fit_problems(board, flash, ram, vector), "prebuilt (the user's own build)")
    firmware.image, firmware.image_offset, firmware.prebuilt = image, offset, True
    return firmware
