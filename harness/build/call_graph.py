"""The stack a firmware can use, from its call graph: the deepest chain of frames.

gcc's -fstack-usage gives each function's frame; the disassembly gives who calls whom. The
bound is the deepest chain of calls from `main`, plus the deepest interrupt handler's (one
interrupt may arrive at any point). Adding up every frame bounds it too, but far above it: a
function that never calls the model still counted the model's frame. Where the graph cannot
bound the chain (an indirect call, recursion) `deepest_chain` gives None and the caller keeps
the sum.
"""

from __future__ import annotations

import re

# `0000068a <tinyhil_dut_feed>:` starts a function in `objdump -d` output
FUNCTION = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")
# a call or a jump and its target address: `call 0x66 ; 0x66 <f>`, `rjmp .-80 ; 0xac <f+0x4>`.
# The address, not the name: objdump names an rcall that wraps around a small flash wrongly.
BRANCH = re.compile(r"\t(r?call|r?jmp)\s.*;\s*0x([0-9a-f]+)")
# a call through a pointer: its callee is unknown. (`ijmp` is gcc's switch table on AVR, whose
# targets lie inside the function, so it is not one.)
INDIRECT = re.compile(r"\t(e?icall)\b")
# A library routine built without -fstack-usage (libgcc's arithmetic, avr-libc's memcpy and
# libm): its return address and the registers it pushes. The most seen in these builds is 12
# bytes (libm's tanh: 9 pushes and a 3-byte return address on the Mega).
LIBRARY_FRAME = 16
# a write to the stack pointer (SPL 0x3d, SPH 0x3e): a frame the pushes do not show
MOVES_SP = re.compile(r"\tout\t0x3[de],")


def frames_from_su(su_text: str) -> dict[str, int]:
    """Frame bytes per function name from -fstack-usage lines (`file:line:col:name<TAB>N<TAB>kind`)."""
    frames: dict[str, int] = {}
    for line in su_text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].isdigit():
            name = _base(parts[0].rsplit(":", 1)[-1])
            frames[name] = max(frames.get(name, 0), int(parts[1]))   # two statics of one name
    return frames


def deepest_chain(disassembly: str, frames: dict[str, int], flash_bytes: int = 0) -> int | None:
    """Bytes of stack on the deepest chain from `main`, plus the deepest interrupt handler
    (`__vector_N`); None when the chain cannot be bounded from the code. `flash_bytes`: where
    a relative call wraps around (an AVR of 8 KB or less)."""
    starts: dict[int, str] = {}
    branches: dict[str, list[tuple[str, int]]] = {}
    moves_sp: set[str] = set()
    current = None
    for line in disassembly.splitlines():
        start = FUNCTION.match(line)
        if start:
            current = start.group(2)
            starts[int(start.group(1), 16)] = current
            branches.setdefault(current, [])
        elif current is not None:
            if INDIRECT.search(line):
                return None
            if MOVES_SP.search(line):
                moves_sp.add(current)
            branch = BRANCH.search(line)
            if branch:
                branches[current].append((branch.group(1), int(branch.group(2), 16)))

    def callee(target: int) -> str | None:
        """The function starting at `target`; an rcall that wrapped around the flash (objdump
        prints it past 4 GB, or past the flash's end) is followed to where it lands."""
        for address in (target, (target + flash_bytes) % 2**32, target - flash_bytes):
            if address in starts and (address == target or flash_bytes):
                return starts[address]
        return None

    # Edges: calls to a function, and jumps to a compiled C function's start (tail calls); other
    # jumps stay inside a function (library code jumps between its own labels)
    calls = {name: {callee(target) for kind, target in found if callee(target) not in (None, name) and
                    ("call" in kind or _base(callee(target)) in frames)}
             for name, found in branches.items()}
    if "main" not in calls:
        return None

    deepest: dict[str, int | None] = {}      # per function: its chain's bytes (None: unbounded)

    def depth(name: str) -> int | None:
        if name not in deepest:
            deepest[name] = None                 # seen again before it is done: recursion
            below = [depth(callee) for callee in calls.get(name, ())]
            # a library routine that moves the stack pointer has a frame no line tells
            if None not in below and not (name in moves_sp and _base(name) not in frames):
                deepest[name] = frames.get(_base(name), LIBRARY_FRAME) + max(below, default=0)
        return deepest[name]

    handlers = [depth(name) for name in calls if re.fullmatch(r"__vector_\d+", name)]
    chain = depth("main")
    if chain is None or None in handlers:
        return None
    return chain + max(handlers, default=0)


def _base(name: str) -> str:
    """`timed_run.constprop.2` (a symbol) and `timed_run.constprop` (its -fstack-usage line)
    name one function."""
    return re.sub(r"\.\d+$", "", name)
