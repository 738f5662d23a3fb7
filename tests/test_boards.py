"""Boards are data: the catalogue, and clear errors for bad board files."""

import pytest

from harness.boards import get_board, load_board_file, load_catalogue
from harness.errors import BoardError


def test_catalogue_has_the_required_boards():
    boards = load_catalogue()
    assert {"native", "uno", "mega2560"} <= set(boards)
    uno, mega = boards["uno"], boards["mega2560"]
    assert (uno.mcu, uno.clock_hz, uno.flash_bytes, uno.ram_bytes) == ("atmega328p", 16_000_000, 32768, 2048)
    assert (mega.mcu, mega.clock_hz, mega.flash_bytes, mega.ram_bytes) == ("atmega2560", 16_000_000, 262144, 8192)
    assert uno.default_emulator == "simavr" and "qemu" in uno.backends and "hardware" in uno.backends
    assert any(u.vid == 0x2341 for u in uno.usb)


def test_unknown_board_names_the_known_ones():
    with pytest.raises(BoardError, match="unknown board 'nano'.*uno"):
        get_board("nano")


def test_malformed_board_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \"bad\"\nclock_hz = = 3\n")
    with pytest.raises(BoardError, match="not valid TOML"):
        load_board_file(bad)


def test_incomplete_board_file_names_what_is_missing(tmp_path):
    partial = tmp_path / "partial.toml"
    partial.write_text('name = "partial"\ndescription = "x"\narch = "avr"\n')
    with pytest.raises(BoardError, match="lacks mcu, toolchain, clock_hz"):
        load_board_file(partial)


def test_board_name_must_match_its_file(tmp_path):
    text = (load_catalogue()["uno"].source).read_text()
    other = tmp_path / "other.toml"
    other.write_text(text)
    with pytest.raises(BoardError, match="rename"):
        load_board_file(other)
