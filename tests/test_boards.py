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


def user_boards(tmp_path, **files):
    folder = tmp_path / "my-boards"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.toml").write_text(text)
    return folder


def test_user_boards_add_to_the_built_in_ones_and_win_by_name(tmp_path, monkeypatch):
    from harness.boards import scan_catalogue
    uno_text = load_catalogue()["uno"].source.read_text()
    folder = user_boards(tmp_path,
                         uno=uno_text.replace('description = "', 'description = "my own '),
                         nano=uno_text.replace('name = "uno"', 'name = "nano"'))
    monkeypatch.setenv("TINYHIL_BOARDS_DIR", str(folder))
    scan = scan_catalogue()
    assert {"native", "uno", "mega2560", "nano"} <= set(scan.boards)
    assert scan.boards["uno"].description.startswith("my own ")
    assert scan.overridden == {"uno": folder / "uno.toml"}
    assert any("board uno from" in note and "replaces the built-in uno" in note
               for note in scan.notes())


def test_one_broken_board_file_leaves_out_that_board_alone(tmp_path, monkeypatch):
    from harness.boards import scan_catalogue
    from harness.session.plan import plan_boards
    folder = user_boards(tmp_path, broken="name = \"broken\"\nclock_hz = = 3\n")
    monkeypatch.setenv("TINYHIL_BOARDS_DIR", str(folder))
    scan = scan_catalogue()
    assert {"native", "uno"} <= set(scan.boards) and "broken" not in scan.boards
    assert "not valid TOML" in scan.broken["broken"]
    plans, note = plan_boards(["native"], "auto", None)
    assert [p.board.name for p in plans] == ["native"]
    assert "board broken left out" in note
    with pytest.raises(BoardError, match="broken.toml is not valid TOML"):
        plan_boards(["broken"], "auto", None)


def test_user_boards_folder_that_does_not_exist_is_named(tmp_path, monkeypatch):
    from harness.boards import scan_catalogue
    monkeypatch.setenv("TINYHIL_BOARDS_DIR", str(tmp_path / "nowhere"))
    scan = scan_catalogue()
    assert "uno" in scan.boards
    assert any("TINYHIL_BOARDS_DIR names" in note for note in scan.notes())
