"""Put a fault-injecting link between the harness and every target (`--fault-link`): a
target wrapper the session applies to each target it starts."""

from __future__ import annotations

from dataclasses import replace

from harness.faults.faultlink import FaultLink, FaultSpec


def fault_link_wrapper(spec_text: str):
    """A function Target -> Target that routes the target's link through a FaultLink."""
    spec = FaultSpec.parse(spec_text)

    def wrap(target):
        link = FaultLink(target.url, spec, baud=target.board.baud).start()
        stop_target = target.stop_fn

        def stop():
            try:
                link.stop()
            finally:
                stop_target()

        return replace(target, url=link.url, stop_fn=stop,
                       port_dirs=(*target.port_dirs, link.by_id_dir),
                       extras={**target.extras, "faultlink": link})
    return wrap
