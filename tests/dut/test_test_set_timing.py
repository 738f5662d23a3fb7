"""Every test vector timed (issue 13): the accuracy pass's batched requests give each vector's
own cycles, the same the DUT counts for that vector alone; the distribution over the test set
and its slowest input go to the records and the table (device time only); energy runs on the
median-latency input."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "faults"))
from faultkit import start_session  # noqa: E402

from harness.dut.timing import VECTOR_CYCLES, decode_cycles, energy_input, median_input, record_test_set_latency
from harness.report.table import comparison_table
from harness.results.records import frame


def recorder(session, case, dut):
    def record(metric, value, unit, fidelity, statistic="value", n=1, detail=""):
        return session.record(case, dut.firmware, metric, value, unit, fidelity, statistic, n, detail)
    return record


def test_batched_cycles_equal_each_vector_timed_alone_and_fill_the_table(tmp_path):
    session, case, dut = start_session(tmp_path, "uno", "simavr", "rf_iris", fault_link=None)
    try:
        ex = dut.exported
        vectors = [ex.vector_bytes(i) for i in range(len(ex.test_inputs))]
        outputs, cycles, requests = dut.infer_all(vectors)
        assert dut.identity.batch_max > 1 and requests < len(vectors)
        sent, size, expected = 0, 1, 0          # slow start: 1, 2, 4 ... up to batch_max
        while sent < len(vectors):
            sent, size, expected = sent + size, min(size * 2, dut.identity.batch_max), expected + 1
        assert requests == expected
        for i in (0, 5, len(vectors) - 1):                   # cycle-accurate: exactly equal
            alone = dut.infer(vectors[i], runs=1)
            assert (alone.output, alone.cycles[0]) == (outputs[i], cycles[i])
        assert len(set(cycles)) > 1, "a tree's cycles depend on its input"

        record_test_set_latency(dut, cycles, recorder(session, case, dut))
        df = frame(session.recorder.records)
        stats = df[df.metric == "set_latency_cycles"].set_index("statistic")["value"]
        assert stats["min"] == min(cycles) and stats["max"] == max(cycles)
        assert stats["median"] == np.median(cycles)
        slowest = df[df.metric == "slowest_input"]["value"].iloc[0]
        assert cycles[int(slowest)] == max(cycles)
        kept = df[df.metric == VECTOR_CYCLES]
        assert len(kept) == 1 and decode_cycles(kept["detail"].iloc[0]) == cycles
        table = comparison_table(df)
        assert table["set_latency_max_us"].iloc[0] == dut.cycles_to_us(max(cycles))
        assert table["slowest_input"].iloc[0] == slowest

        assert energy_input(dut) == (0, "test vector 0 (the accuracy pass did not time this "
                                        "case's test set in this run)")
        dut.test_set["cycles"] = cycles
        index, note = energy_input(dut)
        assert index == median_input(cycles) and "median-latency input" in note
        assert sorted(cycles)[(len(cycles) - 1) // 2] == cycles[index]
    finally:
        session.close()


def test_host_clock_emulator_keeps_counts_but_fills_no_latency(tmp_path):
    session, case, dut = start_session(tmp_path, "uno", "qemu", "rf_iris", fault_link=None)
    try:
        ex = dut.exported
        outputs, cycles, _ = dut.infer_all([ex.vector_bytes(i) for i in range(10)])
        record_test_set_latency(dut, cycles, recorder(session, case, dut))
        df = frame(session.recorder.records)
        assert set(df.metric) == {VECTOR_CYCLES}
        table = comparison_table(df)
        assert "set_latency_median_us" not in table or pd.isna(table["set_latency_median_us"]).all()
    finally:
        session.close()
