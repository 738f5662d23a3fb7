"""`tinyhil lab ...`: what is attached to this host, and which lab board each port is."""

from __future__ import annotations

import os

from harness.lab.inventory import LAB_ENV, LabError, guess_types, list_serial_ports, load_lab, match_ports, power_cycle


def _lab_path(args) -> str | None:
    return args.lab or os.environ.get(LAB_ENV)


def scan_rows(lab, ports, catalogue) -> tuple[list[tuple], list[tuple]]:
    """(port rows, lab board rows): each attached port with the lab board it is, and each lab
    board with where it was found."""
    matches = match_ports(lab, ports, catalogue) if lab else []
    owner = {}
    for match in matches:
        for port in match.ports:
            owner.setdefault(port.device, []).append(match.board)
    port_rows = []
    for port in ports:
        ids = f"{port.vid:04x}:{port.pid:04x}" if port.vid is not None else ""
        boards = owner.get(port.device, [])
        lab_text = ", ".join(f"{b.name} ({b.type})" for b in boards)
        if not boards:
            guesses = guess_types(port, catalogue)
            looks = f"looks like {', '.join(guesses)}" if guesses else ""
            lab_text = f"not in the lab file{' (' + looks + ')' if looks else ''}" if lab else looks
        port_rows.append((port.device, ids, port.serial_number or "", port.location or "",
                          port.description or "", lab_text))
    board_rows = [(m.board.name, m.board.type, m.board.identity, m.state) for m in matches]
    return port_rows, board_rows


def cmd_lab_scan(args, provider=None) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from harness.boards import load_catalogue

    catalogue = load_catalogue()
    path = _lab_path(args)
    lab = load_lab(path, catalogue) if path else None
    ports = list((provider or list_serial_ports)())
    port_rows, board_rows = scan_rows(lab, ports, catalogue)
    console = Console(width=160) if not Console().is_terminal else Console()
    table = Table(title=f"serial devices on this host ({len(ports)})")
    for column in ("device", "VID:PID", "serial number", "USB location", "description", "lab board"):
        table.add_column(column)
    for row in port_rows:
        table.add_row(*map(escape, row))
    console.print(table)
    if lab is None:
        console.print(f"no lab file: pass --lab FILE or set {LAB_ENV} to match ports to lab boards")
        return 0
    boards = Table(title=f"lab boards ({lab.source})")
    for column in ("lab board", "type", "recognised by", "found"):
        boards.add_column(column)
    for row in board_rows:
        boards.add_row(*map(escape, row))
    console.print(boards)
    return 0


def cmd_lab_power_cycle(args) -> int:
    path = _lab_path(args)
    if not path:
        raise LabError(f"no lab file: pass --lab FILE or set {LAB_ENV}")
    board = load_lab(path).get(args.name)
    power_cycle(board)
    print(f"power-cycled {board.name}")
    return 0


def add_parser(sub) -> None:
    lab = sub.add_parser("lab", help="the lab file: which boards are attached where")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    scan = lab_sub.add_parser("scan", help="list this host's serial devices and the lab boards they are")
    scan.add_argument("--lab", help=f"lab file (default: ${LAB_ENV})")
    scan.set_defaults(fn=cmd_lab_scan)
    cycle = lab_sub.add_parser("power-cycle", help="run a lab board's power_cycle command")
    cycle.add_argument("name", help="the lab board's name")
    cycle.add_argument("--lab", help=f"lab file (default: ${LAB_ENV})")
    cycle.set_defaults(fn=cmd_lab_power_cycle)
