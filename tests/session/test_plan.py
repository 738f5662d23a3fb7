"""Session planning: which backend each board gets, and why, from the board files alone."""

import pytest
from serial.tools import list_ports

from harness.boards import load_catalogue
from harness.errors import BackendError, BoardError
from harness.session.plan import Case, plan_boards, select_variants


@pytest.fixture
def nothing_attached(monkeypatch):
    monkeypatch.setattr(list_ports, "comports", lambda include_links=False: [])
    monkeypatch.delenv("TINYHIL_LAB", raising=False)


def test_auto_without_a_board_takes_the_default_emulator(nothing_attached):
    plans, _ = plan_boards(["uno", "native"], "auto", None)
    assert [(p.board.name, p.backend) for p in plans] == [("uno", "simavr"), ("native", "native")]
    assert "no board attached" in plans[0].why


def test_a_given_port_means_hardware(nothing_attached):
    plans, _ = plan_boards(["uno"], "auto", "/dev/ttyACM7")
    assert plans[0].backend == "hardware" and "attached at /dev/ttyACM7" in plans[0].why


def test_all_emulators_lists_every_emulator_but_never_hardware(nothing_attached):
    plans, _ = plan_boards(["uno"], "all-emulators", None)
    assert {p.backend for p in plans} == {"simavr", "qemu"}


def test_a_named_backend_the_board_lacks_is_an_error(nothing_attached):
    with pytest.raises(BackendError, match="native cannot run on simavr"):
        plan_boards(["native"], "simavr", None)
    with pytest.raises(BackendError, match="unknown backend 'renode9'"):
        plan_boards(["uno"], "renode9", None)


def test_unknown_board_names_the_known_ones(nothing_attached):
    with pytest.raises(BoardError, match="unknown board nano: known boards are .*uno"):
        plan_boards(["nano"], "auto", None)


def test_cases_are_boards_times_variants_with_one_fidelity_each(nothing_attached):
    catalogue = load_catalogue()
    variants = select_variants(["dtree_emlearn", "rf_emlearn"])
    cases = [Case(catalogue[b], backend, v) for b, backend in (("uno", "simavr"), ("uno", "qemu"))
             for v in variants]
    assert [c.id for c in cases][:2] == ["uno-simavr-dtree_emlearn", "uno-simavr-rf_emlearn"]
    assert {c.backend: c.fidelity for c in cases} == {"simavr": "cycle-accurate", "qemu": "functional"}
    esp32 = Case(catalogue["esp32"], "qemu", variants[0])
    assert esp32.fidelity == "instruction-count"          # qemu is two emulators, by arch
