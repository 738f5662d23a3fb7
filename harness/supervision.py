"""The session's side of fault handling: a Supervisor on every DUT, fault events and link
trouble turned into `failure` records, and the optional fault-injecting link.

A failure record is an event, not a measurement: metric `failure`, value 1 (one event),
unit `event`, and the detail says what happened (`kind=...; ...`). The report never mixes it
with the figures.
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.faultlink import FaultLink, FaultSpec
from harness.recovery import FaultEvent, Supervisor

FAILURE_METRIC = "failure"
FAILURE_UNIT = "event"


def failure_detail(event: FaultEvent) -> str:
    return f"kind={event.kind}; {event.describe()}"


def record_failure(session, case, firmware, fidelity: str, event: FaultEvent) -> dict:
    return session.record(case, firmware, FAILURE_METRIC, 1.0, FAILURE_UNIT, fidelity,
                          detail=failure_detail(event))


def attach_supervisor(session, dut, case, firmware, options: dict) -> Supervisor:
    def relaunch():
        return session._start_target(case, firmware, options)

    def on_fault(event: FaultEvent) -> None:
        record_failure(session, case, firmware, dut.fidelity, event)

    dut.supervisor = Supervisor(dut, relaunch=relaunch, on_fault=on_fault)
    return dut.supervisor


def healthy(dut) -> bool:
    """Can this running DUT still be used? (Its process alive, its port present.)"""
    return dut.supervisor is None or dut.supervisor.healthy()


def insert_fault_link(target, spec_text: str):
    """Put a FaultLink between the harness and the target's own port."""
    link = FaultLink(target.url, FaultSpec.parse(spec_text), baud=target.board.baud).start()
    stop_target = target.stop_fn

    def stop():
        try:
            link.stop()
        finally:
            stop_target()

    target.url = link.url
    target.stop_fn = stop
    target.info["faultlink"] = link
    target.info["by_id_dir"] = str(link.by_id_dir)
    return target


def after_test(session, case, dut) -> None:
    """After each test on a DUT: did it restart unnoticed, and what did the link suffer?"""
    if dut.supervisor is not None and dut.supervisor.healthy():
        try:
            dut.supervisor.check_reset("during the test, between requests")
        except HarnessError:
            pass                    # already recorded as a failure by the supervisor
    note_link_faults(session, case, dut)


def note_link_faults(session, case, dut) -> dict | None:
    """One `link` failure record when frames had to be resent or were rejected since the last
    call (the protocol recovered them all; the record says how many)."""
    stats = dut.client.stats
    now = (stats.resends, stats.timeouts, stats.crc_errors_reported, stats.frames_rejected,
           stats.vector_reloads, stats.requests)
    before = session._link_seen.get(id(dut), (0,) * len(now))
    session._link_seen[id(dut)] = now
    resends, timeouts, bad_crc, rejected, reloads, requests = (a - b for a, b in zip(now, before))
    if not (resends or rejected or reloads):
        return None
    event = FaultEvent("link", f"{resends} resends over {requests} requests ({timeouts} timeouts, "
                       f"{bad_crc} BAD_CRC from the DUT, {rejected} frames rejected by the host, "
                       f"{reloads} vector reloads)", 0.0, "resent", True)
    return record_failure(session, case, dut.firmware, dut.fidelity, event)


__all__ = ["after_test", "attach_supervisor", "healthy", "insert_fault_link", "note_link_faults", "record_failure",
           "FAILURE_METRIC"]
