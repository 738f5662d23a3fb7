"""hardware: a real board, bound to the board resource the lab resolved and flashed for this
run (harness.lab). The backend only reaches it: finding the port, locking the board, flashing
it and labgrid places are the lab's."""

from __future__ import annotations

from harness.backends.base import Availability, Backend, StartRequest, Target
from harness.boards import Board
from harness.errors import BackendError
from harness.fidelity import HARDWARE


class HardwareBackend(Backend):
    name = "hardware"
    fidelity = HARDWARE
    # Opening the port resets an Arduino into its bootloader: keep asking for ~5 s.
    identify_attempts = 12
    identify_timeout = 0.4

    def availability(self, board: Board) -> Availability:
        if not board.backend_settings("hardware"):
            return Availability(False, f"{board.name} has no [backends.hardware] table")
        return Availability(True)

    def start(self, request: StartRequest) -> Target:
        resource = request.resource
        if resource is None:
            raise BackendError(f"no {request.board.name} was resolved for this run: connect one "
                               "or pass --port")
        return Target(url=resource.url, backend=self.name, fidelity=self.fidelity,
                      board=request.board, description=resource.description,
                      stop_fn=resource.release, resource=resource,
                      build_id=getattr(request.firmware, "build_id", ""))
