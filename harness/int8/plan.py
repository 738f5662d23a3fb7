"""Tensor arena planning at generation time.

Every intermediate tensor gets a fixed offset in one static arena. Tensors whose lifetimes
(first write .. last read, in layer order) overlap never share bytes; the rest reuse memory.
Placement is greedy, largest first, lowest free offset (the strategy of TFLM's greedy
planner), which is simple and near optimal for the chain-shaped graphs of small models.
The model's input and output are not in the arena: layers read the caller's input buffer
and write the caller's output buffer directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.int8.lower import Lowered, refuse

ALIGN = 4  # float32 tensors and int32 loads want 4-byte alignment on the ESP32
ITEMSIZE = {"INT8": 1, "FLOAT32": 4}


@dataclass
class Placement:
    where: str        # "arena", "input" or "output"
    offset: int = 0   # bytes into the arena


@dataclass
class Plan:
    placements: dict[int, Placement]   # tensor index -> where its bytes are
    arena_bytes: int


def _root(aliases: dict[int, int], t: int) -> int:
    while t in aliases:
        t = aliases[t]
    return t


def plan(low: Lowered) -> Plan:
    aliases = low.aliases
    groups: dict[int, set[int]] = {}
    for layer in low.layers:
        for t in layer.reads + layer.writes:
            groups.setdefault(_root(aliases, t), set()).add(t)
    groups.setdefault(_root(aliases, low.input.index), set()).add(low.input.index)
    groups.setdefault(_root(aliases, low.output.index), set()).add(low.output.index)

    in_root, out_root = _root(aliases, low.input.index), _root(aliases, low.output.index)
    if in_root == out_root:
        raise refuse(None, "the model's output is its input (reshaped); there is nothing to compute")

    # lifetime of each storage group, in layer indices
    first, last = {}, {}
    for layer in low.layers:
        for t in layer.reads + layer.writes:
            r = _root(aliases, t)
            first.setdefault(r, layer.index)
            last[r] = layer.index

    placements: dict[int, Placement] = {}
    sizes = {}
    for r, members in groups.items():
        where = "input" if r == in_root else "output" if r == out_root else "arena"
        for t in members:
            placements[t] = Placement(where)
        if where == "arena":
            tensor = low.graph.tensors[r]
            sizes[r] = tensor.size * ITEMSIZE[tensor.dtype]

    placed: list[tuple[int, int, int]] = []   # (offset, size, root)
    arena = 0
    for r in sorted(sizes, key=lambda r: (-sizes[r], r)):
        busy = sorted((o, s) for o, s, q in placed if not (last[q] < first[r] or last[r] < first[q]))
        offset = 0
        for o, s in busy:
            if offset + sizes[r] <= o:
                break
            offset = max(offset, -(-(o + s) // ALIGN) * ALIGN)
        placed.append((offset, sizes[r], r))
        arena = max(arena, offset + sizes[r])
        for t in groups[r]:
            placements[t].offset = offset
    return Plan(placements, -(-arena // ALIGN) * ALIGN)
