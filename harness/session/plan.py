"""Which (board, backend, model variant) cases a run has, and why each backend was chosen."""

from __future__ import annotations

from dataclasses import dataclass

from harness.backends import check_backend_name, fidelity_of, get_backend
from harness.backends.base import Availability
from harness.boards import Board, CatalogueScan, scan_catalogue
from harness.errors import BackendError, BoardError
from harness.models import ModelVariant, get_variant, list_variants


@dataclass(frozen=True)
class Case:
    """One (board, backend, model variant) the suites run against."""
    board: Board
    backend: str
    variant: ModelVariant

    @property
    def id(self) -> str:
        return f"{self.board.name}-{self.backend}-{self.variant.name}"

    @property
    def fidelity(self) -> str:
        return fidelity_of(self.backend, self.board)


@dataclass
class BoardPlan:
    board: Board
    backend: str
    why: str
    availability: Availability


def backend_availability(board: Board, backend: str, port: str | None) -> Availability:
    """Can `backend` run `board` here? For hardware, also: can the lab reach such a board?"""
    try:
        found = get_backend(backend, board).availability(board)
    except BackendError as exc:
        return Availability(False, str(exc))
    if found.ok and backend == "hardware":
        from harness.lab import strategy
        return strategy.availability(board, port)
    return found


def attached_port(board: Board) -> str | None:
    from harness.lab import strategy
    return strategy.attached_port(board)


def plan_boards(board_names: list[str] | None, backend_choice: str, port: str | None,
                catalogue: dict[str, Board] | None = None) -> tuple[list[BoardPlan], str]:
    """Pick (board, backend) pairs. Returns them and lines saying what was chosen and why."""
    scan = scan_catalogue() if catalogue is None else CatalogueScan(catalogue, {}, {})
    catalogue = scan.boards
    notes = scan.notes()
    if not board_names:
        board_names = [name for name, board in catalogue.items()
                       if backend_availability(board, board.default_emulator, None).ok
                       and _backends_for(board, backend_choice, port, strict=False)]
        notes.insert(0, f"no --board given: running every board this machine can emulate "
                        f"({', '.join(board_names) or 'none'}); pick others with --board NAME "
                        "(`tinyhil boards` lists them)")
    for name in board_names:
        if name in scan.broken:
            raise BoardError(scan.broken[name])
    unknown = [name for name in board_names if name not in catalogue]
    if unknown:
        raise BoardError(f"unknown board {', '.join(unknown)}: known boards are "
                         f"{', '.join(catalogue)} (add one as devices/boards/NAME.toml, or in a "
                         "folder named by TINYHIL_BOARDS_DIR)")
    plans = []
    for name in board_names:
        board = catalogue[name]
        for backend, why in _backends_for(board, backend_choice, port):
            plans.append(BoardPlan(board, backend, why, backend_availability(board, backend, port)))
    return plans, "\n".join(notes)


def _backends_for(board: Board, choice: str, port: str | None,
                  strict: bool = True) -> list[tuple[str, str]]:
    if choice == "all-emulators":
        return [(name, "every emulator of the board") for name in board.backends if name != "hardware"]
    if choice in ("auto", "emulators"):
        if choice == "auto" and "hardware" in board.backends:
            attached = port or attached_port(board)
            if attached:
                return [("hardware", f"auto: {board.name} attached at {attached}")]
        why = "auto: no board attached" if choice == "auto" else "emulators only"
        return [(board.default_emulator, f"{why}, using its default emulator")]
    wanted = [name.strip() for name in choice.split(",") if name.strip()]
    for name in wanted:
        check_backend_name(name)                 # unknown backend names fail here, clearly
    chosen = [name for name in wanted if name in board.backends]
    if not chosen and strict:
        raise BackendError(f"{board.name} cannot run on {choice}: its backends are "
                           f"{', '.join(board.backends)} (see {board.source})")
    return [(name, "--backend") for name in chosen]


def select_variants(names: list[str] | None) -> list[ModelVariant]:
    if not names:
        return list_variants()
    return [get_variant(name) for name in names]
