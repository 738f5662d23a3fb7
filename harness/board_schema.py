"""The one schema of a board file: which keys each table holds, of which type, and which are
required. `check(data, where)` raises BoardError naming the file, the table and the key, with
the fix, so a wrong board file never surfaces later as a KeyError or a compiler error.

Keys not named here are kept (a board file may carry data a later feature reads), except in
the tables whose every reader is listed below: there an unknown key is most likely a typo.
The [power] table is checked where it is read (harness/energy/power_model.py)."""

from __future__ import annotations

from harness.errors import BoardError

EXAMPLE = "devices/boards/uno.toml"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_pin(v) -> bool:
    return isinstance(v, str) and len(v) == 2 and "A" <= v[0] <= "L" and "0" <= v[1] <= "7"


# name: (test, what it must be)
TYPES = {
    "text": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
    "count": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "positive": (lambda v: _is_int(v) and v > 0, "an integer > 0"),
    "seconds": (lambda v: _is_number(v) and v > 0, "a number of seconds > 0"),
    "port_letter": (lambda v: isinstance(v, str) and len(v) == 1 and "A" <= v <= "L",
                    "a port letter A..L, like \"B\""),
    "bit": (lambda v: _is_int(v) and 0 <= v <= 7, "a bit number 0..7"),
    "pin": (_is_pin, "a port letter and bit, like \"B3\""),
    "table": (lambda v: isinstance(v, dict), "a table"),
    "any": (lambda v: True, "anything"),
}

# (key, type, required)
TOP = [("name", "text", True), ("description", "text", True), ("arch", "text", True),
       ("mcu", "text", True), ("toolchain", "text", True), ("clock_hz", "positive", True),
       ("flash_bytes", "count", True), ("ram_bytes", "count", True),
       ("max_payload", "positive", True), ("vector_capacity", "positive", True),
       ("max_runs", "positive", True), ("default_emulator", "text", True),
       ("bootloader_bytes", "count", False), ("stack_reserve_bytes", "count", False),
       ("baud", "positive", False), ("protocol", "text", False), ("iram_bytes", "count", False), ("port", "text", False),
       ("marker", "table", False), ("soft_uart", "table", False), ("power", "table", False),
       ("backends", "table", False)]

# Tables checked whole: their keys, and whether unknown keys are refused.
TABLES = {
    "soft_uart": ([("tx", "pin", True), ("rx", "pin", True)], True),
}
# [marker]: an AVR pin (port and bit) or an ESP32 GPIO number.
MARKER_FORMS = ([("port", "port_letter", True), ("bit", "bit", True)],
                [("gpio", "count", True)])
USB = [("vid", "count", True), ("pid", "count", True), ("name", "text", False)]
BACKENDS = {
    "native": [],
    "simavr": [("mcu", "text", False)],
    "qemu": [("machine", "text", True), ("icount_shift", "count", False),
             ("boot_timeout_s", "seconds", False)],
    "hardware": [("uploader", "text", True), ("programmer", "text", False),
                 ("part", "text", False), ("chip", "text", False),
                 ("upload_baud", "positive", False), ("port_hint", "text", False),
                 ("fuses", "table", False), ("bitclock", "any", False)],
}
EVERY_BACKEND = [("reply_timeout_s", "seconds", False)]


def check(data: dict, where: str) -> None:
    """Raise BoardError for the first thing wrong in a board file's parsed TOML."""
    _keys(data, TOP, where, "the top level")
    for table, (spec, closed) in TABLES.items():
        if table in data:
            _keys(data[table], spec, where, f"[{table}]", closed)
    if "marker" in data:
        marker = data["marker"]
        form = MARKER_FORMS[1] if "gpio" in marker else MARKER_FORMS[0]
        _keys(marker, form, where, "[marker]")
    usb = data.get("usb", [])
    if not isinstance(usb, list):
        raise BoardError(f"{where}: usb must be a list of [[usb]] tables (vid, pid, name)")
    for index, entry in enumerate(usb):
        if not isinstance(entry, dict):
            raise BoardError(f"{where}: usb entry {index + 1} must be a [[usb]] table (vid, pid, name)")
        _keys(entry, USB, where, f"[[usb]] number {index + 1}")
    for name, settings in data.get("backends", {}).items():
        if name not in BACKENDS:
            raise BoardError(f"{where}: [backends.{name}] is not a backend: use one of "
                             f"{', '.join(BACKENDS)}")
        if not isinstance(settings, dict):
            raise BoardError(f"{where}: backends.{name} must be a table ([backends.{name}])")
        _keys(settings, BACKENDS[name] + EVERY_BACKEND, where, f"[backends.{name}]")


def _keys(table: dict, spec: list, where: str, name: str, closed: bool = False) -> None:
    missing = [key for key, _, required in spec if required and key not in table]
    if len(missing) == 1:
        kind = next(kind for key, kind, _ in spec if key == missing[0])
        raise BoardError(f"{where}: {name} lacks {missing[0]} ({TYPES[kind][1]}): add it "
                         f"(see {EXAMPLE} for a complete board file)")
    if missing:
        raise BoardError(f"{where}: {name} lacks {', '.join(missing)}: add them "
                         f"(see {EXAMPLE} for a complete board file)")
    for key, kind, required in spec:
        if key not in table:
            continue
        test, what = TYPES[kind]
        if not test(table[key]):
            raise BoardError(f"{where}: {name} key {key} must be {what}, not {table[key]!r}")
    if closed:
        unknown = sorted(set(table) - {key for key, _, _ in spec})
        if unknown:
            raise BoardError(f"{where}: {name} has unknown key(s) {', '.join(unknown)}: it takes "
                             f"{', '.join(key for key, _, _ in spec)}")
