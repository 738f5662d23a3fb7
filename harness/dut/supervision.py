"""The session's side of fault handling: a Supervisor on every DUT, fault events and link
trouble turned into `failure` records, and the optional fault-injecting link.

A failure record is an event, not a measurement: metric `failure`, value 1 (one event),
unit `event`, and the detail says what happened (`kind=...; ...`). The report never mixes it
with the figures.
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.dut.recovery import DutFault, FaultEvent, Supervisor

FAILURE_METRIC = "failure"
FAILURE_UNIT = "event"


def failure_detail(event: FaultEvent) -> str:
    return f"kind={event.kind}; {event.describe()}"


def record_failure(record, event: FaultEvent) -> dict:
    """`record(metric, value, unit, detail)` is the case's recorder (its fidelity bound)."""
    return record(FAILURE_METRIC, 1.0, FAILURE_UNIT, failure_detail(event))


def attach_supervisor(dut, relaunch, record) -> Supervisor:
    """Recovery for `dut`: `relaunch()` starts a fresh target for its board and firmware;
    each fault becomes one failure record."""
    dut.supervisor = Supervisor(dut, relaunch=relaunch, on_fault=lambda e: record_failure(record, e))
    return dut.supervisor


def healthy(dut) -> bool:
    """Can this running DUT still be used? (Its process alive, its port present.)"""
    return dut.supervisor is None or dut.supervisor.healthy()


def after_test(dut, record) -> None:
    """After each test on a DUT: did it die, hang or restart unnoticed, and what did the link
    suffer? Every fault found becomes a failure record of this test's case."""
    supervisor = dut.supervisor
    if supervisor is not None:
        try:
            if supervisor.recover_idle("found after the test") is None:
                supervisor.check_reset("during the test, between requests")
        except DutFault:
            pass                    # the supervisor has recorded it already
        except HarnessError as exc:  # e.g. the DUT came back with other firmware
            record_failure(record, FaultEvent("dut_reset", str(exc), 0.0, "none"))
    note_link_faults(dut, record)


def note_link_faults(dut, record) -> dict | None:
    """One `link` failure record when frames had to be resent or were rejected since the last
    call (the protocol recovered them all; the record says how many)."""
    stats = dut.client.stats
    now = (stats.resends, stats.timeouts, stats.crc_errors_reported, stats.frames_rejected,
           stats.vector_reloads, stats.fetches, stats.requests)
    before = dut.link_seen or (0,) * len(now)
    dut.link_seen = now
    resends, timeouts, bad_crc, rejected, reloads, fetches, requests = (a - b for a, b in zip(now, before))
    if not (resends or rejected or reloads):
        return None
    event = FaultEvent("link", f"{resends} resends over {requests} requests ({timeouts} timeouts, "
                       f"{bad_crc} BAD_CRC from the DUT, {rejected} frames rejected by the host, "
                       f"{reloads} vector reloads, {fetches} RESULT pieces fetched)", 0.0, "resent", True)
    return record_failure(record, event)
