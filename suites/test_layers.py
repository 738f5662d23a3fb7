"""Where the cycles go: an int8 network (tinyhil-int8) timed layer by layer on the device.

The layer build is the same generated C with a counter read around every layer; its output is
the ticks each layer took (harness.exporters.tinyhil_int8.layer_profile). Per layer: ticks
(median of the runs), MACs from the shapes, ticks per MAC. Device time only, like latency."""

from dataclasses import replace

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.fidelity import DEVICE_TIME

RUNS = 5


def test_layers(case, exported, tinyhil_session, progress):
    if case.variant.exporter != "tinyhil-int8":
        pytest.skip(f"{case.variant.name}: per-layer timing is for int8 networks (tinyhil-int8 "
                    "variants: a [[model]] with tflite = ...)")
    plan = tinyhil_session.plan_for(case)
    if not plan.availability.ok:
        pytest.skip(f"{case.backend} cannot run {case.board.name} here: {plan.availability}")
    if case.fidelity not in DEVICE_TIME:
        pytest.skip(f"{case.backend} times {case.board.name} by the host's clock: no device "
                    "figure per layer; use --backend simavr (cycle-accurate) or a real board")
    from harness.exporters.tinyhil_int8 import layer_profile
    layered = replace(case, variant=layer_profile(case.variant, exported))
    with progress.step(f"building the per-layer timing build of {case.variant.name}"):
        try:
            firmware = tinyhil_session.firmware(layered)
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
    if not firmware.fits:
        pytest.skip(f"the layer build of {case.variant.name} does not fit {case.board.name}: "
                    f"{'; '.join(firmware.problems)}")
    with progress.step(f"starting the layer build on {case.board.name}"):
        try:
            dut = tinyhil_session.dut(layered)
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
    vector = dut.exported.vector_bytes(0)
    ticks = np.median([dut.exported.decode_output(dut.infer(vector).output) for _ in range(RUNS)],
                      axis=0)
    layers = exported.facts["layers"]
    assert ticks[[layer["index"] for layer in layers if layer["macs"]]].min() > 0, \
        f"a layer with MACs took no counter ticks: {ticks.tolist()}"
    per_mac = []
    for layer in layers:
        name = f"{layer['index']:02d} {layer['op']}"
        spent = float(ticks[layer["index"]])
        tinyhil_session.record(case, firmware, "layer_cycles", spent, "cycles", dut.fidelity,
                               statistic="median", n=RUNS,
                               detail=name)
        if layer["macs"]:
            tinyhil_session.record(case, firmware, "layer_macs", layer["macs"], "MACs", "static",
                                   detail=name)
            per_mac.append((spent, layer["macs"]))
    spent, macs = (sum(x) for x in zip(*per_mac))
    tinyhil_session.record(case, firmware, "cycles_per_mac", spent / macs, "cycles/MAC", dut.fidelity,
                           n=RUNS, detail=f"MAC layers' counter ticks / their {macs:,} MACs, each "
                           f"layer including one counter read; counter at {dut.identity.timer_hz} Hz")
